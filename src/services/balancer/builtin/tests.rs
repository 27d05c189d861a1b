//! The builtin balancer on real loopback TCP: tiny backends that answer their own name, a pool
//! proxied to them, and the behaviour a user of the pool's address would notice (who answers,
//! what survives a membership change, a refused node, a restart, a swap under load).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::model::balancer::BalancerConfig;
use crate::services::balancer::{Balancers, Context};

/// A backend answering `<name>\n` to every byte-sized request, counting its connections.
struct Backend {
    node: Node,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn backend(name: &'static str) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    let task = tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut byte = [0u8; 1];
                while matches!(conn.read(&mut byte).await, Ok(1)) {
                    if conn.write_all(format!("{name}\n").as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Backend { node, accepted, task }
}

/// An address nothing listens on: connecting is refused.
async fn dead_node() -> Node {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

/// One request on an open connection: the answering backend's name.
async fn request(conn: &mut TcpStream) -> std::io::Result<String> {
    conn.write_all(b"?").await?;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while answer.last() != Some(&b'\n') {
        if conn.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        answer.push(byte[0]);
    }
    answer.pop();
    Ok(String::from_utf8(answer).unwrap())
}

/// A fresh connection, one request.
async fn ask(addr: SocketAddr) -> std::io::Result<String> {
    request(&mut TcpStream::connect(addr).await?).await
}

fn set(nodes: &[&Node]) -> BTreeSet<Node> {
    nodes.iter().map(|n| (*n).clone()).collect()
}

fn config(addr: &str, drain_secs: u64) -> BuiltinConfig {
    BuiltinConfig { pools: BTreeMap::from([("web".to_string(), addr.to_string())]), drain_secs }
}

/// A builtin balancer `b` serving pool `web` on a free loopback port.
async fn start(state: State, drain_secs: u64) -> (Builtin, SocketAddr) {
    let b = Builtin::start("b", &config("127.0.0.1:0", drain_secs), state).await.unwrap();
    let addr = b.local_addr("web");
    (b, addr)
}

async fn answers(addr: SocketAddr, count: usize) -> Vec<String> {
    let mut all = Vec::new();
    for _ in 0..count {
        all.push(ask(addr).await.unwrap());
    }
    all
}

#[tokio::test]
async fn new_connections_take_turns_across_the_nodes() {
    let (a, c) = (backend("a").await, backend("c").await);
    let (b, addr) = start(State::open_in_memory().unwrap(), 30).await;
    b.add_nodes("web", &set(&[&a.node, &c.node])).await.unwrap();
    let got = answers(addr, 6).await;
    assert!(got.windows(2).all(|w| w[0] != w[1]), "not round-robin: {got:?}");
    assert_eq!(got.iter().filter(|n| *n == "a").count(), 3, "{got:?}");
    assert_eq!((a.accepted.load(Ordering::Relaxed), c.accepted.load(Ordering::Relaxed)), (3, 3));
}

#[tokio::test]
async fn after_delete_only_the_remaining_node_gets_new_connections() {
    let (a, c) = (backend("a").await, backend("c").await);
    let (b, addr) = start(State::open_in_memory().unwrap(), 30).await;
    b.add_nodes("web", &set(&[&a.node, &c.node])).await.unwrap();
    b.delete_nodes("web", &set(&[&a.node])).await.unwrap();
    assert_eq!(answers(addr, 5).await, ["c"; 5]);
    assert_eq!(b.get_nodes("web").await.unwrap(), set(&[&c.node]));
}

#[tokio::test]
async fn a_connection_to_a_removed_node_lives_until_the_drain_time_then_closes() {
    let (a, c) = (backend("a").await, backend("c").await);
    let (b, addr) = start(State::open_in_memory().unwrap(), 1).await;
    b.add_nodes("web", &set(&[&a.node])).await.unwrap();
    let mut long = TcpStream::connect(addr).await.unwrap();
    assert_eq!(request(&mut long).await.unwrap(), "a");
    b.add_nodes("web", &set(&[&c.node])).await.unwrap();
    b.delete_nodes("web", &set(&[&a.node])).await.unwrap();
    let removed = Instant::now();
    assert_eq!(ask(addr).await.unwrap(), "c", "new connections go to the remaining node");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(request(&mut long).await.unwrap(), "a", "the old connection still works while draining");
    while request(&mut long).await.is_ok() {
        assert!(removed.elapsed() < Duration::from_secs(3), "not closed after drain_secs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(removed.elapsed() >= Duration::from_millis(900), "closed early: {:?}", removed.elapsed());
    assert_eq!(ask(addr).await.unwrap(), "c");
}

#[tokio::test]
async fn a_refused_node_is_skipped_and_no_request_fails() {
    let a = backend("a").await;
    let dead = dead_node().await;
    let (b, addr) = start(State::open_in_memory().unwrap(), 30).await;
    b.add_nodes("web", &set(&[&a.node, &dead])).await.unwrap();
    assert_eq!(answers(addr, 6).await, ["a"; 6]);
}

#[tokio::test]
async fn a_pool_without_nodes_closes_connections_at_once() {
    let (_b, addr) = start(State::open_in_memory().unwrap(), 30).await;
    let err = tokio::time::timeout(Duration::from_secs(2), ask(addr)).await.unwrap().unwrap_err();
    assert!(
        matches!(err.kind(), std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset),
        "{err}"
    );
}

/// Waits until nothing listens on `addr` any more.
async fn wait_until_refused(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            _ => assert!(Instant::now() < deadline, "still listening on {addr}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn membership_survives_a_restart_on_the_same_address() {
    let (a, c) = (backend("a").await, backend("c").await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let (b, addr) = start(State::open(&path).unwrap(), 30).await;
    b.add_nodes("web", &set(&[&a.node, &c.node])).await.unwrap();
    drop(b);
    wait_until_refused(addr).await;
    let b = Builtin::start("b", &config(&addr.to_string(), 30), State::open(&path).unwrap()).await.unwrap();
    assert_eq!(b.get_nodes("web").await.unwrap(), set(&[&a.node, &c.node]));
    let mut got = answers(addr, 4).await;
    got.sort();
    assert_eq!(got, ["a", "a", "c", "c"]);
}

#[tokio::test]
async fn dropping_the_registry_stops_the_listeners() {
    let a = backend("a").await;
    let addr: SocketAddr = dead_node().await.parse().unwrap();
    let configs = BTreeMap::from([("b".to_string(), BalancerConfig::Builtin(config(&addr.to_string(), 30)))]);
    let ctx = Context { state: State::open_in_memory().unwrap() };
    let registry = Balancers::start(&configs, &ctx).await.unwrap();
    assert_eq!(registry.names(), ["b", "builtin"], "the default builtin balancer is always there");
    registry.add("b", "web", &set(&[&a.node])).await.unwrap();
    assert_eq!(ask(addr).await.unwrap(), "a");
    drop(registry);
    wait_until_refused(addr).await;
}

#[tokio::test]
async fn an_address_in_use_fails_the_start_naming_pool_address_and_balancer() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = Builtin::start("b", &config(&addr, 30), State::open_in_memory().unwrap()).await.err().unwrap();
    let msg = err.to_string();
    for part in ["'web'", &addr, "[balancers.b]", "pools.web"] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }
}

#[tokio::test]
async fn adding_to_a_pool_without_an_address_says_what_to_configure() {
    let (b, _) = start(State::open_in_memory().unwrap(), 30).await;
    let msg = b.add_nodes("api", &set(&[&"127.0.0.1:5001".to_string()])).await.unwrap_err().to_string();
    assert!(msg.contains("pools.api = \"ADDR:PORT\"") && msg.contains("[balancers.b]"), "{msg}");
    assert!(b.get_nodes("api").await.unwrap().is_empty(), "a refused add must store nothing");
    let msg = b.add_nodes("web", &set(&[&"web1".to_string()])).await.unwrap_err().to_string();
    assert!(msg.contains("'web1'") && msg.contains("host:port"), "{msg}");
    assert!(b.get_nodes("web").await.unwrap().is_empty());
}

/// `clients` tasks looping connect/request/response until `done`; returns (requests, failures).
fn load(
    addr: SocketAddr,
    clients: usize,
    done: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(usize, usize)>> {
    (0..clients)
        .map(|_| {
            let done = Arc::clone(done);
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0, 0);
                while !done.load(Ordering::Relaxed) {
                    match ask(addr).await {
                        Ok(_) => ok += 1,
                        Err(_) => failed += 1,
                    }
                }
                (ok, failed)
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_swaps_under_load_fail_no_request() {
    let backends = [backend("a").await, backend("b").await, backend("c").await, backend("d").await];
    let (b, addr) = start(State::open_in_memory().unwrap(), 30).await;
    let registry =
        Balancers::from_backends(BTreeMap::from([("b".to_string(), Arc::new(b) as Arc<dyn Balancer>)]));
    let first = set(&[&backends[0].node, &backends[1].node]);
    let second = set(&[&backends[2].node, &backends[3].node]);
    registry.route("b", "web", &first).await.unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let clients = load(addr, 8, &done);
    for swap in 0..50 {
        registry.route("b", "web", if swap % 2 == 0 { &second } else { &first }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done.store(true, Ordering::Relaxed);
    let (mut ok, mut failed) = (0, 0);
    for client in clients {
        let (o, f) = client.await.unwrap();
        (ok, failed) = (ok + o, failed + f);
    }
    eprintln!("{ok} requests through 50 swaps, {failed} failed");
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert!(ok > 200, "too little load to mean anything: {ok} requests");
    for backend in &backends {
        assert!(backend.accepted.load(Ordering::Relaxed) > 0, "{} got nothing", backend.node);
    }
}
