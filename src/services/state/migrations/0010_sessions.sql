-- Browser sessions of the dashboard (issue 14 §1): a session is known by the sha256 of its
-- cookie's value; its CSRF token is sent back on every change the browser asks for. A session
-- ends at `expires`, after `idle` seconds unused, at logout, or with its user.
CREATE TABLE sessions (
    hash       TEXT PRIMARY KEY,
    "user"     TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created    INTEGER NOT NULL,
    expires    INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions ("user");
