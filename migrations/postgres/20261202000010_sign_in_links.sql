-- One-time sign-in links to the agent console: an admin creates one for an agent
-- (POST /agents/{id}/sign-in-link), the agent opens it once. Only the token's SHA-256 is
-- kept; a used or expired link signs nobody in.
CREATE TABLE sign_in_links (
    token_hash  TEXT PRIMARY KEY,
    agent_id    UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
CREATE INDEX sign_in_links_expires_at ON sign_in_links (expires_at);
