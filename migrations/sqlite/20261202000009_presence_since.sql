-- When an agent's presence or pause last changed (heartbeats leave it): the wallboard's
-- "time in state" for paused and offline agents.
ALTER TABLE agents ADD COLUMN presence_since TEXT NOT NULL DEFAULT '';
UPDATE agents SET presence_since = updated_at;
