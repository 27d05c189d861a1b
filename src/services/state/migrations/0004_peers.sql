-- Peer mode (the fleet): one-time join tokens and the certificate each host holds.
-- A token is stored as its sha256 only; it is good once, for one host name, until it expires.
CREATE TABLE join_tokens (
    hash     TEXT PRIMARY KEY,
    host     TEXT NOT NULL,
    created  INTEGER NOT NULL,
    expires  INTEGER NOT NULL,
    used     INTEGER
);
-- The one certificate (by sha256 of its DER) each joined host may connect with: a certificate
-- that is not the current one of its host (revoked by `vr hosts delete`, replaced by a renewal)
-- is refused. An allowlist, not a revocation list: nothing unknown gets in.
CREATE TABLE host_certs (
    host         TEXT PRIMARY KEY,
    fingerprint  TEXT NOT NULL,
    not_after    INTEGER NOT NULL,
    issued       INTEGER NOT NULL
);
