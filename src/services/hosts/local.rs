//! The local host: this vrd's own supervisor and runner behind the [`HostAgent`] interface. It
//! resolves a release's artifacts (by sha256) to files of its own store.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use std::sync::Arc;

use super::{ArtifactSource, HostAgent, HostError, HostProc};
use crate::api::ProcInfo;
use crate::model::deploy::release::{ArtifactRef, Located, ProcOrder};
use crate::model::names::ProcName;
use crate::model::supervision::{Desired, ProcState};
use crate::model::uptest::UptestResult;
use crate::services::builds::fill::fetch_once;
use crate::services::builds::BuildStore;
use crate::services::runner;
use crate::services::state::ProcRecord;
use crate::services::supervisor::{Supervisor, SupervisorError};

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);

/// This machine.
pub struct LocalHost {
    name: String,
    supervisor: Supervisor,
    store: BuildStore,
    source: Option<Arc<dyn ArtifactSource>>,
    /// This host's own balancers, which its coordinator's `remote` balancers change.
    balancers: Option<Arc<crate::services::balancer::Balancers>>,
}

impl LocalHost {
    /// The host called `name`, served by `supervisor`, with artifacts from `store` (filled from
    /// `source` when it lacks one: a joined host's coordinator).
    pub fn new(
        name: &str,
        supervisor: Supervisor,
        store: BuildStore,
        source: Option<Arc<dyn ArtifactSource>>,
    ) -> LocalHost {
        LocalHost { name: name.to_string(), supervisor, store, source, balancers: None }
    }

    /// The same host, routing pool changes into `balancers`.
    pub fn with_balancers(mut self, balancers: Arc<crate::services::balancer::Balancers>) -> LocalHost {
        self.balancers = Some(balancers);
        self
    }

    /// Fetches the artifact into the store when it is missing there and this host has a source.
    async fn ensure_local(&self, artifact: &ArtifactRef) -> Result<(), HostError> {
        let Some(source) = &self.source else {
            // A coordinator's own host: its store is filled from the other coordinators, if any.
            if !self.store.fill.is_set() {
                return Ok(());
            }
            return self.store.ensure_artifact(&artifact.sha256).await.map(|_| ()).map_err(|e| {
                self.failed(format!(
                    "artifact sha256:{} is not in this coordinator's store: {e}",
                    artifact.sha256
                ))
            });
        };
        let path = self.store.artifact_path(&artifact.sha256);
        let started = std::time::Instant::now();
        // Later deploys of the same build wait for this fetch and share it.
        let fetched = fetch_once(&artifact.sha256, &path, || source.fetch(artifact, &path))
            .await
            .map_err(|e| self.failed(e))?;
        if fetched {
            tracing::info!(sha256 = %artifact.sha256, bytes = artifact.size, ms = started.elapsed().as_millis() as u64, "fetched an artifact from the coordinator");
        }
        Ok(())
    }

    /// A store file of this host, checked against the size the release names.
    fn local_file(&self, artifact: &ArtifactRef) -> Result<String, HostError> {
        let path = self.store.artifact_path(&artifact.sha256);
        match std::fs::metadata(&path) {
            Ok(m) if m.len() == artifact.size => Ok(path.display().to_string()),
            Ok(m) => Err(self.failed(format!(
                "store file {} has {} bytes, not the {} its release names: remove it so it is fetched again",
                path.display(),
                m.len(),
                artifact.size
            ))),
            Err(e) => {
                Err(self
                    .failed(format!("artifact sha256:{} is not in this host's store ({e})", artifact.sha256)))
            }
        }
    }

    /// Where this host finds the order's build and image.
    fn locate(&self, order: &ProcOrder) -> Result<Located, HostError> {
        let build = &order.release.build;
        let file_or_url = |artifact: &Option<ArtifactRef>, url: &str| match artifact {
            Some(a) => self.local_file(a),
            None => Ok(url.to_string()),
        };
        Ok(Located {
            build_url: file_or_url(&build.artifact, &build.url)?,
            image_url: file_or_url(&build.image.artifact, &build.image.url)?,
        })
    }

    fn failed(&self, message: impl Into<String>) -> HostError {
        HostError::Failed { host: self.name.clone(), message: message.into() }
    }

    /// New work on this host waits for room on its data dir (see `runner::room`).
    fn room_for(&self, what: &str) -> Result<(), HostError> {
        self.supervisor.runner().room_for(what).map_err(|e| self.failed(e.to_string()))
    }

    fn supervisor_error(&self, proc: &str, e: SupervisorError) -> HostError {
        match e {
            SupervisorError::Unknown { hint, .. } => {
                HostError::NoProc { host: self.name.clone(), proc: proc.into(), hint }
            }
            other => self.failed(other.to_string()),
        }
    }

    /// The last lines of a proc's log, to say why it did not start.
    fn log_tail(&self, proc: &str) -> String {
        let Ok(name) = crate::model::names::ProcName::parse(proc) else { return String::new() };
        let path = self.supervisor.runner().layout.proc_dir(&name).join("log");
        let lines = crate::services::logs::read(&path, None, Some(5)).unwrap_or_default();
        if lines.is_empty() {
            String::new()
        } else {
            format!("; its log ends:\n{}", lines.join("\n"))
        }
    }
}

#[async_trait]
impl HostAgent for LocalHost {
    fn name(&self) -> &str {
        &self.name
    }

    async fn procs(&self) -> Result<Vec<HostProc>, HostError> {
        let deploying = self.supervisor.deploying();
        let records = self.supervisor.list().await.map_err(|e| self.failed(e.to_string()))?;
        let mut procs: Vec<HostProc> =
            records.into_iter().map(|r| HostProc { name: r.name, state: r.state }).collect();
        // A proc still being set up is this host's already (it starts once set up).
        for name in deploying {
            if !procs.iter().any(|p| p.name == name) {
                procs.push(HostProc { name, state: ProcState::Starting });
            }
        }
        Ok(procs)
    }

    async fn proc_infos(&self) -> Result<Vec<ProcInfo>, HostError> {
        let records = self.supervisor.list().await.map_err(|e| self.failed(e.to_string()))?;
        Ok(records.iter().map(|r| proc_info(r, &self.name)).collect())
    }

    async fn port_is_free(&self, port: u16) -> Result<bool, HostError> {
        // A bind on the wildcard address fails when anything listens on the port.
        Ok(std::net::TcpListener::bind(("0.0.0.0", port)).is_ok())
    }

    async fn fetch(&self, artifact: &ArtifactRef) -> Result<(), HostError> {
        self.room_for("fetching an artifact")?;
        self.ensure_local(artifact).await
    }

    async fn deploy(&self, order: &ProcOrder) -> Result<(), HostError> {
        order.check().map_err(|e| self.failed(format!("refused a proc order: {e}")))?;
        self.room_for("deploying a proc")?;
        let build = &order.release.build;
        for artifact in [&build.artifact, &build.image.artifact].into_iter().flatten() {
            self.ensure_local(artifact).await?;
        }
        let proc_yaml = order.proc_yaml(&self.locate(order)?);
        let (spec, _) = runner::parse(&proc_yaml).map_err(|e| self.failed(e.to_string()))?;
        let name = spec.name.to_string();
        self.supervisor.deploy(spec, proc_yaml).await.map_err(|e| self.supervisor_error(&name, e))?;
        Ok(())
    }

    async fn wait_running(&self, proc: &str, timeout: Duration) -> Result<(), HostError> {
        let deadline = Instant::now() + timeout;
        loop {
            let record = self.supervisor.get(proc).await.map_err(|e| self.supervisor_error(proc, e))?;
            match record.state {
                ProcState::Running => return Ok(()),
                // FATAL is the supervisor giving up; a proc someone stopped will not start either.
                // STOPPED and EXITED while it should run are steps on the way (the supervisor's
                // task has not started it yet, or restarts it), so they wait like the rest.
                ProcState::Fatal => {
                    let why = record.spawn_err.unwrap_or_else(|| {
                        format!("it exited with status {}", record.exit_status.unwrap_or(-1))
                    });
                    return Err(self.failed(format!(
                        "{proc} did not start ({}): {why}{}",
                        record.state.as_str(),
                        self.log_tail(proc)
                    )));
                }
                _ if record.desired != Desired::Running => {
                    return Err(self.failed(format!(
                        "{proc} was {} while vrd waited for it to start",
                        record.desired.as_str()
                    )));
                }
                _ if Instant::now() >= deadline => {
                    return Err(self.failed(format!(
                        "{proc} was not RUNNING after {} s (it is {}){}",
                        timeout.as_secs(),
                        record.state.as_str(),
                        self.log_tail(proc)
                    )))
                }
                _ => tokio::time::sleep(POLL).await,
            }
        }
    }

    async fn wait_listening(&self, proc: &str, port: u16, timeout: Duration) -> Result<(), HostError> {
        let deadline = Instant::now() + timeout;
        // A private proc's port is published at once by its launcher: ask the app itself.
        let name = ProcName::parse(proc).map_err(|e| self.failed(e.to_string()))?;
        let netns = self.supervisor.runner().layout.proc_dir(&name).join("netns");
        loop {
            let address = crate::host::network::address_of(&netns).unwrap_or(std::net::Ipv4Addr::LOCALHOST);
            if tokio::net::TcpStream::connect((address, port)).await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.failed(format!(
                    "{proc} accepted no connection on port {port} within {} s: does it listen on $PORT?{}",
                    timeout.as_secs(),
                    self.log_tail(proc)
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn uptest(&self, proc: &str) -> Result<Vec<UptestResult>, HostError> {
        let record = self.supervisor.get(proc).await.map_err(|e| self.supervisor_error(proc, e))?;
        let (spec, _) = runner::parse(&record.yaml).map_err(|e| self.failed(e.to_string()))?;
        let runner = std::sync::Arc::clone(self.supervisor.runner());
        tokio::task::spawn_blocking(move || runner.uptest(&spec))
            .await
            .map_err(|e| self.failed(format!("the uptest task failed: {e}")))?
            .map_err(|e| self.failed(e.to_string()))
    }

    async fn events(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<crate::api::host::HostEvents, HostError> {
        let state = self.supervisor.state();
        let last = state.latest_event_id().await.map_err(|e| self.failed(e.to_string()))?;
        let events = match after {
            Some(after) => {
                self.supervisor.events_since(after, limit).await.map_err(|e| self.failed(e.to_string()))?
            }
            None => Vec::new(),
        };
        Ok(crate::api::host::HostEvents { last, events })
    }

    async fn events_wait(
        &self,
        after: u64,
        limit: usize,
        wait: std::time::Duration,
    ) -> Result<crate::api::host::HostEvents, HostError> {
        // Subscribed before reading: an event stored between the read and the wait still wakes.
        let mut live = self.supervisor.subscribe();
        let page = self.events(Some(after), limit).await?;
        if !page.events.is_empty() {
            return Ok(page);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, live.recv()).await {
                Ok(Ok(event)) if event.0 <= after => continue,
                // No more events will come (vrd is stopping): answer at the deadline, not at once,
                // or the coordinator would ask again and again.
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                    tokio::time::sleep_until(deadline).await;
                    return Ok(page);
                }
                // Something new, or the channel lagged: read what is stored.
                Ok(_) => return self.events(Some(after), limit).await,
                Err(_) => return Ok(page),
            }
        }
    }

    async fn route(
        &self,
        change: &crate::api::host::PoolChange,
    ) -> Result<crate::api::host::PoolApplied, HostError> {
        let Some(balancers) = &self.balancers else {
            return Err(self.failed("this host routes nothing for its coordinator (it has no balancers)"));
        };
        let state = self.supervisor.state();
        balancers.apply(change, state).await.map_err(|e| self.failed(e.to_string()))
    }

    async fn act(&self, proc: &str, action: crate::api::host::ProcAction) -> Result<(), HostError> {
        use crate::api::host::ProcAction;
        let sup = &self.supervisor;
        let done = match action {
            ProcAction::Start => sup.start_proc(proc).await,
            ProcAction::Stop => sup.stop_proc(proc).await,
            ProcAction::Restart => sup.restart_proc(proc).await,
        };
        done.map_err(|e| self.supervisor_error(proc, e))
    }

    async fn destroy(&self, proc: &str) -> Result<(), HostError> {
        self.supervisor.destroy_proc(proc).await.map_err(|e| self.supervisor_error(proc, e))
    }

    async fn logs(
        &self,
        proc: &str,
        since: Option<String>,
        tail: Option<usize>,
    ) -> Result<Vec<String>, HostError> {
        let layout = &self.supervisor.runner().layout;
        let path = match self.supervisor.get(proc).await {
            Ok(_) => {
                layout.proc_dir(&ProcName::parse(proc).map_err(|e| self.failed(e.to_string()))?).join("log")
            }
            // A proc that is gone: its log is kept for the retention period.
            Err(e) => match crate::services::runner::retained::find(&layout.data_dir, proc) {
                Some(kept) => kept,
                None => return Err(self.supervisor_error(proc, e)),
            },
        };
        let since =
            since.map(|s| crate::services::logs::parse_since(&s)).transpose().map_err(|e| self.failed(e))?;
        tokio::task::spawn_blocking(move || crate::services::logs::read(&path, since, tail))
            .await
            .map_err(|e| self.failed(format!("the log task failed: {e}")))?
            .map_err(|e| self.failed(format!("failed to read the log of {proc}: {e}")))
    }
}

/// VR's `Proc.as_dict()` view of a stored proc.
pub fn proc_info(r: &ProcRecord, host: &str) -> ProcInfo {
    let n = ProcName::parse_lenient(&r.name);
    ProcInfo {
        name: r.name.clone(),
        id: format!("{host}-{}", r.name),
        host: host.to_string(),
        statename: r.state.as_str().to_string(),
        state: r.state.code(),
        desired: r.desired.as_str().to_string(),
        pid: r.app_pid,
        exitstatus: r.exit_status,
        oom_killed: r.oom_killed,
        spawnerr: r.spawn_err.clone(),
        start_time: r.start_time,
        stop_time: r.stop_time,
        app_name: n.app,
        version: n.version,
        config_name: n.config,
        hash: n.hash,
        proc_name: n.proc,
        port: n.port,
        volumes: false,
    }
}
