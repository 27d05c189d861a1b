//! `network: private` (issue 12 §5): a proc in a network namespace of its own on a bridge of the
//! host, its port published by its launcher, its outbound traffic masqueraded, and none of the
//! host's sockets in sight. Each test has its own bridge and subnet (removed by a guard), so the
//! tests run beside each other and beside the host's own networking.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{free_port, http_get, proc_yaml, text, TestDaemon};
use crate::require_root;

/// A bridge, its nftables table and an "outside" network namespace made for one test; all
/// removed on drop.
struct Net {
    bridge: String,
    subnet: String,
    outside_ns: String,
    outside_addr: String,
    listener: Option<Child>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip (iproute2) is in tests/packages.txt");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Net {
    /// A subnet and bridge of this test's own; an outside namespace on a /30 of its own, where a
    /// listener answers each connection with the address it came from.
    fn new() -> Net {
        let n = std::process::id() % 200 + rand_byte() as u32 % 50;
        let tag = format!("{:x}{:02x}", std::process::id() % 0xffff, rand_byte());
        let outside_ns = format!("vrt-out-{tag}");
        let net = Net {
            bridge: format!("vrt{tag}"),
            subnet: format!("10.{}.{}.0/24", 200 + n % 50, rand_byte()),
            outside_ns: outside_ns.clone(),
            outside_addr: format!("192.168.{}.2", rand_byte()),
            listener: None,
        };
        let (host_end, far_end) = (format!("vto{tag}"), format!("vti{tag}"));
        let base = net.outside_addr.trim_end_matches(".2").to_string();
        ip(&["netns", "add", &outside_ns]);
        ip(&["link", "add", &host_end, "type", "veth", "peer", "name", &far_end]);
        ip(&["link", "set", &far_end, "netns", &outside_ns]);
        ip(&["addr", "add", &format!("{base}.1/30"), "dev", &host_end]);
        ip(&["link", "set", &host_end, "up"]);
        ip(&["-n", &outside_ns, "addr", "add", &format!("{base}.2/30"), "dev", &far_end]);
        ip(&["-n", &outside_ns, "link", "set", &far_end, "up"]);
        ip(&["-n", &outside_ns, "link", "set", "lo", "up"]);
        net
    }

    /// Starts the listener that tells each client its source address.
    fn listen(&mut self, port: u16) {
        let script = format!(
            "import socket\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('0.0.0.0', {port}))\ns.listen()\nwhile True:\n    c, a = s.accept()\n    \
             c.sendall(('from ' + a[0] + '\\n').encode())\n    c.close()\n"
        );
        let child = Command::new("ip")
            .args(["netns", "exec", &self.outside_ns, "python3", "-c", &script])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.listener = Some(child);
    }

    fn config(&self) -> String {
        format!("private_bridge = \"{}\"\nprivate_subnet = \"{}\"\n", self.bridge, self.subnet)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(mut l) = self.listener.take() {
            let _ = l.kill();
            let _ = l.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.outside_ns]).status();
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).status();
        let table = format!("vr_{}", self.bridge);
        let _ = Command::new("nft").args(["delete", "table", "ip", &table]).status();
    }
}

fn rand_byte() -> u8 {
    let mut b = [0u8; 1];
    std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b)).unwrap();
    b[0].max(1)
}

/// GETs / on `port` until the body holds `needle` (at most 30 s); the last body.
fn body_with(port: u16, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = std::panic::catch_unwind(|| http_get(port, "/")).unwrap_or_default();
        if body.contains(needle) || Instant::now() > deadline {
            return body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for `path` to hold `needle`; returns its text.
fn wait_for_text(path: &std::path::Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_private_proc_is_published_masqueraded_and_sees_none_of_the_host() {
    require_root!("a_private_proc_is_published_masqueraded_and_sees_none_of_the_host");
    let mut net = Net::new();
    net.listen(7000);
    let d = TestDaemon::start_with_config(&net.config(), &[]);
    // Host things the container must not reach: an abstract Unix socket and a loopback port.
    let abstract_name = format!("vrt-secret-{}", std::process::id());
    let _secret = UnixListener::bind_addr(&SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap());
    let host_only = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host_port = host_only.local_addr().unwrap().port();
    let port = free_port();
    let script = format!(
        "echo ifaces: $(ls /sys/class/net | xargs); \
         echo procnet: $(cut -d: -f1 /proc/net/dev | tail -n +3 | xargs); \
         if grep -q {abstract_name} /proc/net/unix; then echo abstract: seen; else echo abstract: hidden; fi; \
         if nc -w 2 127.0.0.1 {host_port} </dev/null; then echo loopback: reached; else echo loopback: refused; fi; \
         echo outside: $(nc -w 5 {outside} 7000 </dev/null); \
         mkdir -p /tmp/www && echo private-hello > /tmp/www/index.html; \
         echo ready; exec httpd -f -p $PORT -h /tmp/www",
        outside = net.outside_addr
    );
    let yaml = proc_yaml(
        "priv",
        port,
        &format!("user: root\ngroup: root\nnetwork: private\ncmd: 'sh -c \"{script}\"'"),
    );
    let file = d.write("priv.yaml", &yaml);
    let f = file.to_str().unwrap();
    let setup = d.run_vr(&["runner", "setup", f]);
    assert!(setup.status.success(), "{:?}", text(&setup));
    let mut run = d.vr().args(["runner", "run", f]).stdout(Stdio::null()).spawn().unwrap();
    let proc_dir = d.data().join(format!("procs/priv-1.0-rc1-test-abcd1234-web-{port}"));
    let log = wait_for_text(&proc_dir.join("log"), "ready");
    assert!(log.contains("ready"), "the proc never got to its server: {log}");
    // Its own interfaces only, in /sys and /proc/net alike.
    assert!(log.contains("ifaces: eth0 lo"), "{log}");
    assert!(log.contains("procnet: lo eth0") || log.contains("procnet: eth0 lo"), "{log}");
    assert!(log.contains("abstract: hidden"), "the host's abstract socket showed in /proc/net/unix: {log}");
    assert!(log.contains("loopback: refused"), "the host's loopback port was reachable: {log}");
    // Outbound: leaves masqueraded as the host's address on that link, not the proc's.
    let host_side = net.outside_addr.trim_end_matches(".2").to_string() + ".1";
    assert!(log.contains(&format!("outside: from {host_side}")), "{log}");
    // Inbound: the published port on the host reaches the app.
    let address = std::fs::read_to_string(proc_dir.join("netns.address")).unwrap();
    let address = address.lines().next().unwrap().to_string();
    let body = body_with(port, "private-hello");
    assert!(body.contains("private-hello"), "the published port did not reach the app: {body}");
    let veth = format!("vr{:08x}", u32::from(address.parse::<std::net::Ipv4Addr>().unwrap()));
    assert!(Command::new("ip").args(["link", "show", &veth]).output().unwrap().status.success());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(run.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    let _ = run.wait();
    // The port is no longer published once the container is gone.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    let down = d.run_vr(&["runner", "teardown", f]);
    assert!(down.status.success(), "{:?}", text(&down));
    // The namespace, its veth and its lease are gone with the proc.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Command::new("ip").args(["link", "show", &veth]).output().unwrap().status.success() {
        assert!(Instant::now() < deadline, "veth {veth} outlived the proc");
        std::thread::sleep(Duration::from_millis(50));
    }
    let leases = std::fs::read_dir(d.data().join("network/leases")).unwrap().count();
    assert_eq!(leases, 0, "the address lease outlived the proc");
    assert!(d.cgroups_left().is_empty() && d.mounts_left().is_empty(), "{:?}", d.mounts_left());
}

#[test]
fn a_private_swarm_is_deployed_uptested_and_routed_through_its_published_ports() {
    require_root!("a_private_swarm_is_deployed_uptested_and_routed_through_its_published_ports");
    let net = Net::new();
    let router = free_port();
    let fx = crate::swarm_fixture::Fx::with_config(&format!(
        "{}drain_secs = 1\n[balancers.builtin]\nkind = \"builtin\"\npools = {{ hello = \"127.0.0.1:{router}\" }}\n",
        net.config()
    ));
    fx.create_swarm(&["app=hello", "version=v1", "size=2", "pool=hello", "network=private"]);
    let out = fx.ok(&["swarm", "hello-prod-web", "v1"]);
    assert!(out.contains("Uptests passed: 2 tests on 2 procs") && out.contains("finished"), "{out}");
    assert!(crate::harness::wait_for_port(router, Duration::from_secs(5)));
    assert!(http_get(router, "/").contains("Hello from vr"));
    // Each proc has its own address on the test's bridge.
    let procs = fx.procs();
    let subnet_prefix = net.subnet.rsplit_once('.').unwrap().0.to_string() + ".";
    let data = fx.d.data();
    let addresses: Vec<String> = procs
        .iter()
        .map(|p| std::fs::read_to_string(data.join(format!("procs/{p}/netns.address"))).unwrap())
        .map(|a| a.lines().next().unwrap().to_string())
        .collect();
    assert_eq!(addresses.len(), 2);
    assert!(
        addresses.iter().all(|a| a.starts_with(&subnet_prefix)) && addresses[0] != addresses[1],
        "{addresses:?}"
    );
    fx.ok(&["swarms", "edit", "hello-prod-web", "--set", "size=0"]);
    fx.ok(&["swarm", "hello-prod-web", "-"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(data.join("network/leases")).unwrap().count() > 0 {
        assert!(Instant::now() < deadline, "leases outlived the swarm's procs");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The capabilities vrd.service removes from vrd's bounding set (`CapabilityBoundingSet=~...`).
fn units_dropped_capabilities() -> Vec<caps::Capability> {
    let unit = std::fs::read_to_string(crate::harness::repo().join("systemd/vrd.service")).unwrap();
    let line = unit.lines().find_map(|l| l.strip_prefix("CapabilityBoundingSet=~")).unwrap_or_default();
    line.split_whitespace().map(|c| c.parse().unwrap_or_else(|e| panic!("{c} in vrd.service: {e}"))).collect()
}

#[test]
fn vrd_under_the_units_bounding_set_and_no_new_privs_still_runs_private_procs() {
    require_root!("vrd_under_the_units_bounding_set_and_no_new_privs_still_runs_private_procs");
    let dropped = units_dropped_capabilities();
    assert!(dropped.len() >= 10, "vrd.service drops capabilities: {dropped:?}");
    assert!(unit_has("NoNewPrivileges=yes"), "vrd.service sets NoNewPrivileges=yes");
    let net = Net::new();
    let mut d = TestDaemon::start_with_config(&net.config(), &[]);
    // What systemd does with those two lines, done by setpriv around the same vrd.
    let bounding: Vec<String> = dropped
        .iter()
        .map(|c| format!("-{}", c.to_string().trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let wrapper = d.dir.path().join("vrd-as-in-the-unit");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec setpriv --no-new-privs --bounding-set={} -- {} \"$@\"\n",
            bounding.join(","),
            d.exe.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    d.terminate();
    d.exe = wrapper;
    d.start_again();
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    let field =
        |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_default().trim().to_string();
    let bnd = u64::from_str_radix(&field("CapBnd:"), 16).unwrap();
    for cap in &dropped {
        assert_eq!(bnd & cap.bitmask(), 0, "{cap} is still in vrd's bounding set");
    }
    assert_eq!(field("NoNewPrivs:"), "1", "vrd runs with no_new_privs");
    // A supervised private proc (bridge, veth, nftables, published port) starts and serves.
    let port = free_port();
    let script =
        "mkdir -p /tmp/www && echo bounded-hello > /tmp/www/index.html; exec httpd -f -p $PORT -h /tmp/www";
    let yaml = proc_yaml("bnd", port, &format!("network: private\ncmd: 'sh -c \"{script}\"'"));
    let file = d.write("bnd.yaml", &yaml);
    let out = d.run_vr(&["proc", "deploy", file.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    let body = body_with(port, "bounded-hello");
    let log = std::fs::read_to_string(d.dir.path().join("vrd.log")).unwrap_or_default();
    assert!(body.contains("bounded-hello"), "the private proc did not serve: {body}\n{log}");
    let name = format!("bnd-1.0-rc1-test-abcd1234-web-{port}");
    let out = d.run_vr(&["procs", "destroy", &name]);
    assert!(out.status.success(), "{:?}", text(&out));
}

fn unit_has(line: &str) -> bool {
    let unit = std::fs::read_to_string(crate::harness::repo().join("systemd/vrd.service")).unwrap();
    unit.lines().any(|l| l.trim() == line)
}
