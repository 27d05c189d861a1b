//! The `procs` table: the supervisor's durable record of every proc, one row per proc name, so a
//! restarted vrd knows what should run and which launchers it left running.

use super::sql::{args, Conn, DbError, DbResult, OptionalRow, Row};
use serde::{Deserialize, Serialize};

use super::{now_secs, State, StateError};
use crate::model::supervision::{Desired, ProcState};

/// What vrd remembers about one proc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRecord {
    /// The six-part proc name; the primary key.
    pub name: String,
    /// The proc.yaml text as deployed.
    pub yaml: String,
    /// What the operator wants.
    pub desired: Desired,
    /// Where the supervisor last saw it.
    pub state: ProcState,
    /// The pid of the proc's launcher (`vrd init`), while one runs.
    pub launcher_pid: Option<i32>,
    /// The launcher's start time in clock ticks (field 22 of the kernel's per-pid `stat` file), to
    /// tell the launcher from an unrelated process that got its pid after a reboot or wrap.
    pub launcher_start: Option<u64>,
    /// The app's pid, while it runs.
    pub app_pid: Option<i32>,
    /// When it last started, in unix seconds.
    pub start_time: Option<i64>,
    /// When it last stopped, in unix seconds.
    pub stop_time: Option<i64>,
    /// How it last exited.
    pub exit_status: Option<i32>,
    /// Whether the kernel's OOM killer killed a process of its last run.
    pub oom_killed: bool,
    /// Why it last failed to start.
    pub spawn_err: Option<String>,
    /// Quick failures in a row, for BACKOFF and FATAL.
    pub retries: u32,
    /// When the row was first stored, in unix seconds.
    pub created: i64,
    /// When the row last changed, in unix seconds.
    pub updated: i64,
}

impl ProcRecord {
    /// A proc that has never run: STOPPED, no pids or times, no retries, created and updated `now`.
    pub fn new(name: String, yaml: String, desired: Desired, now: i64) -> ProcRecord {
        ProcRecord {
            name,
            yaml,
            desired,
            state: ProcState::Stopped,
            launcher_pid: None,
            launcher_start: None,
            app_pid: None,
            start_time: None,
            stop_time: None,
            exit_status: None,
            oom_killed: false,
            spawn_err: None,
            retries: 0,
            created: now,
            updated: now,
        }
    }
}

const COLUMNS: &str = "name, yaml, desired, state, launcher_pid, launcher_start, app_pid, \
                       start_time, stop_time, exit_status, spawn_err, retries, created, updated, oom_killed";

impl State {
    /// Stores `record` exactly as given, replacing any row of the same name.
    pub async fn put_proc(&self, record: ProcRecord) -> Result<(), StateError> {
        let what = format!("store proc {}", record.name);
        self.call_local(what, move |db, what| write(&db.conn, &record).map_err(StateError::query(what))).await
    }

    /// The proc called `name`, if there is one.
    pub async fn get_proc(&self, name: &str) -> Result<Option<ProcRecord>, StateError> {
        let name = name.to_string();
        let what = format!("read proc {name}");
        self.call_local(what, move |db, what| read(&db.conn, &name).map_err(StateError::query(what))).await
    }

    /// Every proc, sorted by name.
    pub async fn list_procs(&self) -> Result<Vec<ProcRecord>, StateError> {
        self.call_local("list procs".into(), |db, what| list(&db.conn).map_err(StateError::query(what))).await
    }

    /// Reads the proc called `name`, lets `f` change it and writes it back in one transaction,
    /// setting `updated` to now; a change `f` makes to the name is ignored. Returns the stored
    /// record, or `None` (without calling `f`) when there is no such proc.
    pub async fn update_proc<F>(&self, name: &str, f: F) -> Result<Option<ProcRecord>, StateError>
    where
        F: FnOnce(&mut ProcRecord) + Send + 'static,
    {
        let name = name.to_string();
        let what = format!("update proc {name}");
        self.call_local(what, move |db, what| update(&db.conn, name, f).map_err(StateError::query(what)))
            .await
    }

    /// Forgets the proc called `name`; returns whether there was one.
    pub async fn delete_proc(&self, name: &str) -> Result<bool, StateError> {
        let name = name.to_string();
        let what = format!("delete proc {name}");
        self.call_local(what, move |db, what| {
            let deleted = db.conn.execute("DELETE FROM procs WHERE name = ?1", args![name]);
            deleted.map(|rows| rows > 0).map_err(StateError::query(what))
        })
        .await
    }
}

fn update<F>(conn: &Conn, name: String, f: F) -> DbResult<Option<ProcRecord>>
where
    F: FnOnce(&mut ProcRecord),
{
    // IMMEDIATE: take the write lock before reading, so no other connection can change the row
    // between our read and our write.
    let tx = conn.transaction()?;
    let Some(mut record) = read(&tx, &name)? else { return Ok(None) };
    f(&mut record);
    record.name = name;
    record.updated = now_secs();
    write(&tx, &record)?;
    tx.commit()?;
    Ok(Some(record))
}

fn read(conn: &Conn, name: &str) -> DbResult<Option<ProcRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM procs WHERE name = ?1");
    conn.query_row(&sql, args![name], from_row).optional()
}

fn list(conn: &Conn) -> DbResult<Vec<ProcRecord>> {
    conn.query_map(&format!("SELECT {COLUMNS} FROM procs ORDER BY name"), &[], from_row)
}

/// Inserts or updates in place (an upsert, not `INSERT OR REPLACE`, which deletes the old row first
/// and would fire any `ON DELETE` of later tables).
fn write(conn: &Conn, r: &ProcRecord) -> DbResult<()> {
    let launcher_start = r.launcher_start.map(i64::try_from).transpose().map_err(DbError::parse(5))?;
    let sql = format!(
        "INSERT INTO procs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
         ON CONFLICT (name) DO UPDATE SET yaml = excluded.yaml, desired = excluded.desired,
           state = excluded.state, launcher_pid = excluded.launcher_pid,
           launcher_start = excluded.launcher_start, app_pid = excluded.app_pid,
           start_time = excluded.start_time, stop_time = excluded.stop_time,
           exit_status = excluded.exit_status, spawn_err = excluded.spawn_err,
           retries = excluded.retries, created = excluded.created, updated = excluded.updated,
           oom_killed = excluded.oom_killed"
    );
    conn.execute(
        &sql,
        args![
            r.name,
            r.yaml,
            r.desired.as_str(),
            r.state.as_str(),
            r.launcher_pid,
            launcher_start,
            r.app_pid,
            r.start_time,
            r.stop_time,
            r.exit_status,
            r.spawn_err,
            r.retries,
            r.created,
            r.updated,
            r.oom_killed
        ],
    )?;
    Ok(())
}

fn from_row(row: &Row) -> DbResult<ProcRecord> {
    let launcher_start: Option<i64> = row.get(5)?;
    Ok(ProcRecord {
        name: row.get(0)?,
        yaml: row.get(1)?,
        desired: row.parsed(2)?,
        state: row.parsed(3)?,
        launcher_pid: row.get(4)?,
        launcher_start: launcher_start.map(u64::try_from).transpose().map_err(DbError::parse(5))?,
        app_pid: row.get(6)?,
        start_time: row.get(7)?,
        stop_time: row.get(8)?,
        exit_status: row.get(9)?,
        spawn_err: row.get(10)?,
        retries: row.get(11)?,
        created: row.get(12)?,
        updated: row.get(13)?,
        oom_killed: row.get(14)?,
    })
}
