-- When an offer stopped being open (answered, missed, canceled, withdrawn): with
-- offered_at, the interval the agent was reserved for it. Null for offers from before it
-- and for offers still open.
ALTER TABLE offers ADD COLUMN closed_at TEXT;
