//! A dispatch's voice: every step goes to the deployment log (with the dispatch's trace id) and to
//! live followers, in that order, so a follower that replays the log never misses a step.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::model::deploy::records::DeployLogEntry;
use crate::services::state::State;

/// One dispatch's log writer.
#[derive(Clone)]
pub struct Trace {
    /// The trace id.
    pub id: String,
    /// The swarm (or app, for a build) it is about.
    pub subject: Option<String>,
    /// The subject is an app (a build of it), not a swarm: only for the log's field name.
    app_subject: bool,
    state: State,
    live: broadcast::Sender<Arc<DeployLogEntry>>,
}

impl Trace {
    /// A new trace for `subject`, with a fresh id.
    pub fn new(subject: Option<String>, state: State, live: broadcast::Sender<Arc<DeployLogEntry>>) -> Trace {
        Trace { id: new_trace_id(subject.as_deref().unwrap_or("")), subject, app_subject: false, state, live }
    }

    /// The same trace, about an app (its build) rather than a swarm.
    pub fn about_app(self) -> Trace {
        Trace { app_subject: true, ..self }
    }

    /// Writes one step. A failure to write the log is itself logged, never fatal to the dispatch.
    pub async fn step(&self, tags: &[&str], message: impl Into<String>) {
        self.step_with_build(tags, message, None).await;
    }

    /// Writes the step that starts `build`, so followers can stream its compile output.
    pub async fn build_started(&self, build: u64, message: impl Into<String>) {
        self.step_with_build(&["build"], message, Some(build)).await;
    }

    async fn step_with_build(&self, tags: &[&str], message: impl Into<String>, build: Option<u64>) {
        let message = message.into();
        log_step(&self.id, self.subject.as_deref(), self.app_subject, tags, &message);
        let tags = tags.iter().map(|t| (*t).to_string()).collect();
        match self.state.log_deploy(self.id.clone(), self.subject.clone(), tags, message, build).await {
            Ok(entry) => {
                let _ = self.live.send(Arc::new(entry));
            }
            Err(e) => tracing::error!(error = %e, trace = %self.id, "failed to write the deployment log"),
        }
    }
}

/// VR's `md5(str(swarm) + str(time.time()))`, plus a process-wide counter so two dispatches in the
/// same instant differ.
fn new_trace_id(subject: &str) -> String {
    use md5::{Digest, Md5};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let digest = Md5::digest(format!("{subject}{}.{n}", now.as_nanos()).as_bytes());
    format!("{digest:x}")
}

/// A step in vrd's log, with the field its subject's kind names (SWARM, APP or HOST in the
/// journal): a trace's subject is a swarm, an app (its builds) or "host NAME" (the watcher).
fn log_step(trace: &str, subject: Option<&str>, app: bool, tags: &[&str], message: &str) {
    let tags = tags.join(",");
    match subject {
        Some(s) => match s.strip_prefix("host ") {
            Some(host) => tracing::info!(trace, host, tags, "{message}"),
            None if app => tracing::info!(trace, app = s, tags, "{message}"),
            None => tracing::info!(trace, swarm = s, tags, "{message}"),
        },
        None => tracing::info!(trace, tags, "{message}"),
    }
}
