-- A coordinator gathers its joined hosts' proc events (services::peer::events). The last event id
-- it took from each host is kept here, so a restarted coordinator goes on where it stopped and
-- the events a host had meanwhile reach the fleet's `vr events` too.
CREATE TABLE host_event_cursors (
    host  TEXT PRIMARY KEY,
    last  INTEGER NOT NULL
) STRICT;
