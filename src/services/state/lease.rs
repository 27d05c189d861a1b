//! The coordinators' lease (`migrations/0011_lease.sql`): one statement takes or renews it on the
//! database's clock, and a [`Fence`] carries the epoch a leader's writes must still hold.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::sql::{args, dialect, OptionalRow, LEASE};
use super::{State, StateError};

/// The epoch this vrd holds the lease at; 0 while it does not.
#[derive(Debug, Default)]
pub struct Fence {
    epoch: AtomicU64,
}

impl Fence {
    /// A fence that holds `epoch` for good: the only coordinator of a SQLite model.
    pub fn holding(epoch: u64) -> Fence {
        Fence { epoch: AtomicU64::new(epoch) }
    }

    /// The epoch held now (0: none).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Whether this vrd leads now.
    pub fn leads(&self) -> bool {
        self.epoch() != 0
    }

    /// Records the epoch the lease was taken or renewed at (0: lost or not taken).
    pub fn set(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::SeqCst);
    }

    /// A write at `epoch` was refused: step down, unless the lease was taken again meanwhile.
    pub fn lost(&self, epoch: u64) {
        let _ = self.epoch.compare_exchange(epoch, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// Who holds the lease, as the model records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    /// The holder's host name.
    pub holder: String,
    /// Where it is reached (its peer address), if it said.
    pub address: Option<String>,
    /// The fencing epoch.
    pub epoch: u64,
    /// Milliseconds until it expires, by the database's clock (negative: expired).
    pub expires_in_ms: i64,
}

impl State {
    /// Takes the lease for `holder`, or renews it, for `ttl` from now on the database's clock.
    /// Returns the epoch when `holder` holds it now (a new holder gets the next epoch; a renewal
    /// keeps it), `None` while another holds an unexpired lease.
    pub async fn take_lease(
        &self,
        holder: String,
        address: Option<String>,
        ttl: Duration,
    ) -> Result<Option<u64>, StateError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let now = dialect::now_ms(self.engine());
        let sql = format!(
            "INSERT INTO lease (name, holder, address, epoch, expires) VALUES (?1, ?2, ?3, 1, {now} + ?4)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, address = excluded.address,
               expires = excluded.expires,
               epoch = CASE WHEN lease.holder = excluded.holder THEN lease.epoch ELSE lease.epoch + 1 END
             WHERE lease.holder = excluded.holder OR lease.expires < {now}
             RETURNING epoch"
        );
        // Unfenced: taking the lease is what gives a fence its epoch.
        let unfenced = State { fence: None, ..self.clone() };
        unfenced
            .call(format!("take the coordinators' lease for {holder}"), move |db, what| {
                db.conn
                    .query_row(&sql, args![LEASE, holder, address, ttl_ms], |r| r.get::<u64>(0))
                    .optional()
                    .map_err(StateError::query(what))
            })
            .await
    }

    /// Gives the lease up at once if `holder` holds it (a clean stop), so a standby takes over
    /// without waiting for it to expire.
    pub async fn release_lease(&self, holder: String) -> Result<(), StateError> {
        let now = dialect::now_ms(self.engine());
        let sql = format!("UPDATE lease SET expires = {now} - 1 WHERE name = ?1 AND holder = ?2");
        let unfenced = State { fence: None, ..self.clone() };
        unfenced
            .call(format!("release the coordinators' lease of {holder}"), move |db, what| {
                db.conn.execute(&sql, args![LEASE, holder]).map(|_| ()).map_err(StateError::query(what))
            })
            .await
    }

    /// Who holds the lease, if anyone ever took it.
    pub async fn lease_holder(&self) -> Result<Option<LeaseHolder>, StateError> {
        let now = dialect::now_ms(self.engine());
        let sql = format!("SELECT holder, address, epoch, expires - {now} FROM lease WHERE name = ?1");
        self.call("read the coordinators' lease".into(), move |db, what| {
            db.conn
                .query_row(&sql, args![LEASE], |r| {
                    Ok(LeaseHolder {
                        holder: r.get(0)?,
                        address: r.get(1)?,
                        epoch: r.get(2)?,
                        expires_in_ms: r.get(3)?,
                    })
                })
                .optional()
                .map_err(StateError::query(what))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::deploy::{Definition, Kind};
    use crate::services::state::testing::engine_tests;

    const TTL: Duration = Duration::from_secs(15);

    fn squad(name: &str) -> Definition {
        Definition::from_value(Kind::Squad, serde_json::json!({ "name": name })).unwrap()
    }

    engine_tests! {
        async fn one_holder_at_a_time_and_a_new_one_gets_the_next_epoch(state) {
            assert_eq!(state.take_lease("a".into(), Some("198.18.0.1:7443".into()), TTL).await.unwrap(), Some(1));
            assert_eq!(state.take_lease("a".into(), None, TTL).await.unwrap(), Some(1), "a renewal keeps the epoch");
            assert_eq!(state.take_lease("b".into(), None, TTL).await.unwrap(), None, "b waits while a's lease runs");
            state.release_lease("a".into()).await.unwrap();
            assert_eq!(state.take_lease("b".into(), None, TTL).await.unwrap(), Some(2));
            assert_eq!(state.take_lease("a".into(), None, TTL).await.unwrap(), None);
            let held = state.lease_holder().await.unwrap().unwrap();
            assert_eq!((held.holder.as_str(), held.epoch), ("b", 2));
            assert!(held.expires_in_ms > 10_000, "{held:?}");
        }

        async fn a_fenced_write_needs_the_current_epoch_and_steps_down_when_it_is_not(state) {
            assert_eq!(state.take_lease("a".into(), None, TTL).await.unwrap(), Some(1));
            let fence = Arc::new(Fence::holding(1));
            let leader = state.fenced(Arc::clone(&fence));
            leader.put_definition(squad("one"), true).await.unwrap();
            // b takes over (a paused past its lease), then a wakes up and writes.
            state.release_lease("a".into()).await.unwrap();
            assert_eq!(state.take_lease("b".into(), None, TTL).await.unwrap(), Some(2));
            let err = leader.put_definition(squad("two"), true).await.unwrap_err();
            assert!(matches!(err, StateError::Fenced { mine: 1, current: 2 }), "{err:?}");
            assert!(!fence.leads(), "a refused write steps the fence down");
            let err = leader.log_deploy("t".into(), None, vec![], "late".into(), None).await.unwrap_err();
            assert!(matches!(err, StateError::NotLeader), "{err:?}");
            assert!(state.get_definition(Kind::Squad, "two".into()).await.unwrap().is_none(), "nothing written");
            assert!(state.deploy_log(None, 0, 10).await.unwrap().is_empty());
            // Reads never wait on the lease.
            assert!(leader.get_definition(Kind::Squad, "one".into()).await.unwrap().is_some());
        }

        async fn a_dispatch_without_its_end_is_found_unfinished(state) {
            let log = |trace: &str, tags: &[&str]| {
                let tags = tags.iter().map(|t| t.to_string()).collect();
                state.log_deploy(trace.into(), Some("s".into()), tags, "step".into(), None)
            };
            log("ended", &["swarm", "user"]).await.unwrap();
            log("ended", &["swarm", "deploy", "done"]).await.unwrap();
            log("failed", &["swarm", "user"]).await.unwrap();
            log("failed", &["swarm", "failed", "aborted"]).await.unwrap();
            log("cut", &["swarm", "user"]).await.unwrap();
            log("cut", &["deploy"]).await.unwrap();
            log("uptests", &["scheduled", "failed", "done"]).await.unwrap();
            assert_eq!(state.unfinished_dispatches().await.unwrap(), [("cut".to_string(), "s".to_string())]);
        }
    }
}
