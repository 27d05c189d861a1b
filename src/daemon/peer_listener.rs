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
//! - `POST /v1/forward`: another coordinator of the model (a standby) hands this one (the
//!   leader) a leader's duty, as the caller who asked it (issue 15).
//!
//! A joined host's certificate must be the one the coordinator last issued to that host (the
//! `host_certs` allowlist): a deleted host's, or a replaced one, is refused. Another coordinator's
//! must be the one it recorded in the model (`coordinators`). A standby refuses host links with
//! 421 and the leader's address, which the host dials next. No plaintext port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::ops::Ops;
use super::Daemon;
use crate::api::forward::ForwardedCall;
use crate::api::host::{HostApiClient, PROTOCOL};
use crate::services::builds::BuildStore;
use crate::services::peer::client::{
    JoinAnswer, JoinRequest, Refusal, RenewRequest, COORDINATORS_HEADER, LINK_PROTOCOL,
};
use crate::services::peer::coordinators::CoordinatorClient;
use crate::services::peer::directory::Peers;
use crate::services::peer::pki::{self, Identity, KeyAndCert, Role};
use crate::services::peer::{link, tls};
use crate::services::state::{CoordinatorRecord, State};

type Body = BoxBody<Bytes, std::io::Error>;

/// How long a TLS handshake may take.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// The largest join request (a CSR is ~0.5 kB).
const MAX_JOIN_BODY: usize = 64 << 10;
/// The largest forwarded call (a dispatch's parameters are small).
const MAX_FORWARD_BODY: usize = 1 << 20;

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
    /// This coordinator's host name.
    pub name: String,
    /// The sha256 of its own certificate.
    pub cert_sha256: String,
    /// Its client for the other coordinators.
    pub client: CoordinatorClient,
    /// The daemon, once made: forwarded calls run its operations, host links ask who leads.
    daemon: OnceLock<Weak<Daemon>>,
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
        let cert_sha256 = own.cert_der().map(|c| pki::fingerprint(&c)).map_err(|e| e.to_string())?;
        let client = CoordinatorClient::new(&ca, &own)?;
        let name = host.to_string();
        Ok(Coordinator { state, store, peers, ca, tls, name, cert_sha256, client, daemon: OnceLock::new() })
    }

    /// Hands the listener the daemon it serves (once it is made).
    pub fn attach(&self, daemon: &Arc<Daemon>) {
        let _ = self.daemon.set(Arc::downgrade(daemon));
    }

    fn daemon(&self) -> Option<Arc<Daemon>> {
        self.daemon.get().and_then(Weak::upgrade)
    }

    /// This coordinator as the model records it, reached at `address`.
    pub fn record(&self, address: Option<String>) -> CoordinatorRecord {
        CoordinatorRecord {
            name: self.name.clone(),
            address,
            ca_sha256: self.pin(),
            cert_sha256: self.cert_sha256.clone(),
        }
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
    let body = serde_json::to_vec(&Refusal { error: message.into(), leader: None }).unwrap_or_default();
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
            Ok(who) => match standby_refusal(&c).await {
                Some(refused) => refused,
                None => link_up(c, who, req).await,
            },
            Err(denied) => denied,
        },
        (Method::POST, "/v1/forward") => match authorized_coordinator(&c, peer).await {
            Ok(from) => forwarded(&c, from, req).await,
            Err(denied) => denied,
        },
        (Method::POST, "/v1/renew") => match authorized(&c, peer).await {
            Ok(host) => renew(&c, host, req).await,
            Err(denied) => denied,
        },
        (Method::GET, p) if p.starts_with("/v1/blobs/sha256/") => {
            let hex = &p["/v1/blobs/sha256/".len()..];
            // A host's ask may fill this store from another coordinator; another coordinator's
            // never does (two stores lacking one artifact would ask each other in turn).
            if peer.as_ref().is_some_and(|p| p.who.role == Role::Coordinator) {
                match authorized_coordinator(&c, peer).await {
                    Ok(_) => blob(&c, hex, false).await,
                    Err(denied) => denied,
                }
            } else {
                match authorized(&c, peer).await {
                    Ok(_) => blob(&c, hex, true).await,
                    Err(denied) => denied,
                }
            }
        }
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
    let recorded = c.state.host_cert(peer.who.name.clone()).await;
    let stale = format!(
        "the certificate of host {} is revoked or replaced: join again with a new token (vr hosts token {})",
        peer.who.name, peer.who.name
    );
    the_recorded_one(peer, recorded, stale).map_err(|(status, why)| refuse(status, why))
}

/// Another coordinator of this model, by the certificate it recorded there.
async fn authorized_coordinator(c: &Coordinator, peer: Option<PeerCert>) -> Result<String, Response<Body>> {
    let Some(peer) = peer.filter(|p| p.who.role == Role::Coordinator) else {
        return Err(refuse(StatusCode::FORBIDDEN, "only another coordinator of this fleet may call this"));
    };
    let recorded = c.state.coordinator_cert(peer.who.name.clone()).await;
    let stale = format!(
        "coordinator {} presented a certificate it has not recorded in the model: restart it so it records its current one",
        peer.who.name
    );
    the_recorded_one(peer, recorded, stale).map_err(|(status, why)| refuse(status, why))
}

/// The peer's name when its certificate is the one the model records for it (`recorded`);
/// otherwise the refusal `stale` says why.
fn the_recorded_one(
    peer: PeerCert,
    recorded: Result<Option<String>, crate::services::state::StateError>,
    stale: String,
) -> Result<String, (StatusCode, String)> {
    match recorded {
        Ok(Some(current)) if current == peer.fingerprint => Ok(peer.who.name),
        Ok(_) => Err((StatusCode::FORBIDDEN, stale)),
        Err(e) => Err((StatusCode::SERVICE_UNAVAILABLE, format!("the coordinator's state failed: {e}"))),
    }
}

/// On a standby: a refusal of a host's link naming the leader, whom the host dials next.
async fn standby_refusal(c: &Coordinator) -> Option<Response<Body>> {
    let daemon = c.daemon()?;
    if daemon.leadership.leads() {
        return None;
    }
    let held = c.state.lease_holder().await.ok().flatten().filter(|h| h.expires_in_ms > 0);
    let (error, leader) = match held {
        Some(h) => {
            (format!("coordinator {} is a standby: link to the leader, {}", c.name, h.holder), h.address)
        }
        None => (
            format!("coordinator {} is a standby and no coordinator leads right now: try again", c.name),
            None,
        ),
    };
    let body = serde_json::to_vec(&Refusal { error, leader }).unwrap_or_default();
    Some(full(StatusCode::MISDIRECTED_REQUEST, body))
}

/// Runs a call another coordinator forwarded, as the caller who made it there.
async fn forwarded(c: &Coordinator, from: String, req: Request<Incoming>) -> Response<Body> {
    let body = match Limited::new(req.into_body(), MAX_FORWARD_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return refuse(StatusCode::BAD_REQUEST, format!("the forwarded call could not be read: {e}"))
        }
    };
    let call: ForwardedCall = match serde_json::from_slice(&body) {
        Ok(call) => call,
        Err(e) => {
            return refuse(StatusCode::BAD_REQUEST, format!("the forwarded call is not one vr reads: {e}"))
        }
    };
    let Some(daemon) = c.daemon() else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "this coordinator is still starting: try again");
    };
    let answer = Ops::new(daemon).forwarded(from, call).await;
    full(StatusCode::OK, serde_json::to_vec(&answer).unwrap_or_default())
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
    let answer = JoinAnswer { cert, ca: c.ca.cert_pem.clone(), coordinators: coordinator_addresses(c).await };
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
async fn link_up(c: Arc<Coordinator>, host: String, mut req: Request<Incoming>) -> Response<Body> {
    let wanted =
        req.headers().get(hyper::header::UPGRADE).and_then(|v| v.to_str().ok()) == Some(LINK_PROTOCOL);
    if !wanted {
        return refuse(StatusCode::BAD_REQUEST, format!("the host link needs `Upgrade: {LINK_PROTOCOL}`"));
    }
    let coordinators = coordinator_addresses(&c).await;
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
    if let Ok(list) = hyper::header::HeaderValue::from_str(&coordinators.join(",")) {
        response.headers_mut().insert(COORDINATORS_HEADER, list);
    }
    response
}

/// Every coordinator's peer address, this one's first: what a host dials when its link breaks.
async fn coordinator_addresses(c: &Coordinator) -> Vec<String> {
    let all = c.state.coordinators().await.unwrap_or_default();
    let (mine, others): (Vec<_>, Vec<_>) = all.into_iter().partition(|r| r.name == c.name);
    mine.into_iter().chain(others).filter_map(|r| r.address).collect()
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

async fn blob(c: &Coordinator, hex: &str, fill: bool) -> Response<Body> {
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return refuse(StatusCode::BAD_REQUEST, "an artifact is named by its sha256: 64 hex digits");
    }
    let hex = hex.to_ascii_lowercase();
    if fill {
        if let Err(e) = c.store.ensure_artifact(&hex).await {
            return refuse(
                StatusCode::NOT_FOUND,
                format!("artifact sha256:{hex} is in no coordinator's store: {e}"),
            );
        }
    }
    let path = c.store.artifact_path(&hex);
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
