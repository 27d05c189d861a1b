//! `GET /metrics` over plain HTTP on `metrics_listen` (off by default): the gauges that describe
//! a state are read from the services at each scrape, then every family is encoded
//! ([`crate::services::metrics`]). Anything else gets 404; a scrape never waits on another host.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::{Daemon, DaemonError};
use crate::services::metrics::{metrics, CONTENT_TYPE};

/// Binds `addr` (an error names the setting to change) and serves scrapes until vrd stops.
pub async fn spawn(addr: SocketAddr, daemon: Arc<Daemon>) -> Result<(), DaemonError> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        DaemonError::Start(format!("failed to listen for metrics on {addr}: {e} (set metrics_listen to a free address, or remove it)"))
    })?;
    tracing::info!(%addr, "serving /metrics");
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "failed to accept a metrics connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let daemon = Arc::clone(&daemon);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| answer(req, Arc::clone(&daemon)));
                let served = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if let Err(e) = served {
                    tracing::debug!(error = %e, "a metrics connection ended badly");
                }
            });
        }
    });
    Ok(())
}

async fn answer<B>(
    req: Request<B>,
    daemon: Arc<Daemon>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let response = if req.method() == Method::GET && req.uri().path() == "/metrics" {
        Response::builder()
            .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(Full::from(scrape(&daemon).await))
    } else {
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::from("vrd serves only GET /metrics here\n"))
    };
    Ok(response.unwrap_or_else(|_| Response::new(Full::from(""))))
}

/// What a scrape gets: the state gauges read now, then every family encoded.
pub async fn scrape(daemon: &Daemon) -> String {
    refresh(daemon).await;
    metrics().encode()
}

/// Sets the gauges that describe a state: this host's procs by state, the store's bytes, and (on
/// a coordinator) each joined host's heartbeat age.
async fn refresh(daemon: &Daemon) {
    match daemon.supervisor.list().await {
        Ok(procs) => {
            let mut by_state: BTreeMap<&'static str, i64> = BTreeMap::new();
            for p in &procs {
                *by_state.entry(p.state.as_str()).or_default() += 1;
            }
            let host = &daemon.host;
            metrics().set_procs(by_state.into_iter().map(|(s, n)| (host.clone(), s.to_string(), n)));
        }
        Err(e) => tracing::warn!(error = %e, "metrics: failed to list the procs"),
    }
    let store = daemon.builds.store_dir();
    let bytes = tokio::task::spawn_blocking(move || dir_bytes(&store)).await.unwrap_or_default();
    metrics().set_store_bytes("artifacts", bytes);
    let now = SystemTime::now();
    let ages = daemon
        .fleet
        .peers
        .heard()
        .into_iter()
        .map(|(host, at)| (host, now.duration_since(at).unwrap_or_default()));
    metrics().set_heartbeat_ages(ages);
}

/// The bytes of the files directly in `dir` (the store is flat: one file per sha256).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum()
}
