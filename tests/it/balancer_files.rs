//! The nginx, varnish and exec balancers against the real programs: a private nginx and varnishd on
//! loopback ports with configs in a temp dir, two tiny HTTP backends that answer with their own
//! names, and a Python plug-in that keeps its pools in a JSON file. Routing a pool must change
//! which backend answers through the real proxy, and a change the proxy refuses must leave the
//! previous files (and traffic) as they were.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vr::model::balancer::{ExecConfig, NginxConfig, VarnishConfig};
use vr::services::balancer::{exec::Exec, nginx::Nginx, varnish::Varnish, Balancer, Balancers, Node};

use crate::harness::{free_port, skip, wait_for_port};

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

fn installed(program: &str) -> bool {
    Command::new(program).arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
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

/// A process started for a test, stopped (SIGTERM, then SIGKILL) and reaped on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
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

/// A temp dir the proxies' unprivileged workers (nobody, vcache) can traverse.
fn shared_tempdir(prefix: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

// ---- nginx ----

/// A private nginx: `web` is proxied through a variable (so the pool may be absent), `api` is
/// named directly (so nginx -t refuses a config without it).
struct TestNginx {
    dir: tempfile::TempDir,
    web_port: u16,
    api_port: u16,
    _nginx: Daemon,
}

impl TestNginx {
    fn base_args(&self) -> Vec<String> {
        let dir = self.dir.path().display().to_string();
        ["nginx", "-p", &dir, "-c", &format!("{dir}/nginx.conf"), "-e", &format!("{dir}/error.log")]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn pools(&self) -> PathBuf {
        self.dir.path().join("pools")
    }

    fn config(&self) -> NginxConfig {
        let mut test_cmd = self.base_args();
        test_cmd.push("-t".into());
        let mut reload_cmd = self.base_args();
        reload_cmd.extend(["-s".to_string(), "reload".to_string()]);
        NginxConfig { include_dir: self.pools(), test_cmd, reload_cmd }
    }

    fn start(api_node: &str) -> TestNginx {
        let dir = shared_tempdir("vr-nginx-");
        let d = dir.path().display().to_string();
        let (web_port, api_port) = (free_port(), free_port());
        std::fs::create_dir(dir.path().join("pools")).unwrap();
        // api's file as VR wrote it, so vr must read VR's files.
        std::fs::write(
            dir.path().join("pools/api.conf"),
            format!("\nupstream api {{\n  server {api_node};\n}}\n"),
        )
        .unwrap();
        let conf = format!(
            "pid {d}/nginx.pid;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  \
             include {d}/pools/*.conf;\n  \
             server {{ listen 127.0.0.1:{web_port}; location / {{ set $pool web; proxy_pass http://$pool; }} }}\n  \
             server {{ listen 127.0.0.1:{api_port}; location / {{ proxy_pass http://api; }} }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let args = vec!["-p".to_string(), d.clone(), "-c".into(), format!("{d}/nginx.conf")];
        let child = Command::new("nginx")
            .args(&args)
            .args(["-e", &format!("{d}/error.log"), "-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let nginx = TestNginx { dir, web_port, api_port, _nginx: Daemon(child) };
        assert!(wait_for_port(api_port, Duration::from_secs(10)), "nginx did not start: {}", d);
        nginx
    }
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

    // A VR-written file reads back; emptying a pool nginx names directly fails nginx -t, and the
    // file comes back byte for byte while api keeps answering.
    assert_eq!(rt.block_on(balancers.nodes("edge", "api")).unwrap(), nodes(&[&a.node()]));
    let api_before = read(&nginx.pools().join("api.conf"));
    let err = rt.block_on(balancers.route("edge", "api", &BTreeSet::new())).unwrap_err().to_string();
    assert!(err.contains("pool 'api'") && err.contains("host not found in upstream"), "{err}");
    assert_eq!(read(&nginx.pools().join("api.conf")), api_before);
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

// ---- varnish ----

/// A private varnishd booted on a VCL without pools; the balancer loads `main.vcl`, which routes
/// every request to the `web` director.
struct TestVarnish {
    dir: tempfile::TempDir,
    port: u16,
    _varnishd: Daemon,
}

impl TestVarnish {
    fn include_dir(&self) -> PathBuf {
        self.dir.path().join("vcl")
    }

    fn config(&self) -> VarnishConfig {
        let workdir = self.dir.path().join("n").display().to_string();
        VarnishConfig {
            include_dir: self.include_dir(),
            main_vcl: self.dir.path().join("main.vcl"),
            admin_cmd: vec!["varnishadm".into(), "-n".into(), workdir],
            ..VarnishConfig::default()
        }
    }

    fn start() -> TestVarnish {
        let dir = shared_tempdir("vr-varnish-");
        let d = dir.path().display().to_string();
        std::fs::create_dir(dir.path().join("vcl")).unwrap();
        std::fs::write(dir.path().join("boot.vcl"), "vcl 4.1;\nbackend default none;\n").unwrap();
        let main = format!(
            "vcl 4.1;\nimport directors;\nbackend default none;\ninclude \"{d}/vcl/pools.vcl\";\n\
             sub vcl_recv {{ set req.backend_hint = web.backend(); return (pass); }}\n"
        );
        std::fs::write(dir.path().join("main.vcl"), main).unwrap();
        let port = free_port();
        let child = Command::new("varnishd")
            .args(["-F", "-n", &format!("{d}/n"), "-a", &format!("127.0.0.1:{port}")])
            .args(["-f", &format!("{d}/boot.vcl"), "-s", "malloc,16m"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let varnish = TestVarnish { dir, port, _varnishd: Daemon(child) };
        assert!(wait_for_port(port, Duration::from_secs(20)), "varnishd did not start in {d}");
        varnish
    }

    /// Checks that vr left one VCL of its own in use: every older one is discarded (varnish frees
    /// a discarded VCL once no worker thread holds it any more, which may take a while).
    fn assert_older_vcls_discarded(&self) {
        let listed = self.vr_vcls();
        let status = |l: &String| l.split_whitespace().next().unwrap_or_default().to_string();
        let active = listed.iter().filter(|l| status(l) == "active").count();
        let others: Vec<_> =
            listed.iter().filter(|l| !["active", "discarded"].contains(&status(l).as_str())).collect();
        assert!(active == 1 && others.is_empty(), "vcl.list: {listed:?}");
    }

    /// `vcl.list`'s lines for the VCLs vr loaded.
    fn vr_vcls(&self) -> Vec<String> {
        let out =
            Command::new("varnishadm").args(&self.config().admin_cmd[1..]).arg("vcl.list").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().filter(|l| l.contains(" vr-")).map(String::from).collect()
    }
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
