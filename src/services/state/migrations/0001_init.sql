-- vrd state, schema version 1: procs (the supervisor's durable record), proc_events (replayable
-- state changes, pruned to the newest N) and audit (who called which method, and how it went).

CREATE TABLE procs (
    name           TEXT PRIMARY KEY NOT NULL,
    yaml           TEXT NOT NULL,
    desired        TEXT NOT NULL CHECK (desired IN ('running', 'stopped', 'destroyed')),
    state          TEXT NOT NULL,
    launcher_pid   INTEGER,
    launcher_start INTEGER,
    app_pid        INTEGER,
    start_time     INTEGER,
    stop_time      INTEGER,
    exit_status    INTEGER,
    spawn_err      TEXT,
    retries        INTEGER NOT NULL DEFAULT 0,
    created        INTEGER NOT NULL,
    updated        INTEGER NOT NULL
) STRICT;

-- AUTOINCREMENT: an id is never handed out twice, even after pruning, so replay cursors stay valid.
CREATE TABLE proc_events (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    body TEXT NOT NULL
) STRICT;

CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    time    INTEGER NOT NULL,
    uid     INTEGER NOT NULL,
    gid     INTEGER NOT NULL,
    pid     INTEGER,
    method  TEXT NOT NULL,
    params  TEXT NOT NULL,
    outcome TEXT NOT NULL
) STRICT;
