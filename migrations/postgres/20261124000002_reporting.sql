-- Reporting views: a stable, public interface (docs/reporting.md). Same names and columns
-- as the SQLite views. Days are UTC dates of the call's start.

-- The service-level threshold the views use; the server writes
-- CALL_CENTER_SERVICE_LEVEL_SECONDS here at startup.
CREATE TABLE report_settings (
    id                    SMALLINT PRIMARY KEY CHECK (id = 1),
    service_level_seconds INTEGER NOT NULL CHECK (service_level_seconds > 0)
);
INSERT INTO report_settings (id, service_level_seconds) VALUES (1, 20);

CREATE INDEX offers_offered_at ON offers (offered_at);

-- One row per call.
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
        WHEN c.answered_at IS NOT NULL THEN EXTRACT(EPOCH FROM (c.answered_at - c.started_at))
        WHEN c.outcome = 'abandoned' AND c.ended_at IS NOT NULL THEN EXTRACT(EPOCH FROM (c.ended_at - c.started_at))
    END)::numeric, 3)::double precision AS wait_seconds,
    c.talk_seconds,
    (c.voicemail_started_at IS NOT NULL OR c.outcome = 'voicemail') AS voicemail,
    c.ended_at
FROM calls c
LEFT JOIN agents a ON a.id = c.answered_by;

-- Per day: volumes, service level, ASA, AHT, abandonment rate.
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
    ROUND((100.0 * t.abandoned / NULLIF(t.offered, 0))::numeric, 2)::double precision AS abandonment_rate_pct
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
        avg(r.talk_seconds) FILTER (WHERE r.outcome = 'answered' AND r.talk_seconds IS NOT NULL) AS aht
    FROM report_calls r
    CROSS JOIN report_settings s
    GROUP BY r.day, s.service_level_seconds
) t;

-- Per agent per day (UTC date the agent was rung).
CREATE VIEW report_agent_daily AS
SELECT
    t.agent_id,
    t.agent_name,
    t.day,
    t.offers,
    t.answered,
    t.missed,
    t.canceled,
    t.late,
    t.talk_seconds,
    ROUND((100.0 * t.answered / NULLIF(t.answered + t.missed, 0))::numeric, 2)::double precision AS answer_rate_pct
FROM (
    SELECT
        o.agent_id,
        a.name AS agent_name,
        (o.offered_at AT TIME ZONE 'UTC')::date AS day,
        count(*) AS offers,
        count(*) FILTER (WHERE o.state = 'answered') AS answered,
        count(*) FILTER (WHERE o.state = 'missed') AS missed,
        count(*) FILTER (WHERE o.state = 'canceled') AS canceled,
        count(*) FILTER (WHERE o.state = 'late') AS late,
        COALESCE(sum(o.talk_seconds) FILTER (WHERE o.state = 'answered'), 0)::bigint AS talk_seconds
    FROM offers o
    LEFT JOIN agents a ON a.id = o.agent_id
    GROUP BY o.agent_id, a.name, (o.offered_at AT TIME ZONE 'UTC')::date
) t;
