-- vrd state, schema version 2: builds (one row per `builder.build` call). A row is written as
-- 'started' before the work and updated with the outcome after; a vrd that stopped mid-build
-- leaves 'started', which the next vrd marks 'failed' at startup. `artifact` is the slug's sha256
-- in the content-addressed store, `log_path` the kept compile.log; gc clears both when it removes
-- the files and sets `collected`.

CREATE TABLE builds (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    app_name   TEXT NOT NULL,
    version    TEXT,
    app_commit TEXT,
    buildpacks TEXT NOT NULL DEFAULT '[]',
    status     TEXT NOT NULL CHECK (status IN ('started', 'succeeded', 'failed')),
    step       TEXT,
    error      TEXT,
    started    INTEGER NOT NULL,
    ended      INTEGER,
    build_md5  TEXT,
    artifact   TEXT,
    log_path   TEXT,
    collected  INTEGER
) STRICT;

CREATE INDEX builds_by_app ON builds (app_name, id);
