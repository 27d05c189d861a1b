//! The one SQL interface the state's typed methods are written against, over either engine:
//! embedded SQLite (rusqlite; the default) or PostgreSQL (the `postgres` client over rustls).
//!
//! Queries are written once, in SQLite's `?N` placeholder style and in the SQL both engines
//! speak (`ON CONFLICT`, `RETURNING`, `COALESCE`); [`dialect`] rewrites what differs for
//! PostgreSQL, in one place. Values cross as [`Value`], so a typed method never names an engine.
//!
//! A [`Conn`] is used by one thread only (the state thread); its methods take `&self` so the
//! typed methods read like rusqlite code, and a [`Tx`] derefs to the `Conn` it runs on.

pub(super) mod dialect;
mod postgres;
mod sqlite;
mod value;

use std::cell::{Cell, RefCell};

pub use self::postgres::{connect as connect_postgres, PgTarget};
pub use value::{FromValue, ToValue, Value};

/// The arguments of a statement, borrowed: `args![name, id]`.
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        &[$($crate::services::state::sql::ToValue::to_value(&$a)),*][..]
    };
}
pub(crate) use args;

/// Why a statement failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite refused or failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused or failed, or the connection to it did.
    #[error(transparent)]
    Postgres(#[from] ::postgres::Error),
    /// The connection could not be set up (TLS roots, a CA file).
    #[error("failed to {what}: {reason}")]
    Setup {
        /// What was being done.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// A fenced write from a vrd that does not hold the lease.
    #[error("this coordinator does not hold the lease")]
    NotLeader,
    /// A fenced write whose epoch is no longer the lease's: another coordinator took over.
    #[error("the lease moved on to epoch {current}; this coordinator held epoch {mine}")]
    Fenced {
        /// The epoch the writer held.
        mine: u64,
        /// The lease's epoch now.
        current: u64,
    },
    /// A query that must return a row returned none.
    #[error("the query returned no row")]
    NoRows,
    /// A stored value does not decode into what the state expects.
    #[error("column {column} holds {found}, which is not {expected}")]
    Decode {
        /// The column's index in the query.
        column: usize,
        /// What the column held.
        found: String,
        /// What was expected.
        expected: String,
    },
    /// A stored value was read but did not parse.
    #[error("column {column} does not parse")]
    Parse {
        /// The column's index in the query.
        column: usize,
        /// The parse error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl DbError {
    /// A column whose text or number does not parse into the model's type.
    pub fn parse<E>(column: usize) -> impl FnOnce(E) -> DbError
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        move |e| DbError::Parse { column, source: e.into() }
    }

    /// Whether the stored data, not the engine, is at fault.
    pub fn is_corrupt(&self) -> bool {
        match self {
            DbError::Decode { .. } | DbError::Parse { .. } => true,
            DbError::Sqlite(e) => matches!(
                e,
                rusqlite::Error::FromSqlConversionFailure(..)
                    | rusqlite::Error::IntegralValueOutOfRange(..)
                    | rusqlite::Error::InvalidColumnType(..)
            ),
            DbError::Postgres(_)
            | DbError::NoRows
            | DbError::Setup { .. }
            | DbError::NotLeader
            | DbError::Fenced { .. } => false,
        }
    }
}

/// Results of the SQL layer.
pub type DbResult<T> = Result<T, DbError>;

/// `query_row(...).optional()`: no row is `None`, not an error.
pub trait OptionalRow<T> {
    /// `Ok(None)` for [`DbError::NoRows`].
    fn optional(self) -> DbResult<Option<T>>;
}

impl<T> OptionalRow<T> for DbResult<T> {
    fn optional(self) -> DbResult<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// One result row, its values read out of the engine.
#[derive(Debug, Clone)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    /// Column `idx` as `T`; a value that does not fit is [`DbError::Decode`].
    pub fn get<T: FromValue>(&self, idx: usize) -> DbResult<T> {
        let value = self.values.get(idx).unwrap_or(&Value::Null);
        T::from_value(value).map_err(|expected| DbError::Decode {
            column: idx,
            found: value.kind().to_string(),
            expected: expected.to_string(),
        })
    }

    /// A text column parsed with `FromStr`; a bad value names the column.
    pub fn parsed<T>(&self, idx: usize) -> DbResult<T>
    where
        T: std::str::FromStr,
        T::Err: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.get::<String>(idx)?.parse().map_err(DbError::parse(idx))
    }

    /// The values, in column order (migrate-state copies rows as they are).
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }
}

/// The engine a [`Conn`] speaks to.
enum Engine {
    Sqlite(rusqlite::Connection),
    // Boxed: one per state thread, and it is much larger than rusqlite's handle.
    Postgres(Box<postgres::PgConn>),
}

/// Which engine, for the few places that must know (migrations, the lease, messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The lease row every coordinator of one model competes for.
pub const LEASE: &str = "coordinator";

/// A connection to either engine.
pub struct Conn {
    engine: RefCell<Engine>,
    /// The lease epoch the current job's writes must still hold (`Some(0)`: it holds none).
    fence: Cell<Option<u64>>,
    /// Inside BEGIN .. COMMIT.
    in_tx: Cell<bool>,
}

impl Conn {
    /// A connection over an open, configured SQLite database.
    pub fn sqlite(conn: rusqlite::Connection) -> Conn {
        Conn::over(Engine::Sqlite(conn))
    }

    /// Connects to PostgreSQL at `target`.
    pub fn postgres(target: PgTarget) -> DbResult<Conn> {
        Ok(Conn::over(Engine::Postgres(Box::new(postgres::PgConn::connect(target)?))))
    }

    fn over(engine: Engine) -> Conn {
        Conn { engine: RefCell::new(engine), fence: Cell::new(None), in_tx: Cell::new(false) }
    }

    /// Fences the writes of the jobs that follow with `epoch` (`None`: unfenced): each runs in a
    /// transaction that first checks the lease still has that epoch, and holds it until commit.
    pub fn set_fence(&self, epoch: Option<u64>) {
        self.fence.set(epoch);
    }

    /// Which engine this is.
    pub fn kind(&self) -> EngineKind {
        match &*self.engine.borrow() {
            Engine::Sqlite(_) => EngineKind::Sqlite,
            Engine::Postgres(_) => EngineKind::Postgres,
        }
    }

    /// Runs a statement; returns how many rows it changed.
    pub fn execute(&self, sql: &str, args: &[Value]) -> DbResult<usize> {
        if self.fence.get().is_some() && !self.in_tx.get() {
            let tx = self.transaction()?;
            let n = tx.execute(sql, args)?;
            tx.commit()?;
            return Ok(n);
        }
        let n = match &mut *self.engine.borrow_mut() {
            Engine::Sqlite(c) => sqlite::execute(c, sql, args)?,
            Engine::Postgres(c) => c.execute(sql, args)?,
        };
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Every row of a query.
    pub fn rows(&self, sql: &str, args: &[Value]) -> DbResult<Vec<Row>> {
        match &mut *self.engine.borrow_mut() {
            Engine::Sqlite(c) => sqlite::rows(c, sql, args),
            Engine::Postgres(c) => c.rows(sql, args),
        }
    }

    /// The first row of a query through `f`, or [`DbError::NoRows`].
    pub fn query_row<T>(
        &self,
        sql: &str,
        args: &[Value],
        f: impl FnOnce(&Row) -> DbResult<T>,
    ) -> DbResult<T> {
        let rows = self.rows(sql, args)?;
        f(rows.first().ok_or(DbError::NoRows)?)
    }

    /// Every row of a query through `f`.
    pub fn query_map<T, C>(
        &self,
        sql: &str,
        args: &[Value],
        f: impl FnMut(&Row) -> DbResult<T>,
    ) -> DbResult<C>
    where
        C: FromIterator<T>,
    {
        self.rows(sql, args)?.iter().map(f).collect()
    }

    /// Runs an INSERT into a table with an `id` column and returns the new row's id.
    pub fn insert(&self, sql: &str, args: &[Value]) -> DbResult<i64> {
        if self.fence.get().is_some() && !self.in_tx.get() {
            let tx = self.transaction()?;
            let id = tx.insert(sql, args)?;
            tx.commit()?;
            return Ok(id);
        }
        self.query_row(&format!("{sql} RETURNING id"), args, |r| r.get(0))
    }

    /// Runs several statements without arguments (schema migrations).
    pub fn execute_batch(&self, sql: &str) -> DbResult<()> {
        match &mut *self.engine.borrow_mut() {
            Engine::Sqlite(c) => c.execute_batch(sql).map_err(DbError::from),
            Engine::Postgres(c) => c.batch(sql),
        }
    }

    /// Begins a transaction that takes the write lock at once on SQLite (`BEGIN IMMEDIATE`: no
    /// other connection can change what it reads before it writes). It rolls back when dropped
    /// uncommitted, also when a panic unwinds through it.
    pub fn transaction(&self) -> DbResult<Tx<'_>> {
        let begin = match self.kind() {
            EngineKind::Sqlite => "BEGIN IMMEDIATE",
            EngineKind::Postgres => "BEGIN",
        };
        self.execute_batch(begin)?;
        self.in_tx.set(true);
        let tx = Tx { conn: self, open: true };
        self.check_fence()?;
        Ok(tx)
    }

    /// With a fence set: the lease still has its epoch (read FOR SHARE on PostgreSQL, so no
    /// other coordinator can take the lease before this transaction ends).
    fn check_fence(&self) -> DbResult<()> {
        let Some(mine) = self.fence.get() else { return Ok(()) };
        if mine == 0 {
            return Err(DbError::NotLeader);
        }
        let sql = format!("SELECT epoch FROM lease WHERE name = ?1{}", dialect::for_share(self.kind()));
        let current: Option<u64> = self.rows(&sql, args![LEASE])?.first().map(|r| r.get(0)).transpose()?;
        match current {
            Some(current) if current == mine => Ok(()),
            other => Err(DbError::Fenced { mine, current: other.unwrap_or(0) }),
        }
    }

    /// Reconnects a PostgreSQL connection that was closed (the server restarted); nothing for
    /// SQLite. Called before each job, so one failed call is all a restart costs.
    pub fn revive(&self) -> DbResult<()> {
        match &mut *self.engine.borrow_mut() {
            Engine::Sqlite(_) => Ok(()),
            Engine::Postgres(c) => c.revive(),
        }
    }

    /// Runs `f` on the SQLite connection itself (pragmas); `None` on PostgreSQL.
    pub fn with_sqlite<T>(&self, f: impl FnOnce(&mut rusqlite::Connection) -> T) -> Option<T> {
        match &mut *self.engine.borrow_mut() {
            Engine::Sqlite(c) => Some(f(c)),
            Engine::Postgres(_) => None,
        }
    }
}

/// An open transaction; derefs to its [`Conn`].
pub struct Tx<'a> {
    conn: &'a Conn,
    open: bool,
}

impl Tx<'_> {
    /// Commits.
    pub fn commit(mut self) -> DbResult<()> {
        self.open = false;
        self.conn.in_tx.set(false);
        self.conn.execute_batch("COMMIT")
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            self.conn.in_tx.set(false);
            // Nothing to tell anyone: the transaction failed already, and a failed rollback
            // leaves the engine to drop it (SQLite at the next BEGIN, PostgreSQL with the session).
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}
