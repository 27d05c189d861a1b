//! The host side of the host API: any `HostAgent` (on a host: its `LocalHost`) served to the
//! coordinator over the peer link. `HostError`s cross as stable codes, `NoProc` with its proc and
//! hint in the error data so the coordinator gets the same error back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jsonrpsee::core::RpcResult;
use jsonrpsee::types::ErrorObjectOwned;

use crate::api::codes;
use crate::api::host::{HostApiServer, HostHello, HostProcInfo, PROTOCOL};
use crate::model::deploy::release::ProcOrder;
use crate::model::uptest::UptestResult;
use crate::services::hosts::{HostAgent, HostError};

/// Serves one agent.
pub struct Served {
    /// The agent.
    pub agent: Arc<dyn HostAgent>,
}

fn wire(e: HostError) -> ErrorObjectOwned {
    match &e {
        HostError::NoProc { proc, hint, .. } => {
            let data = serde_json::json!({ "proc": proc, "hint": hint });
            ErrorObjectOwned::owned(codes::UNKNOWN_PROC, e.to_string(), Some(data))
        }
        HostError::Unreachable { .. } | HostError::Failed { .. } => {
            ErrorObjectOwned::owned(codes::HOST, e.to_string(), None::<()>)
        }
    }
}

#[async_trait]
impl HostApiServer for Served {
    async fn hello(&self) -> RpcResult<HostHello> {
        Ok(HostHello {
            name: self.agent.name().to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            protocol: PROTOCOL,
        })
    }

    async fn ping(&self) -> RpcResult<()> {
        Ok(())
    }

    async fn procs(&self) -> RpcResult<Vec<HostProcInfo>> {
        let procs = self.agent.procs().await.map_err(wire)?;
        Ok(procs.into_iter().map(|p| HostProcInfo { name: p.name, state: p.state }).collect())
    }

    async fn proc_infos(&self) -> RpcResult<Vec<crate::api::ProcInfo>> {
        self.agent.proc_infos().await.map_err(wire)
    }

    async fn port_is_free(&self, port: u16) -> RpcResult<bool> {
        self.agent.port_is_free(port).await.map_err(wire)
    }

    async fn fetch(&self, artifact: crate::model::deploy::release::ArtifactRef) -> RpcResult<()> {
        self.agent.fetch(&artifact).await.map_err(wire)
    }

    async fn deploy(&self, order: ProcOrder) -> RpcResult<()> {
        self.agent.deploy(&order).await.map_err(wire)
    }

    async fn wait_running(&self, proc: String, timeout_ms: u64) -> RpcResult<()> {
        self.agent.wait_running(&proc, Duration::from_millis(timeout_ms)).await.map_err(wire)
    }

    async fn wait_listening(&self, proc: String, port: u16, timeout_ms: u64) -> RpcResult<()> {
        self.agent.wait_listening(&proc, port, Duration::from_millis(timeout_ms)).await.map_err(wire)
    }

    async fn uptest(&self, proc: String) -> RpcResult<Vec<UptestResult>> {
        self.agent.uptest(&proc).await.map_err(wire)
    }

    async fn logs(&self, proc: String, since: Option<String>, tail: Option<usize>) -> RpcResult<Vec<String>> {
        self.agent.logs(&proc, since, tail).await.map_err(wire)
    }

    async fn destroy(&self, proc: String) -> RpcResult<()> {
        self.agent.destroy(&proc).await.map_err(wire)
    }

    async fn events(&self, after: Option<u64>, limit: usize) -> RpcResult<crate::api::host::HostEvents> {
        self.agent.events(after, limit).await.map_err(wire)
    }

    async fn events_wait(
        &self,
        after: u64,
        limit: usize,
        wait_ms: u64,
    ) -> RpcResult<crate::api::host::HostEvents> {
        // At most a minute: the caller's deadline is the wait plus its own.
        let wait = std::time::Duration::from_millis(wait_ms.min(60_000));
        self.agent.events_wait(after, limit, wait).await.map_err(wire)
    }

    async fn route(&self, change: crate::api::host::PoolChange) -> RpcResult<crate::api::host::PoolApplied> {
        self.agent.route(&change).await.map_err(wire)
    }

    async fn act(&self, proc: String, action: crate::api::host::ProcAction) -> RpcResult<()> {
        self.agent.act(&proc, action).await.map_err(wire)
    }
}
