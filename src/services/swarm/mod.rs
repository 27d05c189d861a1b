//! Swarms: Velociraptor's dispatch (its `swarm_*` Celery tasks) as one tokio task per dispatch.
//!
//! A dispatch goes build-or-wait → release → placement and ports → deploy → uptests → route →
//! cleanup ([`dispatch`]). Every step is written to the deployment log under the dispatch's trace
//! id ([`progress`]). At most one dispatch of a swarm runs at a time; a second one waits for the
//! first. Hosts are reached only through [`HostAgent`]s, balancers only through [`Balancers`].

mod build;
mod dispatch;
pub mod listing;
mod manage;
pub mod progress;
mod uptests;
pub mod watch;

pub use dispatch::Target;
pub use uptests::UPTEST_INTERVAL;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::model::deploy::records::DeployLogEntry;
use crate::model::deploy::{Definition, HostSpec, Kind, SquadSpec, SwarmSpec, DEFAULT_SQUAD};
use crate::model::uptest::UptestRun;
use crate::services::balancer::{BalancerError, Balancers};
use crate::services::builds::recorded::BuildService;
use crate::services::hosts::{HostAgent, HostDirectory, HostError, HostHealth};
use crate::services::state::{Fence, State, StateError};

/// Why a swarm call or a dispatch failed; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// The state database failed, or a definition is missing.
    #[error(transparent)]
    State(#[from] StateError),
    /// An argument or definition is not usable.
    #[error("{0}")]
    Invalid(String),
    /// The build failed.
    #[error("{0}")]
    Build(String),
    /// A host failed.
    #[error(transparent)]
    Host(#[from] HostError),
    /// A balancer failed.
    #[error(transparent)]
    Balancer(#[from] BalancerError),
    /// A proc could not leave its pool, so it was not destroyed (it still serves).
    #[error(
        "{source}; {proc} was NOT destroyed: it is still running and still in pool '{pool}'. Fix what \
         the balancer reports and destroy it again, or run `vr procs destroy {proc} --force` to \
         destroy it now: its node then stays listed in the pool until the balancer accepts a \
         change (the next `vr swarm` routes the pool afresh), and the balancer sends its share of \
         requests to the next node (nginx, haproxy and the builtin router try another node on a \
         refused connection)"
    )]
    Deroute {
        /// The proc.
        proc: String,
        /// Its pool.
        pool: String,
        /// What the balancer said.
        source: Box<BalancerError>,
    },
    /// Uptests failed; nothing was routed and the old procs keep serving.
    #[error("{0}")]
    Uptests(String),
    /// Placement is impossible (no active host, no free port).
    #[error("{0}")]
    Placement(String),
}

/// How dispatch behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Ports for new procs: `start..end`.
    pub port_range: (u16, u16),
    /// How long a new proc may take to reach RUNNING.
    pub start_timeout: Duration,
    /// How long a routed proc may take to accept connections on its port.
    pub listen_timeout: Duration,
    /// This machine's host name (the host vrd creates on first start).
    pub local_host: String,
    /// How long a de-routed proc keeps running before it is destroyed (requests in flight finish).
    pub drain: Duration,
    /// Whether this coordinator leads: only the leader dispatches, builds, watches hosts and runs
    /// the scheduled uptests (`services::leadership`).
    pub leadership: Arc<Fence>,
}

/// How long a new leader waits for its joined hosts to link before it finishes the dispatches
/// the last one left: a host whose coordinators were all away dials again at most 30 s later.
const RELINK_WAIT: Duration = Duration::from_secs(30);

/// What dispatches share.
pub struct Swarms {
    state: State,
    balancers: Arc<Balancers>,
    hosts: Arc<dyn HostDirectory>,
    builds: BuildService,
    settings: Settings,
    /// Builds a dispatch runs now, by (app, version, image md5); waiters watch for the outcome.
    building: Mutex<HashMap<build::BuildKey, build::Waiters>>,
    /// One lock per swarm: dispatches of one swarm run one after another.
    swarm_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Live deployment log entries, shared (a broadcast channel keeps a slot per buffered send).
    live: broadcast::Sender<Arc<DeployLogEntry>>,
    /// The newest uptest run.
    latest_uptests: Mutex<Option<UptestRun>>,
}

impl Swarms {
    /// The swarm service; on a fresh state it creates the `default` squad with this machine in it.
    pub async fn start(
        state: State,
        balancers: Arc<Balancers>,
        hosts: Arc<dyn HostDirectory>,
        builds: BuildService,
        settings: Settings,
    ) -> Result<Arc<Swarms>, SwarmError> {
        ensure_local_host(&state, &settings.local_host).await?;
        // Its writes are the leader's duties'.
        let state = state.for_duties(Arc::clone(&settings.leadership));
        let (live, _) = broadcast::channel(1024);
        Ok(Arc::new(Swarms {
            state,
            balancers,
            hosts,
            builds,
            settings,
            building: Mutex::default(),
            swarm_locks: Mutex::default(),
            live,
            latest_uptests: Mutex::default(),
        }))
    }

    /// The balancers.
    pub fn balancers(&self) -> &Arc<Balancers> {
        &self.balancers
    }

    /// Live deployment log entries.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<DeployLogEntry>> {
        self.live.subscribe()
    }

    /// Publishes to this vrd's followers the deployment log entry `id` another coordinator
    /// appended (read from the shared model, not stored again).
    pub async fn relay_deploy(&self, id: u64) -> Result<(), SwarmError> {
        let found = self.state.deploy_log(None, id.saturating_sub(1), 1).await?;
        for entry in found.into_iter().filter(|e| e.id == id) {
            let _ = self.live.send(Arc::new(entry));
        }
        Ok(())
    }

    /// A new trace for `subject`.
    fn trace(&self, subject: &str) -> progress::Trace {
        progress::Trace::new(Some(subject.to_string()), self.state.clone(), self.live.clone())
    }

    /// The agent that reaches `host`.
    fn agent(&self, host: &HostSpec) -> Result<Arc<dyn HostAgent>, HostError> {
        self.hosts.agent(host)
    }

    /// Every host definition.
    async fn hosts(&self) -> Result<Vec<HostSpec>, SwarmError> {
        let defs = self.state.list_definitions(Kind::Host).await?;
        Ok(defs
            .into_iter()
            .filter_map(|d| if let Definition::Host(h) = d { Some(h) } else { None })
            .collect())
    }

    /// A swarm's definition.
    async fn swarm(&self, name: &str) -> Result<SwarmSpec, SwarmError> {
        match self.state.definition(Kind::Swarm, name).await? {
            Definition::Swarm(s) => Ok(s),
            _ => Err(SwarmError::Invalid(format!("'{name}' is not a swarm"))),
        }
    }

    /// Whether this coordinator leads now.
    pub fn leads(&self) -> bool {
        self.settings.leadership.leads()
    }

    /// Refuses a leader's duty on a standby.
    fn ensure_leader(&self) -> Result<(), SwarmError> {
        if self.leads() {
            Ok(())
        } else {
            Err(SwarmError::State(StateError::NotLeader))
        }
    }

    /// What a coordinator that just took the lead does first: builds and image builds left
    /// `started` by the one before are failed (standbys never build), and each dispatch it left unfinished (no `done`
    /// or `aborted` step) is closed and dispatched again here, which completes it from the procs
    /// it recorded before creating them, or rolls it back to the swarm's last good state when
    /// the new one can't pass its uptests.
    pub async fn take_over(self: &Arc<Self>) -> Result<(), SwarmError> {
        match self.state.fail_started_builds().await? {
            0 => {}
            n => tracing::warn!(builds = n, "marked builds left running by the last leader as failed"),
        }
        match self.state.fail_started_images().await? {
            0 => {}
            n => tracing::warn!(images = n, "marked image builds left running by the last leader as failed"),
        }
        let unfinished = self.state.unfinished_dispatches().await?;
        if !unfinished.is_empty() {
            self.await_relinks().await?;
        }
        for (trace, swarm) in unfinished {
            if self.state.get_definition(Kind::Swarm, swarm.clone()).await?.is_none() {
                continue;
            }
            let again = self.start_dispatch(&swarm, dispatch::Target::Current { fresh_build: false }).await?;
            let note = format!("Swarm {swarm} aborted: its coordinator stopped; dispatched again by the new leader (trace {again})");
            self.state
                .log_deploy(trace, Some(swarm.clone()), vec!["swarm".into(), "aborted".into()], note, None)
                .await?;
            tracing::warn!(%swarm, trace = %again, "dispatching again a swarm the last leader left unfinished");
        }
        Ok(())
    }

    /// Waits, at most [`RELINK_WAIT`], until every active joined host has linked to this new
    /// leader: they were linked to the last one, and a dispatch finished without them would find
    /// its squad empty. Hosts that stay away are left to the watcher.
    async fn await_relinks(&self) -> Result<(), SwarmError> {
        let joined: Vec<HostSpec> = self
            .state
            .list_definitions(Kind::Host)
            .await?
            .into_iter()
            .filter_map(|d| match d {
                Definition::Host(h) if h.active && h.peer.is_some() => Some(h),
                _ => None,
            })
            .collect();
        let deadline = tokio::time::Instant::now() + RELINK_WAIT;
        loop {
            let away: Vec<&str> = joined
                .iter()
                .filter(|h| self.hosts.health(h) != HostHealth::Up)
                .map(|h| h.name.as_str())
                .collect();
            if away.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(hosts = ?away, "finishing the last leader's dispatches without hosts that did not link to this one");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn swarm_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.swarm_locks.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(locks.entry(name.to_string()).or_default())
    }
}

/// Creates the `default` squad and this machine's host when there are no hosts at all, so a new
/// installation can swarm at once. Its procs are routed on loopback.
async fn ensure_local_host(state: &State, name: &str) -> Result<(), StateError> {
    if !state.list_definitions(Kind::Host).await?.is_empty() {
        return Ok(());
    }
    if state.get_definition(Kind::Squad, DEFAULT_SQUAD.into()).await?.is_none() {
        let squad = SquadSpec { name: DEFAULT_SQUAD.into(), desc: "created by vrd on first start".into() };
        state.put_definition(Definition::Squad(squad), true).await?;
    }
    let host = HostSpec {
        name: name.to_string(),
        squad: Some(DEFAULT_SQUAD.into()),
        active: true,
        address: Some("127.0.0.1".into()),
        peer: None,
        draining: false,
    };
    state.put_definition(Definition::Host(host), true).await
}

#[cfg(test)]
mod tests;
