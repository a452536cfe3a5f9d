-- Call-center schema, PostgreSQL. The tables are a public interface for reporting
-- (docs/reporting.md): change them only with a new migration and a note there.

CREATE TABLE agents (
    id                   UUID PRIMARY KEY,
    name                 TEXT NOT NULL,
    sip_uri              TEXT NOT NULL,
    sip_key              TEXT NOT NULL UNIQUE,           -- normalised user@host[:port]
    presence             TEXT NOT NULL CHECK (presence IN ('available', 'busy', 'offline')),
    last_heartbeat_at    TIMESTAMPTZ,
    current_call_sid     TEXT,                           -- the call this agent is on
    idle_since           TIMESTAMPTZ NOT NULL,           -- longest idle is rung first
    heartbeat_token_hash TEXT NOT NULL UNIQUE,           -- SHA-256 of the token, never the token
    calls_answered       BIGINT NOT NULL DEFAULT 0,
    calls_missed         BIGINT NOT NULL DEFAULT 0,
    total_talk_seconds   BIGINT NOT NULL DEFAULT 0,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);

-- "Available now": presence available and no call, ordered by longest idle; the heartbeat
-- filter is applied while walking this index in order.
CREATE INDEX agents_available_now ON agents (idle_since, id)
    INCLUDE (last_heartbeat_at, sip_uri)
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
    round_open                 BOOLEAN NOT NULL,
    answered_by                UUID,                     -- an agent id; no foreign key: history outlives agents
    answered_leg_sid           TEXT,
    started_at                 TIMESTAMPTZ NOT NULL,
    answered_at                TIMESTAMPTZ,
    ended_at                   TIMESTAMPTZ,
    talk_seconds               BIGINT,
    recording_url              TEXT,
    recording_sid              TEXT,
    voicemail_started_at       TIMESTAMPTZ,
    voicemail_recording_url    TEXT,
    voicemail_recording_sid    TEXT,
    voicemail_duration_seconds BIGINT,
    voicemail_transcription    TEXT,
    recording_notice_played    BOOLEAN NOT NULL,
    redacted_at                TIMESTAMPTZ,
    version                    BIGINT NOT NULL,
    updated_at                 TIMESTAMPTZ NOT NULL
);
CREATE INDEX calls_started_at ON calls (started_at DESC, call_sid DESC);
CREATE INDEX calls_status_started_at ON calls (status, started_at DESC);
CREATE INDEX calls_to_redact ON calls (started_at) WHERE redacted_at IS NULL;

CREATE TABLE dial_attempts (
    call_sid   TEXT NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
    attempt    INTEGER NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    ended_at   TIMESTAMPTZ,
    offered    INTEGER NOT NULL,
    result     TEXT,
    PRIMARY KEY (call_sid, attempt)
);

CREATE TABLE offers (
    call_sid     TEXT NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,
    agent_id     UUID NOT NULL,
    sip_uri      TEXT NOT NULL,
    sip_key      TEXT NOT NULL,
    leg_sid      TEXT,
    state        TEXT NOT NULL CHECK (state IN ('ringing', 'answered', 'missed', 'canceled', 'late')),
    leg_status   TEXT,
    offered_at   TIMESTAMPTZ NOT NULL,
    answered_at  TIMESTAMPTZ,
    ended_at     TIMESTAMPTZ,
    leg_duration BIGINT,
    talk_seconds BIGINT,
    talk_final   BOOLEAN NOT NULL,
    PRIMARY KEY (call_sid, attempt, agent_id)
);
CREATE INDEX offers_leg_sid ON offers (leg_sid) WHERE leg_sid IS NOT NULL;
CREATE INDEX offers_ringing_by_sip ON offers (sip_key, offered_at DESC) WHERE state = 'ringing';
CREATE INDEX offers_agent_offered_at ON offers (agent_id, offered_at);

-- Requests already processed: callback natural keys and webhook signatures.
CREATE TABLE webhook_receipts (
    key         TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_receipts_received_at ON webhook_receipts (received_at);

-- The audit log. Rows are written pending (seq NULL) in the transaction of the change they
-- describe, with that transaction's id; the sealer chains them in (txid, id) order, only
-- below the oldest transaction still in flight, so no late commit is ever skipped.
CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    txid        XID8 NOT NULL DEFAULT pg_current_xact_id(),
    seq         BIGINT UNIQUE,
    occurred_at TIMESTAMPTZ NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    call_sid    TEXT,
    agent_id    UUID,
    data        TEXT NOT NULL,
    prev_digest TEXT,
    digest      TEXT
);
CREATE INDEX audit_log_pending ON audit_log (txid, id) WHERE seq IS NULL;
CREATE INDEX audit_log_call ON audit_log (call_sid, id);
CREATE INDEX audit_log_agent ON audit_log (agent_id, id);

CREATE TABLE audit_chain_head (
    id     SMALLINT PRIMARY KEY CHECK (id = 1),
    seq    BIGINT NOT NULL,
    digest TEXT NOT NULL
);
INSERT INTO audit_chain_head (id, seq, digest)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Append-only: entries cannot be deleted or edited; the sealer may set the chain columns
-- once. (A superuser can disable triggers; the hash chain still exposes the edit.)
CREATE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION 'audit_log is append-only';
    END IF;
    IF OLD.seq IS NOT NULL
       OR NEW.id <> OLD.id OR NEW.txid <> OLD.txid OR NEW.occurred_at <> OLD.occurred_at
       OR NEW.actor <> OLD.actor OR NEW.action <> OLD.action OR NEW.data <> OLD.data
       OR NEW.call_sid IS DISTINCT FROM OLD.call_sid OR NEW.agent_id IS DISTINCT FROM OLD.agent_id THEN
        RAISE EXCEPTION 'audit_log entries cannot be changed once written';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_guard();
