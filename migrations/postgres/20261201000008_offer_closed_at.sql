-- When an offer stopped being open (answered, missed, canceled, withdrawn): with
-- offered_at, the interval the agent was reserved for it. Null for offers from before it
-- and for offers still open.
ALTER TABLE offers ADD COLUMN closed_at TIMESTAMPTZ;

-- The call store's apply statement re-checks, under the agents' row locks, that every agent
-- it reserves is still reservable (the matcher read it before; a miss, a pause or another
-- reservation may have come between). A statement cannot roll itself back, so it calls this
-- with the number of stale reservations: any makes it fail as a serialization failure,
-- which the store reports as a conflict (the change is decided again).
CREATE FUNCTION reservation_conflict(stale BIGINT) RETURNS BIGINT
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF stale > 0 THEN
        RAISE EXCEPTION 'an agent to reserve is no longer reservable' USING ERRCODE = '40001';
    END IF;
    RETURN 0;
END
$$;
