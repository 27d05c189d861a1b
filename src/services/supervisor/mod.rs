//! The supervisor: keeps deployed procs in the state their operator asked for, across crashes of
//! the procs and restarts of vrd itself.
//!
//! Each proc has one task (`task.rs`) that drives the pure [`machine::Machine`]. A proc's container
//! is run by a detached launcher (`vrd init --detach`) that outlives vrd, writes the log itself and
//! records how the container ended; the task watches the launcher with a pidfd, so a launcher
//! started by an earlier vrd is watched exactly like a new one. Every state change is stored in
//! SQLite first and then published as a VR `proc_events` event.

pub mod machine;
pub mod scoop;
mod task;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::model::names::ProcName;
use crate::model::proc_data::ProcSpec;
use crate::model::supervision::{Desired, ProcEvent, ProcState};
use crate::services::runner::{self, Runner, RunnerError};
use crate::services::state::{ProcRecord, State, StateError};
use machine::Policy;

/// What went wrong in a supervisor call; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// No such proc; the message suggests close names.
    #[error("no proc named {name}{hint}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// ": did you mean ...?" or a pointer to `vr procs list`.
        hint: String,
    },
    /// The runner failed (setup, teardown).
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The proc's task is gone (vrd is stopping).
    #[error("the supervisor of {0} is not running: vrd may be stopping; try again")]
    Gone(String),
}

/// A request to one proc's task.
pub(crate) enum Command {
    Start(oneshot::Sender<()>),
    Stop(oneshot::Sender<()>),
    Restart(oneshot::Sender<()>),
    Destroy(oneshot::Sender<Result<(), SupervisorError>>),
}

/// How many live events a slow subscriber may fall behind before it catches up from the store.
const EVENT_BUFFER: usize = 4096;

/// What the tasks share.
pub(crate) struct Shared {
    pub runner: Arc<Runner>,
    pub state: State,
    /// Live events, each with its id. Shared, not copied: the channel keeps a slot for each of
    /// its last [`EVENT_BUFFER`] sends, and an `Arc` keeps a slot at a pointer's size.
    pub events: broadcast::Sender<Arc<(u64, ProcEvent)>>,
    pub host: String,
    pub policy: Policy,
    pub tasks: Mutex<HashMap<String, mpsc::Sender<Command>>>,
    /// Procs whose deploy is setting them up and that have no record yet.
    pub deploying: Mutex<std::collections::BTreeSet<String>>,
}

/// Takes a proc off the deploying list when its deploy ends, however it ends.
struct Deploying<'a>(&'a Shared, String);

impl Drop for Deploying<'_> {
    fn drop(&mut self) {
        self.0.deploying.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.1);
    }
}

/// The supervisor.
#[derive(Clone)]
pub struct Supervisor {
    shared: Arc<Shared>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Supervisor {
    /// A supervisor over `state` on the machine called `host`, which re-adopts or restarts every
    /// stored proc.
    pub async fn start(
        runner: Arc<Runner>,
        state: State,
        policy: Policy,
        host: String,
    ) -> Result<Supervisor, SupervisorError> {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let shared = Arc::new(Shared {
            runner,
            state,
            events,
            host,
            policy,
            tasks: Mutex::new(HashMap::new()),
            deploying: Mutex::default(),
        });
        let sup = Supervisor { shared };
        for record in sup.shared.state.list_procs().await? {
            task::spawn(Arc::clone(&sup.shared), record)?;
        }
        Ok(sup)
    }

    /// Sets the proc up and keeps it running. Deploying a known proc again replaces its proc.yaml
    /// and restarts it.
    /// Procs being set up by a deploy that have no record yet.
    pub fn deploying(&self) -> Vec<String> {
        self.shared
            .deploying
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    pub async fn deploy(&self, spec: ProcSpec, yaml: String) -> Result<ProcRecord, SupervisorError> {
        let name = spec.name.to_string();
        // Seen by surveys from now on: a coordinator that restarts while this setup runs must
        // not place another proc in its stead.
        self.shared.deploying.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(name.clone());
        let _deploying = Deploying(&self.shared, name.clone());
        if let Some(tx) = self.task(&name) {
            let (done, wait) = oneshot::channel();
            let _ = tx.send(Command::Stop(done)).await;
            let _ = wait.await;
        }
        let runner = Arc::clone(&self.shared.runner);
        let text = yaml.clone();
        let spec2 = spec.clone();
        tokio::task::spawn_blocking(move || runner.setup(&spec2, &text))
            .await
            .map_err(|e| RunnerError::Launch(format!("setup task failed: {e}")))??;
        let mut record = match self.shared.state.get_proc(&name).await? {
            Some(r) => r,
            None => ProcRecord::new(name.clone(), yaml.clone(), Desired::Running, now()),
        };
        record.yaml = yaml;
        record.desired = Desired::Running;
        self.shared.state.put_proc(record.clone()).await?;
        match self.task(&name) {
            Some(tx) => {
                let (done, wait) = oneshot::channel();
                let _ = tx.send(Command::Start(done)).await;
                let _ = wait.await;
            }
            None => task::spawn(Arc::clone(&self.shared), record)?,
        }
        Ok(self
            .shared
            .state
            .get_proc(&name)
            .await?
            .unwrap_or_else(|| ProcRecord::new(name, String::new(), Desired::Running, now())))
    }

    fn task(&self, name: &str) -> Option<mpsc::Sender<Command>> {
        self.shared.tasks.lock().unwrap_or_else(PoisonError::into_inner).get(name).cloned()
    }

    /// Whether `name` is under supervision (a deployed proc, whatever its state), without asking
    /// the database.
    pub fn supervises(&self, name: &str) -> bool {
        self.task(name).is_some()
    }

    async fn known(&self, name: &str) -> Result<mpsc::Sender<Command>, SupervisorError> {
        if let Some(tx) = self.task(name) {
            return Ok(tx);
        }
        let names: Vec<String> = self.shared.state.list_procs().await?.into_iter().map(|r| r.name).collect();
        Err(SupervisorError::Unknown { name: name.into(), hint: suggest(name, &names) })
    }

    async fn ask<T>(
        &self,
        name: &str,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SupervisorError> {
        let tx = self.known(name).await?;
        let (done, wait) = oneshot::channel();
        tx.send(make(done)).await.map_err(|_| SupervisorError::Gone(name.into()))?;
        wait.await.map_err(|_| SupervisorError::Gone(name.into()))
    }

    /// Starts a stopped (or FATAL) proc.
    pub async fn start_proc(&self, name: &str) -> Result<(), SupervisorError> {
        self.ask(name, Command::Start).await
    }

    /// Stops a proc and waits until it is stopped.
    pub async fn stop_proc(&self, name: &str) -> Result<(), SupervisorError> {
        self.ask(name, Command::Stop).await
    }

    /// Stops, then starts a proc.
    pub async fn restart_proc(&self, name: &str) -> Result<(), SupervisorError> {
        self.ask(name, Command::Restart).await
    }

    /// Stops a proc, tears it down and forgets it; it never comes back, not even after a reboot.
    pub async fn destroy_proc(&self, name: &str) -> Result<(), SupervisorError> {
        self.ask(name, Command::Destroy).await?
    }

    /// Every proc vrd knows.
    pub async fn list(&self) -> Result<Vec<ProcRecord>, SupervisorError> {
        Ok(self.shared.state.list_procs().await?)
    }

    /// One proc, by name.
    pub async fn get(&self, name: &str) -> Result<ProcRecord, SupervisorError> {
        self.known(name).await?;
        self.shared
            .state
            .get_proc(name)
            .await?
            .ok_or_else(|| SupervisorError::Unknown { name: name.into(), hint: String::new() })
    }

    /// Live events, each with its id.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<(u64, ProcEvent)>> {
        self.shared.events.subscribe()
    }

    /// Stores an event that happened elsewhere (a joined host's proc) and publishes it to this
    /// vrd's subscribers, with this vrd's next id.
    pub async fn record_event(&self, event: ProcEvent) -> Result<u64, SupervisorError> {
        let id = self.shared.state.append_event(event.clone()).await?;
        let _ = self.shared.events.send(Arc::new((id, event)));
        Ok(id)
    }

    /// Publishes to this vrd's subscribers the event `id` another coordinator stored (read from
    /// the shared model, not stored again).
    pub async fn relay_event(&self, id: u64) -> Result<(), SupervisorError> {
        let found = self.shared.state.events_since(id.saturating_sub(1), 1).await?;
        for (got, event) in found.into_iter().filter(|(got, _)| *got == id) {
            let _ = self.shared.events.send(Arc::new((got, event)));
        }
        Ok(())
    }

    /// Stored events after `after`, oldest first.
    pub async fn events_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, ProcEvent)>, SupervisorError> {
        Ok(self.shared.state.events_since(after, limit).await?)
    }

    /// The state database.
    pub fn state(&self) -> &State {
        &self.shared.state
    }

    /// The runner.
    pub fn runner(&self) -> &Arc<Runner> {
        &self.shared.runner
    }
}

/// ": did you mean X?" for the closest known names, or where to look.
pub fn suggest(name: &str, known: &[String]) -> String {
    let mut close: Vec<(usize, &String)> = known
        .iter()
        .map(|k| (strsim::levenshtein(name, k), k))
        .filter(|(d, _)| *d <= 3.max(name.len() / 4))
        .collect();
    close.sort();
    match close.first() {
        Some((_, best)) => format!(": did you mean {best}?"),
        None => ": see `vr procs list` for the procs vrd knows".into(),
    }
}

/// The event for a state change of `record`.
pub(crate) fn event_for(record: &ProcRecord, state: ProcState, host: &str) -> ProcEvent {
    let n = ProcName::parse_lenient(&record.name);
    ProcEvent {
        name: record.name.clone(),
        host: host.to_string(),
        state: state.code(),
        statename: state.as_str().to_string(),
        pid: record.app_pid,
        exitstatus: record.exit_status,
        oom_killed: record.oom_killed,
        start_time: record.start_time,
        stop_time: record.stop_time,
        app_name: n.app,
        version: n.version,
        config_name: n.config,
        hash: n.hash,
        proc_name: n.proc,
        port: n.port,
        time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
        event: state.event().to_string(),
    }
}

/// Parses a stored proc.yaml back into its spec.
pub(crate) fn spec_of(record: &ProcRecord) -> Result<ProcSpec, SupervisorError> {
    Ok(runner::parse(&record.yaml)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_get_the_closest_suggestion() {
        let known = vec!["hello-1-prod-abc-web-5000".to_string(), "other-2-prod-def-worker-0".to_string()];
        assert_eq!(suggest("hello-1-prod-abc-web-5001", &known), ": did you mean hello-1-prod-abc-web-5000?");
        assert!(suggest("zzz", &known).contains("vr procs list"));
    }
}
