-- Several coordinators on one model (issue 15): the lease that says which one leads. The holder
-- renews it every few seconds on the database's clock (`expires` in milliseconds); another may
-- take it only once it expired, and taking it bumps `epoch`, which every write of a leader's
-- duties checks in its own transaction (fencing: a paused ex-leader's late write is refused).
-- `address` is where the leader's hosts and standbys reach it.
CREATE TABLE lease (
    name     TEXT PRIMARY KEY NOT NULL,
    holder   TEXT NOT NULL,
    address  TEXT,
    epoch    INTEGER NOT NULL,
    expires  INTEGER NOT NULL
) STRICT;
