//! `vrd migrate-state`: the model moved from an installation's SQLite file into an empty
//! PostgreSQL database, in one transaction there, checked table by table (row counts and a
//! sha256 of the rows, sorted in vrd so neither engine's collation matters) before it commits.
//! The SQLite file is only read (opened read-only); it stays as it was, a backup, and keeps serving as the host's
//! own record (its procs) when vrd runs with `state_url`.

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::sql::{args, Conn, DbError, Value};
use super::{migrations, PgTarget, StateError};

/// The model's tables, parents before the tables that refer to them. Not here: procs (each
/// host's own, they stay in its SQLite file) and the lease (the new coordinators take it).
pub const MODEL_TABLES: &[&str] = &[
    "stacks",
    "images",
    "buildpacks",
    "squads",
    "apps",
    "hosts",
    "ingredients",
    "swarms",
    "swarm_ingredients",
    "builds",
    "releases",
    "swarm_releases",
    "swarm_procs",
    "port_locks",
    "deploy_log",
    "balancer_nodes",
    "pool_generations",
    "join_tokens",
    "host_certs",
    "host_event_cursors",
    "users",
    "api_tokens",
    "sessions",
    "audit",
    "proc_events",
];

/// What moved: per table, its rows and their hash, the same on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// (table, rows, sha256 of the sorted rows).
    pub tables: Vec<(String, usize, String)>,
}

impl fmt::Display for Transfer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (table, rows, hash) in &self.tables {
            writeln!(f, "{table:<20} {rows:>8} rows  sha256 {hash}")?;
        }
        let rows: usize = self.tables.iter().map(|(_, n, _)| n).sum();
        write!(f, "moved {} tables, {rows} rows; every count and hash matches", self.tables.len())
    }
}

/// Why the model was not moved; the target is left as it was (the transaction rolled back).
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// `--from` names no file.
    #[error("there is no SQLite state at {0}: give the file vrd used, its data dir's state.db (e.g. --from sqlite:/var/lib/vrd/state.db)")]
    NoSource(std::path::PathBuf),
    /// The file holds no vrd schema.
    #[error("{0} holds no vrd state (no schema version): give the file vrd used, its data dir's state.db")]
    NotState(std::path::PathBuf),
    /// The file is from an older vrd.
    #[error("{path} is from an older vrd (schema version {found}, this vrd writes {known}): start this vrd once on it (it brings the file up to date), stop it, and run migrate-state again")]
    OldSource {
        /// The file.
        path: std::path::PathBuf,
        /// Its version.
        found: u32,
        /// This vrd's.
        known: u32,
    },
    /// Either side could not be opened or read.
    #[error(transparent)]
    State(#[from] StateError),
    /// The target holds a model already.
    #[error("the target database already holds {rows} rows in table {table}: migrate-state only fills an empty database; point --to at a new one")]
    NotEmpty {
        /// The first table found with rows.
        table: String,
        /// How many.
        rows: i64,
    },
    /// What was written does not read back the same.
    #[error("table {table} does not read back as written ({source_rows} rows, sha256 {source_hash}, in SQLite; {target_rows} rows, sha256 {target_hash}, in PostgreSQL): nothing was kept; report this with both databases' versions")]
    Mismatch {
        /// The table.
        table: String,
        /// Rows in the source.
        source_rows: usize,
        /// Their hash.
        source_hash: String,
        /// Rows read back from the target.
        target_rows: usize,
        /// Their hash.
        target_hash: String,
    },
}

/// Moves the model from the SQLite file at `from` into the empty PostgreSQL at `to`. Blocking:
/// run it off any async runtime.
pub fn migrate_state(from: &Path, to: PgTarget) -> Result<Transfer, TransferError> {
    if !from.is_file() {
        return Err(TransferError::NoSource(from.to_path_buf()));
    }
    let source = open_source(from)?;
    let database = to.redacted();
    let target =
        Conn::postgres(to).map_err(|source| StateError::Connect { database: database.clone(), source })?;
    migrations::prepare_postgres(&target, &database)?;
    let query = |what: &str| StateError::query(format!("{what} ({database})"));
    let tx = target.transaction().map_err(query("begin the transfer"))?;
    for table in MODEL_TABLES {
        let rows: i64 = tx
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), &[], |r| r.get(0))
            .map_err(query("count the target's rows"))?;
        if rows > 0 {
            return Err(TransferError::NotEmpty { table: table.to_string(), rows });
        }
    }
    let mut tables = Vec::new();
    for table in MODEL_TABLES {
        let columns =
            columns(&source, table).map_err(StateError::query(format!("read the columns of {table}")))?;
        let list = columns.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
        let select = format!("SELECT {list} FROM {table}");
        let rows = source.rows(&select, &[]).map_err(StateError::query(format!("read table {table}")))?;
        let marks = (1..=columns.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
        let insert = format!("INSERT INTO {table} ({list}) VALUES ({marks})");
        let written: Vec<Vec<Value>> = rows.into_iter().map(|r| r.into_values()).collect();
        for values in &written {
            tx.execute(&insert, values).map_err(query(&format!("write table {table}")))?;
        }
        if columns.iter().any(|c| c == "id") {
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM {table}"
                ),
                &[],
            )
            .map_err(query(&format!("move table {table}'s id sequence")))?;
        }
        let back: Vec<Vec<Value>> = tx
            .rows(&select, &[])
            .map_err(query(&format!("read back table {table}")))?
            .into_iter()
            .map(|r| r.into_values())
            .collect();
        let (source_hash, target_hash) = (digest(&written), digest(&back));
        if source_hash != target_hash || written.len() != back.len() {
            return Err(TransferError::Mismatch {
                table: table.to_string(),
                source_rows: written.len(),
                source_hash,
                target_rows: back.len(),
                target_hash,
            });
        }
        tables.push((table.to_string(), written.len(), source_hash));
    }
    tx.commit().map_err(query("commit the transfer"))?;
    Ok(Transfer { tables })
}

/// The source, opened read-only; it must be at this vrd's schema version.
fn open_source(path: &Path) -> Result<Conn, TransferError> {
    let open_err =
        |source: rusqlite::Error| StateError::Open { path: path.to_path_buf(), source: source.into() };
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(open_err)?;
    let found: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(open_err)?;
    let known = migrations::known_version();
    match found {
        0 => Err(TransferError::NotState(path.to_path_buf())),
        v if v < known => Err(TransferError::OldSource { path: path.to_path_buf(), found: v, known }),
        v if v > known => {
            Err(StateError::TooNew { location: path.display().to_string(), found: v, known }.into())
        }
        _ => Ok(Conn::sqlite(conn)),
    }
}

/// A SQLite table's columns, in order.
fn columns(source: &Conn, table: &str) -> Result<Vec<String>, DbError> {
    source.query_map("SELECT name FROM pragma_table_info(?1) ORDER BY cid", args![table], |r| r.get(0))
}

/// The sha256 of a table's rows, sorted in vrd, each row's values written out with their kind.
pub fn digest(rows: &[Vec<Value>]) -> String {
    let mut lines: Vec<String> = rows.iter().map(|r| format!("{r:?}")).collect();
    lines.sort_unstable();
    let mut hash = Sha256::new();
    for line in lines {
        hash.update(line.as_bytes());
        hash.update(b"\n");
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::audit::AuditEntry;
    use crate::model::deploy::{Definition, Kind};
    use crate::model::users::Role;
    use crate::services::state::testing::{defaults, Schema};
    use crate::services::state::{BuildOutcome, State};

    fn def(kind: Kind, v: serde_json::Value) -> Definition {
        Definition::from_value(kind, v).unwrap()
    }

    /// An installation with something in every model table vrd's API can fill.
    async fn populate(s: &State) {
        for (kind, v) in [
            (Kind::Stack, json!({"name": "st", "base_image_url": "/i.tar"})),
            (Kind::Squad, json!({"name": "default"})),
            (Kind::App, json!({"name": "a", "repo_url": "/r", "stack": "st"})),
            (Kind::Ingredient, json!({"name": "db", "config": {"DSN": "x"}})),
            (Kind::Buildpack, json!({"name": "bp", "repo_url": "/b", "order": 3})),
            (Kind::Host, json!({"name": "h1", "squad": "default", "address": "198.18.0.1"})),
            (Kind::Swarm, json!({"app": "a", "version": "1", "ingredients": ["db"]})),
        ] {
            s.put_definition(def(kind, v), true).await.unwrap();
        }
        let image = s.start_image("st".into(), |id| format!("/logs/{id}")).await.unwrap();
        let built = crate::services::state::BuiltImage {
            md5: "m".repeat(32),
            artifact: "a".repeat(64),
            url: "/s".into(),
        };
        s.finish_image(image.id, Ok(built)).await.unwrap();
        let build = s.start_build_on("a".into(), "1".into(), Some("m".repeat(32))).await.unwrap();
        let outcome =
            BuildOutcome { status: "succeeded".into(), artifact: Some("s".into()), ..Default::default() };
        s.finish_build(build, outcome).await.unwrap();
        let release = s.release_for(build, "aaaa1111".into(), json!({"env": {"A": "1"}})).await.unwrap();
        s.number_release("a-prod-web".into(), release.id).await.unwrap();
        s.lock_port("h1".into(), 5000).await.unwrap();
        let proc = crate::model::deploy::records::SwarmProcRecord {
            host: "h1".into(),
            proc: "a-1-prod-aaaa1111-web-5000".into(),
            swarm: "a-prod-web".into(),
            release: release.id,
            port: 5000,
            routed: Some(("remote".into(), "a-prod-web".into())),
        };
        s.record_swarm_proc(proc).await.unwrap();
        s.append_event(crate::services::state::tests::event(1)).await.unwrap();
        s.log_deploy(
            "t1".into(),
            Some("a-prod-web".into()),
            vec!["swarm".into()],
            "done".into(),
            Some(build),
        )
        .await
        .unwrap();
        s.set_pool_nodes_next_generation(
            "remote".into(),
            "a-prod-web".into(),
            ["198.18.0.1:5000".to_string()].into(),
        )
        .await
        .unwrap();
        s.add_join_token("hash".into(), "h2".into(), 3600).await.unwrap();
        s.set_host_cert("h1".into(), "fp".into(), 99).await.unwrap();
        s.set_host_event_cursor("h1".into(), 42).await.unwrap();
        s.add_user("ann".into(), Role::Admin, "$argon2id$x".into()).await.unwrap();
        s.add_token("th".into(), "ann".into(), "ci".into(), None).await.unwrap();
        s.add_session("sh".into(), "ann".into(), "csrf".into(), i64::MAX).await.unwrap();
        let entry = AuditEntry {
            id: 0,
            time: 1,
            uid: 0,
            gid: 0,
            pid: None,
            user: Some("ann".into()),
            method: "apps.create".into(),
            params: "{}".into(),
            outcome: "ok".into(),
        };
        s.append_audit(entry).await.unwrap();
    }

    #[tokio::test]
    async fn an_installation_moves_whole_and_a_full_target_is_refused() {
        let Some(schema) = Schema::create("services::state::transfer::tests::an_installation_moves_whole")
        else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let sqlite = State::open(&path).unwrap();
        populate(&sqlite).await;
        let before_users = sqlite.users().await.unwrap();
        drop(sqlite);

        let target = schema.target();
        let report =
            tokio::task::spawn_blocking(move || migrate_state(&path, target)).await.unwrap().unwrap();
        let empty: Vec<&str> = report.tables.iter().filter(|t| t.1 == 0).map(|t| t.0.as_str()).collect();
        assert!(empty.is_empty(), "every table was filled and moved: {empty:?} were empty");

        let pg = schema.open(defaults());
        assert_eq!(pg.users().await.unwrap(), before_users);
        let swarm = pg.definition(Kind::Swarm, "a-prod-web").await.unwrap();
        assert_eq!(swarm.name(), "a-prod-web");
        assert_eq!(pg.swarm_releases("a-prod-web".into()).await.unwrap().len(), 1);
        assert_eq!(pg.token_user("th".into(), 0).await.unwrap().map(|u| u.0).as_deref(), Some("ann"));
        let next = pg.start_build("a".into(), "2".into()).await.unwrap();
        assert!(next > 1, "new ids continue after the moved ones: {next}");

        let path = dir.path().join("state.db");
        let target = schema.target();
        let err =
            tokio::task::spawn_blocking(move || migrate_state(&path, target)).await.unwrap().unwrap_err();
        assert!(matches!(err, TransferError::NotEmpty { .. }), "{err}");
        assert!(err.to_string().contains("empty database"), "{err}");
    }

    #[test]
    fn every_table_but_procs_is_moved() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut conn = conn;
        migrations::prepare(&mut conn, Path::new(":memory:")).unwrap();
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .unwrap();
        let tables: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
        let mut moved: Vec<String> = MODEL_TABLES.iter().map(|t| t.to_string()).collect();
        moved.push("procs".into());
        moved.push("lease".into());
        moved.push("coordinators".into());
        moved.sort();
        assert_eq!(tables, moved, "a new table must be added to MODEL_TABLES (or kept out on purpose)");
    }
}
