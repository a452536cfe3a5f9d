-- The key of the MAC on server-written URLs when CALL_CENTER_URL_SECRET is not set: generated
-- once by the first instance, shared by all (base64 of 32 random bytes). Not for reporting.
CREATE TABLE url_secret (
    id         SMALLINT PRIMARY KEY CHECK (id = 1),
    secret     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
