-- Call-center schema, SQLite. Same tables, columns and meanings as the PostgreSQL schema
-- (docs/reporting.md). Timestamps are TEXT 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (UTC, fixed width,
-- so they sort and compare as text and SQLite's date functions read them); UUIDs are TEXT;
-- booleans are 0/1.

CREATE TABLE agents (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL,
    sip_uri              TEXT NOT NULL,
    sip_key              TEXT NOT NULL UNIQUE,
    presence             TEXT NOT NULL CHECK (presence IN ('available', 'busy', 'offline')),
    last_heartbeat_at    TEXT,
    current_call_sid     TEXT,
    idle_since           TEXT NOT NULL,
    heartbeat_token_hash TEXT NOT NULL UNIQUE,
    calls_answered       INTEGER NOT NULL DEFAULT 0,
    calls_missed         INTEGER NOT NULL DEFAULT 0,
    total_talk_seconds   INTEGER NOT NULL DEFAULT 0,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
) STRICT;
CREATE INDEX agents_available_now ON agents (idle_since, id, last_heartbeat_at)
    WHERE presence = 'available' AND current_call_sid IS NULL;

CREATE TABLE calls (
    call_sid                   TEXT PRIMARY KEY,
    from_number                TEXT NOT NULL,
    to_number                  TEXT NOT NULL,
    account_sid                TEXT,
    connection_id              TEXT,
    status                     TEXT NOT NULL CHECK (status IN ('ringing', 'dialing', 'answered', 'voicemail', 'completed')),
    outcome                    TEXT CHECK (outcome IN ('answered', 'voicemail', 'abandoned', 'unanswered', 'failed')),
    attempts                   INTEGER NOT NULL,
    round_open                 INTEGER NOT NULL,
    answered_by                TEXT,
    answered_leg_sid           TEXT,
    started_at                 TEXT NOT NULL,
    answered_at                TEXT,
    ended_at                   TEXT,
    talk_seconds               INTEGER,
    recording_url              TEXT,
    recording_sid              TEXT,
    voicemail_started_at       TEXT,
    voicemail_recording_url    TEXT,
    voicemail_recording_sid    TEXT,
    voicemail_duration_seconds INTEGER,
    voicemail_transcription    TEXT,
    recording_notice_played    INTEGER NOT NULL,
    redacted_at                TEXT,
    version                    INTEGER NOT NULL,
    updated_at                 TEXT NOT NULL
) STRICT;
CREATE INDEX calls_started_at ON calls (started_at DESC, call_sid DESC);
CREATE INDEX calls_status_started_at ON calls (status, started_at DESC);
CREATE INDEX calls_to_redact ON calls (started_at) WHERE redacted_at IS NULL;

CREATE TABLE dial_attempts (
    call_sid   TEXT NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
    attempt    INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    ended_at   TEXT,
    offered    INTEGER NOT NULL,
    result     TEXT,
    PRIMARY KEY (call_sid, attempt)
) STRICT;

CREATE TABLE offers (
    call_sid     TEXT NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,
    agent_id     TEXT NOT NULL,
    sip_uri      TEXT NOT NULL,
    sip_key      TEXT NOT NULL,
    leg_sid      TEXT,
    state        TEXT NOT NULL CHECK (state IN ('ringing', 'answered', 'missed', 'canceled', 'late')),
    leg_status   TEXT,
    offered_at   TEXT NOT NULL,
    answered_at  TEXT,
    ended_at     TEXT,
    leg_duration INTEGER,
    talk_seconds INTEGER,
    talk_final   INTEGER NOT NULL,
    PRIMARY KEY (call_sid, attempt, agent_id)
) STRICT;
CREATE INDEX offers_leg_sid ON offers (leg_sid) WHERE leg_sid IS NOT NULL;
CREATE INDEX offers_ringing_by_sip ON offers (sip_key, offered_at DESC) WHERE state = 'ringing';
CREATE INDEX offers_agent_offered_at ON offers (agent_id, offered_at);

CREATE TABLE webhook_receipts (
    key         TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    received_at TEXT NOT NULL
) STRICT;
CREATE INDEX webhook_receipts_received_at ON webhook_receipts (received_at);

-- SQLite runs one writer at a time, so id order is commit order; the sealer chains pending
-- rows (seq NULL) in id order.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    seq         INTEGER UNIQUE,
    occurred_at TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    call_sid    TEXT,
    agent_id    TEXT,
    data        TEXT NOT NULL,
    prev_digest TEXT,
    digest      TEXT
) STRICT;
CREATE INDEX audit_log_pending ON audit_log (id) WHERE seq IS NULL;
CREATE INDEX audit_log_call ON audit_log (call_sid, id);
CREATE INDEX audit_log_agent ON audit_log (agent_id, id);

CREATE TABLE audit_chain_head (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    seq    INTEGER NOT NULL,
    digest TEXT NOT NULL
) STRICT;
INSERT INTO audit_chain_head (id, seq, digest)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_seal_once BEFORE UPDATE ON audit_log
WHEN OLD.seq IS NOT NULL
  OR NEW.id IS NOT OLD.id OR NEW.occurred_at IS NOT OLD.occurred_at OR NEW.actor IS NOT OLD.actor
  OR NEW.action IS NOT OLD.action OR NEW.data IS NOT OLD.data
  OR NEW.call_sid IS NOT OLD.call_sid OR NEW.agent_id IS NOT OLD.agent_id
BEGIN
    SELECT RAISE(ABORT, 'audit_log entries cannot be changed once written');
END;
