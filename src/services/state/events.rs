//! The `proc_events` table: every proc state change, numbered, so a consumer that lost its
//! connection can replay from the last id it saw. Only the newest events are kept.

use super::sql::{args, Conn, DbError, DbResult, EngineKind, Row};

use super::notify::Announced;
use super::{to_id, to_sql_int, Db, State, StateError};
use crate::model::supervision::ProcEvent;

/// Appends between prunes: pruning is one indexed DELETE, but there is no need to run it every time.
const PRUNE_EVERY: usize = 100;

impl State {
    /// Stores `event` and returns its id, which is greater than every id handed out before.
    /// Every [`PRUNE_EVERY`] appends, events beyond the newest `keep_events` are dropped.
    pub async fn append_event(&self, event: ProcEvent) -> Result<u64, StateError> {
        let what = format!("append an event of proc {}", event.name);
        let body = serde_json::to_string(&event).map_err(|source| StateError::Encode {
            what: format!("the event of proc {}", event.name),
            source,
        })?;
        self.call(what, move |db, what| append(db, &body).map_err(StateError::query(what))).await
    }

    /// Up to `limit` events with ids above `after_id`, oldest first; pass 0 to start at the oldest
    /// kept, then the last id seen to continue.
    pub async fn events_since(
        &self,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<(u64, ProcEvent)>, StateError> {
        let what = format!("read events after {after_id}");
        self.call(what, move |db, what| since(&db.conn, after_id, limit).map_err(StateError::query(what)))
            .await
    }

    /// The newest event's id (0 when there is none).
    pub async fn latest_event_id(&self) -> Result<u64, StateError> {
        self.call("read the newest event's id".into(), |db, what| {
            db.conn
                .query_row("SELECT COALESCE(MAX(id), 0) FROM proc_events", &[], |row| row.get::<i64>(0))
                .map(to_id)
                .map_err(StateError::query(what))
        })
        .await
    }

    /// Drops all but the newest `keep_events` events now; returns how many were dropped.
    pub async fn prune_events(&self) -> Result<usize, StateError> {
        self.call("prune events".into(), |db, what| prune(db).map_err(StateError::query(what))).await
    }
}

/// The advisory lock key appends of events take on PostgreSQL ("vr events").
const EVENTS_LOCK: i64 = 0x7672_5f65_7665;

fn append(db: &mut Db, body: &str) -> DbResult<u64> {
    let id = match db.conn.kind() {
        EngineKind::Sqlite => {
            to_id(db.conn.insert("INSERT INTO proc_events (body) VALUES (?1)", args![body])?)
        }
        EngineKind::Postgres => append_in_order(db, body)?,
    };
    db.appends += 1;
    if db.appends >= PRUNE_EVERY {
        prune(db)?;
    }
    Ok(id)
}

/// On PostgreSQL every vrd of the model appends events, and ids come from a sequence: without a
/// lock an id taken later could commit earlier, and a reader that had gone past it (`id > last`)
/// would never see the other. Each append holds a transaction-scoped advisory lock from taking
/// its id to its commit, so events commit in id order; the NOTIFY goes out with the commit.
fn append_in_order(db: &mut Db, body: &str) -> DbResult<u64> {
    let tx = db.conn.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock(?1)", args![EVENTS_LOCK])?;
    let id = to_id(tx.insert("INSERT INTO proc_events (body) VALUES (?1)", args![body])?);
    let announce = super::notify::payload(Announced::Event(id), &db.instance);
    tx.execute("SELECT pg_notify(?1, ?2)", args![db.channel, announce])?;
    tx.commit()?;
    Ok(id)
}

fn prune(db: &mut Db) -> DbResult<usize> {
    db.appends = 0;
    // The subquery finds the newest event that is *not* kept; with fewer events it is NULL and
    // nothing matches.
    db.conn.execute(
        "DELETE FROM proc_events
         WHERE id <= (SELECT id FROM proc_events ORDER BY id DESC LIMIT 1 OFFSET ?1)",
        args![to_sql_int(db.options.keep_events)],
    )
}

fn since(conn: &Conn, after_id: u64, limit: usize) -> DbResult<Vec<(u64, ProcEvent)>> {
    conn.query_map(
        "SELECT id, body FROM proc_events WHERE id > ?1 ORDER BY id LIMIT ?2",
        args![to_sql_int(after_id), to_sql_int(limit)],
        from_row,
    )
}

fn from_row(row: &Row) -> DbResult<(u64, ProcEvent)> {
    let body: String = row.get(1)?;
    let event = serde_json::from_str(&body).map_err(DbError::parse(1))?;
    Ok((to_id(row.get(0)?), event))
}
