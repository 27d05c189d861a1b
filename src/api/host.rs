//! The host API: what a coordinator asks of a host over the peer link, one method per
//! `HostAgent` call (`services::hosts`). The host dials the coordinator (mutual TLS) and serves
//! this API on that connection; the coordinator is the JSON-RPC client. Versioned by
//! [`PROTOCOL`]: `host.hello` answers it, and a coordinator refuses a host speaking another.

use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use serde::{Deserialize, Serialize};

use crate::model::deploy::release::{ArtifactRef, ProcOrder};
use crate::model::supervision::ProcState;
use crate::model::uptest::UptestResult;

/// The peer protocol's version: bumped when a method or type changes incompatibly (a method
/// added is not: a host without it answers "method not found", which the coordinator reports).
pub const PROTOCOL: u32 = 1;

/// What a host says about itself when the link opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostHello {
    /// Its host name (the one its certificate names).
    pub name: String,
    /// Its vrd's version.
    pub version: String,
    /// The peer protocol it speaks.
    pub protocol: u32,
}

/// A proc as its host reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostProcInfo {
    /// The six-part name.
    pub name: String,
    /// supervisord's state.
    pub state: ProcState,
}

/// A page of a host's proc events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostEvents {
    /// The host's newest event id when it answered.
    pub last: u64,
    /// The events asked for, oldest first, with the host's ids.
    pub events: Vec<(u64, crate::model::supervision::ProcEvent)>,
}

/// What an operator asks of a proc on a host (`vr procs start|stop|restart`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcAction {
    /// Run it (again).
    Start,
    /// Stop it, keeping it set up.
    Stop,
    /// Stop it, then start it.
    Restart,
}

impl ProcAction {
    /// The action `vr procs` names `word`, if it is one of these.
    pub fn parse(word: &str) -> Option<ProcAction> {
        match word {
            "start" => Some(ProcAction::Start),
            "stop" => Some(ProcAction::Stop),
            "restart" => Some(ProcAction::Restart),
            _ => None,
        }
    }
}

/// A pool as the coordinator wants it on one of a host's balancers (a `remote` balancer's change,
/// see `services::balancer::remote`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolChange {
    /// The balancer's name in the host's config.
    pub balancer: String,
    /// The pool.
    pub pool: String,
    /// Every node the pool should hold (`address:port`); none: the pool goes.
    pub nodes: std::collections::BTreeSet<String>,
    /// The change's generation: one more than the pool's previous change on the coordinator.
    pub generation: u64,
}

/// What a host did with a [`PoolChange`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolApplied {
    /// Applied: these nodes were added and removed (adds first).
    Applied {
        /// Nodes added.
        added: Vec<String>,
        /// Nodes removed.
        removed: Vec<String>,
    },
    /// The pool already is at this generation: nothing to do.
    Current,
    /// Refused: the host applied a newer change already (`generation`), so this one is stale.
    Newer {
        /// The generation the host's pool is at.
        generation: u64,
    },
}

/// The coordinator's calls on a host.
#[rpc(server, client)]
pub trait HostApi {
    /// Who the host is.
    #[method(name = "host.hello")]
    async fn hello(&self) -> RpcResult<HostHello>;

    /// Liveness: answered at once.
    #[method(name = "host.ping")]
    async fn ping(&self) -> RpcResult<()>;

    /// Every proc the host supervises.
    #[method(name = "host.procs")]
    async fn procs(&self) -> RpcResult<Vec<HostProcInfo>>;

    /// Every proc the host supervises, as `vr procs list` shows them.
    #[method(name = "host.proc_infos")]
    async fn proc_infos(&self) -> RpcResult<Vec<crate::api::ProcInfo>>;

    /// Whether nothing listens on `port` there.
    #[method(name = "host.port_is_free")]
    async fn port_is_free(&self, port: u16) -> RpcResult<bool>;

    /// Makes sure an artifact is in the host's store (fetched from the coordinator when missing).
    #[method(name = "host.fetch")]
    async fn fetch(&self, artifact: ArtifactRef) -> RpcResult<()>;

    /// Sets up and keeps running the proc of an order (the host fetches its artifacts first).
    #[method(name = "host.deploy")]
    async fn deploy(&self, order: ProcOrder) -> RpcResult<()>;

    /// Waits until the proc is RUNNING, at most `timeout_ms`.
    #[method(name = "host.wait_running")]
    async fn wait_running(&self, proc: String, timeout_ms: u64) -> RpcResult<()>;

    /// Waits until something accepts connections on the proc's port, at most `timeout_ms`.
    #[method(name = "host.wait_listening")]
    async fn wait_listening(&self, proc: String, port: u16, timeout_ms: u64) -> RpcResult<()>;

    /// Runs the proc's uptests.
    #[method(name = "host.uptest")]
    async fn uptest(&self, proc: String) -> RpcResult<Vec<UptestResult>>;

    /// The proc's log lines at or after `since` (RFC 3339), the last `tail` of them.
    #[method(name = "host.logs")]
    async fn logs(&self, proc: String, since: Option<String>, tail: Option<usize>) -> RpcResult<Vec<String>>;

    /// Stops, tears down and forgets the proc.
    #[method(name = "host.destroy")]
    async fn destroy(&self, proc: String) -> RpcResult<()>;

    /// Up to `limit` of the host's proc events after `after`, and its newest event's id; with no
    /// `after`, only that id (where a coordinator that has not seen the host starts).
    #[method(name = "host.events")]
    async fn events(&self, after: Option<u64>, limit: usize) -> RpcResult<HostEvents>;

    /// `host.events` after `after`, but when there is none yet, waits up to `wait_ms` for one:
    /// the coordinator's long poll, so a joined host's change reaches it at once.
    #[method(name = "host.events_wait")]
    async fn events_wait(&self, after: u64, limit: usize, wait_ms: u64) -> RpcResult<HostEvents>;

    /// Makes one of the host's balancers' pools hold the change's nodes, unless the host applied
    /// a newer change to it (fencing: an old change never puts back nodes taken out since).
    #[method(name = "host.route")]
    async fn route(&self, change: PoolChange) -> RpcResult<PoolApplied>;

    /// Starts, stops or restarts the proc.
    #[method(name = "host.act")]
    async fn act(&self, proc: String, action: ProcAction) -> RpcResult<()>;
}
