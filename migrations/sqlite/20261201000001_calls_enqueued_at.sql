-- When the caller started waiting for an agent (set once, never reset; the queue orders by it).
ALTER TABLE calls ADD COLUMN enqueued_at TEXT;
