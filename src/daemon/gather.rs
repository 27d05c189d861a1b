//! A coordinator gathers its joined hosts' proc events into its own (see
//! `services::peer::events`): one task per linked host long-polls it (`host.events_wait`), so a
//! change on a joined host reaches the coordinator's listeners (the dashboard, `vr events -f`)
//! as it happens rather than at the next ask. A host that fails an ask has its task end; every
//! second the hosts are listed again and a task started for each linked host without one, with
//! where its events were taken up to. A host without the long poll (an older vrd) is asked every
//! second instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::services::hosts::{HostAgent, HostError};
use crate::services::peer::events;
use crate::services::supervisor::Supervisor;
use crate::services::swarm::Swarms;

/// How long one ask waits for an event before answering "none yet".
const WAIT: Duration = Duration::from_secs(25);
/// How long a plain ask (the first, or an older host's) may take.
const ASK: Duration = Duration::from_secs(2);

/// Where each host's events were taken up to, shared by its successive tasks.
type Cursors = Arc<Mutex<HashMap<String, u64>>>;

/// Starts gathering; runs for the daemon's life.
pub fn spawn(swarms: Arc<Swarms>, supervisor: Supervisor) {
    tokio::spawn(async move {
        let loaded = supervisor.state().host_event_cursors().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "failed to read where the hosts' events were taken up to; taking each from its newest");
            Default::default()
        });
        let cursors: Cursors = Arc::new(Mutex::new(loaded.into_iter().collect()));
        let mut tasks: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if !swarms.leads() {
                // Hosts link to the leader; a standby's tasks would find none of them.
                tasks.retain(|_, task| {
                    task.abort();
                    false
                });
                continue;
            }
            let agents = match swarms.joined_agents().await {
                Ok(agents) => agents,
                Err(e) => {
                    tracing::warn!(error = %e, "failed to list the joined hosts for their events");
                    continue;
                }
            };
            // A deleted host's task goes; an ended one is started again below.
            tasks.retain(|host, task| {
                let keep = agents.iter().any(|(h, _)| h == host) && !task.is_finished();
                if !keep {
                    task.abort();
                }
                keep
            });
            for (host, agent) in agents {
                if let std::collections::hash_map::Entry::Vacant(slot) = tasks.entry(host.clone()) {
                    slot.insert(tokio::spawn(follow(host, agent, Arc::clone(&cursors), supervisor.clone())));
                }
            }
        }
    });
}

/// Takes `host`'s events until an ask fails.
async fn follow(host: String, agent: Arc<dyn HostAgent>, cursors: Cursors, supervisor: Supervisor) {
    let mut long_poll = true;
    loop {
        let cursor = cursors.lock().unwrap_or_else(PoisonError::into_inner).get(&host).copied();
        let started = tokio::time::Instant::now();
        let asked = match cursor {
            Some(after) if long_poll => match agent.events_wait(after, events::PAGE, WAIT).await {
                Err(e) if lacks_long_poll(&e) => {
                    tracing::info!(
                        host,
                        "the host has no long poll for its events (an older vrd): asking every second"
                    );
                    long_poll = false;
                    continue;
                }
                asked => asked.ok(),
            },
            _ => timeout(agent.events(cursor, events::PAGE)).await,
        };
        let Some(page) = asked else { return };
        // An empty answer that did not wait (a host that cannot) is asked again a second later,
        // never in a tight loop.
        let waited = started.elapsed() >= Duration::from_secs(1);
        let idle = page.events.is_empty() && !waited;
        let (next, taken) = events::take(cursor, page);
        for event in taken {
            if let Err(e) = supervisor.record_event(event).await {
                tracing::warn!(host, error = %e, "failed to store a joined host's event");
            }
        }
        // After the events: a crash in between repeats a few, never loses one.
        if cursor != Some(next) {
            if let Err(e) = supervisor.state().set_host_event_cursor(host.clone(), next).await {
                tracing::warn!(host, error = %e, "failed to store where the host's events were taken up to");
            }
            cursors.lock().unwrap_or_else(PoisonError::into_inner).insert(host.clone(), next);
        }
        if !long_poll || cursor.is_none() || idle {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// `ask`, or `None` when it fails or takes longer than [`ASK`].
async fn timeout<T>(ask: impl std::future::Future<Output = Result<T, HostError>>) -> Option<T> {
    tokio::time::timeout(ASK, ask).await.ok()?.ok()
}

/// Whether the host answered that it has no `host.events_wait` (JSON-RPC's "method not found").
fn lacks_long_poll(e: &HostError) -> bool {
    e.to_string().contains("Method not found")
}
