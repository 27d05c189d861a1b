//! The HTTPS listener (issue 14 §2, first part): the same JSON-RPC API as the socket, at
//! `POST /rpc` (and a WebSocket there for subscriptions), for callers that are not on the host,
//! `vr --url` among them. Each request carries an API token
//! (`Authorization: Bearer vrt_...`); the token's user and role become the call's principal, so
//! the operations layer authorises and audits it exactly as a socket call. No token, or a dead
//! one: 401 and nothing runs. TLS by rustls, with the operator's certificate or one vrd's CA
//! signs for this host.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use jsonrpsee::server::{HttpBody, HttpResponse, ServerConfig};
use jsonrpsee::Methods;
use tower::ServiceExt;

mod assets;
mod auth;
mod login;
pub mod rest;
mod streams;

use super::ops::{Ops, ReceivedFds};
use super::rpc::RpcHandler;
use super::{Daemon, DaemonError};
use crate::api::VrdServer;
use crate::config::DaemonConfig;
use crate::services::peer::identity::FleetFiles;
use crate::services::peer::pki::{self, KeyAndCert};
use crate::services::users::Users;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 512;

/// Binds `http_listen` and serves until vrd stops; errors name the setting to change.
pub async fn spawn(config: &DaemonConfig, addr: SocketAddr, daemon: Arc<Daemon>) -> Result<(), DaemonError> {
    let tls = tls_config(config, addr)?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        DaemonError::Start(format!(
            "failed to listen for HTTPS on {addr}: {e} (set http_listen to a free address)"
        ))
    })?;
    tracing::info!(%addr, "serving the HTTPS API");
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let users = Users::new(daemon.supervisor.state().clone());
    let streams = Arc::new(Ops::new(Arc::clone(&daemon)));
    let methods: Methods = RpcHandler { ops: Ops::new(daemon) }.into_rpc().into();
    let (stop_handle, server_handle) = jsonrpsee::server::stop_channel();
    let rpc = jsonrpsee::server::Server::builder()
        .set_config(ServerConfig::builder().max_request_body_size(8 << 20).build())
        .to_service_builder()
        .build(methods, stop_handle);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        // Held for as long as the listener runs: dropping it would stop the service.
        let _running = server_handle;
        loop {
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else { return };
            let (tcp, from) = match listener.accept().await {
                Ok((tcp, peer)) => (tcp, peer.ip()),
                Err(e) => {
                    tracing::warn!(error = %e, "failed to accept an HTTPS connection");
                    continue;
                }
            };
            let (acceptor, users, rpc, streams) =
                (acceptor.clone(), users.clone(), rpc.clone(), Arc::clone(&streams));
            tokio::spawn(async move {
                let _permit = permit;
                let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| {
                    answer(req, from, users.clone(), Arc::clone(&streams), rpc.clone())
                });
                let served = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
                if let Err(e) = served {
                    tracing::debug!(error = %e, "an HTTPS connection ended badly");
                }
            });
        }
    });
    Ok(())
}

/// The operator's certificate, or one for this host signed by vrd's CA.
fn tls_config(config: &DaemonConfig, addr: SocketAddr) -> Result<Arc<rustls::ServerConfig>, DaemonError> {
    let start = |what: &str, e: &dyn std::fmt::Display| DaemonError::Start(format!("HTTPS: {what}: {e}"));
    let own = match &config.http_tls {
        Some((cert, key)) => {
            let read = |p: &std::path::Path| {
                std::fs::read_to_string(p).map_err(|e| start(&format!("failed to read {}", p.display()), &e))
            };
            KeyAndCert { cert_pem: read(cert)?, key_pem: read(key)? }
        }
        None => {
            let ca = FleetFiles::new(&config.data_dir)
                .ca(&config.host_name)
                .map_err(|e| start("failed to make or read vrd's CA", &e))?;
            let mut names = vec![config.host_name.clone(), "localhost".into(), "127.0.0.1".into()];
            if !addr.ip().is_unspecified() && !addr.ip().is_loopback() {
                names.push(addr.ip().to_string());
            }
            pki::issue_web(&ca, &names).map_err(|e| start("failed to sign a certificate", &e))?
        }
    };
    crate::services::peer::tls::web_server_config(&own)
        .map_err(|e| start("the certificate or key is unusable (PEM, the key matching the certificate)", &e))
}

/// One request: `/login`, `/logout`, or `/rpc` as the caller's user; anything else is 404.
async fn answer(
    mut req: hyper::Request<hyper::body::Incoming>,
    from: std::net::IpAddr,
    users: Users,
    streams: Arc<Ops>,
    rpc: impl tower::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = HttpResponse,
            Error = Box<dyn std::error::Error + Send + Sync>,
        > + Clone,
) -> Result<HttpResponse, std::convert::Infallible> {
    match req.uri().path() {
        "/login" => return Ok(login::login(req, from, &users).await),
        "/session" => return Ok(login::session(&req, &users).await),
        path if req.method() == Method::GET && assets::file(path).is_some() => {
            return Ok(assets::file(path).unwrap_or_else(|| plain(StatusCode::NOT_FOUND, "not found")));
        }
        "/logout" => return Ok(login::logout(req, &users).await),
        "/metrics" if req.method() == Method::GET => {
            return Ok(match auth::principal(&req, &users, true).await {
                Ok(who) => match streams.metrics_read(&who).await {
                    Ok(text) => {
                        let mut response = HttpResponse::new(HttpBody::from(text));
                        response.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static(crate::services::metrics::CONTENT_TYPE),
                        );
                        response
                    }
                    Err(e) => {
                        json(status_of(e.code), serde_json::json!({ "error": e.full(), "code": e.code }))
                    }
                },
                Err(refusal) => refusal,
            });
        }
        "/rpc" => {}
        path if path.starts_with("/api/v1/streams/") => {
            if req.method() != Method::GET {
                return Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "streams are read with GET"));
            }
            return Ok(match auth::principal(&req, &users, true).await {
                Ok(who) => streams::stream(&req, &streams, &who).await,
                Err(refusal) => refusal,
            });
        }
        path if path.starts_with("/api/v1/") => {
            // Reads need no CSRF token; a change made with a browser session does.
            let reads = req.method() == Method::GET;
            return Ok(match auth::principal(&req, &users, reads).await {
                Ok(who) => rest::answer(req, &streams, &who).await,
                Err(refusal) => refusal,
            });
        }
        _ => return Ok(plain(StatusCode::NOT_FOUND, "not found: the API is at POST /rpc and under /api/v1")),
    }
    // POST: one call; GET with a WebSocket upgrade: subscriptions (`vr --url ... logs -f`).
    let websocket = req.method() == Method::GET
        && req
            .headers()
            .get(hyper::header::UPGRADE)
            .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if req.method() != Method::POST && !websocket {
        return Ok(plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "the API takes POST /rpc (JSON-RPC 2.0), or a WebSocket there",
        ));
    }
    let principal = match auth::principal(&req, &users, websocket).await {
        Ok(p) => p,
        Err(refusal) => return Ok(refusal),
    };
    req.extensions_mut().insert(principal);
    req.extensions_mut().insert(ReceivedFds::default());
    Ok(rpc.oneshot(req).await.unwrap_or_else(|e| plain(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())))
}

/// The HTTP status of an API error code: what a REST client or a browser branches on.
fn status_of(code: i32) -> StatusCode {
    use crate::api::codes;
    match code {
        codes::NOT_FOUND | codes::UNKNOWN_PROC | codes::UNKNOWN_BUILD => StatusCode::NOT_FOUND,
        codes::DENIED => StatusCode::FORBIDDEN,
        codes::EXISTS | codes::BUSY | codes::REFERENCE => StatusCode::CONFLICT,
        codes::TOO_MANY_CONNECTIONS => StatusCode::TOO_MANY_REQUESTS,
        codes::NOT_LEADER => StatusCode::MISDIRECTED_REQUEST,
        codes::NO_ROOM => StatusCode::INSUFFICIENT_STORAGE,
        codes::INVALID | codes::USER | codes::NOT_SET_UP => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A JSON answer `{"error": message}` with `status`.
fn plain(status: StatusCode, message: &str) -> HttpResponse {
    json(status, serde_json::json!({ "error": message }))
}

/// A JSON answer.
fn json(status: StatusCode, value: serde_json::Value) -> HttpResponse {
    let mut response = HttpResponse::new(HttpBody::from(value.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    response
}

/// 401, saying what to do.
fn unauthorized(message: &str) -> HttpResponse {
    let mut response = plain(StatusCode::UNAUTHORIZED, message);
    response
        .headers_mut()
        .insert(hyper::header::WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static("Bearer"));
    response
}
