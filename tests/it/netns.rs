//! Test hosts on one machine (shared/spec/fleet.md §3): a bridge in a network namespace of its own
//! and one namespace per host joined to it by a veth pair, with addresses of 198.18.0.0/24 (the
//! benchmark range) and no default route, so nothing can leave the machine. Each fleet has its
//! own bridge, so fleets of tests running side by side never see each other. Dropping the fleet
//! deletes its namespaces (and so their veths).

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A bridge and `n` hosts; host `i` (from 1) is `198.18.0.<i>`.
pub struct TestFleet {
    prefix: String,
    hosts: usize,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip (iproute2) runs");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl TestFleet {
    /// Makes the bridge and `hosts` hosts.
    pub fn new(hosts: usize) -> TestFleet {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("vrt{}x{n}", std::process::id() % 100_000);
        let fleet = TestFleet { prefix, hosts: 0 };
        let sw = fleet.switch();
        ip(&["netns", "add", &sw]);
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &sw, "link", "set", "br0", "up"]);
        let mut fleet = fleet;
        for i in 1..=hosts {
            fleet.add_host(i);
        }
        fleet
    }

    fn switch(&self) -> String {
        format!("{}s", self.prefix)
    }

    fn add_host(&mut self, i: usize) {
        let (ns, sw) = (self.netns(i), self.switch());
        let (inside, outside) = (format!("{}h{i}", self.prefix), format!("{}p{i}", self.prefix));
        ip(&["netns", "add", &ns]);
        self.hosts = i;
        ip(&["link", "add", &inside, "type", "veth", "peer", "name", &outside]);
        ip(&["link", "set", &inside, "netns", &ns]);
        ip(&["link", "set", &outside, "netns", &sw]);
        ip(&["-n", &sw, "link", "set", &outside, "master", "br0", "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&["-n", &ns, "link", "set", &inside, "name", "eth0"]);
        ip(&["-n", &ns, "addr", "add", &format!("{}/24", self.address(i)), "dev", "eth0"]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
    }

    /// Host `i`'s network namespace.
    pub fn netns(&self, i: usize) -> String {
        format!("{}n{i}", self.prefix)
    }

    /// Host `i`'s address.
    pub fn address(&self, i: usize) -> String {
        format!("198.18.0.{i}")
    }

    /// Cuts host `i` off the bridge (a network partition), or connects it again.
    pub fn set_link(&self, i: usize, up: bool) {
        ip(&["-n", &self.netns(i), "link", "set", "eth0", if up { "up" } else { "down" }]);
    }

    /// Runs a command inside host `i`'s network namespace.
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.netns(i))).arg("--").arg(program);
        cmd
    }

    /// An HTTP GET from inside host `i` (busybox wget, at most 10 s; its own -T option crashes
    /// Debian's busybox-static); the body, or the error.
    pub fn http_get(&self, i: usize, url: &str) -> Result<String, String> {
        let out = self
            .command(i, "timeout")
            .args(["10", "busybox", "wget", "-q", "-O", "-", url])
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!("wget {url} in host {i}: {} {}", out.status, String::from_utf8_lossy(&out.stderr)))
        }
    }
}

impl Drop for TestFleet {
    fn drop(&mut self) {
        for i in 1..=self.hosts {
            let _ = Command::new("ip").args(["netns", "del", &self.netns(i)]).status();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.switch()]).status();
    }
}
