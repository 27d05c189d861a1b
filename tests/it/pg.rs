//! A throwaway PostgreSQL for the root tests: a schema of its own per test in the cluster libpq's
//! environment names (`pg_virtualenv` sets PGHOST and the rest; tests/run.sh runs the suite under
//! it), dropped when the test ends.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::harness::skip;

/// One test's schema.
pub struct PgSchema {
    pub name: String,
}

impl PgSchema {
    /// A new schema, or `None` after a counted skip when there is no PostgreSQL.
    pub fn create(test: &str) -> Option<PgSchema> {
        if std::env::var("PGHOST").is_err() {
            skip(test, "no PostgreSQL: PGHOST is unset (tests/run.sh runs the tests under pg_virtualenv)");
            return None;
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("vrit_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        psql(&format!("CREATE SCHEMA {name}"));
        Some(PgSchema { name })
    }

    /// The state_url of a vrd whose model lives in this schema.
    pub fn url(&self) -> String {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        format!(
            "postgres://{}:{}@{}:{}/{}?options=-csearch_path%3D{}",
            var("PGUSER", "postgres"),
            var("PGPASSWORD", ""),
            var("PGHOST", "localhost"),
            var("PGPORT", "5432"),
            var("PGDATABASE", "postgres"),
            self.name
        )
    }

    /// The state_url of a vrd in a network namespace of its own, which cannot reach the cluster's
    /// loopback port: the cluster's Unix socket (sockets are shared across network namespaces),
    /// as the database role `root`, which the cluster's `peer` authentication lets root in as.
    pub fn socket_url(&self) -> String {
        psql(
            "DO $$ BEGIN CREATE ROLE root SUPERUSER LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
        );
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        format!(
            "postgres://root@%2Fvar%2Frun%2Fpostgresql:{}/{}?options=-csearch_path%3D{}",
            var("PGPORT", "5432"),
            var("PGDATABASE", "postgres"),
            self.name
        )
    }

    /// One value `sql` selects in this schema.
    pub fn value(&self, sql: &str) -> String {
        psql(&format!("SET search_path TO {}; {sql}", self.name)).trim().to_string()
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        psql(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

/// Runs `sql` with psql as the cluster's admin; its unaligned, tuples-only output.
pub fn psql(sql: &str) -> String {
    let out =
        Command::new("psql").args(["-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql]).output().unwrap();
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Restarts the cluster pg_virtualenv made (its name is `regress`).
pub fn restart_cluster() {
    let version = std::env::var("PGVERSION").unwrap_or_else(|_| "15".into());
    let out = Command::new("pg_ctlcluster").args([version.as_str(), "regress", "restart"]).output().unwrap();
    assert!(out.status.success(), "pg_ctlcluster restart: {}", String::from_utf8_lossy(&out.stderr));
}
