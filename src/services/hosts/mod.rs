//! Hosts as dispatch reaches them: the [`HostAgent`] trait is the one interface a swarm uses to
//! deploy, test and destroy procs on a machine, and a [`HostDirectory`] (injected into `Swarms`)
//! is the one way it finds the agent of a host definition. [`local::LocalHost`] is this vrd's own
//! supervisor; the peer mode adds an agent that speaks to another vrd; [`fake::FakeHost`] (tests)
//! records calls and fails on demand. Dispatch never assumes one machine.

pub mod directory;
#[cfg(test)]
pub mod fake;
pub mod local;

use std::sync::Arc;
use std::time::Duration;

use crate::model::deploy::release::ProcOrder;
use crate::model::deploy::HostSpec;

use async_trait::async_trait;

use crate::model::supervision::ProcState;
use crate::model::uptest::UptestResult;

/// A proc as its host reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostProc {
    /// The six-part name.
    pub name: String,
    /// supervisord's state.
    pub state: ProcState,
}

/// Why a host call failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The host has no such proc.
    #[error("host {host} has no proc {proc}{hint}")]
    NoProc {
        /// The host.
        host: String,
        /// The proc.
        proc: String,
        /// ": did you mean ...?", or a pointer to `vr procs list`; may be empty.
        hint: String,
    },
    /// The host could not be reached (a dead peer must not hang a dispatch).
    #[error("host {host} could not be reached: {why}; check that its vrd runs, or mark it inactive (vr hosts edit {host} --set active=false)")]
    Unreachable {
        /// The host.
        host: String,
        /// Why.
        why: String,
    },
    /// The host refused or failed the call.
    #[error("host {host}: {message}")]
    Failed {
        /// The host.
        host: String,
        /// What happened, and what to do.
        message: String,
    },
}

/// One machine that runs procs.
#[async_trait]
pub trait HostAgent: Send + Sync {
    /// Its name.
    fn name(&self) -> &str;
    /// Its proc events after `after` (at most `limit`) and its newest event id; with no `after`,
    /// only that id.
    async fn events(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<crate::api::host::HostEvents, HostError>;
    /// [`HostAgent::events`] after `after`, waiting up to `wait` for one when there is none yet
    /// (a long poll). By default it does not wait.
    async fn events_wait(
        &self,
        after: u64,
        limit: usize,
        wait: std::time::Duration,
    ) -> Result<crate::api::host::HostEvents, HostError> {
        let _ = wait;
        self.events(Some(after), limit).await
    }
    /// Makes sure an artifact (a build or stack image, by sha256) is in its store, fetching it
    /// from its coordinator's when missing; dispatch has every host that gets new procs do this
    /// at once before any deploy.
    async fn fetch(&self, artifact: &crate::model::deploy::release::ArtifactRef) -> Result<(), HostError>;
    /// Applies a pool change to one of its balancers (fenced by the change's generation).
    async fn route(
        &self,
        change: &crate::api::host::PoolChange,
    ) -> Result<crate::api::host::PoolApplied, HostError>;
    /// Starts, stops or restarts a proc it supervises.
    async fn act(&self, proc: &str, action: crate::api::host::ProcAction) -> Result<(), HostError>;
    /// Every proc it supervises.
    async fn procs(&self) -> Result<Vec<HostProc>, HostError>;
    /// Every proc it supervises, as `vr procs list` shows them.
    async fn proc_infos(&self) -> Result<Vec<crate::api::ProcInfo>, HostError>;
    /// Whether nothing listens on `port` there (a proc of another kind might).
    async fn port_is_free(&self, port: u16) -> Result<bool, HostError>;
    /// Sets up the proc a release becomes at a placement, and keeps it running. The order is
    /// typed in-process; the host resolves its artifacts (by sha256) to files of its own.
    async fn deploy(&self, order: &ProcOrder) -> Result<(), HostError>;
    /// Waits until the proc counts as started (RUNNING); fails when it exits or gives up first.
    async fn wait_running(&self, proc: &str, timeout: Duration) -> Result<(), HostError>;
    /// Waits until something accepts TCP connections on the proc's port.
    async fn wait_listening(&self, proc: &str, port: u16, timeout: Duration) -> Result<(), HostError>;
    /// Runs the proc's uptests.
    async fn uptest(&self, proc: &str) -> Result<Vec<UptestResult>, HostError>;
    /// Stops the proc, tears it down and forgets it.
    async fn destroy(&self, proc: &str) -> Result<(), HostError>;
    /// The proc's log lines at or after `since` (RFC 3339), the last `tail` of them.
    async fn logs(
        &self,
        proc: &str,
        since: Option<String>,
        tail: Option<usize>,
    ) -> Result<Vec<String>, HostError>;
}

/// Where a host gets an artifact its store lacks (on a joined host: its coordinator's store).
#[async_trait]
pub trait ArtifactSource: Send + Sync {
    /// Writes the artifact's bytes, verified against its sha256 and size, to `dest` (a path in
    /// the store that does not exist yet); an interrupted fetch leaves nothing there.
    async fn fetch(
        &self,
        artifact: &crate::model::deploy::release::ArtifactRef,
        dest: &std::path::Path,
    ) -> Result<(), String>;
}

/// How a host is doing, as its coordinator sees it (see ARCHITECTURE "The fleet": a host whose
/// link is lost is `Suspect` at once; after the grace it is `Down`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostHealth {
    /// Reachable.
    Up,
    /// Its link is lost, for less than the grace period: its nodes leave their pools.
    Suspect,
    /// Lost for longer than the grace period: its procs are replaced elsewhere.
    Down,
}

impl HostHealth {
    /// The lowercase name listings show.
    pub fn as_str(self) -> &'static str {
        match self {
            HostHealth::Up => "up",
            HostHealth::Suspect => "suspect",
            HostHealth::Down => "down",
        }
    }
}

/// Finds the agent that reaches a host definition.
pub trait HostDirectory: Send + Sync {
    /// The agent of `host`; `Unreachable` when nothing can reach it now.
    fn agent(&self, host: &HostSpec) -> Result<Arc<dyn HostAgent>, HostError>;

    /// How `host` is doing; hosts this vrd serves itself are always up.
    fn health(&self, host: &HostSpec) -> HostHealth {
        let _ = host;
        HostHealth::Up
    }
}
