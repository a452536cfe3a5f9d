-- The queue (issue 16): callers wait in the database in (priority DESC, enqueued_at) order;
-- the matcher reserves agents for the head caller by opening a round of offers; an agent
-- holds at most one open offer (the unique index below is the lock).

ALTER TABLE calls ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN delivery TEXT
    CHECK (delivery IN ('pending', 'pushing', 'pull', 'delivered'));
ALTER TABLE calls ADD COLUMN delivery_at TIMESTAMPTZ;
ALTER TABLE calls ADD COLUMN push_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN announced_position INTEGER;
ALTER TABLE calls ADD COLUMN announced_at TIMESTAMPTZ;

CREATE INDEX calls_waiting ON calls (priority DESC, enqueued_at, call_sid)
    WHERE status IN ('ringing', 'dialing') AND round_open = false AND enqueued_at IS NOT NULL;
CREATE INDEX calls_open_rounds ON calls (delivery_at)
    WHERE round_open = true AND status IN ('ringing', 'dialing');

ALTER TABLE offers ADD COLUMN misses_before INTEGER NOT NULL DEFAULT 0;

-- Offers left ringing by rounds that are over end here; of the rest, an agent keeps its
-- newest: then at most one open offer per agent, as the index demands.
UPDATE offers o SET state = 'canceled', ended_at = COALESCE(o.ended_at, now())
WHERE o.state = 'ringing' AND NOT EXISTS (
    SELECT 1 FROM calls c WHERE c.call_sid = o.call_sid AND c.round_open
      AND c.attempts = o.attempt AND c.status IN ('ringing', 'dialing'));
UPDATE offers o SET state = 'canceled', ended_at = COALESCE(o.ended_at, now())
WHERE o.state = 'ringing' AND EXISTS (
    SELECT 1 FROM offers n WHERE n.agent_id = o.agent_id AND n.state = 'ringing'
      AND (n.offered_at, n.call_sid) > (o.offered_at, o.call_sid));
CREATE UNIQUE INDEX offers_one_open_per_agent ON offers (agent_id) WHERE state = 'ringing';

ALTER TABLE agents ADD COLUMN missed_in_a_row INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN offer_call_sid TEXT;
ALTER TABLE agents ADD COLUMN offer_ringing BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE agents ADD COLUMN no_answer_until TIMESTAMPTZ;
UPDATE agents a SET offer_call_sid = o.call_sid, offer_ringing = true
FROM offers o WHERE o.agent_id = a.id AND o.state = 'ringing';

DROP INDEX agents_available_now;
CREATE INDEX agents_available_now ON agents (idle_since, id)
    INCLUDE (last_heartbeat_at, sip_uri, no_answer_until, missed_in_a_row)
    WHERE presence = 'available' AND paused_reason IS NULL AND current_call_sid IS NULL
      AND offer_call_sid IS NULL;

-- Priority rules: a caller whose number equals `pattern`, or starts with it when it ends
-- in '*', waits with `priority` (the longest matching pattern wins; 0 without one).
CREATE TABLE priority_rules (
    id         UUID PRIMARY KEY,
    pattern    TEXT NOT NULL UNIQUE CHECK (pattern ~ '^\+?[0-9]{1,15}\*?$'),
    priority   INTEGER NOT NULL CHECK (priority BETWEEN -100 AND 100),
    label      TEXT NOT NULL DEFAULT '' CHECK (length(label) <= 100),
    created_at TIMESTAMPTZ NOT NULL
);
