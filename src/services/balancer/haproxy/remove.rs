//! Taking servers out of a running haproxy without cutting requests short: drain them all (no new
//! sessions) and wait until their sessions end or the drain time is up; then, for each,
//! maintenance, cut what is left, and `del server`, which haproxy only allows once no connection
//! remains.

use std::time::Duration;

use tokio::time::Instant;

use super::runtime::Runtime;
use crate::services::balancer::BalancerError;

/// How often the sessions are looked at while waiting.
const POLL: Duration = Duration::from_millis(100);

/// How long cut connections may take to close before `del server` gives up.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// Drains `servers` of `backend` and waits until their sessions end, for up to `limit`.
pub async fn drain(
    runtime: &Runtime,
    backend: &str,
    servers: &[String],
    limit: Duration,
) -> Result<(), BalancerError> {
    for server in servers {
        runtime.set_state(backend, server, "drain").await?;
    }
    wait_until_idle(runtime, backend, servers, limit).await
}

/// Removes the (drained) `servers` of `backend`, cutting what sessions they still have.
pub async fn remove_all(runtime: &Runtime, backend: &str, servers: &[String]) -> Result<(), BalancerError> {
    for server in servers {
        remove(runtime, backend, server).await?;
    }
    Ok(())
}

/// Returns when none of `servers` has a session left, or at the deadline.
async fn wait_until_idle(
    runtime: &Runtime,
    backend: &str,
    servers: &[String],
    limit: Duration,
) -> Result<(), BalancerError> {
    let deadline = Instant::now() + limit;
    loop {
        let sessions = runtime.sessions(backend).await?;
        let busy = servers.iter().any(|s| sessions.get(s).is_some_and(|n| *n > 0));
        if !busy || Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Removes one drained server; when haproxy keeps refusing, puts it back in service so the pool is
/// left as it was for that node.
async fn remove(runtime: &Runtime, backend: &str, server: &str) -> Result<(), BalancerError> {
    runtime.set_state(backend, server, "maint").await?;
    runtime.shutdown_sessions(backend, server).await?;
    let deadline = Instant::now() + CLOSE_WAIT;
    loop {
        match runtime.del_server(backend, server).await {
            Ok(()) => return Ok(()),
            Err(BalancerError::Command { .. }) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
            Err(refused) => {
                let _ = runtime.set_state(backend, server, "ready").await;
                return Err(refused);
            }
        }
    }
}
