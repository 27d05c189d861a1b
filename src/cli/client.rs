//! Connecting to vrd: the socket's location, the JSON-RPC clients over it (one HTTP request per
//! plain call, WebSocket for subscriptions), and errors that say what to do (start vrd, join its
//! group).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use jsonrpsee::client_transport::ws::{Url, WsTransportClientBuilder};
use jsonrpsee::core::client::{Client, ClientBuilder};

use super::oneshot::OneShot;
use crate::config::{DEFAULT_SOCKET, SOCKET_ENV};

/// `--socket`, else `$VR_SOCKET`, else the default.
pub fn socket_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os(SOCKET_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// Calls such as `runner run` last as long as the app runs.
const LONG_CALL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Connects to vrd's socket; errors say what to do (start vrd, join its group).
pub async fn open_socket(socket: &Path) -> anyhow::Result<tokio::net::UnixStream> {
    tokio::net::UnixStream::connect(socket).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => anyhow!(
            "vrd is not running at {}: start it (`systemctl start vrd`, or `vrd daemon --socket {}`), \
             or point --socket or ${SOCKET_ENV} at the socket it listens on",
            socket.display(),
            socket.display()
        ),
        std::io::ErrorKind::PermissionDenied => anyhow!(
            "permission denied on {}: join the group that owns it (see `ls -l {}`) or run as root",
            socket.display(),
            socket.display()
        ),
        _ => anyhow!("failed to connect to vrd at {}: {e}", socket.display()),
    })
}

/// The client for plain calls: one HTTP request per call (see [`OneShot`]).
pub async fn call(socket: &Path) -> anyhow::Result<OneShot> {
    match super::remote::get() {
        Some(remote) => OneShot::connect_remote(remote).await,
        None => OneShot::connect(socket).await,
    }
}

/// The WebSocket client, for subscriptions (`logs -f`, `events -f`).
pub async fn connect(socket: &Path) -> anyhow::Result<Client> {
    if let Some(remote) = super::remote::get() {
        return connect_remote(remote).await;
    }
    let stream = open_socket(socket).await?;
    let url = Url::parse("ws://vrd.local/").map_err(|e| anyhow!("bad url: {e}"))?;
    let (tx, rx) = WsTransportClientBuilder::default()
        .max_request_size(64 << 20)
        .max_response_size(64 << 20)
        .build_with_stream(url, stream)
        .await
        .map_err(|e| anyhow!("failed to talk to vrd at {}: {e}", socket.display()))?;
    Ok(ClientBuilder::default().request_timeout(LONG_CALL).build_with_tokio(tx, rx))
}

/// The WebSocket client over TLS to a remote vrd (`vr --url`), as the token's user.
async fn connect_remote(remote: &super::remote::Remote) -> anyhow::Result<Client> {
    let stream = remote.connect().await?;
    let url = Url::parse(&format!("ws://{}/rpc", remote.authority())).map_err(|e| anyhow!("bad url: {e}"))?;
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, remote.authorization().parse()?);
    let (tx, rx) = WsTransportClientBuilder::default()
        .max_request_size(64 << 20)
        .max_response_size(64 << 20)
        .set_headers(headers)
        .build_with_stream(url, stream)
        .await
        .map_err(|e| anyhow!("failed to talk to vrd at {}: {e}", remote.authority()))?;
    Ok(ClientBuilder::default().request_timeout(LONG_CALL).build_with_tokio(tx, rx))
}

/// Turns a call error into a message for people: the daemon's message as it is, and the causes
/// under it, one per line.
pub fn explain(e: jsonrpsee::core::ClientError) -> anyhow::Error {
    match e {
        jsonrpsee::core::ClientError::Call(obj) => anyhow!("{}", crate::api::ApiError::from(&obj)),
        other => anyhow!("the call to vrd failed: {other}"),
    }
}
