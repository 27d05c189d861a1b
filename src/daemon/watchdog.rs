//! systemd's watchdog (`WatchdogSec=` in vrd.service): vrd sends `WATCHDOG=1` at half the
//! interval systemd gives it (`WATCHDOG_USEC`), but only after its state thread has answered a
//! query, from a task on its runtime. A runtime whose workers are all stuck runs no such task, and
//! a stuck or dead state thread does not answer, so either way the pings stop and systemd restarts
//! vrd (only vrd: `KillMode=process` keeps the apps running, and the new vrd adopts them).

use std::future::Future;
use std::time::Duration;

/// How often to ping, when systemd asked for a watchdog (half its interval, as sd_watchdog_enabled(3)
/// advises); `None` when it did not.
pub fn interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|limit| limit / 2)
}

/// Pings systemd every `every` for as long as `healthy` answers `true` within `every`.
pub async fn keep_alive(state: crate::services::state::State, every: Duration) {
    let probe = move || {
        let state = state.clone();
        async move {
            match state.ping().await {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, "the state thread failed: no watchdog ping, systemd will restart vrd");
                    false
                }
            }
        }
    };
    beat(every, probe, ping_systemd).await
}

fn ping_systemd() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]) {
        tracing::warn!(error = %e, "failed to send systemd a watchdog ping");
    }
}

/// The loop, with the health check and the ping given (so tests can count them).
async fn beat<P, F>(every: Duration, healthy: P, mut ping: impl FnMut())
where
    P: Fn() -> F,
    F: Future<Output = bool>,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match tokio::time::timeout(every, healthy()).await {
            Ok(true) => ping(),
            Ok(false) => {}
            Err(_) => tracing::error!(
                after = ?every,
                "the state thread did not answer: no watchdog ping, systemd will restart vrd if it stays so"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    async fn pings_in(
        window: Duration,
        healthy: impl Fn() -> futures::future::BoxFuture<'static, bool>,
    ) -> usize {
        let count = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&count);
        let every = Duration::from_secs(10);
        let _ = tokio::time::timeout(
            window,
            beat(every, healthy, move || {
                counter.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .await;
        count.load(Ordering::SeqCst)
    }

    #[tokio::test(start_paused = true)]
    async fn a_healthy_daemon_pings_every_interval() {
        let n = pings_in(Duration::from_secs(35), || Box::pin(async { true })).await;
        assert_eq!(n, 4, "at 0, 10, 20 and 30 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_state_thread_that_does_not_answer_stops_the_pings() {
        let n = pings_in(Duration::from_secs(60), || Box::pin(futures::future::pending())).await;
        assert_eq!(n, 0);
        let failing = pings_in(Duration::from_secs(60), || Box::pin(async { false })).await;
        assert_eq!(failing, 0);
    }

    /// Real time: the state thread answers from outside the runtime, where paused time would
    /// run ahead of it.
    #[tokio::test]
    async fn the_real_state_thread_answers_the_probe() {
        let state = crate::services::state::State::open_in_memory().unwrap();
        tokio::time::timeout(Duration::from_secs(30), state.ping()).await.unwrap().unwrap();
    }
}
