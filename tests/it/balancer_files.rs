//! The nginx, varnish and exec balancers against the real programs: a private nginx and varnishd on
//! loopback ports with configs in a temp dir, two tiny HTTP backends that answer with their own
//! names, and a Python plug-in that keeps its pools in a JSON file. Routing a pool must change
//! which backend answers through the real proxy, and a change the proxy refuses must leave the
//! previous files (and traffic) as they were.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vr::model::balancer::{ExecConfig, NginxConfig};
use vr::services::balancer::{exec::Exec, nginx::Nginx, varnish::Varnish, Balancer, Balancers, Node};

use crate::harness::skip;
use crate::proxies::{installed, TestNginx, TestVarnish};

fn nodes(list: &[&str]) -> BTreeSet<Node> {
    list.iter().map(|n| (*n).to_string()).collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn registry(name: &str, backend: impl Balancer + 'static) -> Balancers {
    let backend: Arc<dyn Balancer> = Arc::new(backend);
    Balancers::from_backends(BTreeMap::from([(name.to_string(), backend)]))
}

/// An HTTP server on a loopback port that answers every request with `name`; stops on drop.
struct NamedBackend {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NamedBackend {
    fn start(name: &'static str) -> NamedBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                    name.len()
                );
                let _ = conn.write_all(reply.as_bytes());
            }
        });
        NamedBackend { port, stop, thread: Some(thread) }
    }

    fn node(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for NamedBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port)); // wakes the accept
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The status line and body of a GET through the proxy, or the connection error.
fn get(port: u16) -> (String, String) {
    let mut s = match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => return (format!("connect: {e}"), String::new()),
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text.lines().next().unwrap_or_default().to_string();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Asks until six answers in a row are exactly `wanted` (the set of bodies seen), since a reload
/// takes effect a moment after the command returns; fails after 10 s with what was seen.
fn wait_for_answers(port: u16, wanted: &[&str]) {
    let wanted: BTreeSet<String> = wanted.iter().map(|s| (*s).to_string()).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = BTreeSet::new();
    while Instant::now() < deadline {
        seen = (0..6).map(|_| get(port).1).collect();
        if seen == wanted {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("port {port} answered {seen:?}, wanted {wanted:?}");
}

fn wait_for_status(port: u16, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = (String::new(), String::new());
    while Instant::now() < deadline {
        last = get(port);
        if last.0.contains(status) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("port {port} answered {last:?}, wanted status {status}");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn nginx_routes_pools_and_refuses_what_nginx_refuses() {
    if !installed("nginx") {
        return skip("nginx_routes_pools_and_refuses_what_nginx_refuses", "nginx is not installed");
    }
    let (a, b) = (NamedBackend::start("a"), NamedBackend::start("b"));
    let nginx = TestNginx::start(&a.node());
    let rt = runtime();
    let balancers = registry("edge", Nginx::new("edge", &nginx.config()).unwrap());
    let web_file = nginx.pools().join("web.conf");

    let both = nodes(&[&a.node(), &b.node()]);
    rt.block_on(balancers.route("edge", "web", &both)).unwrap();
    let lines: Vec<String> = both.iter().map(|n| format!("  server {n};\n")).collect(); // sorted
    let expected = format!("\nupstream web {{\n{}}}\n", lines.concat());
    assert_eq!(read(&web_file), expected, "not VR's upstream text");
    wait_for_answers(nginx.web_port, &["a", "b"]);

    rt.block_on(balancers.route("edge", "web", &nodes(&[&b.node()]))).unwrap();
    wait_for_answers(nginx.web_port, &["b"]);

    // A VR-written file reads back. A pool a server block names directly (the seed's setup) can
    // be emptied: its upstream stays with a placeholder nginx never uses, so clients get 502 at
    // once (VR wrote an empty upstream, which nginx refused, so the pool could never be emptied),
    // and its file is not removed, since nginx -t would refuse that.
    assert_eq!(rt.block_on(balancers.nodes("edge", "api")).unwrap(), nodes(&[&a.node()]));
    rt.block_on(balancers.route("edge", "api", &BTreeSet::new())).unwrap();
    assert_eq!(rt.block_on(balancers.nodes("edge", "api")).unwrap(), BTreeSet::new());
    assert!(read(&nginx.pools().join("api.conf")).contains(" down;"));
    wait_for_status(nginx.api_port, "502");
    rt.block_on(balancers.route("edge", "api", &nodes(&[&a.node()]))).unwrap();
    wait_for_answers(nginx.api_port, &["a"]);

    // A test_cmd that fails: nothing changes, nginx's words are in the error.
    let refusing = NginxConfig {
        test_cmd: vec!["sh".into(), "-c".into(), "echo 'nginx: [emerg] refused by test' >&2; exit 1".into()],
        ..nginx.config()
    };
    let strict = registry("edge", Nginx::new("edge", &refusing).unwrap());
    let before = read(&web_file);
    let err = rt.block_on(strict.add("edge", "web", &nodes(&[&a.node()]))).unwrap_err().to_string();
    assert!(err.contains("refused by test") && err.contains("pool 'web'"), "{err}");
    assert_eq!(read(&web_file), before);
    let err = rt.block_on(strict.add("edge", "fresh", &nodes(&[&a.node()]))).unwrap_err().to_string();
    assert!(err.contains("refused by test"), "{err}");
    assert!(!nginx.pools().join("fresh.conf").exists(), "a refused new pool left its file");
    wait_for_answers(nginx.web_port, &["b"]);

    // Emptying web (proxied through a variable) removes its file: nginx then has no such upstream.
    rt.block_on(balancers.route("edge", "web", &BTreeSet::new())).unwrap();
    assert!(!web_file.exists());
    wait_for_status(nginx.web_port, "502");
    let leftovers: Vec<_> =
        std::fs::read_dir(nginx.pools()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("api.conf")], "temp files left behind");
}

#[test]
fn varnish_routes_pools_through_new_vcls_and_keeps_the_old_one_on_a_compile_error() {
    let name = "varnish_routes_pools_through_new_vcls_and_keeps_the_old_one_on_a_compile_error";
    if !installed("varnishd") {
        return skip(name, "varnishd is not installed");
    }
    let (a, b) = (NamedBackend::start("a"), NamedBackend::start("b"));
    let varnish = TestVarnish::start();
    let rt = runtime();
    let balancers = registry("cache", Varnish::new("cache", &varnish.config()).unwrap());
    let pool_file = varnish.include_dir().join("pool-web.vcl");
    let pools_list = varnish.include_dir().join("pools.vcl");

    rt.block_on(balancers.route("cache", "web", &nodes(&[&a.node(), &b.node()]))).unwrap();
    assert!(read(&pool_file).starts_with("\n// This pool was written by Velociraptor."));
    assert_eq!(read(&pools_list), format!("\ninclude \"{}\";", pool_file.display()));
    wait_for_answers(varnish.port, &["a", "b"]);

    rt.block_on(balancers.route("cache", "web", &nodes(&[&b.node()]))).unwrap();
    wait_for_answers(varnish.port, &["b"]);
    varnish.assert_older_vcls_discarded();
    assert_eq!(rt.block_on(balancers.nodes("cache", "web")).unwrap(), nodes(&[&b.node()]));

    // A backend varnish cannot resolve fails vcl.load: the files go back, the old VCL keeps serving.
    let (web_before, list_before) = (read(&pool_file), read(&pools_list));
    let unresolvable = nodes(&["no-such-host.invalid:80"]);
    let err = rt.block_on(balancers.add("cache", "web", &unresolvable)).unwrap_err().to_string();
    assert!(err.contains("pool 'web'") && err.contains("no-such-host.invalid"), "{err}");
    assert!(err.contains("vcl.load"), "{err}");
    let err = rt.block_on(balancers.add("cache", "api", &unresolvable)).unwrap_err().to_string();
    assert!(err.contains("pool 'api'"), "{err}");
    assert_eq!((read(&pool_file), read(&pools_list)), (web_before, list_before));
    assert!(!varnish.include_dir().join("pool-api.vcl").exists(), "a refused new pool left its file");
    wait_for_answers(varnish.port, &["b"]);

    // Emptied, the pool keeps a director with no backends: the VCL still loads and answers 503.
    rt.block_on(balancers.route("cache", "web", &BTreeSet::new())).unwrap();
    assert!(pool_file.exists());
    assert_eq!(rt.block_on(balancers.nodes("cache", "web")).unwrap(), BTreeSet::new());
    wait_for_status(varnish.port, "503");
}

// ---- exec ----

const PLUGIN: &str = r#"#!/usr/bin/env python3
import json, sys
path = sys.argv[1]
request = json.load(sys.stdin)
try:
    pools = json.load(open(path))
except FileNotFoundError:
    pools = {}
pool, op = request["pool"], request["op"]
if pool == "locked":
    sys.exit("pool locked by the ops team")
nodes = set(pools.get(pool, []))
if op == "get_nodes":
    print(json.dumps({"nodes": sorted(nodes)}))
    sys.exit(0)
if op == "add_nodes":
    pools[pool] = sorted(nodes | set(request["nodes"]))
elif op == "delete_nodes":
    pools[pool] = sorted(nodes - set(request["nodes"]))
elif op == "delete_pool_if_empty" and not nodes:
    pools.pop(pool, None)
json.dump(pools, open(path, "w"))
"#;

#[test]
fn exec_hands_every_change_to_the_program() {
    if !installed("python3") {
        return skip("exec_hands_every_change_to_the_program", "python3 is not installed");
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (program, store) = (dir.path().join("plugin.py"), dir.path().join("pools.json"));
    std::fs::write(&program, PLUGIN).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = ExecConfig { program, args: vec![store.display().to_string()], timeout_secs: 10 };
    let balancers = registry("ext", Exec::new("ext", &cfg).unwrap());
    let rt = runtime();
    let stored = || -> serde_json::Value { serde_json::from_str(&read(&store)).unwrap() };

    rt.block_on(balancers.route("ext", "web", &nodes(&["h:1", "h:2"]))).unwrap();
    assert_eq!(stored(), serde_json::json!({"web": ["h:1", "h:2"]}));
    let routed = rt.block_on(balancers.route("ext", "web", &nodes(&["h:2", "h:3"]))).unwrap();
    assert_eq!((routed.added, routed.removed), (nodes(&["h:3"]), nodes(&["h:1"])));
    assert_eq!(rt.block_on(balancers.nodes("ext", "web")).unwrap(), nodes(&["h:2", "h:3"]));
    rt.block_on(balancers.route("ext", "web", &BTreeSet::new())).unwrap();
    assert_eq!(stored(), serde_json::json!({}));

    let err = rt.block_on(balancers.add("ext", "locked", &nodes(&["h:1"]))).unwrap_err().to_string();
    assert!(err.contains("pool locked by the ops team") && err.contains("'locked'"), "{err}");
}
