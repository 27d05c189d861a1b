-- The coordinators sharing this model (issue 15), each written by itself when it starts: where the
-- others and the hosts reach it (`address`, its peer port), the fleet CA it signs with (all of
-- them must hold the same one, or a host joined through one is refused by the next), and its own
-- certificate, the one another coordinator accepts from it when it forwards a call or fetches an
-- artifact. `seen` is when it last started (milliseconds, the database's clock).
CREATE TABLE coordinators (
    name        TEXT PRIMARY KEY NOT NULL,
    address     TEXT,
    ca_sha256   TEXT NOT NULL,
    cert_sha256 TEXT NOT NULL,
    seen        INTEGER NOT NULL
) STRICT;
