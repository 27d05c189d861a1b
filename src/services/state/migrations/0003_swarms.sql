-- vrd state, schema version 3: Velociraptor's deployment model (apps, buildpacks, stacks and
-- images, squads, hosts, config ingredients, swarms), the releases frozen from them, port locks,
-- the procs each swarm owns, the deployment log, and the node sets of the balancers whose
-- membership vrd itself keeps (dummy, builtin).
--
-- Definitions are stored as a JSON `spec` (the model type serde writes) beside the columns other
-- rows refer to, so SQLite enforces the references (ON DELETE RESTRICT: an app a swarm uses can't
-- be deleted) while the model owns the fields.

CREATE TABLE stacks (
    name    TEXT PRIMARY KEY NOT NULL,
    spec    TEXT NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
) STRICT;

-- A stack's images (`vr stacks build`); at most one active per stack. `artifact` is the tarball's
-- sha256 in the store and `url` its path there; gc clears both (and `log_path`) and sets
-- `collected`. Deleting a stack (no app uses it) forgets its images; their files stay while a proc
-- uses them, and gc removes them after.
CREATE TABLE images (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    stack     TEXT NOT NULL REFERENCES stacks (name) ON DELETE CASCADE,
    name      TEXT NOT NULL UNIQUE,
    md5       TEXT,
    artifact  TEXT,
    url       TEXT,
    log_path  TEXT,
    status    TEXT NOT NULL CHECK (status IN ('started', 'succeeded', 'failed')),
    error     TEXT,
    active    INTEGER NOT NULL DEFAULT 0,
    created   INTEGER NOT NULL,
    ended     INTEGER,
    collected INTEGER
) STRICT;

CREATE UNIQUE INDEX one_active_image ON images (stack) WHERE active = 1;

CREATE TABLE buildpacks (
    name    TEXT PRIMARY KEY NOT NULL,
    ord     INTEGER NOT NULL,
    spec    TEXT NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
) STRICT;

CREATE TABLE apps (
    name    TEXT PRIMARY KEY NOT NULL,
    stack   TEXT REFERENCES stacks (name) ON DELETE RESTRICT,
    spec    TEXT NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
) STRICT;

CREATE TABLE squads (
    name    TEXT PRIMARY KEY NOT NULL,
    spec    TEXT NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
) STRICT;

CREATE TABLE hosts (
    name    TEXT PRIMARY KEY NOT NULL,
    squad   TEXT REFERENCES squads (name) ON DELETE RESTRICT,
    spec    TEXT NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
) STRICT;

CREATE TABLE ingredients (
    name    TEXT PRIMARY KEY NOT NULL,
    spec    TEXT NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
) STRICT;

-- A swarm's name is its stable identity; app, proc, config and squad may change under it.
CREATE TABLE swarms (
    name    TEXT PRIMARY KEY NOT NULL,
    app     TEXT NOT NULL REFERENCES apps (name) ON DELETE RESTRICT,
    squad   TEXT NOT NULL REFERENCES squads (name) ON DELETE RESTRICT,
    spec    TEXT NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
) STRICT;

-- Which ingredients a swarm uses, in the order they merge (later wins).
CREATE TABLE swarm_ingredients (
    swarm      TEXT NOT NULL REFERENCES swarms (name) ON DELETE CASCADE,
    ingredient TEXT NOT NULL REFERENCES ingredients (name) ON DELETE RESTRICT,
    position   INTEGER NOT NULL,
    PRIMARY KEY (swarm, ingredient)
) STRICT;

-- Frozen releases: a build plus everything merged for it. `hash` is VR's 8-character make_hash.
CREATE TABLE releases (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    build    INTEGER NOT NULL REFERENCES builds (id) ON DELETE RESTRICT,
    hash     TEXT NOT NULL,
    spec     TEXT NOT NULL,
    created  INTEGER NOT NULL
) STRICT;

CREATE INDEX releases_by_build ON releases (build, id);

-- Each swarm's releases, numbered 1, 2, ... in the order the swarm first used them.
CREATE TABLE swarm_releases (
    swarm    TEXT NOT NULL REFERENCES swarms (name) ON DELETE CASCADE,
    number   INTEGER NOT NULL,
    release  INTEGER NOT NULL REFERENCES releases (id) ON DELETE RESTRICT,
    created  INTEGER NOT NULL,
    PRIMARY KEY (swarm, number)
) STRICT;

-- The procs a swarm deployed: ownership by record, not by parsing names (VR gh #24, #25).
CREATE TABLE swarm_procs (
    host     TEXT NOT NULL,
    proc     TEXT NOT NULL,
    swarm    TEXT NOT NULL,
    release  INTEGER NOT NULL REFERENCES releases (id) ON DELETE RESTRICT,
    port     INTEGER NOT NULL,
    balancer TEXT,
    pool     TEXT,
    created  INTEGER NOT NULL,
    PRIMARY KEY (host, proc)
) STRICT;

CREATE INDEX swarm_procs_by_swarm ON swarm_procs (swarm);

CREATE TABLE port_locks (
    host    TEXT NOT NULL,
    port    INTEGER NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (host, port)
) STRICT;

-- The deployment log: one row per step of a dispatch, all of one dispatch sharing its trace id.
CREATE TABLE deploy_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    time   INTEGER NOT NULL,
    trace  TEXT NOT NULL,
    swarm  TEXT,
    tags   TEXT NOT NULL,
    body   TEXT NOT NULL,
    -- The build a step started, so a follower can stream its compile output.
    build  INTEGER
) STRICT;

CREATE INDEX deploy_log_by_trace ON deploy_log (trace, id);

-- Node sets of the balancers vrd keeps itself (dummy, builtin), so they survive a restart.
CREATE TABLE balancer_nodes (
    balancer TEXT NOT NULL,
    pool     TEXT NOT NULL,
    node     TEXT NOT NULL,
    PRIMARY KEY (balancer, pool, node)
) STRICT;

-- Build records learn what a swarm needs to reuse them: the stack image they were built on, the
-- buildpacks' config_vars (the release env starts from them), and the tag asked for.
ALTER TABLE builds ADD COLUMN image_md5 TEXT;
ALTER TABLE builds ADD COLUMN env TEXT NOT NULL DEFAULT '{}';
