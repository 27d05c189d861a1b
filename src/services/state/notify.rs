//! Events across coordinators (issue 15): on PostgreSQL each appended proc event is announced
//! with `NOTIFY vr_events` (delivered when its statement commits), and every vrd sharing the model
//! listens on a connection of its own, so a standby's `vr events -f` and dashboard see the
//! leader's events as they happen. The payload is `ID INSTANCE`, the instance being the state
//! connection's: a vrd skips its own announcements, whose events it published already.

use std::time::Duration;

use tokio::sync::mpsc;

use super::sql::PgTarget;

/// The channel events are announced on.
pub const CHANNEL: &str = "vr_events";

/// How long the listener waits before it connects again after losing its connection.
const RECONNECT: Duration = Duration::from_secs(1);

/// A new instance token: tells one state connection's announcements from every other's.
pub fn new_instance() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:x}-{:x}-{n}", std::process::id(), nanos.as_nanos())
}

/// The payload announcing event `id` from `instance`.
pub fn payload(id: u64, instance: &str) -> String {
    format!("{id} {instance}")
}

/// The id in a payload another instance sent; `None` for `own`, or one that does not parse.
fn foreign_id(payload: &str, own: &str) -> Option<u64> {
    let (id, from) = payload.split_once(' ')?;
    if from == own {
        return None;
    }
    id.parse().ok()
}

/// Listens on `target` until the receiver is dropped, on a thread of its own (the blocking client
/// must not run on a tokio worker); sends the id of each event another vrd appended.
pub fn listen(target: PgTarget, own: String) -> mpsc::Receiver<u64> {
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

fn listen_once(target: &PgTarget, own: &str, tx: &mpsc::Sender<u64>) -> Result<(), super::sql::DbError> {
    use postgres::fallible_iterator::FallibleIterator;
    let mut client = super::sql::connect_postgres(target)?;
    client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
    loop {
        if client.is_closed() {
            return Err(super::sql::DbError::Setup {
                what: "follow the other coordinators' events".into(),
                reason: "the connection closed".into(),
            });
        }
        match client.notifications().timeout_iter(Duration::from_secs(5)).next()? {
            Some(n) => {
                if let Some(id) = foreign_id(n.payload(), own) {
                    if tx.blocking_send(id).is_err() {
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
        assert_eq!(foreign_id(&payload(7, &own), &own), None);
        assert_eq!(foreign_id("7 someone-else", &own), Some(7));
        assert_eq!(foreign_id("garbage", &own), None);
    }
}
