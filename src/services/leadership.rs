//! Which coordinator leads (issue 15). With the model in SQLite there is one coordinator and it
//! always leads. With PostgreSQL every coordinator competes for the lease: the holder renews it
//! every third of its time to live, on the database's clock; the others try again just after it
//! would expire (at most a third of its time to live later) and take it once it has. The [`Fence`] is what the leader's duties (dispatch, builds, the watcher,
//! scheduled uptests, gathering hosts' events) ask before they act, and what their writes carry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::services::state::{Fence, State};

/// Who leads, as this vrd knows it.
pub struct Leadership {
    fence: Arc<Fence>,
    epochs: watch::Sender<u64>,
}

/// How long a standby waits before it tries again: until just after the leader's lease expires
/// (so it leads within the lease of the leader's last renewal), but never longer than a renewal
/// period, nor less than a few milliseconds.
async fn until_expiry(state: &State, ttl: Duration) -> Duration {
    let most = ttl / 3;
    match state.lease_holder().await {
        Ok(Some(held)) => {
            let ms = u64::try_from(held.expires_in_ms.saturating_add(20)).unwrap_or(0);
            Duration::from_millis(ms).clamp(Duration::from_millis(20), most)
        }
        _ => most,
    }
}

impl Leadership {
    /// The only coordinator of a SQLite model: it leads, at epoch 1, for good.
    pub fn sole() -> Arc<Leadership> {
        let (epochs, _) = watch::channel(1);
        Arc::new(Leadership { fence: Arc::new(Fence::holding(1)), epochs })
    }

    /// Competes for the lease as `me` (reached at `address`) until vrd stops.
    pub fn compete(state: State, me: String, address: Option<String>, ttl: Duration) -> Arc<Leadership> {
        let (epochs, _) = watch::channel(0);
        let leadership = Arc::new(Leadership { fence: Arc::new(Fence::default()), epochs });
        let this = Arc::downgrade(&leadership);
        tokio::spawn(async move {
            let mut renewed = Instant::now();
            loop {
                let Some(leadership) = this.upgrade() else { return };
                let held = state.take_lease(me.clone(), address.clone(), ttl).await;
                let taken = matches!(held, Ok(Some(_)));
                leadership.settle(held, &mut renewed, ttl);
                drop(leadership);
                let wait = if taken { ttl / 3 } else { until_expiry(&state, ttl).await };
                tokio::time::sleep(wait).await;
            }
        });
        leadership
    }

    /// Records the outcome of one try at the lease.
    fn settle(
        &self,
        held: Result<Option<u64>, crate::services::state::StateError>,
        renewed: &mut Instant,
        ttl: Duration,
    ) {
        let epoch = match held {
            Ok(Some(epoch)) => {
                *renewed = Instant::now();
                epoch
            }
            Ok(None) => 0,
            Err(e) => {
                // The database is out of reach: keep leading only while the lease surely runs
                // (its writes are fenced anyway), then stand down.
                tracing::error!(error = %e, "failed to renew the coordinators' lease");
                if renewed.elapsed() < ttl * 2 / 3 {
                    return;
                }
                0
            }
        };
        // What was announced last, not the fence: a refused write may have lowered that already.
        let before = *self.epochs.borrow();
        // Said before the fence moves, so whoever sees the new role finds it in the log too.
        match (before, epoch) {
            (b, e) if b == e => {}
            (_, 0) => tracing::warn!(epoch = before, "this coordinator is a standby now"),
            (0, _) => tracing::info!(epoch, "this coordinator leads now"),
            _ => tracing::info!(epoch, "this coordinator leads again, at a new epoch"),
        }
        self.fence.set(epoch);
        if before != epoch {
            self.epochs.send_replace(epoch);
        }
    }

    /// The fence the leader's duties ask and fence their writes with.
    pub fn fence(&self) -> Arc<Fence> {
        Arc::clone(&self.fence)
    }

    /// Whether this vrd leads now.
    pub fn leads(&self) -> bool {
        self.fence.leads()
    }

    /// The epoch, each time it changes (0: standby).
    pub fn epochs(&self) -> watch::Receiver<u64> {
        self.epochs.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_database_out_of_reach_ends_the_lead_before_the_lease_can() {
        let l = Leadership::sole();
        let mut renewed = Instant::now();
        let ttl = Duration::from_secs(15);
        l.settle(Ok(Some(3)), &mut renewed, ttl);
        assert_eq!(l.fence().epoch(), 3);
        let lost = || Err(crate::services::state::StateError::Closed);
        l.settle(lost(), &mut renewed, ttl);
        assert!(l.leads(), "a failed renewal inside the lease keeps the lead");
        renewed -= Duration::from_secs(11);
        l.settle(lost(), &mut renewed, ttl);
        assert!(!l.leads(), "past two thirds of the lease it stands down");
        l.settle(Ok(None), &mut renewed, ttl);
        assert_eq!(*l.epochs().borrow(), 0);
    }
}
