//! The SQLite engine: statements from rusqlite's per-connection cache, values as they are.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, Connection, ToSql};

use super::{DbResult, Row, Value};

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// Runs one statement; returns the rows it changed.
pub(super) fn execute(conn: &Connection, sql: &str, args: &[Value]) -> DbResult<u64> {
    let mut stmt = conn.prepare_cached(sql)?;
    let n = stmt.execute(params_from_iter(args))?;
    Ok(u64::try_from(n).unwrap_or(u64::MAX))
}

/// Every row of a query, read out.
pub(super) fn rows(conn: &Connection, sql: &str, args: &[Value]) -> DbResult<Vec<Row>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let width = stmt.column_count();
    let mut found = stmt.query(params_from_iter(args))?;
    let mut rows = Vec::new();
    while let Some(row) = found.next()? {
        let values = (0..width).map(|i| row.get_ref(i).map(value_of)).collect::<Result<_, _>>()?;
        rows.push(Row { values });
    }
    Ok(rows)
}

fn value_of(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Real(f),
        // STRICT tables hold valid UTF-8 in TEXT columns; anything else is kept as bytes, which a
        // typed read then refuses as corrupt.
        ValueRef::Text(t) => {
            std::str::from_utf8(t).map_or_else(|_| Value::Blob(t.to_vec()), |s| Value::Text(s.to_string()))
        }
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}
