//! The coordinator's peer port without root: a listener on loopback with an in-memory state, and
//! hosts that join, link and fetch through the real client code — every refusal of the join and
//! the link checked by what the host sees.

use std::sync::Arc;
use std::time::Duration;

use super::peer_listener::{self, Coordinator};
use crate::model::deploy::release::ArtifactRef;
use crate::model::deploy::{Definition, SquadSpec};
use crate::services::builds::BuildStore;
use crate::services::hosts::fake::{FakeHost, Journal};
use crate::services::hosts::ArtifactSource;
use crate::services::peer::client::{self, Blobs};
use crate::services::peer::directory::Peers;
use crate::services::peer::enroll;
use crate::services::peer::identity::{FleetFiles, HostIdentity};
use crate::services::peer::{link, pki};
use crate::services::state::State;

struct Fx {
    addr: String,
    pin: String,
    state: State,
    peers: Arc<Peers>,
    store: BuildStore,
    _dir: tempfile::TempDir,
}

async fn coordinator() -> Fx {
    let state = State::open_in_memory().unwrap();
    let squad = SquadSpec { name: "default".into(), desc: String::new() };
    state.put_definition(Definition::Squad(squad), true).await.unwrap();
    coordinator_named("c", state, tempfile::tempdir().unwrap()).await.0
}

/// Coordinator `name` on `state` with its files in `dir` (a CA there is kept), recorded in the
/// model; with the coordinator itself, for its client.
async fn coordinator_named(name: &str, state: State, dir: tempfile::TempDir) -> (Fx, Arc<Coordinator>) {
    let store = BuildStore::new(dir.path());
    let peers = Arc::new(Peers::default());
    let files = FleetFiles::new(dir.path());
    let c = Coordinator::new(state.clone(), store.clone(), Arc::clone(&peers), &files, name).unwrap();
    let pin = c.pin();
    let listener = peer_listener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    state.register_coordinator(c.record(Some(addr.clone()))).await.unwrap();
    let c = Arc::new(c);
    peer_listener::spawn(listener, Arc::clone(&c));
    (Fx { addr, pin, state, peers, store, _dir: dir }, c)
}

/// A second coordinator of `first`'s model, with a copy of its CA.
async fn second_coordinator(first: &Fx) -> (Fx, Arc<Coordinator>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("pki")).unwrap();
    for file in ["ca.key", "ca.pem"] {
        std::fs::copy(first._dir.path().join("pki").join(file), dir.path().join("pki").join(file)).unwrap();
    }
    coordinator_named("c2", first.state.clone(), dir).await
}

/// `bytes` kept in `store`; their sha256.
fn keep(store: &BuildStore, bytes: &[u8]) -> String {
    let sha = pki::hex(&<sha2::Sha256 as sha2::Digest>::digest(bytes));
    let path = store.artifact_path(&sha);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    sha
}

impl Fx {
    async fn token(&self, host: &str) -> String {
        enroll::add_host(&self.state, host, "10.0.0.2", "default").await.unwrap()
    }

    async fn joined(&self, host: &str) -> HostIdentity {
        let token = self.token(host).await;
        client::join(&self.addr, &self.pin, host, &token).await.unwrap()
    }
}

/// Opens the link and serves a fake host on it until it closes; the coordinator sees it connected.
async fn link_up(fx: &Fx, id: HostIdentity) -> tokio::task::JoinHandle<Result<(), String>> {
    let upgraded = client::open_link(&id, &id.link.coordinator).await.unwrap().upgraded;
    let agent = FakeHost::new(&id.link.name, &Journal::default());
    let served = tokio::spawn(link::serve_host_api(hyper_util::rt::TokioIo::new(upgraded), agent));
    for _ in 0..200 {
        if fx.peers.list().iter().any(|l| l.name == id.link.name) {
            return served;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the link of {} never registered", id.link.name);
}

#[tokio::test]
async fn a_host_joins_once_links_and_is_cut_off_when_deleted() {
    let fx = coordinator().await;
    let token = fx.token("h1").await;
    let wrong = client::join(&fx.addr, &"0".repeat(64), "h1", &token).await.unwrap_err();
    assert!(wrong.contains("--ca-sha256"), "{wrong}");
    let other = client::join(&fx.addr, &fx.pin, "h2", &token).await.unwrap_err();
    assert!(other.contains("made for host h1"), "{other}");
    let id = client::join(&fx.addr, &fx.pin, "h1", &token).await.unwrap();
    let used = client::join(&fx.addr, &fx.pin, "h1", &token).await.unwrap_err();
    assert!(used.contains("used already"), "{used}");
    let unknown = client::join(&fx.addr, &fx.pin, "h1", "nope").await.unwrap_err();
    assert!(unknown.contains("not known"), "{unknown}");

    let served = link_up(&fx, id.clone()).await;
    fx.state.revoke_host("h1".into()).await.unwrap();
    fx.peers.cut("h1");
    let ended = tokio::time::timeout(Duration::from_secs(10), served).await;
    assert!(ended.is_ok(), "the host sees its link closed");
    let refused = client::open_link(&id, &fx.addr).await.unwrap_err();
    assert!(refused.error.contains("revoked or replaced"), "{refused:?}");
    assert_eq!(refused.leader, None, "only a standby names a leader");
}

#[tokio::test]
async fn a_certificate_of_another_fleet_or_none_gets_no_link() {
    let fx = coordinator().await;
    let mut id = fx.joined("h1").await;
    // A certificate for the same name from another CA: refused in the TLS handshake.
    let stranger_ca = pki::new_ca("other").unwrap();
    let who = pki::Identity { role: pki::Role::Host, name: "h1".into() };
    id.own = pki::issue_with_key(&stranger_ca, &who).unwrap();
    assert!(client::open_link(&id, &fx.addr).await.is_err());
    // No certificate at all: the link needs one.
    let no_cert = get_without_certificate(&fx.addr, &fx.pin, "/v1/host").await;
    assert!(no_cert.contains("client certificate"), "{no_cert}");
}

/// A GET without a client certificate (as a joining host dials), returning the refusal text.
async fn get_without_certificate(addr: &str, pin: &str, path: &str) -> String {
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let config = crate::services::peer::tls::join_config(pin).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(crate::services::peer::tls::coordinator_name(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header("host", "coordinator.vr")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test]
async fn artifacts_arrive_verified_or_not_at_all() {
    let fx = coordinator().await;
    let id = fx.joined("h1").await;
    let bytes = b"a slug of a few bytes".to_vec();
    let sha = pki::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let path = fx.store.artifact_path(&sha);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let here = tempfile::tempdir().unwrap();
    let (files, _files_dir) = saved(&id);
    let blobs = Blobs { files };
    let good = ArtifactRef { sha256: sha.clone(), size: bytes.len() as u64 };
    let dest = here.path().join(&sha);
    blobs.fetch(&good, &dest).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);

    let short = ArtifactRef { sha256: sha.clone(), size: 3 };
    let dest = here.path().join("short");
    let err = blobs.fetch(&short, &dest).await.unwrap_err();
    assert!(err.contains("more than the 3 bytes"), "{err}");
    assert!(!dest.exists());
    let missing = ArtifactRef { sha256: "b".repeat(64), size: 1 };
    let err = blobs.fetch(&missing, &here.path().join("missing")).await.unwrap_err();
    assert!(err.contains("in no coordinator's store"), "{err}");
    let leftovers: Vec<_> =
        std::fs::read_dir(here.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 1, "only the good artifact: {leftovers:?}");
}

#[tokio::test]
async fn a_renewed_certificate_replaces_the_old_one() {
    let fx = coordinator().await;
    let old = fx.joined("h1").await;
    let new = client::renew(&old).await.unwrap();
    assert_ne!(new.own.cert_pem, old.own.cert_pem);
    let served = link_up(&fx, new.clone()).await;
    let refused = client::open_link(&old, &fx.addr).await.unwrap_err();
    assert!(refused.error.contains("revoked or replaced"), "{refused:?}");
    served.abort();
}

/// `id` saved in fleet files of its own (what a joined host reads at each fetch), in a temp dir
/// the caller keeps.
fn saved(id: &HostIdentity) -> (FleetFiles, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let files = FleetFiles::new(dir.path());
    files.save_host(id).unwrap();
    (files, dir)
}

#[tokio::test]
async fn a_coordinator_lacking_an_artifact_fetches_it_from_another_for_its_host() {
    let c1 = coordinator().await;
    let (c2, c2_self) = second_coordinator(&c1).await;
    let bytes = b"a slug built while c1 led".to_vec();
    let sha = keep(&c1.store, &bytes);
    let id = c1.joined("h1").await;
    assert_eq!(
        id.link.coordinators,
        vec![c1.addr.clone(), c2.addr.clone()],
        "the join lists every coordinator"
    );
    // The host asks c2, whose store fills from c1, checked by sha256.
    let mut at_c2 = id.clone();
    at_c2.link.coordinator = c2.addr.clone();
    at_c2.link.coordinators.clear();
    let (files, _files_dir) = saved(&at_c2);
    let unfilled = Blobs { files };
    let here = tempfile::tempdir().unwrap();
    let artifact = ArtifactRef { sha256: sha.clone(), size: bytes.len() as u64 };
    let err = unfilled.fetch(&artifact, &here.path().join("a")).await.unwrap_err();
    assert!(err.contains("in no coordinator's store"), "without a source c2 has nothing: {err}");
    let peers = crate::services::peer::coordinators::PeerStores {
        client: c2_self.client.clone(),
        state: c2.state.clone(),
        me: "c2".into(),
    };
    c2.store.fill.set(Arc::new(peers));
    unfilled.fetch(&artifact, &here.path().join("b")).await.unwrap();
    assert_eq!(std::fs::read(here.path().join("b")).unwrap(), bytes);
    assert_eq!(std::fs::read(c2.store.artifact_path(&sha)).unwrap(), bytes, "c2 keeps its copy");
    // An artifact no coordinator has: c2 says whom it asked.
    let none = ArtifactRef { sha256: "c".repeat(64), size: 1 };
    let err = unfilled.fetch(&none, &here.path().join("c")).await.unwrap_err();
    assert!(err.contains("no other coordinator has it") && err.contains("c (127.0.0.1"), "{err}");
}

#[tokio::test]
async fn only_a_recorded_coordinator_may_forward_a_call() {
    use crate::api::forward::{Caller, ForwardedCall};
    let c1 = coordinator().await;
    let (_c2, c2_self) = second_coordinator(&c1).await;
    let call = ForwardedCall {
        caller: Caller {
            uid: 0,
            gid: 0,
            groups: vec![],
            pid: None,
            role: crate::api::Role::Admin,
            user: None,
        },
        method: "hosts.drain".into(),
        params: serde_json::json!({ "name": "h1" }),
    };
    // A host's certificate is not a coordinator's.
    let id = c1.joined("h1").await;
    let host = crate::services::peer::coordinators::CoordinatorClient::new(
        &pki::KeyAndCert { key_pem: String::new(), cert_pem: id.ca_pem.clone() },
        &id.own,
    )
    .unwrap();
    let err = host.forward(&c1.addr, &call).await.unwrap_err();
    assert!(err.contains("only another coordinator"), "{err}");
    // A coordinator whose certificate is not the one it recorded (made again since).
    c1.state
        .register_coordinator(crate::services::state::CoordinatorRecord {
            cert_sha256: "0".repeat(64),
            ..c2_self.record(None)
        })
        .await
        .unwrap();
    let err = c2_self.client.forward(&c1.addr, &call).await.unwrap_err();
    assert!(err.contains("has not recorded"), "{err}");
    // Recorded: let through, to a coordinator still starting (no daemon attached here).
    c1.state.register_coordinator(c2_self.record(None)).await.unwrap();
    let err = c2_self.client.forward(&c1.addr, &call).await.unwrap_err();
    assert!(err.contains("still starting"), "{err}");
}
