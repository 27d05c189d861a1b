//! Hosts as dispatch reaches them: the [`HostAgent`] trait is the one interface a swarm uses to
//! deploy, test and destroy procs on a machine. [`local::LocalHost`] is this vrd's own supervisor;
//! the peer mode adds an agent that speaks to another vrd. Dispatch never assumes one machine.

pub mod local;

use std::time::Duration;

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
    #[error("host {host} has no proc {proc}")]
    NoProc {
        /// The host.
        host: String,
        /// The proc.
        proc: String,
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
    /// Every proc it supervises.
    async fn procs(&self) -> Result<Vec<HostProc>, HostError>;
    /// Whether nothing listens on `port` there (a proc of another kind might).
    async fn port_is_free(&self, port: u16) -> Result<bool, HostError>;
    /// Sets up the proc of a proc.yaml and keeps it running.
    async fn deploy(&self, proc_yaml: String) -> Result<(), HostError>;
    /// Waits until the proc counts as started (RUNNING); fails when it exits or gives up first.
    async fn wait_running(&self, proc: &str, timeout: Duration) -> Result<(), HostError>;
    /// Waits until something accepts TCP connections on the proc's port.
    async fn wait_listening(&self, proc: &str, port: u16, timeout: Duration) -> Result<(), HostError>;
    /// Runs the proc's uptests.
    async fn uptest(&self, proc: &str) -> Result<Vec<UptestResult>, HostError>;
    /// Stops the proc, tears it down and forgets it.
    async fn destroy(&self, proc: &str) -> Result<(), HostError>;
}
