//! The coordinator's one open port (`peer_listen`): TLS 1.3 (client certificates of the fleet's
//! CA), then HTTP/1.1 (hyper):
//!
//! - `POST /v1/join`: a host without a certificate, with a one-time token, gets its CSR signed.
//! - `GET /v1/host` (upgrade `vr-host/1`): a joined host opens its link; the coordinator then is
//!   the JSON-RPC client of the host API on that connection until it closes.
//! - `GET /v1/blobs/sha256/<hex>`: a joined host fetches an artifact of the store.
//! - `POST /v1/renew`: a joined host trades a CSR for a new certificate (the old one is refused
//!   from then on).
//!
//! A joined host's certificate must be the one the coordinator last issued to that host (the
//! `host_certs` allowlist): a deleted host's, or a replaced one, is refused. No plaintext port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::api::host::{HostApiClient, PROTOCOL};
use crate::services::builds::BuildStore;
use crate::services::peer::client::{JoinAnswer, JoinRequest, Refusal, RenewRequest, LINK_PROTOCOL};
use crate::services::peer::directory::Peers;
use crate::services::peer::pki::{self, Identity, KeyAndCert, Role};
use crate::services::peer::{link, tls};
use crate::services::state::State;

type Body = BoxBody<Bytes, std::io::Error>;

/// How long a TLS handshake may take.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// The largest join request (a CSR is ~0.5 kB).
const MAX_JOIN_BODY: usize = 64 << 10;

/// What the listener needs.
pub struct Coordinator {
    /// The model.
    pub state: State,
    /// Artifacts.
    pub store: BuildStore,
    /// Connected hosts.
    pub peers: Arc<Peers>,
    /// The fleet's CA.
    pub ca: KeyAndCert,
    /// TLS.
    pub tls: Arc<rustls::ServerConfig>,
}

impl Coordinator {
    /// The coordinator of a data dir: its CA and certificate made on first use.
    pub fn new(
        state: State,
        store: BuildStore,
        peers: Arc<Peers>,
        files: &crate::services::peer::identity::FleetFiles,
        host: &str,
    ) -> Result<Coordinator, String> {
        let (ca, own) = files.coordinator(host).map_err(|e| e.to_string())?;
        let tls = tls::server_config(&ca, &own).map_err(|e| e.to_string())?;
        Ok(Coordinator { state, store, peers, ca, tls })
    }

    /// The CA's pin, for `vrd join --ca-sha256`.
    pub fn pin(&self) -> String {
        self.ca.cert_der().map(|c| pki::fingerprint(&c)).unwrap_or_default()
    }
}

/// Binds `addr` (before vrd says it is ready, so a port in use stops it with a clear error).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("peer_listen {addr}: {e}: free the port or pick another with --peer-listen"))
}

/// Serves hosts until vrd stops.
pub fn spawn(listener: TcpListener, coordinator: Arc<Coordinator>) {
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((tcp, from)) => {
                    let c = Arc::clone(&coordinator);
                    tokio::spawn(async move { connection(c, tcp, from).await });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "peer listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
}

/// The client's certificate, as far as it goes.
#[derive(Clone)]
struct PeerCert {
    who: Identity,
    fingerprint: String,
}

async fn connection(c: Arc<Coordinator>, tcp: tokio::net::TcpStream, from: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let accepted =
        tokio::time::timeout(HANDSHAKE_DEADLINE, tokio_rustls::TlsAcceptor::from(c.tls.clone()).accept(tcp));
    let tls = match accepted.await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return tracing::info!(%from, error = %e, "peer listener: TLS refused"),
        Err(_) => return tracing::info!(%from, "peer listener: no TLS handshake within 10 s"),
    };
    let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.clone().into_owned());
    let peer = cert.and_then(|der| {
        let (who, _) = pki::identity_of(&der).ok()?;
        Some(PeerCert { who, fingerprint: pki::fingerprint(&der) })
    });
    let service = hyper::service::service_fn(move |req| {
        let (c, peer) = (Arc::clone(&c), peer.clone());
        async move { Ok::<_, Infallible>(route(c, peer, from, req).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!(%from, error = %e, "peer connection ended with an error");
    }
}

fn full(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let body = Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let body = serde_json::to_vec(&Refusal { error: message.into() }).unwrap_or_default();
    full(status, body)
}

async fn route(
    c: Arc<Coordinator>,
    peer: Option<PeerCert>,
    from: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::POST, "/v1/join") => join(&c, from, req).await,
        (Method::GET, "/v1/host") => match authorized(&c, peer).await {
            Ok(who) => link_up(c, who, req),
            Err(denied) => denied,
        },
        (Method::POST, "/v1/renew") => match authorized(&c, peer).await {
            Ok(host) => renew(&c, host, req).await,
            Err(denied) => denied,
        },
        (Method::GET, p) if p.starts_with("/v1/blobs/sha256/") => match authorized(&c, peer).await {
            Ok(_) => blob(&c, &p["/v1/blobs/sha256/".len()..]).await,
            Err(denied) => denied,
        },
        _ => refuse(
            StatusCode::NOT_FOUND,
            format!("no {} {path} here: this is a vr coordinator's peer port", req.method()),
        ),
    }
}

/// A joined host whose certificate is the current one of its name.
async fn authorized(c: &Coordinator, peer: Option<PeerCert>) -> Result<String, Response<Body>> {
    let Some(peer) = peer else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "a client certificate of this fleet is needed: join first (vrd join)",
        ));
    };
    if peer.who.role != Role::Host {
        return Err(refuse(StatusCode::FORBIDDEN, "only hosts may call this"));
    }
    match c.state.host_cert(peer.who.name.clone()).await {
        Ok(Some(current)) if current == peer.fingerprint => Ok(peer.who.name),
        Ok(_) => Err(refuse(
            StatusCode::FORBIDDEN,
            format!(
                "the certificate of host {} is revoked or replaced: join again with a new token (vr hosts token {})",
                peer.who.name, peer.who.name
            ),
        )),
        Err(e) => Err(refuse(StatusCode::SERVICE_UNAVAILABLE, format!("the coordinator's state failed: {e}"))),
    }
}

/// Signs `csr` for `host` and makes it the one certificate the host may connect with.
async fn issue(c: &Coordinator, host: &str, csr: &str) -> Response<Body> {
    let who = Identity { role: Role::Host, name: host.to_string() };
    let signed = pki::sign_csr(&c.ca, csr, &who).and_then(|pem| {
        let der = KeyAndCert { key_pem: String::new(), cert_pem: pem.clone() }.cert_der()?;
        let (_, not_after) = pki::identity_of(&der)?;
        Ok((pem, pki::fingerprint(&der), not_after))
    });
    let (cert, fingerprint, not_after) = match signed {
        Ok(s) => s,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if let Err(e) = c.state.set_host_cert(host.to_string(), fingerprint, not_after).await {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, format!("the coordinator's state failed: {e}"));
    }
    let answer = JoinAnswer { cert, ca: c.ca.cert_pem.clone() };
    full(StatusCode::OK, serde_json::to_vec(&answer).unwrap_or_default())
}

async fn renew(c: &Coordinator, host: String, req: Request<Incoming>) -> Response<Body> {
    let body = match Limited::new(req.into_body(), MAX_JOIN_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("the renewal could not be read: {e}")),
    };
    let Ok(ask) = serde_json::from_slice::<RenewRequest>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "the renewal is not {csr} JSON");
    };
    let answer = issue(c, &host, &ask.csr).await;
    if answer.status().is_success() {
        tracing::info!(host, "renewed a host's certificate");
    }
    answer
}

async fn join(c: &Coordinator, from: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let body = match Limited::new(req.into_body(), MAX_JOIN_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("the join request could not be read: {e}")),
    };
    let Ok(ask) = serde_json::from_slice::<JoinRequest>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "the join request is not {name, token, csr} JSON");
    };
    let hash = crate::services::peer::enroll::token_hash(&ask.token);
    match c.state.use_join_token(hash, ask.name.clone()).await {
        Ok(Ok(())) => {}
        Ok(Err(refused)) => {
            tracing::warn!(%from, host = %ask.name, why = %refused, "a join was refused");
            return refuse(StatusCode::FORBIDDEN, refused.to_string());
        }
        Err(e) => {
            return refuse(StatusCode::SERVICE_UNAVAILABLE, format!("the coordinator's state failed: {e}"))
        }
    }
    let answer = issue(c, &ask.name, &ask.csr).await;
    if answer.status().is_success() {
        tracing::info!(%from, host = %ask.name, "a host joined the fleet");
    }
    answer
}

/// Answers the upgrade and, on the upgraded connection, becomes the host API's client.
fn link_up(c: Arc<Coordinator>, host: String, mut req: Request<Incoming>) -> Response<Body> {
    let wanted =
        req.headers().get(hyper::header::UPGRADE).and_then(|v| v.to_str().ok()) == Some(LINK_PROTOCOL);
    if !wanted {
        return refuse(StatusCode::BAD_REQUEST, format!("the host link needs `Upgrade: {LINK_PROTOCOL}`"));
    }
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => return tracing::warn!(host, error = %e, "host link: the upgrade failed"),
        };
        if let Err(e) = hold_link(&c, &host, TokioIo::new(upgraded)).await {
            tracing::warn!(host, error = %e, "host link refused");
        }
    });
    let mut response = full(StatusCode::SWITCHING_PROTOCOLS, Vec::new());
    response
        .headers_mut()
        .insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("upgrade"));
    response
        .headers_mut()
        .insert(hyper::header::UPGRADE, hyper::header::HeaderValue::from_static(LINK_PROTOCOL));
    response
}

/// Registers the host's link once it says who it is, until the link closes.
async fn hold_link(c: &Coordinator, host: &str, io: TokioIo<hyper::upgrade::Upgraded>) -> Result<(), String> {
    let client = Arc::new(link::host_client(io).await?);
    let hello = tokio::time::timeout(Duration::from_secs(10), client.hello())
        .await
        .map_err(|_| "no hello within 10 s".to_string())?
        .map_err(|e| format!("hello: {e}"))?;
    if hello.protocol != PROTOCOL {
        return Err(format!(
            "it speaks peer protocol {} and this coordinator {PROTOCOL}: run the same vr version on both",
            hello.protocol
        ));
    }
    if hello.name != host {
        return Err(format!(
            "its certificate names {host} but it says it is {}: fix its host_name",
            hello.name
        ));
    }
    let (id, cut) = c.peers.connect(host, Arc::clone(&client), hello.version.clone());
    tracing::info!(host, version = %hello.version, "host connected");
    tokio::select! {
        why = client.on_disconnect() => tracing::warn!(host, why = %why, "host disconnected"),
        () = cut.notified() => tracing::warn!(host, "host link closed by the coordinator (deleted, or connected again)"),
    }
    c.peers.disconnect(host, id);
    Ok(())
}

async fn blob(c: &Coordinator, hex: &str) -> Response<Body> {
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return refuse(StatusCode::BAD_REQUEST, "an artifact is named by its sha256: 64 hex digits");
    }
    let path = c.store.artifact_path(&hex.to_ascii_lowercase());
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            return refuse(
                StatusCode::NOT_FOUND,
                format!("artifact sha256:{hex} is not in the coordinator's store ({e})"),
            )
        }
    };
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 << 10).map_ok(Frame::data);
    let mut response = Response::new(StreamBody::new(stream).boxed());
    response.headers_mut().insert(hyper::header::CONTENT_LENGTH, len.into());
    response
}
