-- A pause (with its reason) beside the presence: a paused agent stays online but is not
-- offered calls. "Available now" leaves paused agents out.
ALTER TABLE agents ADD COLUMN paused_reason TEXT
    CHECK (paused_reason IS NULL OR (length(paused_reason) BETWEEN 1 AND 32
        AND paused_reason NOT GLOB '*[^a-z0-9-]*'));
DROP INDEX agents_available_now;
CREATE INDEX agents_available_now ON agents (idle_since, id, last_heartbeat_at)
    WHERE presence = 'available' AND paused_reason IS NULL AND current_call_sid IS NULL;
