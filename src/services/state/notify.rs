//! Appends across coordinators (issue 15): on PostgreSQL each appended proc event and deployment
//! log entry is announced with `NOTIFY vr_events` (delivered when its transaction commits), and
//! every vrd sharing the model listens on a connection of its own, so a standby's `vr events -f`,
//! `vr swarm` (following a dispatch the leader runs) and dashboard see the leader's appends as they
//! happen; each model (schema) has a channel of its own (`channel`). The payload is `KIND ID INSTANCE` (kind `event` or `deploy`), the instance being the
//! state connection's: a vrd skips its own announcements, whose appends it published already.

use std::time::Duration;

use tokio::sync::mpsc;

use super::sql::PgTarget;

/// The query naming the schema the model is in, which names its channel.
pub const SCHEMA_QUERY: &str = "SELECT COALESCE(current_schema(), '')";

/// The channel a model's appends are announced on: one per schema (NOTIFY is database-wide, and
/// installations sharing a database in schemas of their own must not hear each other), a plain
/// identifier short enough for PostgreSQL whatever the schema is called.
pub fn channel(schema: &str) -> String {
    let hash = crate::services::peer::pki::sha256_hex(schema.as_bytes());
    format!("vr_events_{}", &hash[..16])
}

/// How long the listener waits before it connects again after losing its connection.
const RECONNECT: Duration = Duration::from_secs(1);

/// A new instance token: tells one state connection's announcements from every other's.
pub fn new_instance() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:x}-{:x}-{n}", std::process::id(), nanos.as_nanos())
}

/// What another vrd appended to the shared model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announced {
    /// A proc event, by id.
    Event(u64),
    /// A deployment log entry, by id.
    Deploy(u64),
}

impl Announced {
    fn kind(self) -> (&'static str, u64) {
        match self {
            Announced::Event(id) => ("event", id),
            Announced::Deploy(id) => ("deploy", id),
        }
    }
}

/// The payload announcing `what` from `instance`.
pub fn payload(what: Announced, instance: &str) -> String {
    let (kind, id) = what.kind();
    format!("{kind} {id} {instance}")
}

/// What a payload another instance sent announces; `None` for `own`, or one that does not parse.
fn foreign(payload: &str, own: &str) -> Option<Announced> {
    let mut parts = payload.splitn(3, ' ');
    let (kind, id, from) = (parts.next()?, parts.next()?.parse().ok()?, parts.next()?);
    if from == own {
        return None;
    }
    match kind {
        "event" => Some(Announced::Event(id)),
        "deploy" => Some(Announced::Deploy(id)),
        _ => None,
    }
}

/// Listens on `target` until the receiver is dropped, on a thread of its own (the blocking client
/// must not run on a tokio worker); sends what each other vrd appended.
pub fn listen(target: PgTarget, own: String) -> mpsc::Receiver<Announced> {
    let (tx, rx) = mpsc::channel(1024);
    let spawned = std::thread::Builder::new().name("vrd-listen".into()).spawn(move || {
        while !tx.is_closed() {
            if let Err(e) = listen_once(&target, &own, &tx) {
                tracing::warn!(error = %e, database = %target.redacted(), "lost the state database's event announcements; listening again");
            }
            std::thread::sleep(RECONNECT);
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "failed to start the thread that follows other coordinators' events");
    }
    rx
}

fn listen_once(
    target: &PgTarget,
    own: &str,
    tx: &mpsc::Sender<Announced>,
) -> Result<(), super::sql::DbError> {
    use postgres::fallible_iterator::FallibleIterator;
    let mut client = super::sql::connect_postgres(target)?;
    let schema: String = client.query_one(SCHEMA_QUERY, &[])?.get(0);
    client.batch_execute(&format!("LISTEN {}", channel(&schema)))?;
    loop {
        if client.is_closed() {
            return Err(super::sql::DbError::Setup {
                what: "follow the other coordinators' events".into(),
                reason: "the connection closed".into(),
            });
        }
        match client.notifications().timeout_iter(Duration::from_secs(5)).next()? {
            Some(n) => {
                if let Some(what) = foreign(n.payload(), own) {
                    if tx.blocking_send(what).is_err() {
                        return Ok(());
                    }
                }
            }
            // No announcement for a while: see that somebody still wants them.
            None if tx.is_closed() => return Ok(()),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vrd_skips_its_own_announcements() {
        let own = new_instance();
        assert_ne!(own, new_instance());
        assert_eq!(foreign(&payload(Announced::Event(7), &own), &own), None);
        let theirs = payload(Announced::Deploy(9), "someone-else");
        assert_eq!(foreign(&theirs, &own), Some(Announced::Deploy(9)));
        assert_eq!(foreign("event 7 someone-else", &own), Some(Announced::Event(7)));
        assert_eq!(foreign("garbage", &own), None);
        assert_eq!(foreign("proc 7 someone-else", &own), None, "an unknown kind is skipped");
    }

    #[test]
    fn each_schema_has_a_channel_of_its_own_that_postgresql_takes() {
        let (a, b) = (channel("public"), channel("vr_prod"));
        assert_ne!(a, b);
        assert_eq!(a, channel("public"), "every vrd of one model names the same channel");
        let long = channel(&"x".repeat(200));
        assert!(
            long.len() < 63
                && long.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'),
            "{long}"
        );
    }
}
