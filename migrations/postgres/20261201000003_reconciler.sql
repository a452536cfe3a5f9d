-- The reconciler finds offers still ringing by their call (offers_ringing); the index by
-- SIP key served the lookup of a leg by its To, which is gone (a leg is known by its offer).
DROP INDEX IF EXISTS offers_ringing_by_sip;
CREATE INDEX offers_ringing ON offers (call_sid) WHERE state = 'ringing';
