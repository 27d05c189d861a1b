//! Connection settings and schema migrations, for both engines.
//!
//! Each migration is a numbered `.sql` file embedded in the binary, written once in SQLite's
//! spelling (`sql::dialect::schema` rewrites it for PostgreSQL). SQLite records how many have been
//! applied in `PRAGMA user_version`, PostgreSQL in the one-row table `vr_schema`. Pending ones run
//! in one transaction at open, so a crash leaves the database at the old version, never half
//! migrated; on PostgreSQL an advisory lock makes coordinators starting together take turns. A
//! database whose version is newer than this vrd knows was written by a newer vrd and is refused
//! untouched.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::sql::{dialect, Conn, DbError, OptionalRow};
use super::StateError;

/// The advisory lock key vrds take while they migrate a PostgreSQL schema ("vr schema").
const SCHEMA_LOCK: i64 = 0x7672_5f73_6368;

/// The schema migrations, in order; migration `i` takes `user_version` from `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_builds.sql"),
    include_str!("migrations/0003_swarms.sql"),
    include_str!("migrations/0004_peers.sql"),
    include_str!("migrations/0005_routing.sql"),
    include_str!("migrations/0006_event_cursors.sql"),
    include_str!("migrations/0007_oom.sql"),
    include_str!("migrations/0008_users.sql"),
    include_str!("migrations/0009_audit_user.sql"),
    include_str!("migrations/0010_sessions.sql"),
    include_str!("migrations/0011_lease.sql"),
    include_str!("migrations/0012_coordinators.sql"),
];

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema version this vrd writes.
pub(super) fn known_version() -> u32 {
    u32::try_from(MIGRATIONS.len()).expect("fewer than 2^32 migrations")
}

/// Applies the connection settings vrd relies on, then brings the schema up to date.
pub(super) fn prepare(conn: &mut Connection, path: &Path) -> Result<(), StateError> {
    configure(conn).map_err(|source| StateError::Open { path: path.to_path_buf(), source: source.into() })?;
    migrate(conn, path)
}

/// WAL lets readers run beside the writer and makes commits cheap; with WAL, `synchronous=NORMAL`
/// can lose the last commits on power loss but never corrupts the file.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if mode != "wal" && mode != "memory" {
        tracing::warn!(%mode, "the state database is not in WAL mode; its file system may not support it");
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

/// Applies the pending migrations in one transaction, or refuses a database from a newer vrd.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StateError> {
    let open_err =
        |source: rusqlite::Error| StateError::Open { path: path.to_path_buf(), source: source.into() };
    let location = path.display().to_string();
    // IMMEDIATE takes the write lock before reading the version, so two vrds starting on one file
    // cannot both apply the same migration.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(open_err)?;
    let found: u32 = tx.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(open_err)?;
    let known = known_version();
    if found > known {
        return Err(StateError::TooNew { location, found, known });
    }
    for (version, sql) in (1..).zip(MIGRATIONS).skip(found as usize) {
        let migrate_err = |source: rusqlite::Error| StateError::Migrate {
            location: location.clone(),
            version,
            source: source.into(),
        };
        tx.execute_batch(sql).map_err(migrate_err)?;
        tx.pragma_update(None, "user_version", version).map_err(migrate_err)?;
    }
    tx.commit().map_err(open_err)
}

/// Brings a PostgreSQL schema up to date, or refuses one from a newer vrd.
pub(super) fn prepare_postgres(conn: &Conn, location: &str) -> Result<(), StateError> {
    let open_err = |source: DbError| StateError::Connect { database: location.to_string(), source };
    let tx = conn.transaction().map_err(open_err)?;
    tx.execute("SELECT pg_advisory_xact_lock(?1)", super::sql::args![SCHEMA_LOCK]).map_err(open_err)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS vr_schema (version BIGINT NOT NULL)").map_err(open_err)?;
    let found: Option<u32> =
        tx.query_row("SELECT version FROM vr_schema", &[], |r| r.get(0)).optional().map_err(open_err)?;
    let found = found.unwrap_or(0);
    let known = known_version();
    if found > known {
        return Err(StateError::TooNew { location: location.to_string(), found, known });
    }
    for (version, sql) in (1..).zip(MIGRATIONS).skip(found as usize) {
        let migrate_err = |source| StateError::Migrate { location: location.to_string(), version, source };
        tx.execute_batch(&dialect::schema(sql)).map_err(migrate_err)?;
        tx.execute("DELETE FROM vr_schema", &[]).map_err(migrate_err)?;
        tx.execute("INSERT INTO vr_schema (version) VALUES (?1)", super::sql::args![version])
            .map_err(migrate_err)?;
    }
    tx.commit().map_err(open_err)
}
