//! The PostgreSQL engine: the blocking `postgres` client (its own small runtime, on the state
//! thread like SQLite's connection), TLS by rustls with the system's roots plus an optional CA
//! file, prepared statements kept per connection, and a reconnect after the server went away.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use postgres::{Client, Statement};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{dialect, DbError, DbResult, Row, Value};

/// Prepared statements kept per connection before the cache starts over; the state's queries
/// are a fixed set well below this.
const STATEMENT_CACHE: usize = 512;

/// How long a connection attempt may take before it fails with its cause.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the state's PostgreSQL is, and what to trust for its TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// A libpq-style URL or key=value string (`postgres://user@host/db?sslmode=require`).
    pub url: String,
    /// PEM certificates to trust beside the system's roots (a private CA).
    pub ca_file: Option<PathBuf>,
}

impl PgTarget {
    /// The URL without its password, for messages and logs.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("***"));
                u.to_string()
            }
            Ok(u) => u.to_string(),
            // A key=value string: drop the password pair.
            Err(_) => self
                .url
                .split_whitespace()
                .map(|kv| if kv.starts_with("password=") { "password=***" } else { kv })
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// A connection and its prepared statements.
pub(super) struct PgConn {
    client: Client,
    statements: HashMap<String, Statement>,
    target: PgTarget,
    /// Inside BEGIN .. COMMIT: a lost connection lost the transaction, so nothing is retried.
    in_tx: bool,
}

impl PgConn {
    /// Connects; fails with the server's or the network's reason.
    pub(super) fn connect(target: PgTarget) -> DbResult<PgConn> {
        let client = open(&target)?;
        Ok(PgConn { client, statements: HashMap::new(), target, in_tx: false })
    }

    /// Opens a new connection if the server closed this one.
    pub(super) fn revive(&mut self) -> DbResult<()> {
        if self.client.is_closed() {
            tracing::warn!(database = %self.target.redacted(), "the state database closed the connection; reconnecting");
            self.client = open(&self.target)?;
            self.statements.clear();
            tracing::info!(database = %self.target.redacted(), "reconnected to the state database");
        }
        Ok(())
    }

    pub(super) fn execute(&mut self, sql: &str, args: &[Value]) -> DbResult<u64> {
        self.retried(|c| {
            let stmt = c.statement(sql)?;
            Ok(c.client.execute(&stmt, &params(args))?)
        })
    }

    pub(super) fn rows(&mut self, sql: &str, args: &[Value]) -> DbResult<Vec<Row>> {
        let found = self.retried(|c| {
            let stmt = c.statement(sql)?;
            Ok(c.client.query(&stmt, &params(args))?)
        })?;
        found
            .iter()
            .map(|r| {
                let values = (0..r.len()).map(|i| r.try_get::<_, Value>(i)).collect::<Result<_, _>>()?;
                Ok(Row { values })
            })
            .collect()
    }

    pub(super) fn batch(&mut self, sql: &str) -> DbResult<()> {
        match sql {
            "BEGIN" => self.in_tx = true,
            "COMMIT" | "ROLLBACK" => self.in_tx = false,
            _ => {}
        }
        Ok(self.client.batch_execute(sql)?)
    }

    /// Runs `f`; if it failed because the connection was gone before the statement could run
    /// (the server restarted, or an admin ended the session), and no transaction was open,
    /// reconnects and runs it once more: the statement was not applied, so nothing is doubled.
    fn retried<T>(&mut self, mut f: impl FnMut(&mut PgConn) -> DbResult<T>) -> DbResult<T> {
        match f(self) {
            Err(DbError::Postgres(e)) if !self.in_tx && connection_lost(&e) => {
                tracing::warn!(error = %e, "the state database's connection was lost; reconnecting");
                self.client = open(&self.target)?;
                self.statements.clear();
                f(self)
            }
            other => other,
        }
    }

    fn statement(&mut self, sql: &str) -> DbResult<Statement> {
        if let Some(found) = self.statements.get(sql) {
            return Ok(found.clone());
        }
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        let stmt = self.client.prepare(&dialect::placeholders(sql))?;
        self.statements.insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }
}

/// Whether `e` says the session was gone before the statement ran.
fn connection_lost(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.is_closed()
        || e.code().is_some_and(|c| {
            [SqlState::ADMIN_SHUTDOWN, SqlState::CRASH_SHUTDOWN, SqlState::CANNOT_CONNECT_NOW].contains(c)
        })
}

fn params(args: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

/// A connection of its own (the event listener's).
pub fn connect(target: &PgTarget) -> DbResult<Client> {
    open(target)
}

fn open(target: &PgTarget) -> DbResult<Client> {
    let mut config: postgres::Config = target.url.parse()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    // A coordinator must notice a database host that vanished without closing the socket.
    config.keepalives(true).keepalives_idle(Duration::from_secs(10));
    if config.get_application_name().is_none() {
        config.application_name("vrd");
    }
    let mut client = config.connect(tls(target)?)?;
    client.batch_execute(SESSION_LIMITS)?;
    Ok(client)
}

/// What every vrd session sets. vrd's transactions run their statements back to back on the
/// state thread, so one idle in a transaction for seconds belongs to a vrd that is paused or
/// stuck: the server ends it, and its locks with it. Without that a leader paused (SIGSTOP, a VM
/// frozen) inside a fenced write would hold its share lock on the lease row, and no standby could
/// ever take the lease. No statement waits for a lock longer than `lock_timeout` either, so a
/// state thread is never stuck behind another session; the call fails and is tried again.
const SESSION_LIMITS: &str = "SET idle_in_transaction_session_timeout = '2s'; SET lock_timeout = '5s'";

/// rustls (ring) with the system's roots and the target's CA file.
fn tls(target: &PgTarget) -> DbResult<MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system root rustls can't parse is one root fewer, not a failure.
        let _ = roots.add(cert);
    }
    if let Some(path) = &target.ca_file {
        let setup = |e: &dyn std::fmt::Display| DbError::Setup {
            what: format!("read the CA certificates in {} (state_ca_file)", path.display()),
            reason: e.to_string(),
        };
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| setup(&e))? {
            roots.add(cert.map_err(|e| setup(&e))?).map_err(|e| setup(&e))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Setup {
            what: "set up TLS for the state database".into(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => int_to_sql(*i, ty, out),
            Value::Real(f) => match *ty {
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => f.to_sql(ty, out),
            },
            Value::Text(s) if <&str as ToSql>::accepts(ty) => s.as_str().to_sql(ty, out),
            Value::Blob(b) if <&[u8] as ToSql>::accepts(ty) => b.as_slice().to_sql(ty, out),
            // Binding text to a BIGINT column would send bytes the server misreads; say what it was.
            other => Err(format!("{} can't be stored in a {ty} column", other.kind()).into()),
        }
    }

    // Every column type is accepted here and checked in `to_sql`, which knows the value.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn int_to_sql(i: i64, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    match *ty {
        Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
        Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
        Type::BOOL => (i != 0).to_sql(ty, out),
        Type::FLOAT8 => (i as f64).to_sql(ty, out),
        Type::TEXT | Type::VARCHAR => i.to_string().as_str().to_sql(ty, out),
        _ => i.to_sql(ty, out),
    }
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Value, BoxError> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Int(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)?.into()),
            Type::BYTEA => Value::Blob(<Vec<u8>>::from_sql(ty, raw)?),
            _ => Value::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Value, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT8 | Type::INT4 | Type::INT2 | Type::BOOL | Type::FLOAT8 | Type::FLOAT4 | Type::BYTEA
        ) || <String as FromSql>::accepts(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_reaches_a_message() {
        let t = |url: &str| PgTarget { url: url.into(), ca_file: None }.redacted();
        assert_eq!(t("postgres://vr:s3cret@db:5432/vr"), "postgres://vr:***@db:5432/vr");
        assert_eq!(t("host=db user=vr password=s3cret"), "host=db user=vr password=***");
        assert!(!t("postgres://db/vr?sslmode=require").contains("***"));
    }
}
