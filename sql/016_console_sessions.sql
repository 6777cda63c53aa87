-- 016_console_sessions: an operator's console login (docs/console.md). The
-- browser holds a random session id in an HttpOnly, SameSite=Strict cookie;
-- only its SHA-256 is kept here, so a read of this table logs no one in.
-- Every crier process of a deployment sees the same sessions, and a logout
-- (the row deleted) ends the session everywhere at once.
CREATE TABLE console_sessions (
    id_hash     text PRIMARY KEY CHECK (id_hash ~ '^[0-9a-f]{64}$'),
    scopes      integer NOT NULL CHECK (scopes > 0),
    actor       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

-- the expired ones go with the retention purge
CREATE INDEX console_sessions_expiry_idx ON console_sessions (expires_at);
