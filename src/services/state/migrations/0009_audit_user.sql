-- The user behind a call over the HTTP API (issue 14); NULL for the socket's callers, whom
-- uid, gid and pid describe.
ALTER TABLE audit ADD COLUMN "user" TEXT;
