//! The `audit` table: who called which API method, when, with what, and how it went.

use super::sql::{args, Conn, DbResult, Row};

use super::{to_id, to_sql_int, State, StateError};

pub use crate::model::audit::AuditEntry;

impl State {
    /// Records `entry` (its `id` is ignored) and returns the id it was given.
    pub async fn append_audit(&self, entry: AuditEntry) -> Result<u64, StateError> {
        let what = format!("record the audit entry for {}", entry.method);
        self.call(what, move |db, what| append(&db.conn, &entry).map_err(StateError::query(what))).await
    }

    /// Records `entry` without waiting for the write: it is queued before this returns, so any
    /// later state call (`vr audit`) sees it. A failed write is logged.
    pub async fn queue_audit(&self, entry: AuditEntry) -> Result<(), StateError> {
        let what = format!("record the audit entry for {}", entry.method);
        self.queue(what, move |db, what| {
            append(&db.conn, &entry).map(|_| ()).map_err(|e| {
                // Never dropped silently: the whole entry goes to the daemon's log instead.
                let json = serde_json::to_string(&entry).unwrap_or_else(|_| format!("{entry:?}"));
                tracing::error!(audit = %json, error = %e, "the audit log could not be written; the entry is kept in this line");
                StateError::query(what)(e)
            })
        })
        .await
    }

    /// Removes the entries older than `before_ms` (unix milliseconds); returns how many.
    pub async fn prune_audit(&self, before_ms: i64) -> Result<usize, StateError> {
        self.call("prune the audit log".into(), move |db, what| {
            db.conn
                .execute("DELETE FROM audit WHERE time < ?1", args![before_ms])
                .map_err(StateError::query(what))
        })
        .await
    }

    /// Up to `limit` entries with ids above `since_id`, oldest first.
    pub async fn list_audit(&self, limit: usize, since_id: u64) -> Result<Vec<AuditEntry>, StateError> {
        self.call("list the audit log".into(), move |db, what| {
            list(&db.conn, limit, since_id).map_err(StateError::query(what))
        })
        .await
    }

    /// The newest `limit` entries, oldest first (what `vr audit` shows).
    pub async fn latest_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StateError> {
        self.call("list the audit log".into(), move |db, what| {
            latest(&db.conn, limit).map_err(StateError::query(what))
        })
        .await
    }
}

fn latest(conn: &Conn, limit: usize) -> DbResult<Vec<AuditEntry>> {
    let mut rows: Vec<AuditEntry> = conn.query_map(
        "SELECT id, time, uid, gid, pid, method, params, outcome, \"user\" FROM audit ORDER BY id DESC LIMIT ?1",
        args![to_sql_int(limit)],
        from_row,
    )?;
    rows.reverse();
    Ok(rows)
}

fn append(conn: &Conn, e: &AuditEntry) -> DbResult<u64> {
    let id = conn.insert(
        "INSERT INTO audit (time, uid, gid, pid, method, params, outcome, \"user\") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        args![e.time, e.uid, e.gid, e.pid, e.method, e.params, e.outcome, e.user],
    )?;
    Ok(to_id(id))
}

fn list(conn: &Conn, limit: usize, since_id: u64) -> DbResult<Vec<AuditEntry>> {
    conn.query_map(
        "SELECT id, time, uid, gid, pid, method, params, outcome, \"user\" FROM audit
         WHERE id > ?1 ORDER BY id LIMIT ?2",
        args![to_sql_int(since_id), to_sql_int(limit)],
        from_row,
    )
}

fn from_row(row: &Row) -> DbResult<AuditEntry> {
    Ok(AuditEntry {
        id: to_id(row.get(0)?),
        time: row.get(1)?,
        uid: row.get(2)?,
        gid: row.get(3)?,
        pid: row.get(4)?,
        method: row.get(5)?,
        params: row.get(6)?,
        outcome: row.get(7)?,
        user: row.get(8)?,
    })
}
