//! The haproxy balancer against a real haproxy (master-worker, on loopback, config in a temp dir)
//! and two tiny HTTP nodes with distinct answers: servers come and go through the runtime API
//! without a reload, open requests are drained, a restart brings back the same servers, a new pool
//! costs exactly one reload, and a config haproxy refuses is put back with haproxy's words.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use vr::services::balancer::haproxy::Haproxy;
use vr::services::balancer::Balancer;

use crate::harness::http_get;
use crate::proxies::RealHaproxy;

/// Starts an HTTP node on a free port that answers `name` to everything (after 1.5 s for `/slow`).
fn http_node(name: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || answer(conn, name));
        }
    });
    format!("127.0.0.1:{port}")
}

fn answer(mut conn: TcpStream, name: &str) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (mut request, mut buf) = (Vec::new(), [0u8; 1024]);
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return, // haproxy's health checks connect and leave
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    if request.starts_with(b"GET /slow") {
        std::thread::sleep(Duration::from_millis(1500));
    }
    let _ =
        write!(conn, "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}", name.len());
}

/// The body of a GET through haproxy.
fn body(port: u16, path: &str) -> String {
    let response = http_get(port, path);
    response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or(response)
}

/// The distinct bodies of `n` requests.
fn bodies(port: u16, n: usize) -> BTreeSet<String> {
    (0..n).map(|_| body(port, "/")).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_change_at_runtime_drain_and_survive_a_restart() {
    let Some(mut haproxy) = RealHaproxy::start("nodes_change_at_runtime_drain_and_survive_a_restart") else {
        return;
    };
    let (a, b) = (http_node("node-a"), http_node("node-b"));
    let balancer = Haproxy::new("edge", &haproxy.config()).unwrap();
    assert_eq!(balancer.get_nodes("hello").await.unwrap(), set(&[]));
    let pid = haproxy.worker_pid();

    balancer.add_nodes("hello", &set(&[&a, &b])).await.unwrap();
    assert_eq!(balancer.get_nodes("hello").await.unwrap(), set(&[&a, &b]));
    assert_eq!(bodies(haproxy.web, 6), set(&["node-a", "node-b"]));
    assert_eq!(haproxy.worker_pid(), pid, "adding servers reloaded haproxy");

    // One slow request on each node: removing a waits for its request instead of cutting it.
    let web = haproxy.web;
    let slow: Vec<_> = (0..2).map(|_| std::thread::spawn(move || body(web, "/slow"))).collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    balancer.delete_nodes("hello", &set(&[&a])).await.unwrap();
    let took = started.elapsed();
    let answered: BTreeSet<String> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(answered, set(&["node-a", "node-b"]), "a request in flight was cut");
    assert!(took >= Duration::from_millis(900), "the delete did not wait for the open request ({took:?})");
    assert_eq!(balancer.get_nodes("hello").await.unwrap(), set(&[&b]));
    assert_eq!(bodies(haproxy.web, 6), set(&["node-b"]));
    assert_eq!(haproxy.worker_pid(), pid, "removing a server reloaded haproxy");
    let text = haproxy.cfg_text();
    assert!(
        text.contains(&format!("server n_{}_{} {b} check", "127.0.0.1", b.rsplit(':').next().unwrap())),
        "{text}"
    );
    assert!(!text.contains(&a), "{text}");

    haproxy.restart();
    assert_ne!(haproxy.worker_pid(), pid);
    assert_eq!(balancer.get_nodes("hello").await.unwrap(), set(&[&b]));
    assert_eq!(bodies(haproxy.web, 4), set(&["node-b"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_pool_is_written_checked_and_reloaded_once_then_changed_at_runtime_and_removed() {
    let Some(haproxy) = RealHaproxy::start("a_new_pool_is_written_checked_and_reloaded_once") else { return };
    let (a, b) = (http_node("node-a"), http_node("node-b"));
    let balancer = Haproxy::new("edge", &haproxy.config()).unwrap();
    let original = haproxy.cfg_text();
    let first = haproxy.worker_pid();

    // The reload for fresh must not drop hello's runtime change (another pool, the same file).
    let (only_a, only_b) = (set(&[&a]), set(&[&b]));
    let (fresh, hello) =
        tokio::join!(balancer.add_nodes("fresh", &only_a), balancer.add_nodes("hello", &only_b));
    fresh.unwrap();
    hello.unwrap();
    assert!(haproxy.cfg_text().contains("backend vr_fresh"), "{}", haproxy.cfg_text());
    let reloaded = haproxy.worker_pid();
    assert_ne!(reloaded, first, "haproxy was not reloaded for the new backend");
    assert_eq!(balancer.get_nodes("fresh").await.unwrap(), only_a);
    assert_eq!(balancer.get_nodes("hello").await.unwrap(), only_b, "a reload lost another pool's server");
    assert_eq!(bodies(haproxy.fresh, 4), set(&["node-a"]));

    balancer.add_nodes("fresh", &set(&[&b])).await.unwrap();
    assert_eq!(bodies(haproxy.fresh, 6), set(&["node-a", "node-b"]));
    assert_eq!(haproxy.worker_pid(), reloaded, "the second node cost a reload");

    balancer.delete_nodes("fresh", &set(&[&a, &b])).await.unwrap();
    balancer.delete_pool_if_empty("fresh").await.unwrap();
    balancer.delete_nodes("hello", &only_b).await.unwrap();
    balancer.delete_pool_if_empty("hello").await.unwrap();
    assert_eq!(haproxy.cfg_text(), original, "the emptied pool's section was not removed cleanly");
    assert_eq!(balancer.get_nodes("fresh").await.unwrap(), set(&[]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_haproxy_refuses_is_put_back_and_the_error_quotes_haproxy() {
    let Some(haproxy) = RealHaproxy::start("a_config_haproxy_refuses_is_put_back") else { return };
    let a = http_node("node-a");
    let balancer = Haproxy::new("edge", &haproxy.config()).unwrap();
    let pid = haproxy.worker_pid();
    let broken = format!("{}\nbackend typo\n    bogus-keyword 1\n", haproxy.cfg_text());
    std::fs::write(haproxy.cfg_path(), &broken).unwrap();

    let err = balancer.add_nodes("fresh", &set(&[&a])).await.unwrap_err().to_string();
    assert!(err.contains("bogus-keyword") && err.contains("haproxy -c"), "{err}");
    assert!(err.contains(&haproxy.cfg_path().display().to_string()) && err.contains("back"), "{err}");
    assert_eq!(haproxy.cfg_text(), broken, "the previous file was not put back");
    assert_eq!(haproxy.worker_pid(), pid, "haproxy was reloaded with a refused file");
    assert_eq!(balancer.get_nodes("fresh").await.unwrap(), set(&[]));

    // An existing backend still changes at runtime; the error says the file could not follow.
    let err = balancer.add_nodes("hello", &set(&[&a])).await.unwrap_err().to_string();
    assert!(err.contains("bogus-keyword") && err.contains("changed in the running haproxy"), "{err}");
    assert_eq!(balancer.get_nodes("hello").await.unwrap(), set(&[&a]));
    assert_eq!(bodies(haproxy.web, 2), set(&["node-a"]));
    assert_eq!(haproxy.cfg_text(), broken, "the previous file was not put back");

    // A backend with a static algorithm cannot take servers at runtime; haproxy says so.
    let fixed = broken.replace("    bogus-keyword 1\n", "");
    std::fs::write(haproxy.cfg_path(), &fixed).unwrap();
    let err = balancer.add_nodes("static", &set(&[&a])).await.unwrap_err().to_string();
    assert!(err.contains("dynamic load balancing") && err.contains("balance roundrobin"), "{err}");
    assert_eq!(balancer.get_nodes("static").await.unwrap(), set(&[]));
    assert_eq!(haproxy.cfg_text(), fixed, "a refused add left marks in the file");
}
