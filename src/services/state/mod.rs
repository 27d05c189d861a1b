//! vrd's durable state in embedded SQLite: procs, proc events, builds and the audit log. This is the only
//! module that speaks SQL.
//!
//! [`State`] is an actor: one std thread owns the rusqlite `Connection` (which is `Send` but not
//! `Sync`), and every async method sends it a job over a channel and awaits the reply on a oneshot.
//! Jobs run one at a time, in the order they were sent, so the tokio runtime never blocks on disk.

mod audit;
mod builds;
mod deploy;
mod events;
mod images;
mod migrations;
mod objects;
mod peers;
mod pools;
mod procs;
mod users;
pub use users::StoredUser;
#[cfg(test)]
mod tests;

use std::fs::{OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

pub use audit::AuditEntry;
pub use builds::BuildOutcome;
pub use deploy::ActiveImage;
pub use images::BuiltImage;
pub use peers::TokenRefused;
pub use procs::ProcRecord;

/// How many proc events are kept when nothing else is configured.
pub const DEFAULT_KEEP_EVENTS: usize = 10_000;

/// How many jobs may wait for the database thread before callers wait to send.
const QUEUE: usize = 256;

/// Why a state call failed; every message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The database file could not be created or given mode 0600.
    #[error(
        "failed to create the state database {path}: check that its directory exists and is writable by vrd"
    )]
    Create {
        /// The database file.
        path: PathBuf,
        /// The file system error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite could not open or configure the database.
    #[error("failed to open the state database {path}: check that it is vrd's state database and that vrd may write its directory")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer vrd, whose schema this vrd does not know.
    #[error("failed to open the state database {path}: it is from a newer vrd (schema version {found}, this vrd knows up to {known}); upgrade vrd, or move the file aside to start empty")]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// The version found in the file.
        found: u32,
        /// The newest version this vrd knows.
        known: u32,
    },
    /// A schema migration failed; the transaction left the database at its old version.
    #[error("failed to apply schema migration {version} to the state database {path}: the file is unchanged; check free disk space, or restore it from a backup")]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// The version the migration leads to.
        version: u32,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// A statement failed.
    #[error("failed to {what} in the state database: check free disk space and the daemon log")]
    Query {
        /// What was being done, e.g. "store proc web-1".
        what: String,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored value does not decode: the file was changed outside vrd.
    #[error("failed to decode {what} from the state database: it was changed outside vrd; restore it from a backup")]
    Corrupt {
        /// What was being read.
        what: String,
        /// The decoding error.
        #[source]
        source: rusqlite::Error,
    },
    /// A value could not be encoded as JSON.
    #[error("failed to encode {what} as JSON: this is a bug in vrd; please report it")]
    Encode {
        /// What was being encoded.
        what: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The database thread could not be started.
    #[error("failed to start the state database thread: check the process and memory limits of vrd")]
    Spawn(#[source] std::io::Error),
    /// A job panicked; its transaction was rolled back and the thread lives on.
    #[error("failed to {0} in the state database: the call panicked, which is a bug in vrd; please report it with the daemon log")]
    Panicked(String),
    /// A definition of that kind and name already exists.
    #[error("{kind} '{name}' already exists: edit it (vr {kind}s edit {name}) or pick another name")]
    Exists {
        /// Its kind.
        kind: crate::model::deploy::Kind,
        /// Its name.
        name: String,
    },
    /// No definition of that kind and name.
    #[error("there is no {kind} '{name}': `vr {kind}s list` shows those there are")]
    NotFound {
        /// Its kind.
        kind: crate::model::deploy::Kind,
        /// Its name.
        name: String,
    },
    /// A definition names another that does not exist.
    #[error("{kind} '{name}' refers to {target_kind} '{target}', which does not exist: create it first")]
    MissingRef {
        /// Its kind.
        kind: crate::model::deploy::Kind,
        /// Its name.
        name: String,
        /// The kind it refers to.
        target_kind: crate::model::deploy::Kind,
        /// The name it refers to.
        target: String,
    },
    /// A definition others refer to can't be deleted.
    #[error("{kind} '{name}' is in use by {users}: change or delete those first")]
    InUse {
        /// Its kind.
        kind: crate::model::deploy::Kind,
        /// Its name.
        name: String,
        /// Who uses it, e.g. "swarm hello-prod-web".
        users: String,
    },
    /// The database thread is gone.
    #[error("failed to reach the state database: its thread has stopped; restart vrd")]
    Closed,
}

impl StateError {
    /// The error for a failed statement, telling a value that does not decode apart from the rest.
    fn query(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StateError {
        move |source| {
            let what = what.into();
            match source {
                rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::IntegralValueOutOfRange(..)
                | rusqlite::Error::InvalidColumnType(..) => StateError::Corrupt { what, source },
                source => StateError::Query { what, source },
            }
        }
    }
}

/// Settings for a [`State`].
#[derive(Debug, Clone, Copy)]
pub struct StateOptions {
    /// How many of the newest proc events to keep; older ones are pruned.
    pub keep_events: usize,
}

/// The connection and the bookkeeping the database thread keeps beside it.
struct Db {
    conn: Connection,
    options: StateOptions,
    /// Events appended since the last prune.
    appends: usize,
}

/// One unit of work for the database thread.
type Job = Box<dyn FnOnce(&mut Db) + Send>;

/// A handle on vrd's state database; clones share one connection and thread.
#[derive(Clone)]
pub struct State {
    jobs: mpsc::Sender<Job>,
}

impl State {
    /// Opens (creating with mode 0600 if needed) and migrates the database at `path`, keeping
    /// [`DEFAULT_KEEP_EVENTS`] events. Blocks while it migrates, so call it at startup.
    pub fn open(path: &Path) -> Result<State, StateError> {
        State::open_with(path, StateOptions { keep_events: DEFAULT_KEEP_EVENTS })
    }

    /// [`State::open`] with explicit options.
    pub fn open_with(path: &Path, options: StateOptions) -> Result<State, StateError> {
        create_private(path)?;
        let open_err = |source| StateError::Open { path: path.to_path_buf(), source };
        let mut conn = Connection::open(path).map_err(open_err)?;
        migrations::prepare(&mut conn, path)?;
        State::spawn(conn, options)
    }

    /// A fresh private database in memory, for tests.
    pub fn open_in_memory() -> Result<State, StateError> {
        State::open_in_memory_with(StateOptions { keep_events: DEFAULT_KEEP_EVENTS })
    }

    /// [`State::open_in_memory`] with explicit options.
    pub fn open_in_memory_with(options: StateOptions) -> Result<State, StateError> {
        let path = Path::new(":memory:");
        let open_err = |source| StateError::Open { path: path.to_path_buf(), source };
        let mut conn = Connection::open_in_memory().map_err(open_err)?;
        migrations::prepare(&mut conn, path)?;
        State::spawn(conn, options)
    }

    /// Starts the thread that owns `conn`; it ends when the last handle is dropped.
    fn spawn(conn: Connection, options: StateOptions) -> Result<State, StateError> {
        let (jobs, mut queue) = mpsc::channel::<Job>(QUEUE);
        let mut db = Db { conn, options, appends: 0 };
        std::thread::Builder::new()
            .name("vrd-state".into())
            .spawn(move || {
                while let Some(job) = queue.blocking_recv() {
                    job(&mut db);
                }
            })
            .map_err(StateError::Spawn)?;
        Ok(State { jobs })
    }

    /// Queues `f` for the database thread and returns once it is queued, not done: jobs run in
    /// order, so every later call sees its effect. A failure is logged there, since nobody waits.
    async fn queue<F>(&self, what: String, f: F) -> Result<(), StateError>
    where
        F: FnOnce(&mut Db, &str) -> Result<(), StateError> + Send + 'static,
    {
        let job: Job = Box::new(move |db| match catch_unwind(AssertUnwindSafe(|| f(db, &what))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "a queued state write failed"),
            Err(_) => tracing::error!(error = %StateError::Panicked(what), "a queued state write failed"),
        });
        self.jobs.send(job).await.map_err(|_| StateError::Closed)
    }

    /// Answers once the database thread has run a trivial query: the thread is alive and not
    /// stuck (the watchdog asks this before every ping to systemd).
    pub async fn ping(&self) -> Result<(), StateError> {
        self.call("ping the state thread".into(), |db, what| {
            db.conn.query_row("SELECT 1", [], |_| Ok(())).map_err(StateError::query(what))
        })
        .await
    }

    /// Runs `f` on the database thread and returns its result. `what` names the call in errors
    /// ("store proc web-1") and is handed to `f` for its own.
    async fn call<T, F>(&self, what: String, f: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db, &str) -> Result<T, StateError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |db| {
            // A panic unwinds through any open rusqlite Transaction, whose drop rolls it back, so
            // the connection stays usable and the thread keeps serving.
            let result = match catch_unwind(AssertUnwindSafe(|| f(db, &what))) {
                Ok(result) => result,
                Err(_) => Err(StateError::Panicked(what)),
            };
            // The caller may have stopped waiting; the work is done either way.
            let _ = reply.send(result);
        });
        self.jobs.send(job).await.map_err(|_| StateError::Closed)?;
        answer.await.map_err(|_| StateError::Closed)?
    }
}

/// Creates the file with mode 0600 before SQLite sees it (SQLite gives its -wal and -shm files the
/// database's mode), and tightens the mode of a file that already exists.
fn create_private(path: &Path) -> Result<(), StateError> {
    let create_err = |source| StateError::Create { path: path.to_path_buf(), source };
    let file = OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(create_err)?;
    file.set_permissions(Permissions::from_mode(0o600)).map_err(create_err)
}

/// Now, in unix seconds.
fn now_secs() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
}

/// A count or id as SQLite's integer, saturating (SQLite integers are signed 64-bit).
fn to_sql_int(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// A SQLite row id as the u64 the API hands out; row ids here are never negative.
fn to_id(rowid: i64) -> u64 {
    u64::try_from(rowid).unwrap_or(0)
}

/// A stored value that does not decode, as the conversion error rusqlite itself would give.
fn from_sql_err<E>(idx: usize, ty: rusqlite::types::Type) -> impl FnOnce(E) -> rusqlite::Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |e| rusqlite::Error::FromSqlConversionFailure(idx, ty, Box::new(e))
}
