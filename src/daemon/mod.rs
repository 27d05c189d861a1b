//! The composition root: opens the daemon's directories, builds the services, and serves the API on
//! the Unix socket until told to stop. Procs keep running when the daemon stops.

pub mod activation;
mod gather;
pub mod https;
pub mod logging;
pub mod metrics_http;
pub mod ops;
mod peer_link;
pub mod peer_listener;
#[cfg(test)]
mod peer_tests;
pub mod rpc;
pub mod server;
mod slots;
mod store_sync;
pub mod watchdog;

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::DaemonConfig;
use crate::services::balancer::{self, Balancers};
use crate::services::builder::layout::BuilderLayout;
use crate::services::builder::Builder;
use crate::services::builds::BuildStore;
use crate::services::hosts::directory::LocalDirectory;
use crate::services::hosts::local::LocalHost;
use crate::services::hosts::{ArtifactSource, HostDirectory};
use crate::services::leadership::Leadership;
use crate::services::peer::client::Blobs;
use crate::services::peer::coordinators::PeerStores;
use crate::services::peer::directory::{FleetDirectory, Peers};
use crate::services::peer::identity::FleetFiles;
use crate::services::runner::layout::Layout;
use crate::services::runner::Runner;
use crate::services::stacks::StackImages;
use crate::services::state::{Announced, PgTarget, State, StateLocation, StateOptions};
use crate::services::supervisor::machine::Policy;
use crate::services::supervisor::Supervisor;
use crate::services::swarm::{self, Swarms};
use peer_listener::Coordinator;

/// The running daemon's shared state.
pub struct Daemon {
    /// The runner service.
    pub runner: Arc<Runner>,
    /// The builder service.
    pub builder: Builder,
    /// Kept build logs and the content-addressed artifact store.
    pub builds: BuildStore,
    /// The supervisor of deployed procs.
    pub supervisor: Supervisor,
    /// Swarm dispatch, releases, balancers.
    pub swarms: Arc<Swarms>,
    /// Stacks' images: built by vrd, kept in the store, one active per stack.
    pub stacks: Arc<StackImages>,
    /// This host's name, as events and listings show it.
    pub host: String,
    /// The fleet: joined hosts' links, and the coordinator when this vrd is one.
    pub fleet: Fleet,
    /// Foreground `run`s in progress, by proc name.
    pub foreground: crate::services::runner::foreground::ForegroundRuns,
    /// Who may do what (roles, volume prefixes).
    pub policy: ops::access::Policy,
    /// Whether this vrd leads the coordinators of its model (always, on SQLite).
    pub leadership: Arc<Leadership>,
    /// Keeps the sealed copy of the binary open; `runner.exe` names it through /proc/self/fd.
    _sealed_exe: OwnedFd,
}

/// This vrd's part in a fleet.
pub struct Fleet {
    /// The links of joined hosts (empty unless this vrd coordinates).
    pub peers: Arc<Peers>,
    /// The coordinator, when this vrd coordinates (`peer_listen`).
    pub coordinator: Option<Arc<Coordinator>>,
    /// The address hosts dial (`peer_advertise`, else `peer_listen` when it is a specific one).
    pub advertise: Option<String>,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A directory or the socket could not be prepared.
    #[error("failed to {what} {path}: {cause}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// The state database or the supervisor could not start.
    #[error("{0}")]
    Start(String),
}

impl Daemon {
    /// Recorded builds (`vr builder build`, and the builds swarms ask for).
    pub fn build_service(&self) -> crate::services::builds::recorded::BuildService {
        crate::services::builds::recorded::BuildService {
            builder: self.builder.clone(),
            store: self.builds.clone(),
            state: self.supervisor.state().clone(),
        }
    }

    /// Prepares the directories and services described by `config`, opens the state database and
    /// lets the supervisor re-adopt (or restart) every stored proc.
    pub async fn open(config: &DaemonConfig) -> Result<Arc<Daemon>, DaemonError> {
        for dir in [&config.data_dir, &config.run_dir] {
            fs::create_dir_all(dir).map_err(|cause| DaemonError::Io {
                what: "create",
                path: dir.clone(),
                cause,
            })?;
        }
        // Root's alone: the data dir holds fetched images, builds (an app's code and config), logs
        // and the state database; members reach them through the socket, as they may.
        fs::set_permissions(&config.data_dir, fs::Permissions::from_mode(0o700))
            .map_err(|cause| DaemonError::Io { what: "chmod 0700", path: config.data_dir.clone(), cause })?;
        let sealed = crate::sys::sealed_copy_of_self().map_err(|cause| DaemonError::Io {
            what: "copy",
            path: "/proc/self/exe".into(),
            cause,
        })?;
        let exe = PathBuf::from(format!("/proc/self/fd/{}", sealed.as_raw_fd()));
        let exe_for_spawner = exe.clone();
        let runner = Runner {
            layout: Layout { data_dir: config.data_dir.clone() },
            exe,
            cgroup_root: config.cgroup_root.clone(),
            cgroup_parent: config.cgroup_parent.clone(),
            locks: Default::default(),
            uptest_timeout: std::time::Duration::from_secs(config.uptest_timeout_secs),
            spawner: start_spawner(&exe_for_spawner, &config.run_dir),
            limits: config.host_limits,
            network: config.private_network.clone(),
        };
        let runner = Arc::new(runner);
        let state = open_state(config)?;
        let shared = state.engine() == crate::services::state::sql::EngineKind::Postgres;
        // On a shared model another coordinator may be building now: the one that takes the
        // lead fails what was left (Swarms::take_over).
        match if shared { Ok(0) } else { state.fail_started_builds().await } {
            Ok(0) => {}
            Ok(n) => tracing::warn!(builds = n, "marked builds interrupted by a stopped vrd as failed"),
            Err(e) => return Err(DaemonError::Start(e.to_string())),
        }
        match if shared { Ok(0) } else { state.fail_started_images().await } {
            Ok(0) => {}
            Ok(n) => tracing::warn!(images = n, "marked image builds interrupted by a stopped vrd as failed"),
            Err(e) => return Err(DaemonError::Start(e.to_string())),
        }
        let policy = Policy {
            stop_grace: std::time::Duration::from_secs(config.stop_grace_secs),
            log_retention: std::time::Duration::from_secs(config.log_retention_days.saturating_mul(86400)),
            audit_retention: std::time::Duration::from_secs(
                config.audit_retention_days.saturating_mul(86400),
            ),
            ..Policy::standard()
        };
        let host = config.host_name.clone();
        let supervisor = Supervisor::start(Arc::clone(&runner), state, policy, host.clone())
            .await
            .map_err(|e| DaemonError::Start(e.to_string()))?;
        let builder = Builder {
            layout: BuilderLayout { root: config.data_dir.join("builder") },
            runner: Arc::clone(&runner),
        };
        let builds = BuildStore::new(&config.data_dir);
        spawn_scooper(supervisor.clone());
        let ctx = balancer::Context { state: supervisor.state().local() };
        let balancers = Balancers::start(&config.balancers, &ctx).await.map_err(|e| {
            DaemonError::Start(format!("vrd's config names a balancer that can't start: {e}"))
        })?;
        let balancers = Arc::new(balancers);
        let (fleet, directory) = start_fleet(config, &supervisor, &builds, &balancers).await?;
        if let Some(coordinator) = &fleet.coordinator {
            record_coordinator(coordinator, &fleet.advertise, &builds, shared).await?;
        }
        let leadership = if shared {
            let ttl = std::time::Duration::from_secs(config.lease_secs);
            Leadership::compete(supervisor.state().clone(), host.clone(), fleet.advertise.clone(), ttl)
        } else {
            Leadership::sole()
        };
        let swarms =
            start_swarms(config, &supervisor, &builder, &builds, directory, &balancers, &leadership).await?;
        if shared {
            spawn_take_over(&leadership, &swarms);
            spawn_append_relay(&supervisor, &swarms);
        }
        let stacks =
            Arc::new(StackImages::new(Arc::clone(&runner), builds.clone(), supervisor.state().clone()));
        let daemon = Arc::new(Daemon {
            runner,
            builder,
            builds,
            supervisor,
            swarms,
            stacks,
            host,
            fleet,
            foreground: Default::default(),
            policy: ops::access::Policy::of(config),
            leadership,
            _sealed_exe: sealed,
        });
        if let Some(coordinator) = &daemon.fleet.coordinator {
            coordinator.attach(&daemon);
        }
        Ok(daemon)
    }
}

/// Records this coordinator in the model, refusing to start when another coordinator of the
/// model signs with another fleet CA (a host joined through one would be refused by the other);
/// on a shared model, fills this store from the others.
async fn record_coordinator(
    coordinator: &Arc<Coordinator>,
    advertise: &Option<String>,
    builds: &BuildStore,
    shared: bool,
) -> Result<(), DaemonError> {
    let state = coordinator.state.clone();
    let me = coordinator.record(advertise.clone());
    let failed = |e: crate::services::state::StateError| {
        DaemonError::Start(crate::api::error::ApiError::caused(0, &e).full())
    };
    // Checked before this one is recorded: a refused coordinator leaves no trace in the model.
    let others = state.coordinators().await.map_err(failed)?;
    if let Some(other) = others.iter().find(|c| c.name != me.name && c.ca_sha256 != me.ca_sha256) {
        return Err(DaemonError::Start(format!(
            "coordinator {} ({}) signs with the fleet CA sha256 {}, and this one ({}) with {}: coordinators sharing a model need one fleet CA. \
             Stop this vrd, copy ca.key and ca.pem from {}'s data_dir/pki into this one's data_dir/pki, remove coordinator.key and coordinator.pem there (they are made again), and start it again",
            other.name,
            other.address.as_deref().unwrap_or("no peer address"),
            other.ca_sha256,
            me.name,
            me.ca_sha256,
            other.name
        )));
    }
    state.register_coordinator(me.clone()).await.map_err(failed)?;
    if shared {
        let peers = PeerStores { client: coordinator.client.clone(), state: state.clone(), me: me.name };
        builds.fill.set(Arc::new(peers));
        store_sync::spawn(state, builds.clone());
    }
    Ok(())
}

/// The state: all in `<data dir>/state.db`, or the model in PostgreSQL (`state_url`) and this
/// host's own record in `state.db`.
fn open_state(config: &DaemonConfig) -> Result<State, DaemonError> {
    let local = config.data_dir.join("state.db");
    let location = match &config.state_url {
        None => StateLocation::Sqlite(local.clone()),
        Some(url) => {
            StateLocation::Postgres(PgTarget { url: url.clone(), ca_file: config.state_ca_file.clone() })
        }
    };
    let options = StateOptions { keep_events: crate::services::state::DEFAULT_KEEP_EVENTS };
    let state = State::open_at(&location, &local, options)
        .map_err(|e| DaemonError::Start(crate::api::error::ApiError::caused(0, &e).full()))?;
    tracing::info!(model = %location.describe(), "state opened");
    Ok(state)
}

/// Publishes what the other coordinators append to the shared model to this vrd's subscribers as
/// it commits: proc events (`vr events -f`, the dashboard's streams) and deployment log entries
/// (`vr swarm` on a standby following the dispatch it forwarded to the leader).
fn spawn_append_relay(supervisor: &Supervisor, swarms: &Arc<Swarms>) {
    let Some(mut appends) = supervisor.state().others_appends() else { return };
    let supervisor = supervisor.clone();
    let swarms = Arc::downgrade(swarms);
    tokio::spawn(async move {
        while let Some(what) = appends.recv().await {
            let relayed = match what {
                Announced::Event(id) => supervisor.relay_event(id).await.map_err(|e| e.to_string()),
                Announced::Deploy(id) => match swarms.upgrade() {
                    Some(swarms) => swarms.relay_deploy(id).await.map_err(|e| e.to_string()),
                    None => return,
                },
            };
            if let Err(e) = relayed {
                tracing::warn!(error = %e, ?what, "failed to read what another coordinator appended");
            }
        }
    });
}

/// Each time this coordinator takes the lead, it finishes what the last leader left.
fn spawn_take_over(leadership: &Leadership, swarms: &Arc<Swarms>) {
    let mut epochs = leadership.epochs();
    let swarms = Arc::downgrade(swarms);
    tokio::spawn(async move {
        while epochs.changed().await.is_ok() {
            let epoch = *epochs.borrow_and_update();
            let Some(swarms) = swarms.upgrade() else { return };
            if epoch != 0 {
                if let Err(e) = swarms.take_over().await {
                    tracing::error!(error = %e, epoch, "failed to finish what the last leader left");
                }
            }
        }
    });
}

impl Daemon {
    /// On a clean stop: a leader gives up its lease, so a standby takes over at once instead of
    /// when the lease expires.
    pub async fn stand_down(&self) {
        if self.leadership.leads()
            && self.supervisor.state().engine() == crate::services::state::sql::EngineKind::Postgres
        {
            if let Err(e) = self.supervisor.state().release_lease(self.host.clone()).await {
                tracing::warn!(error = %e, "failed to give up the coordinators' lease; a standby takes over when it expires");
            }
        }
    }
}

/// VR ran its procs scooper every 30 minutes.
const SCOOP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Runs the scooper every [`SCOOP_INTERVAL`] (not at once: adopted procs settle first).
fn spawn_scooper(supervisor: Supervisor) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SCOOP_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = supervisor.scoop(false).await {
                tracing::error!(error = %e, "the scooper failed");
            }
        }
    });
}

/// The fleet side of this vrd: a coordinator (with `peer_listen`) serves joined hosts on its peer
/// port; a joined host (`vrd join` left its identity in the data dir) keeps its link to its
/// coordinator up and serves its own procs (and routes with its own `balancers`) there. Returns
/// the host directory dispatch uses.
async fn start_fleet(
    config: &DaemonConfig,
    supervisor: &Supervisor,
    store: &BuildStore,
    balancers: &Arc<Balancers>,
) -> Result<(Fleet, Arc<dyn HostDirectory>), DaemonError> {
    let files = FleetFiles::new(&config.data_dir);
    let peers = Arc::new(Peers::new(std::time::Duration::from_secs(config.host_grace_secs)));
    let mut coordinating = None;
    if let Some(addr) = config.peer_listen {
        let state = supervisor.state().clone();
        let coordinator =
            Coordinator::new(state, store.clone(), Arc::clone(&peers), &files, &config.host_name)
                .map_err(DaemonError::Start)?;
        let listener = peer_listener::bind(addr).await.map_err(DaemonError::Start)?;
        tracing::info!(%addr, ca_sha256 = %coordinator.pin(), "coordinating hosts");
        let coordinator = Arc::new(coordinator);
        peer_listener::spawn(listener, Arc::clone(&coordinator));
        peers.spawn_heartbeats(crate::services::peer::link::HEARTBEAT);
        coordinating = Some(coordinator);
    }
    let joined = files.host().map_err(|e| DaemonError::Start(e.to_string()))?;
    if let Some(id) = joined {
        if id.link.name != config.host_name {
            return Err(DaemonError::Start(format!(
                "this vrd joined its fleet as host {}, but its host_name is {}: set host_name = \"{}\" in vrd's config",
                id.link.name, config.host_name, id.link.name
            )));
        }
        let source: Arc<dyn ArtifactSource> = Arc::new(Blobs { files: files.clone() });
        let agent = LocalHost::new(&config.host_name, supervisor.clone(), store.clone(), Some(source))
            .with_balancers(Arc::clone(balancers));
        peer_link::spawn(files.clone(), Arc::new(agent));
    }
    let local = LocalDirectory::new(supervisor.clone(), store.clone()).with_balancers(Arc::clone(balancers));
    let directory = Arc::new(FleetDirectory { local, peers: Arc::clone(&peers) });
    let advertise = config
        .peer_advertise
        .clone()
        .or_else(|| config.peer_listen.filter(|a| !a.ip().is_unspecified()).map(|a| a.to_string()));
    Ok((Fleet { peers, coordinator: coordinating, advertise }, directory))
}

/// Swarm dispatch over the fleet's hosts, routing through this host's balancers and the config's
/// `remote` ones.
async fn start_swarms(
    config: &DaemonConfig,
    supervisor: &Supervisor,
    builder: &Builder,
    store: &BuildStore,
    hosts: Arc<dyn HostDirectory>,
    local_balancers: &Balancers,
    leadership: &Leadership,
) -> Result<Arc<Swarms>, DaemonError> {
    let state = supervisor.state().clone();
    let fleet =
        balancer::FleetContext { state: state.for_duties(leadership.fence()), hosts: Arc::clone(&hosts) };
    let balancers = local_balancers
        .with_remotes(&config.balancers, &fleet)
        .map_err(|e| DaemonError::Start(format!("vrd's config names a balancer that can't start: {e}")))?;
    let builds = crate::services::builds::recorded::BuildService {
        builder: builder.clone(),
        store: store.clone(),
        state: state.clone(),
    };
    let settings = swarm::Settings {
        port_range: config.port_range,
        start_timeout: std::time::Duration::from_secs(60),
        listen_timeout: std::time::Duration::from_secs(config.uptest_timeout_secs),
        local_host: config.host_name.clone(),
        drain: std::time::Duration::from_secs(config.drain_secs),
        leadership: leadership.fence(),
    };
    let swarms = Swarms::start(state, Arc::new(balancers), hosts, builds, settings)
        .await
        .map_err(|e| DaemonError::Start(e.to_string()))?;
    swarms.spawn_schedule(swarm::UPTEST_INTERVAL);
    if config.peer_listen.is_some() {
        swarms.spawn_watch(swarm::watch::WATCH_INTERVAL);
        gather::spawn(Arc::clone(&swarms), supervisor.clone());
    }
    Ok(swarms)
}

/// Starts the spawner (see `host::container::spawner`) and waits for its socket; `None` (and
/// launchers are exec'd instead) when it does not come up.
fn start_spawner(exe: &std::path::Path, run_dir: &std::path::Path) -> Option<PathBuf> {
    use std::os::unix::process::CommandExt;
    let socket = run_dir.join("spawner.sock");
    let _ = fs::remove_file(&socket);
    let spawned = std::process::Command::new(exe)
        .arg0("vrd")
        .arg("spawner")
        .arg("--socket")
        .arg(&socket)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "failed to start the spawner; launchers will be exec'd");
        return None;
    }
    // The child is reaped by nobody until vrd exits; it lives as long as vrd does.
    for _ in 0..200 {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return Some(socket);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    tracing::warn!(socket = %socket.display(), "the spawner did not come up; launchers will be exec'd");
    None
}
