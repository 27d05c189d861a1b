-- Users of the HTTP API and the dashboard (issue 14 §1), and their API tokens. The socket keeps
-- its SO_PEERCRED identities: these are for people and programs that are not on the host.
-- A password is stored only as its argon2id PHC string; a token only as the sha256 of its text.
CREATE TABLE users (
    name      TEXT PRIMARY KEY,
    role      TEXT NOT NULL CHECK (role IN ('viewer', 'deployer', 'admin')),
    password  TEXT NOT NULL,
    created   INTEGER NOT NULL,
    updated   INTEGER NOT NULL
);
-- Deleting a user deletes its tokens.
CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    hash       TEXT NOT NULL UNIQUE,
    "user"     TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    created    INTEGER NOT NULL,
    expires    INTEGER,
    last_used  INTEGER,
    revoked    INTEGER
);
CREATE INDEX api_tokens_user ON api_tokens ("user");
