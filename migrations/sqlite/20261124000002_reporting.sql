-- Reporting views: a stable, public interface (docs/reporting.md). Same names and columns
-- as the PostgreSQL views (day is 'YYYY-MM-DD' text, booleans 0/1). Days are UTC dates of
-- the call's start.

CREATE TABLE report_settings (
    id                    INTEGER PRIMARY KEY CHECK (id = 1),
    service_level_seconds INTEGER NOT NULL CHECK (service_level_seconds > 0)
) STRICT;
INSERT INTO report_settings (id, service_level_seconds) VALUES (1, 20);

CREATE INDEX offers_offered_at ON offers (offered_at);

CREATE VIEW report_calls AS
SELECT
    c.call_sid,
    c.started_at,
    substr(c.started_at, 1, 10) AS day,
    c.status,
    c.outcome,
    c.attempts,
    c.answered_by,
    a.name AS answered_by_name,
    ROUND(CASE
        WHEN c.answered_at IS NOT NULL THEN (julianday(c.answered_at) - julianday(c.started_at)) * 86400.0
        WHEN c.outcome = 'abandoned' AND c.ended_at IS NOT NULL THEN (julianday(c.ended_at) - julianday(c.started_at)) * 86400.0
    END, 3) AS wait_seconds,
    c.talk_seconds,
    (c.voicemail_started_at IS NOT NULL OR c.outcome = 'voicemail') AS voicemail,
    c.ended_at
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
    ROUND(100.0 * t.answered_within_sl / NULLIF(t.offered - t.abandoned_within_sl, 0), 2) AS service_level_pct,
    ROUND(t.asa, 2) AS asa_seconds,
    ROUND(t.aht, 2) AS aht_seconds,
    ROUND(100.0 * t.abandoned / NULLIF(t.offered, 0), 2) AS abandonment_rate_pct
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
    ROUND(100.0 * t.answered / NULLIF(t.answered + t.missed, 0), 2) AS answer_rate_pct
FROM (
    SELECT
        o.agent_id,
        a.name AS agent_name,
        substr(o.offered_at, 1, 10) AS day,
        count(*) AS offers,
        count(*) FILTER (WHERE o.state = 'answered') AS answered,
        count(*) FILTER (WHERE o.state = 'missed') AS missed,
        count(*) FILTER (WHERE o.state = 'canceled') AS canceled,
        count(*) FILTER (WHERE o.state = 'late') AS late,
        COALESCE(sum(o.talk_seconds) FILTER (WHERE o.state = 'answered'), 0) AS talk_seconds
    FROM offers o
    LEFT JOIN agents a ON a.id = o.agent_id
    GROUP BY o.agent_id, a.name, substr(o.offered_at, 1, 10)
) t;
