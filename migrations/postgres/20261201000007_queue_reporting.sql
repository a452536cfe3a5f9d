-- Reporting with the queue (issue 16): a call's wait runs from when it joined the queue
-- (enqueued_at; its start for calls from before the queue) to its answer or its hang-up;
-- report_calls gains the queue's columns, report_daily the abandoned callers' wait and the
-- offers per call; report_agent_pauses counts pauses after missed offers. Columns are only
-- appended: queries written against the old views keep working.

DROP VIEW report_daily;
DROP VIEW report_calls;

CREATE VIEW report_calls AS
SELECT
    c.call_sid,
    c.started_at,
    (c.started_at AT TIME ZONE 'UTC')::date AS day,
    c.status,
    c.outcome,
    c.attempts,
    c.answered_by,
    a.name AS answered_by_name,
    ROUND((CASE
        WHEN c.answered_at IS NOT NULL
            THEN EXTRACT(EPOCH FROM (c.answered_at - COALESCE(c.enqueued_at, c.started_at)))
        WHEN c.outcome = 'abandoned' AND c.ended_at IS NOT NULL
            THEN EXTRACT(EPOCH FROM (c.ended_at - COALESCE(c.enqueued_at, c.started_at)))
    END)::numeric, 3)::double precision AS wait_seconds,
    c.talk_seconds,
    (c.voicemail_started_at IS NOT NULL OR c.outcome = 'voicemail') AS voicemail,
    c.ended_at,
    c.enqueued_at,
    c.priority,
    (SELECT count(*) FROM offers o WHERE o.call_sid = c.call_sid) AS offers,
    (SELECT count(*) FROM offers o WHERE o.call_sid = c.call_sid AND o.state = 'missed') AS offers_missed
FROM calls c
LEFT JOIN agents a ON a.id = c.answered_by;

CREATE VIEW report_daily AS
SELECT
    t.day,
    t.offered,
    t.answered,
    t.abandoned,
    t.voicemail,
    t.unanswered,
    t.failed,
    t.answered_within_sl,
    t.abandoned_within_sl,
    t.service_level_seconds,
    ROUND((100.0 * t.answered_within_sl / NULLIF(t.offered - t.abandoned_within_sl, 0))::numeric, 2)::double precision
        AS service_level_pct,
    ROUND(t.asa::numeric, 2)::double precision AS asa_seconds,
    ROUND(t.aht::numeric, 2)::double precision AS aht_seconds,
    ROUND((100.0 * t.abandoned / NULLIF(t.offered, 0))::numeric, 2)::double precision AS abandonment_rate_pct,
    ROUND(t.abandon_wait::numeric, 2)::double precision AS abandoned_wait_avg_seconds,
    ROUND((1.0 * t.offers / NULLIF(t.offered, 0))::numeric, 2)::double precision AS offers_per_call
FROM (
    SELECT
        r.day,
        s.service_level_seconds,
        count(*) AS offered,
        count(*) FILTER (WHERE r.outcome = 'answered') AS answered,
        count(*) FILTER (WHERE r.outcome = 'abandoned') AS abandoned,
        count(*) FILTER (WHERE r.outcome = 'voicemail') AS voicemail,
        count(*) FILTER (WHERE r.outcome = 'unanswered') AS unanswered,
        count(*) FILTER (WHERE r.outcome = 'failed') AS failed,
        count(*) FILTER (WHERE r.outcome = 'answered' AND r.wait_seconds <= s.service_level_seconds) AS answered_within_sl,
        count(*) FILTER (WHERE r.outcome = 'abandoned' AND r.wait_seconds <= s.service_level_seconds) AS abandoned_within_sl,
        avg(r.wait_seconds) FILTER (WHERE r.outcome = 'answered') AS asa,
        avg(r.talk_seconds) FILTER (WHERE r.outcome = 'answered' AND r.talk_seconds IS NOT NULL) AS aht,
        avg(r.wait_seconds) FILTER (WHERE r.outcome = 'abandoned') AS abandon_wait,
        sum(r.offers) AS offers
    FROM report_calls r
    CROSS JOIN report_settings s
    GROUP BY r.day, s.service_level_seconds
) t;

-- Pauses after repeated missed offers, per agent per day (from the audit log).
CREATE VIEW report_agent_pauses AS
SELECT
    l.agent_id,
    (l.occurred_at AT TIME ZONE 'UTC')::date AS day,
    count(*) AS pauses_for_misses
FROM audit_log l
WHERE l.action = 'agent_status_changed' AND l.agent_id IS NOT NULL
  AND l.data LIKE '%"to_reason":"missed-calls"%'
GROUP BY l.agent_id, (l.occurred_at AT TIME ZONE 'UTC')::date;
