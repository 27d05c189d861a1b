//! A host's calls to its coordinator: one HTTP/1.1 exchange per TLS connection (hyper), for
//! joining (`POST /v1/join`, before the host has a certificate), opening the link (`GET /v1/host`
//! upgraded to the host API) and fetching artifacts (`GET /v1/blobs/sha256/<hex>`). Every step
//! has a deadline.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::identity::{HostIdentity, Link};
use super::pki::{self, KeyAndCert};
use super::tls;
use crate::model::deploy::release::ArtifactRef;
use crate::services::hosts::ArtifactSource;

/// How long connecting (TCP and TLS) may take.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// The upgrade token of the host link.
pub const LINK_PROTOCOL: &str = "vr-host/1";

/// What a joining host sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The host name the token was made for.
    pub name: String,
    /// The one-time token.
    pub token: String,
    /// A CSR for the key the host made (PEM).
    pub csr: String,
}

/// What the coordinator answers a join with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinAnswer {
    /// The host's certificate (PEM).
    pub cert: String,
    /// The fleet's CA (PEM).
    pub ca: String,
    /// Every coordinator's peer address, the answering one first (none from an older one).
    #[serde(default)]
    pub coordinators: Vec<String>,
}

/// An error answer: what went wrong and what to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refusal {
    /// The message.
    pub error: String,
    /// A standby's refusal of a host link: where the leader is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
}

/// The header of a host link's answer listing every coordinator's address, the answering one
/// first: where the host dials when the link breaks.
pub const COORDINATORS_HEADER: &str = "vr-coordinators";

/// The socket buffer below TLS on a host's connections to its coordinator.
const READ_BUFFER: usize = 256 << 10;

/// Opens a TLS connection to the coordinator and an HTTP/1 client on it.
pub(super) async fn dial(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<SendRequest<Full<Bytes>>, String> {
    let connect = async {
        let tcp =
            tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect to {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        // rustls reads the socket 4 kB at a time; a buffer below it makes that one large read
        // per many records (an artifact's 100 MB would otherwise take 25 000 reads).
        let tcp = tokio::io::BufReader::with_capacity(READ_BUFFER, tcp);
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(tls::coordinator_name(), tcp)
            .await
            .map_err(|e| format!("TLS with {addr}: {e}"))?;
        // Large reads: a body arrives in frames as big as the read buffer, each handed from the
        // connection's task to the reader's, so 8 kB reads would mean 12 000 hand-offs per 100 MB.
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .read_buf_exact_size(Some(READ_BUFFER))
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP with {addr}: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok::<_, String>(sender)
    };
    tokio::time::timeout(CONNECT_DEADLINE, connect)
        .await
        .map_err(|_| format!("{addr} did not answer within {} s", CONNECT_DEADLINE.as_secs()))?
}

/// The error text of a non-success answer.
pub(super) async fn refusal(response: hyper::Response<hyper::body::Incoming>) -> String {
    refusal_of(response).await.error
}

/// A non-success answer as the coordinator meant it.
async fn refusal_of(response: hyper::Response<hyper::body::Incoming>) -> Refusal {
    let status = response.status();
    let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    serde_json::from_slice::<Refusal>(&body).unwrap_or_else(|_| Refusal {
        error: format!("the coordinator answered {status}: {}", String::from_utf8_lossy(&body)),
        leader: None,
    })
}

/// Joins the fleet of the coordinator at `addr`: makes a key here, checks the coordinator's CA
/// against `pin`, has the CSR signed with `token`. Returns the identity to save.
pub async fn join(addr: &str, pin: &str, name: &str, token: &str) -> Result<HostIdentity, String> {
    let (key_pem, csr) = pki::new_key_and_csr(name).map_err(|e| e.to_string())?;
    let mut sender = dial(addr, tls::join_config(pin).map_err(|e| e.to_string())?).await?;
    let body = serde_json::to_vec(&JoinRequest { name: name.into(), token: token.into(), csr })
        .map_err(|e| e.to_string())?;
    let request = hyper::Request::post("/v1/join")
        .header("host", pki::COORDINATOR_SERVER_NAME)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| format!("join: {e}"))?;
    if !response.status().is_success() {
        return Err(refusal(response).await);
    }
    let body = response.into_body().collect().await.map_err(|e| format!("join: {e}"))?.to_bytes();
    let answer: JoinAnswer = serde_json::from_slice(&body).map_err(|e| format!("join: a bad answer: {e}"))?;
    Ok(HostIdentity {
        link: Link {
            coordinator: addr.to_string(),
            name: name.to_string(),
            coordinators: answer.coordinators,
        },
        ca_pem: answer.ca,
        own: KeyAndCert { key_pem, cert_pem: answer.cert },
    })
}

/// Renews the host's certificate (a new key and CSR, signed for the same name, over a connection
/// made with the current certificate). The coordinator accepts only the new one from then on.
pub async fn renew(id: &HostIdentity) -> Result<HostIdentity, String> {
    let (key_pem, csr) = pki::new_key_and_csr(&id.link.name).map_err(|e| e.to_string())?;
    let mut sender = dial(&id.link.coordinator, host_config(id)?).await?;
    // Any coordinator of the fleet renews (they share its CA and model).
    let body = serde_json::to_vec(&RenewRequest { csr }).map_err(|e| e.to_string())?;
    let request = hyper::Request::post("/v1/renew")
        .header("host", pki::COORDINATOR_SERVER_NAME)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| format!("renew: {e}"))?;
    if !response.status().is_success() {
        return Err(refusal(response).await);
    }
    let body = response.into_body().collect().await.map_err(|e| format!("renew: {e}"))?.to_bytes();
    let answer: JoinAnswer =
        serde_json::from_slice(&body).map_err(|e| format!("renew: a bad answer: {e}"))?;
    Ok(HostIdentity {
        link: id.link.clone(),
        ca_pem: answer.ca,
        own: KeyAndCert { key_pem, cert_pem: answer.cert },
    })
}

/// What a host sends to renew its certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenewRequest {
    /// A CSR for the host's new key (PEM).
    pub csr: String,
}

fn host_config(id: &HostIdentity) -> Result<Arc<rustls::ClientConfig>, String> {
    tls::client_config(&id.ca_pem, &id.own).map_err(|e| e.to_string())
}

/// An open host link: the upgraded connection the coordinator calls the host API on, and every
/// coordinator's address as the coordinator listed them.
#[derive(Debug)]
pub struct OpenLink {
    /// The connection.
    pub upgraded: hyper::upgrade::Upgraded,
    /// The coordinators' addresses, the one linked to first (empty from an older coordinator).
    pub coordinators: Vec<String>,
}

/// Why a host link did not open, and where the leader is when a standby said so.
#[derive(Debug)]
pub struct LinkRefused {
    /// What went wrong.
    pub error: String,
    /// A standby's pointer to the leader.
    pub leader: Option<String>,
}

impl From<String> for LinkRefused {
    fn from(error: String) -> LinkRefused {
        LinkRefused { error, leader: None }
    }
}

/// Opens the host link to the coordinator at `addr`.
pub async fn open_link(id: &HostIdentity, addr: &str) -> Result<OpenLink, LinkRefused> {
    let mut sender = dial(addr, host_config(id)?).await?;
    let request = hyper::Request::get("/v1/host")
        .header("host", pki::COORDINATOR_SERVER_NAME)
        .header("connection", "upgrade")
        .header("upgrade", LINK_PROTOCOL)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| format!("link: {e}"))?;
    if response.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
        let refused = refusal_of(response).await;
        return Err(LinkRefused { error: refused.error, leader: refused.leader });
    }
    let coordinators = response
        .headers()
        .get(COORDINATORS_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|list| list.split(',').filter(|a| !a.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    let upgraded = hyper::upgrade::on(response).await.map_err(|e| format!("link upgrade: {e}"))?;
    Ok(OpenLink { upgraded, coordinators })
}

/// Fetches artifacts from the coordinators' stores over TLS with the host's certificate: the one
/// it links to first, then the others (any coordinator serves any artifact, filling its store
/// from the others). The identity is read at each fetch, so a link that moved to another
/// coordinator is followed.
pub struct Blobs {
    /// The host's fleet files.
    pub files: super::identity::FleetFiles,
}

#[async_trait::async_trait]
impl ArtifactSource for Blobs {
    async fn fetch(&self, artifact: &ArtifactRef, dest: &Path) -> Result<(), String> {
        let id =
            self.files.host().map_err(|e| e.to_string())?.ok_or("this host left its fleet: join again")?;
        let mut failed = Vec::new();
        for addr in id.link.candidates() {
            match fetch_from(&id, &addr, artifact, dest).await {
                Ok(()) => return Ok(()),
                Err(e) => failed.push(format!("from {addr}: {e}")),
            }
        }
        Err(format!("artifact sha256:{}: {}", artifact.sha256, failed.join("; ")))
    }
}

async fn fetch_from(
    id: &HostIdentity,
    addr: &str,
    artifact: &ArtifactRef,
    dest: &Path,
) -> Result<(), String> {
    fetch_blob(addr, host_config(id)?, &artifact.sha256, Some(artifact.size), dest).await
}

/// GETs the artifact `sha256` from the store of the coordinator at `addr` over `config` into
/// `dest`, checked against `size` (when not given, the answer's length) and the sha256.
pub(super) async fn fetch_blob(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
    sha256: &str,
    size: Option<u64>,
    dest: &Path,
) -> Result<(), String> {
    let mut sender = dial(addr, config).await?;
    let request = hyper::Request::get(format!("/v1/blobs/sha256/{sha256}"))
        .header("host", pki::COORDINATOR_SERVER_NAME)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(refusal(response).await);
    }
    let announced = || {
        let length = response.headers().get(hyper::header::CONTENT_LENGTH)?;
        length.to_str().ok()?.parse().ok()
    };
    let size = size.or_else(announced).ok_or("the answer has no Content-Length")?;
    let artifact = ArtifactRef { sha256: sha256.to_string(), size };
    write_verified(response.into_body(), &artifact, dest).await
}

/// Streams a body into a temp file beside `dest`, checks its size and sha256, and only then
/// renames it into place: an interrupted or corrupt transfer never leaves a cache entry. The
/// runtime only receives (and decrypts); hashing and writing happen on a blocking thread fed
/// through a bounded channel, so a 100 MB artifact neither stalls a runtime worker nor waits
/// for the disk between records.
async fn write_verified(
    mut body: hyper::body::Incoming,
    artifact: &ArtifactRef,
    dest: &Path,
) -> Result<(), String> {
    let dir = dest.parent().ok_or("the store path has no parent")?;
    let tmp = tempfile::Builder::new().prefix(".fetch-").tempfile_in(dir).map_err(|e| e.to_string())?;
    let (chunks, received) = tokio::sync::mpsc::channel::<Bytes>(64);
    let (expected, dest) = (artifact.clone(), dest.to_path_buf());
    let writer = tokio::task::spawn_blocking(move || hash_and_write(received, tmp, &expected, &dest));
    let mut sent = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("the transfer broke off: {e}"))?;
        if let Ok(data) = frame.into_data() {
            sent += data.len() as u64;
            if sent > artifact.size {
                return Err(format!(
                    "the coordinator sent more than the {} bytes the release names",
                    artifact.size
                ));
            }
            if chunks.send(data).await.is_err() {
                break; // The writer failed: its error says why.
            }
        }
    }
    drop(chunks);
    writer.await.map_err(|e| format!("the writer task failed: {e}"))?
}

/// How much is written between two starts of writeback (see `sys::fs::start_writeback`).
const WRITEBACK_STEP: u64 = 8 << 20;

/// The writer side of [`write_verified`]: hashes and writes every chunk until the sender is
/// done, starting the disk's writeback as it goes, then checks size and sha256, syncs and renames
/// the file into place.
fn hash_and_write(
    mut received: tokio::sync::mpsc::Receiver<Bytes>,
    tmp: tempfile::NamedTempFile,
    artifact: &ArtifactRef,
    dest: &Path,
) -> Result<(), String> {
    use std::io::Write;
    let mut hash = Sha256::new();
    let (mut size, mut written_back) = (0u64, 0u64);
    while let Some(chunk) = received.blocking_recv() {
        size += chunk.len() as u64;
        hash.update(&chunk);
        tmp.as_file().write_all(&chunk).map_err(|e| format!("failed to write the artifact: {e}"))?;
        if size - written_back >= WRITEBACK_STEP {
            // Only a head start for the fsync below: a failure here changes nothing.
            let _ = crate::sys::fs::start_writeback(tmp.as_file(), written_back, size - written_back);
            written_back = size;
        }
    }
    let got = pki::hex(&hash.finalize());
    if size != artifact.size || got != artifact.sha256 {
        return Err(format!("got {size} bytes with sha256 {got}: not the artifact; nothing was kept"));
    }
    let syncing = std::time::Instant::now();
    tmp.as_file().sync_all().map_err(|e| format!("failed to sync the artifact: {e}"))?;
    tracing::info!(
        ms = syncing.elapsed().as_millis() as u64,
        bytes = size,
        "synced a fetched artifact to disk"
    );
    tmp.persist(dest).map_err(|e| e.to_string())?;
    Ok(())
}
