//! vrd's durable state: procs, proc events, builds, the deployment model, users and the audit log,
//! in embedded SQLite (the default) or PostgreSQL. This is the only module that speaks SQL.
//!
//! [`State`] is an actor: one std thread owns the connection ([`sql::Conn`], either engine), and
//! every async method sends it a job over a channel and awaits the reply on a oneshot. Jobs run
//! one at a time, in the order they were sent, so the tokio runtime never blocks on the database.

mod audit;
mod builds;
mod coordinators;
mod deploy;
mod events;
mod images;
mod lease;
mod migrations;
mod notify;
mod objects;
mod peers;
mod pools;
mod procs;
pub mod sql;
mod transfer;
pub use transfer::{migrate_state, Transfer, TransferError, MODEL_TABLES};
mod users;
pub use users::StoredUser;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::fs::{OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use sql::{Conn, DbError};
use tokio::sync::{mpsc, oneshot};

pub use audit::AuditEntry;
pub use builds::BuildOutcome;
pub use coordinators::CoordinatorRecord;
pub use deploy::ActiveImage;
pub use images::BuiltImage;
pub use lease::{Fence, LeaseHolder};
pub use notify::Announced;
pub use peers::TokenRefused;
pub use procs::ProcRecord;
pub use sql::PgTarget;

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
        source: DbError,
    },
    /// PostgreSQL could not be reached or refused the connection.
    #[error("failed to connect to the state database {database}: check that PostgreSQL runs there, that state_url names the right host, database and user, and its TLS settings (sslmode, state_ca_file)")]
    Connect {
        /// The database's URL, its password left out.
        database: String,
        /// The client's error.
        #[source]
        source: DbError,
    },
    /// The database was written by a newer vrd, whose schema this vrd does not know.
    #[error("failed to open the state database {location}: it is from a newer vrd (schema version {found}, this vrd knows up to {known}); upgrade vrd, or point vrd at another database to start empty")]
    TooNew {
        /// The database file or URL.
        location: String,
        /// The version found in the file.
        found: u32,
        /// The newest version this vrd knows.
        known: u32,
    },
    /// A schema migration failed; the transaction left the database at its old version.
    #[error("failed to apply schema migration {version} to the state database {location}: the database is unchanged; check free disk space, or restore it from a backup")]
    Migrate {
        /// The database file or URL.
        location: String,
        /// The version the migration leads to.
        version: u32,
        /// The engine's error.
        #[source]
        source: DbError,
    },
    /// A statement failed.
    #[error("failed to {what} in the state database: check free disk space and the daemon log")]
    Query {
        /// What was being done, e.g. "store proc web-1".
        what: String,
        /// The engine's error.
        #[source]
        source: DbError,
    },
    /// A stored value does not decode: the file was changed outside vrd.
    #[error("failed to decode {what} from the state database: it was changed outside vrd; restore it from a backup")]
    Corrupt {
        /// What was being read.
        what: String,
        /// The decoding error.
        #[source]
        source: DbError,
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
    /// A leader's write was refused: another coordinator holds the lease now.
    #[error("this coordinator lost the lead (it held lease epoch {mine}, the fleet is at {current}): the write was not applied, and it is a standby now; run the command again, on the leader (`vr hosts leader` shows which)")]
    Fenced {
        /// The epoch this vrd held.
        mine: u64,
        /// The lease's epoch.
        current: u64,
    },
    /// A leader's duty was asked of a standby.
    #[error("this coordinator is a standby: only the leader dispatches swarms and acts on hosts; run the command on the leader (`vr hosts leader` shows which)")]
    NotLeader,
    /// The database thread is gone.
    #[error("failed to reach the state database: its thread has stopped; restart vrd")]
    Closed,
}

impl StateError {
    /// The error for a failed statement, telling a value that does not decode apart from the rest.
    fn query(what: impl Into<String>) -> impl FnOnce(DbError) -> StateError {
        move |source| {
            let what = what.into();
            if let DbError::Fenced { mine, current } = source {
                StateError::Fenced { mine, current }
            } else if let DbError::NotLeader = source {
                StateError::NotLeader
            } else if source.is_corrupt() {
                StateError::Corrupt { what, source }
            } else {
                StateError::Query { what, source }
            }
        }
    }
}

/// Where the state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    /// An embedded SQLite file (the default: `<data dir>/state.db`).
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by coordinators.
    Postgres(PgTarget),
}

impl StateLocation {
    /// The location for messages, a password left out.
    pub fn describe(&self) -> String {
        match self {
            StateLocation::Sqlite(path) => format!("sqlite:{}", path.display()),
            StateLocation::Postgres(target) => target.redacted(),
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
    conn: Conn,
    options: StateOptions,
    /// Events appended since the last prune.
    appends: usize,
    /// This connection's token in event announcements (`notify`).
    instance: String,
    /// The channel they go out on (PostgreSQL; empty on SQLite).
    channel: String,
}

/// One unit of work for the database thread.
type Job = Box<dyn FnOnce(&mut Db) + Send>;

/// The thread that owns one connection, and the way to hand it jobs.
#[derive(Clone)]
struct Actor {
    jobs: mpsc::Sender<Job>,
    /// Its connection's token in event announcements.
    instance: Arc<str>,
}

/// A handle on vrd's state; clones share its connections and threads.
///
/// The state has two parts. The model (definitions, builds, images, releases, the deployment log,
/// users, tokens, sessions, the audit log, the fleet's tokens and certificates, pools and their
/// generations) is what coordinators share: in SQLite by default, or in PostgreSQL. The host's
/// own record (its procs and their events) is always this host's, in SQLite. With SQLite alone
/// both parts are one connection.
#[derive(Clone)]
pub struct State {
    model: Actor,
    local: Actor,
    engine: sql::EngineKind,
    /// The lease epoch this handle's model writes must hold (a leader's duties); `None`: unfenced.
    fence: Option<Arc<Fence>>,
    /// Where the model is, when it is shared (to follow the other coordinators' events).
    shared: Option<PgTarget>,
}

impl State {
    /// Opens (creating with mode 0600 if needed) and migrates the database at `path`, keeping
    /// [`DEFAULT_KEEP_EVENTS`] events. Blocks while it migrates, so call it at startup.
    pub fn open(path: &Path) -> Result<State, StateError> {
        State::open_with(path, StateOptions { keep_events: DEFAULT_KEEP_EVENTS })
    }

    /// [`State::open`] with explicit options.
    pub fn open_with(path: &Path, options: StateOptions) -> Result<State, StateError> {
        Ok(State::all_in(Actor::sqlite(Some(path), options)?))
    }

    /// Model and host record in one SQLite connection.
    fn all_in(actor: Actor) -> State {
        State {
            model: actor.clone(),
            local: actor,
            engine: sql::EngineKind::Sqlite,
            fence: None,
            shared: None,
        }
    }

    /// The model in PostgreSQL at `target` (its schema brought up to date, one vrd at a time: the
    /// migration holds an advisory lock), the host's own record in SQLite at `local` (in memory
    /// when `None`). Blocks while it connects and migrates, so call it at startup.
    pub fn open_postgres(
        target: PgTarget,
        local: Option<&Path>,
        options: StateOptions,
    ) -> Result<State, StateError> {
        let database = target.redacted();
        let shared = Some(target.clone());
        let model = Actor::spawn(options, move || {
            let conn = Conn::postgres(target)
                .map_err(|source| StateError::Connect { database: database.clone(), source })?;
            migrations::prepare_postgres(&conn, &database)?;
            Ok(conn)
        })?;
        let local = Actor::sqlite(local, options)?;
        Ok(State { model, local, engine: sql::EngineKind::Postgres, fence: None, shared })
    }

    /// Opens the state `location` names: everything in a SQLite file, or the model in PostgreSQL
    /// and the host's record in `local`.
    pub fn open_at(
        location: &StateLocation,
        local: &Path,
        options: StateOptions,
    ) -> Result<State, StateError> {
        match location {
            StateLocation::Sqlite(path) => State::open_with(path, options),
            StateLocation::Postgres(target) => State::open_postgres(target.clone(), Some(local), options),
        }
    }

    /// A fresh private database in memory, for tests.
    pub fn open_in_memory() -> Result<State, StateError> {
        State::open_in_memory_with(StateOptions { keep_events: DEFAULT_KEEP_EVENTS })
    }

    /// [`State::open_in_memory`] with explicit options.
    pub fn open_in_memory_with(options: StateOptions) -> Result<State, StateError> {
        Ok(State::all_in(Actor::sqlite(None, options)?))
    }

    /// The engine the model is in.
    pub fn engine(&self) -> sql::EngineKind {
        self.engine
    }

    /// This state with its model taken from the host's own record: what a balancer that lives
    /// on this host (dummy, builtin) keeps its node sets in, so coordinators sharing one model
    /// never mix their local balancers' pools.
    pub fn local(&self) -> State {
        State::all_in(self.local.clone())
    }

    /// What other vrds append to a shared model (proc events, deployment log entries), as it
    /// commits (`None` on SQLite, which one vrd has to itself).
    pub fn others_appends(&self) -> Option<tokio::sync::mpsc::Receiver<Announced>> {
        let own = self.model.instance.to_string();
        self.shared.clone().map(|target| notify::listen(target, own))
    }

    /// This state with its model writes fenced by `fence`: each runs in a transaction that first
    /// checks the lease still has the epoch `fence` holds, so a coordinator that lost the lead
    /// (paused past the lease, cut off) can never write as a leader again. A refused write steps
    /// `fence` down.
    pub fn fenced(&self, fence: Arc<Fence>) -> State {
        State { fence: Some(fence), ..self.clone() }
    }

    /// The state a leader's duties write through: [`State::fenced`] on a shared model; on a
    /// SQLite model, which has one coordinator and no lease, this state as it is.
    pub fn for_duties(&self, fence: Arc<Fence>) -> State {
        match self.engine {
            sql::EngineKind::Postgres => self.fenced(fence),
            sql::EngineKind::Sqlite => self.clone(),
        }
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
        self.model.jobs.send(job).await.map_err(|_| StateError::Closed)
    }

    /// Answers once the database thread has run a trivial query: the thread is alive and not
    /// stuck (the watchdog asks this before every ping to systemd).
    pub async fn ping(&self) -> Result<(), StateError> {
        self.call("ping the state thread".into(), |db, what| {
            db.conn.query_row("SELECT 1", &[], |_| Ok(())).map_err(StateError::query(what))
        })
        .await
    }

    /// Runs `f` on the model's database thread and returns its result. `what` names the call in
    /// errors ("store proc web-1") and is handed to `f` for its own.
    async fn call<T, F>(&self, what: String, f: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db, &str) -> Result<T, StateError> + Send + 'static,
    {
        let Some(fence) = &self.fence else { return self.model.call(what, f).await };
        let epoch = fence.epoch();
        let result = self
            .model
            .call(what, move |db, what| {
                db.conn.set_fence(Some(epoch));
                let result = f(db, what);
                db.conn.set_fence(None);
                result
            })
            .await;
        if let Err(StateError::Fenced { mine, .. }) = &result {
            fence.lost(*mine);
        }
        result
    }

    /// [`State::call`] on the host's own record (procs and their events).
    async fn call_local<T, F>(&self, what: String, f: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db, &str) -> Result<T, StateError> + Send + 'static,
    {
        self.local.call(what, f).await
    }
}

impl Actor {
    /// A SQLite database at `path` (created 0600 and migrated), or in memory.
    fn sqlite(path: Option<&Path>, options: StateOptions) -> Result<Actor, StateError> {
        let conn = match path {
            Some(path) => {
                create_private(path)?;
                let open_err = |source: rusqlite::Error| StateError::Open {
                    path: path.to_path_buf(),
                    source: source.into(),
                };
                let mut conn = Connection::open(path).map_err(open_err)?;
                migrations::prepare(&mut conn, path)?;
                conn
            }
            None => {
                let path = Path::new(":memory:");
                let open_err = |source: rusqlite::Error| StateError::Open {
                    path: path.to_path_buf(),
                    source: source.into(),
                };
                let mut conn = Connection::open_in_memory().map_err(open_err)?;
                migrations::prepare(&mut conn, path)?;
                conn
            }
        };
        Actor::spawn(options, move || Ok(Conn::sqlite(conn)))
    }

    /// Starts the thread, which makes its connection with `make` (PostgreSQL's blocking client
    /// must not run on a tokio worker) and then serves jobs; it ends when the last handle is
    /// dropped. Waits until the connection is made or has failed.
    fn spawn<M>(options: StateOptions, make: M) -> Result<Actor, StateError>
    where
        M: FnOnce() -> Result<Conn, StateError> + Send + 'static,
    {
        let (jobs, mut queue) = mpsc::channel::<Job>(QUEUE);
        let instance: Arc<str> = notify::new_instance().into();
        let own = instance.to_string();
        let (ready, made) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("vrd-state".into())
            .spawn(move || {
                let made = make().and_then(|conn| {
                    let channel = match conn.kind() {
                        sql::EngineKind::Sqlite => String::new(),
                        sql::EngineKind::Postgres => conn
                            .query_row(notify::SCHEMA_QUERY, &[], |r| r.get::<String>(0))
                            .map(|schema| notify::channel(&schema))
                            .map_err(StateError::query("read the model's schema"))?,
                    };
                    Ok((conn, channel))
                });
                let (conn, channel) = match made {
                    Ok(made) => {
                        let _ = ready.send(Ok(()));
                        made
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let mut db = Db { conn, options, appends: 0, instance: own, channel };
                while let Some(job) = queue.blocking_recv() {
                    // A fenced job sets its own; one that panicked must not leave it to the next.
                    db.conn.set_fence(None);
                    if let Err(e) = db.conn.revive() {
                        // The job fails with its own error below; the next one tries again.
                        tracing::error!(error = %e, "the state database cannot be reached");
                    }
                    job(&mut db);
                }
            })
            .map_err(StateError::Spawn)?;
        made.recv().map_err(|_| StateError::Closed)??;
        Ok(Actor { jobs, instance })
    }

    async fn call<T, F>(&self, what: String, f: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db, &str) -> Result<T, StateError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |db| {
            // A panic unwinds through any open sql::Tx, whose drop rolls it back, so
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
