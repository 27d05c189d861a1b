//! Both ends of a peer link once its byte stream exists (TLS over TCP in vrd, a memory pipe in
//! tests): the host serves its host API on it, and the coordinator is the JSON-RPC client
//! (WebSocket framing, as vrd's socket). The roles are the reverse of who dialled: the host
//! opened the connection, so no host needs an open port.

use std::sync::Arc;
use std::time::Duration;

use jsonrpsee::client_transport::ws::{Url, WsTransportClientBuilder};
use jsonrpsee::core::client::{Client, ClientBuilder};
use jsonrpsee::server::{serve_with_graceful_shutdown, stop_channel, ServerConfig};
use jsonrpsee::Methods;
use tokio::io::{AsyncRead, AsyncWrite};

use super::served::Served;
use crate::api::host::HostApiServer;
use crate::services::hosts::HostAgent;

/// Orders carry whole releases; procs lists of big hosts are long.
const MAX_MESSAGE: u32 = 64 << 20;
/// Both ends ping every 5 s (Diego's presence interval) and close a link silent for 15 s, so a
/// dead or partitioned peer is noticed within 15 s even when no call is in flight.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// See [`HEARTBEAT`].
pub const SILENCE_LIMIT: Duration = Duration::from_secs(15);

/// Serves `agent`'s host API on `io` until the coordinator closes the link (or it breaks).
pub async fn serve_host_api<S>(io: S, agent: Arc<dyn HostAgent>) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let methods: Methods = Served { agent }.into_rpc().into();
    // jsonrpsee answers the WebSocket upgrade and then serves the connection in a task of its
    // own, which stops when the server handle goes: the handle lives until that task has let go
    // of the stream, which `Watched` tells.
    let (closed_tx, closed) = tokio::sync::oneshot::channel::<()>();
    let io = Watched { inner: io, _closed: closed_tx };
    let (stop_handle, server_handle) = stop_channel();
    let ping = jsonrpsee::server::PingConfig::new().ping_interval(HEARTBEAT).inactive_limit(SILENCE_LIMIT);
    let config = ServerConfig::builder()
        .max_request_body_size(MAX_MESSAGE)
        .max_response_body_size(MAX_MESSAGE)
        .enable_ws_ping(ping)
        .build();
    let svc = jsonrpsee::server::Server::builder()
        .set_config(config)
        .to_service_builder()
        .build(methods, stop_handle.clone());
    let served = serve_with_graceful_shutdown(io, svc, std::future::pending::<()>()).await;
    let _ = closed.await;
    drop(server_handle);
    served.map_err(|e| e.to_string())
}

/// A stream that says when it is dropped (its sender goes with it).
struct Watched<S> {
    inner: S,
    _closed: tokio::sync::oneshot::Sender<()>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The coordinator's client of the host API over `io`.
pub async fn host_client<S>(io: S) -> Result<Client, String>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let url = Url::parse("ws://host.vr/").map_err(|e| e.to_string())?;
    let (tx, rx) = WsTransportClientBuilder::default()
        .max_request_size(MAX_MESSAGE)
        .max_response_size(MAX_MESSAGE)
        .build_with_stream(url, io)
        .await
        .map_err(|e| format!("the host did not answer the link's handshake: {e}"))?;
    // Deadlines are per call (`remote::CALL_DEADLINE` and the waits'); this is only a backstop.
    let ping = jsonrpsee::core::client::async_client::PingConfig::new()
        .ping_interval(HEARTBEAT)
        .inactive_limit(SILENCE_LIMIT);
    Ok(ClientBuilder::default()
        .request_timeout(Duration::from_secs(3600))
        .enable_ws_ping(ping)
        .build_with_tokio(tx, rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::deploy::release::{ArtifactRef, BuildRef, ImageRef, Placement, ProcOrder, ReleaseSpec};
    use crate::services::hosts::fake::{FakeHost, Journal};
    use crate::services::hosts::HostError;
    use crate::services::peer::remote::RemoteHost;

    fn order(port: u16) -> ProcOrder {
        let build = BuildRef {
            id: 1,
            version: "v1".into(),
            url: String::new(),
            md5: "f".repeat(32),
            artifact: Some(ArtifactRef { sha256: "a".repeat(64), size: 4 }),
            image: ImageRef {
                name: "base".into(),
                url: "/img.tar.gz".into(),
                md5: "e".repeat(32),
                artifact: None,
            },
            env: Default::default(),
        };
        let release = ReleaseSpec {
            app: "hello".into(),
            build,
            config: Default::default(),
            env: Default::default(),
            volumes: Vec::new(),
            run_as: "nobody".into(),
            mem_limit: None,
            memsw_limit: None,
            network: Default::default(),
            seccomp: Default::default(),
        };
        let at = Placement {
            config_name: "prod".into(),
            proc_name: "web".into(),
            host: "h1".into(),
            port,
            address: None,
        };
        ProcOrder { release, at }
    }

    async fn linked(agent: Arc<dyn HostAgent>) -> RemoteHost {
        let (host_end, coordinator_end) = tokio::io::duplex(1 << 16);
        tokio::spawn(serve_host_api(host_end, agent));
        let client = host_client(coordinator_end).await.unwrap();
        RemoteHost::new("h1", Arc::new(client), Duration::from_secs(10))
    }

    #[tokio::test]
    async fn a_remote_host_does_what_its_agent_does_and_keeps_its_errors() {
        let journal = Journal::default();
        let fake = FakeHost::new("h1", &journal);
        let remote = linked(fake.clone()).await;
        let order = order(5001);
        remote.deploy(&order).await.unwrap();
        let name = order.name().unwrap().to_string();
        assert_eq!(fake.proc_names(), std::slice::from_ref(&name));
        assert_eq!(remote.procs().await.unwrap().len(), 1);
        remote.wait_running(&name, Duration::from_secs(1)).await.unwrap();
        assert!(remote.uptest(&name).await.unwrap()[0].passed);
        let lines = remote.logs(&name, None, Some(10)).await.unwrap();
        assert!(lines[0].ends_with(&format!("{name} on h1")), "{lines:?}");
        remote.destroy(&name).await.unwrap();
        match remote.destroy(&name).await.unwrap_err() {
            HostError::NoProc { proc, .. } => assert_eq!(proc, name),
            other => panic!("{other}"),
        }
        fake.set_unreachable(true);
        assert!(matches!(remote.procs().await.unwrap_err(), HostError::Failed { .. }));
        assert_eq!(journal.entries().len(), 4, "{:?}", journal.entries());
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_that_stops_answering_is_unreachable_after_the_deadline() {
        let fake = FakeHost::new("h1", &Journal::default());
        let remote = linked(fake.clone()).await;
        fake.set_hanging(true);
        let started = tokio::time::Instant::now();
        let err = remote.procs().await.unwrap_err();
        assert!(matches!(err, HostError::Unreachable { .. }), "{err}");
        assert!(err.to_string().contains("no answer within 10 s"), "{err}");
        assert_eq!(started.elapsed().as_secs(), 10, "exactly the deadline, never longer");
    }
}
