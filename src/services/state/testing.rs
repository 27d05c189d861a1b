//! The state's tests run against both engines: [`engine_tests!`] makes each test twice, on an
//! in-memory SQLite and on PostgreSQL in a schema of its own (dropped after). PostgreSQL comes from
//! libpq's environment (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`), as
//! `pg_virtualenv` sets it; without `PGHOST` the PostgreSQL half is a counted skip (a failure under
//! `VRD_TEST_STRICT=1`).

use std::sync::atomic::{AtomicU32, Ordering};

use super::{PgTarget, State, StateOptions, DEFAULT_KEEP_EVENTS};

/// The default options.
pub fn defaults() -> StateOptions {
    StateOptions { keep_events: DEFAULT_KEEP_EVENTS }
}

/// A PostgreSQL schema made for one test, dropped with it.
pub struct Schema {
    base: String,
    name: String,
}

impl Schema {
    /// A fresh schema, or `None` (a skip is reported) when there is no PostgreSQL to use.
    pub fn create(test: &str) -> Option<Schema> {
        let Some(base) = base_target() else {
            crate::sys::testing::skip(test, "no PostgreSQL: PGHOST is unset (run under pg_virtualenv)");
            return None;
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("vrt_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        admin(&base, &format!("CREATE SCHEMA {name}"));
        Some(Schema { base, name })
    }

    /// The target whose every connection works in this schema.
    pub fn target(&self) -> PgTarget {
        let url =
            format!("{} options='-c search_path={}' application_name={}", self.base, self.name, self.name);
        PgTarget { url, ca_file: None }
    }

    /// The schema's name, which is also its connections' application_name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `sql` in this schema, as the test's admin.
    pub fn admin(&self, sql: &str) -> usize {
        admin(&self.target().url, sql)
    }

    /// A state whose model is in this schema.
    pub fn open(&self, options: StateOptions) -> State {
        State::open_postgres(self.target(), None, options).expect("open the state on PostgreSQL")
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        admin(&self.base, &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

/// The key=value connection string libpq's environment describes, if `PGHOST` is set.
pub fn base_target() -> Option<String> {
    let host = std::env::var("PGHOST").ok()?;
    let var = |k: &str, default: &str| std::env::var(k).unwrap_or_else(|_| default.to_string());
    Some(format!(
        "host={host} port={} user={} password={} dbname={}",
        var("PGPORT", "5432"),
        var("PGUSER", "postgres"),
        var("PGPASSWORD", ""),
        var("PGDATABASE", "postgres")
    ))
}

/// Runs statements as the test's admin, on a thread of its own (the blocking client must not
/// run on a tokio worker); returns how many rows the last one returned.
pub fn admin(base: &str, sql: &str) -> usize {
    let (base, sql) = (base.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&base, postgres::NoTls).expect("connect to PostgreSQL");
        let found = client.simple_query(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        found.iter().filter(|m| matches!(m, postgres::SimpleQueryMessage::Row(_))).count()
    })
    .join()
    .expect("the admin statement's thread")
}

/// Makes each `async fn name(state) { ... }` (or `async fn name(state with OPTIONS) { ... }`) a
/// module `name` with two tests, `sqlite` and `postgres`, each running the body on its engine.
macro_rules! engine_tests {
    (@options) => { $crate::services::state::testing::defaults() };
    (@options $options:expr) => { $options };
    ($(async fn $name:ident($state:ident $(with $options:expr)?) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn options() -> $crate::services::state::StateOptions {
                $crate::services::state::testing::engine_tests!(@options $($options)?)
            }

            #[tokio::test]
            async fn sqlite() {
                let $state = $crate::services::state::State::open_in_memory_with(options()).unwrap();
                $body
            }

            #[tokio::test]
            async fn postgres() {
                let test = concat!(module_path!(), "::postgres");
                let Some(schema) = $crate::services::state::testing::Schema::create(test) else { return };
                let $state = schema.open(options());
                $body
            }
        }
    )*};
}
pub(crate) use engine_tests;
