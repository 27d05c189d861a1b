//! A host reached over the peer link: `HostAgent` as calls of the host API on the connection the
//! host opened. Every call has a deadline (10 s, or a wait's own timeout plus that), and a link
//! that fails or times out answers `Unreachable`: nothing ever waits longer on a dead host (VR's
//! dashboard hung on one).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jsonrpsee::core::client::Client;
use jsonrpsee::core::ClientError;

use crate::api::codes;
use crate::api::host::HostApiClient;
use crate::model::deploy::release::ProcOrder;
use crate::model::uptest::UptestResult;
use crate::services::hosts::{HostAgent, HostError, HostProc};

/// The deadline of one host call.
pub const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// One connected host.
pub struct RemoteHost {
    name: String,
    client: Arc<Client>,
    deadline: Duration,
}

impl RemoteHost {
    /// The host `name` behind `client`.
    pub fn new(name: &str, client: Arc<Client>, deadline: Duration) -> RemoteHost {
        RemoteHost { name: name.to_string(), client, deadline }
    }

    /// Runs one call under `deadline`, mapping what can go wrong to a `HostError`.
    async fn call<T>(
        &self,
        what: &str,
        deadline: Duration,
        call: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, HostError> {
        match tokio::time::timeout(deadline, call).await {
            Err(_) => Err(self.unreachable(format!("{what} got no answer within {} s", deadline.as_secs()))),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(ClientError::Call(obj))) => Err(self.refused(obj)),
            Ok(Err(e)) => Err(self.unreachable(format!("{what}: {e}"))),
        }
    }

    /// A heartbeat: the host answers, within the deadline.
    pub async fn ping(&self) -> Result<(), HostError> {
        self.call("host.ping", self.deadline, self.client.ping()).await
    }

    fn unreachable(&self, why: String) -> HostError {
        HostError::Unreachable { host: self.name.clone(), why }
    }

    fn refused(&self, obj: jsonrpsee::types::ErrorObjectOwned) -> HostError {
        if obj.code() == codes::UNKNOWN_PROC {
            let data: Option<serde_json::Value> = obj.data().and_then(|d| serde_json::from_str(d.get()).ok());
            let field = |k: &str| {
                data.as_ref().and_then(|d| d.get(k)).and_then(|v| v.as_str()).unwrap_or_default().to_string()
            };
            return HostError::NoProc { host: self.name.clone(), proc: field("proc"), hint: field("hint") };
        }
        HostError::Failed { host: self.name.clone(), message: obj.message().to_string() }
    }
}

/// A wait's deadline: its own timeout plus the usual call deadline.
fn wait_deadline(timeout: Duration) -> Duration {
    timeout + CALL_DEADLINE
}

#[async_trait]
impl HostAgent for RemoteHost {
    fn name(&self) -> &str {
        &self.name
    }

    async fn procs(&self) -> Result<Vec<HostProc>, HostError> {
        let procs = self.call("host.procs", self.deadline, self.client.procs()).await?;
        Ok(procs.into_iter().map(|p| HostProc { name: p.name, state: p.state }).collect())
    }

    async fn proc_infos(&self) -> Result<Vec<crate::api::ProcInfo>, HostError> {
        self.call("host.proc_infos", self.deadline, self.client.proc_infos()).await
    }

    async fn port_is_free(&self, port: u16) -> Result<bool, HostError> {
        self.call("host.port_is_free", self.deadline, self.client.port_is_free(port)).await
    }

    async fn fetch(&self, artifact: &crate::model::deploy::release::ArtifactRef) -> Result<(), HostError> {
        // A transfer of a large build takes a while.
        let deadline = wait_deadline(Duration::from_secs(600));
        self.call("host.fetch", deadline, self.client.fetch(artifact.clone())).await
    }

    async fn deploy(&self, order: &ProcOrder) -> Result<(), HostError> {
        // A deploy may fetch the build first: give it the time a transfer takes.
        let deadline = wait_deadline(Duration::from_secs(600));
        self.call("host.deploy", deadline, self.client.deploy(order.clone())).await
    }

    async fn wait_running(&self, proc: &str, timeout: Duration) -> Result<(), HostError> {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.call("host.wait_running", wait_deadline(timeout), self.client.wait_running(proc.into(), ms))
            .await
    }

    async fn wait_listening(&self, proc: &str, port: u16, timeout: Duration) -> Result<(), HostError> {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let call = self.client.wait_listening(proc.into(), port, ms);
        self.call("host.wait_listening", wait_deadline(timeout), call).await
    }

    async fn uptest(&self, proc: &str) -> Result<Vec<UptestResult>, HostError> {
        // Uptests run on the host under its own timeout (uptest_timeout_secs, default 60 s).
        let deadline = wait_deadline(Duration::from_secs(120));
        self.call("host.uptest", deadline, self.client.uptest(proc.into())).await
    }

    async fn logs(
        &self,
        proc: &str,
        since: Option<String>,
        tail: Option<usize>,
    ) -> Result<Vec<String>, HostError> {
        self.call("host.logs", self.deadline, self.client.logs(proc.into(), since, tail)).await
    }

    async fn destroy(&self, proc: &str) -> Result<(), HostError> {
        let deadline = wait_deadline(Duration::from_secs(60));
        self.call("host.destroy", deadline, self.client.destroy(proc.into())).await
    }

    async fn events(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<crate::api::host::HostEvents, HostError> {
        self.call("host.events", self.deadline, self.client.events(after, limit)).await
    }

    async fn events_wait(
        &self,
        after: u64,
        limit: usize,
        wait: Duration,
    ) -> Result<crate::api::host::HostEvents, HostError> {
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let deadline = wait_deadline(wait);
        self.call("host.events_wait", deadline, self.client.events_wait(after, limit, wait_ms)).await
    }

    async fn route(
        &self,
        change: &crate::api::host::PoolChange,
    ) -> Result<crate::api::host::PoolApplied, HostError> {
        // nginx -t and a reload, or haproxy's drain of a removed server, can take a while.
        let deadline = wait_deadline(Duration::from_secs(60));
        self.call("host.route", deadline, self.client.route(change.clone())).await
    }

    async fn act(&self, proc: &str, action: crate::api::host::ProcAction) -> Result<(), HostError> {
        // A stop waits out the proc's grace period.
        let deadline = wait_deadline(Duration::from_secs(60));
        self.call("host.act", deadline, self.client.act(proc.into(), action)).await
    }
}
