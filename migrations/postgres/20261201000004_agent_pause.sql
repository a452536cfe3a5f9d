-- A pause (with its reason) beside the presence: a paused agent stays online but is not
-- offered calls. "Available now" leaves paused agents out.
ALTER TABLE agents ADD COLUMN paused_reason TEXT
    CHECK (paused_reason IS NULL OR paused_reason ~ '^[a-z0-9-]{1,32}$');
DROP INDEX agents_available_now;
CREATE INDEX agents_available_now ON agents (idle_since, id)
    INCLUDE (last_heartbeat_at, sip_uri)
    WHERE presence = 'available' AND paused_reason IS NULL AND current_call_sid IS NULL;
