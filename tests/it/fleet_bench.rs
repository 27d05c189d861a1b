//! The fleet benchmark (issue 11 §5), run by benches/fleet.sh: real vrds in network namespaces
//! (`netns::TestFleet`), as the fleet tests run them. Five parts, each on a fleet of its own:
//!
//! 1. dispatch: a 20-proc swarm over 3 hosts, `vr swarm` until routed, against its critical path
//!    (a 1-proc swarm: one proc's deploy + uptest + route) in the same run, trials alternated;
//! 2. artifacts: a build of more than 100 MB fetched by 2 hosts at once from the coordinator's
//!    store (mutual TLS, sha256 checked, written to the store), against `curl` copying the same
//!    file from nginx over TLS on the same links to the same disks, both hosts at once;
//! 3. failure detection with the default timings (heartbeat 5 s, grace 60 s): a host cut off the
//!    network (link down, then its vrd killed), to its nodes de-routed and to the swarm at full
//!    size on the others;
//! 4. memory: the coordinator's vrd with 100 procs, alone and then with 3 hosts joined;
//! 5. dashboard: 500 procs on 3 hosts in the real browser (tests/browser/bench.py): the procs
//!    page's load, a state change to its box, and the API's listing against the socket's.
//!
//! Writes markdown (docs/benchmarks.md, "The fleet") to $FLEET_REPORT, and to stderr as it goes.

use std::time::{Duration, Instant};

use crate::fleet::{add_host, eventually, joined_host_with, procs_on, wait_for_links};
use crate::harness::{busybox_image, text, TestDaemon};
use crate::netns::TestFleet;
use crate::require_root;
use crate::swarm_fixture::Fx;

const PEER_PORT: &str = "198.18.0.1:7443";

fn trials() -> usize {
    std::env::var("FLEET_TRIALS").ok().and_then(|t| t.parse().ok()).unwrap_or(5)
}

/// A coordinator in host 1 of `net` with `more` in its config.
fn coordinator(net: &TestFleet, more: &str) -> Fx {
    let config = Fx::port_range(&format!(
        "host_name = \"coord\"\npeer_listen = \"{PEER_PORT}\"\ndrain_secs = 1\n{more}"
    ));
    Fx::with_daemon(TestDaemon::start_in_namespace(&net.netns(1), &config, |_| {}))
}

/// Joins hosts 2..=n of `net` as h1, h2, ...
fn join_hosts(net: &TestFleet, fx: &Fx, n: usize) -> Vec<TestDaemon> {
    let hosts: Vec<TestDaemon> = (2..=n)
        .map(|i| {
            let name = format!("h{}", i - 1);
            let args = add_host(fx, &name, &net.address(i));
            joined_host_with(net, i, &name, &args, "")
        })
        .collect();
    let names: Vec<String> = (1..n).map(|i| format!("h{i}")).collect();
    wait_for_links(fx, &names.iter().map(String::as_str).collect::<Vec<_>>());
    hosts
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn list(xs: &[Duration]) -> String {
    xs.iter().map(|d| secs(*d)).collect::<Vec<_>>().join(", ")
}

/// `vr swarm NAME v1` on a new swarm of `size`; how long until it returned (routed).
fn timed_swarm(fx: &Fx, name: &str, size: usize, pool: &str) -> Duration {
    fx.create_swarm(&[
        "app=hello",
        "version=v1",
        &format!("size={size}"),
        &format!("config_name={name}"),
        &format!("pool={pool}"),
        "balancer=bench",
    ]);
    let swarm = format!("hello-{name}-web");
    let started = Instant::now();
    let out = fx.ok(&["swarm", &swarm, "v1"]);
    let took = started.elapsed();
    assert!(out.contains(&format!("{size} of {size} procs")), "{out}");
    took
}

fn dispatch(out: &mut String) {
    let net = TestFleet::new(3);
    let fx = coordinator(
        &net,
        "[balancers.bench]\nkind = \"builtin\"\npools = { one = \"198.18.0.1:8091\", twenty = \"198.18.0.1:8092\", warm = \"198.18.0.1:8093\" }\n",
    );
    let hosts = join_hosts(&net, &fx, 3);
    // Warm up: the build, and the slug in every host's store.
    timed_swarm(&fx, "warm", 3, "warm");
    fx.ok(&["swarms", "delete", "hello-warm-web"]);
    let (mut one, mut twenty) = (Vec::new(), Vec::new());
    for i in 0..trials() {
        one.push(timed_swarm(&fx, &format!("one{i}"), 1, "one"));
        fx.ok(&["swarms", "delete", &format!("hello-one{i}-web")]);
        twenty.push(timed_swarm(&fx, &format!("twenty{i}"), 20, "twenty"));
        let spread = [procs_on(&fx.d, "coord"), procs_on(&hosts[0], "h1"), procs_on(&hosts[1], "h2")];
        assert_eq!(spread.iter().sum::<usize>(), 20, "{spread:?}");
        fx.ok(&["swarms", "delete", &format!("hello-twenty{i}-web")]);
    }
    let (m1, m20) = (median(one.clone()), median(twenty.clone()));
    out.push_str(&format!(
        "### Dispatch: 20 procs over 3 hosts vs one proc's critical path\n\n\
         | swarm | `vr swarm` until routed, each trial (s) | median (s) |\n|---|---|---|\n\
         | 1 proc (deploy + uptest + route) | {} | {} |\n| 20 procs over 3 hosts | {} | {} |\n\n\
         Ratio 20-proc / 1-proc: **{:.2}x** (target <= 1.5x).\n\n",
        list(&one),
        secs(m1),
        list(&twenty),
        secs(m20),
        m20.as_secs_f64() / m1.as_secs_f64()
    ));
}

/// The `ms` of every "fetched an artifact" line in a host's log.
fn fetch_times(d: &TestDaemon) -> Vec<Duration> {
    log_times(d, "fetched an artifact from the coordinator")
}

/// The `ms` of every line of a host's log that says `what`.
fn log_times(d: &TestDaemon, what: &str) -> Vec<Duration> {
    let log = std::fs::read_to_string(d.dir.path().join("vrd.log")).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains(what))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("ms=")).and_then(|v| v.parse().ok()))
        .map(Duration::from_millis)
        .collect()
}

/// A self-signed certificate and nginx serving `file` as /blob over TLS on `addr` in host 1.
struct TlsNginx {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl TlsNginx {
    fn start(net: &TestFleet, addr: &str, file: &std::path::Path) -> TlsNginx {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
        let made = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
            ])
            .args(["-subj", "/CN=bench"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(made.status.success(), "openssl: {}", String::from_utf8_lossy(&made.stderr));
        let conf = dir.path().join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nuser root;\nworker_processes 1;\npid {pid};\nerror_log {dir}/error.log;\nevents {{}}\n\
                 http {{\n access_log off;\n sendfile on;\n client_body_temp_path {dir};\n proxy_temp_path {dir};\n\
                 fastcgi_temp_path {dir};\n uwsgi_temp_path {dir};\n scgi_temp_path {dir};\n\
                 server {{\n  listen {addr} ssl;\n  ssl_certificate {cert};\n  ssl_certificate_key {key};\n\
                 ssl_protocols TLSv1.3;\n  location = /blob {{ alias {file}; }}\n }}\n}}\n",
                pid = dir.path().join("nginx.pid").display(),
                dir = dir.path().display(),
                cert = cert.display(),
                key = key.display(),
                file = file.display(),
            ),
        )
        .unwrap();
        let child = net.command(1, "nginx").arg("-c").arg(&conf).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        TlsNginx { dir, child }
    }
}

impl Drop for TlsNginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers (SIGKILL would leave them running).
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}

/// `curl` copies of https://addr/blob into each host's data dir, all at once; the wall time.
fn curl_copies(net: &TestFleet, hosts: &[(usize, &TestDaemon)], addr: &str) -> Duration {
    curl_all(net, hosts, |_| vec!["-k".into(), format!("https://{addr}/blob")], false)
}

/// [`curl_copies`], each copy then checked with `sha256sum` (a verified copy, as vr's is).
fn verified_curl_copies(net: &TestFleet, hosts: &[(usize, &TestDaemon)], addr: &str) -> Duration {
    curl_all(net, hosts, |_| vec!["-k".into(), format!("https://{addr}/blob")], true)
}

/// `curl` copies of the artifact `sha256` from the coordinator's own blob endpoint (each host
/// with its own certificate), all at once; the wall time.
fn curl_from_coordinator(net: &TestFleet, hosts: &[(usize, &TestDaemon)], sha256: &str) -> Duration {
    curl_all(
        net,
        hosts,
        |d| {
            let pki = d.data().join("pki");
            let file = |f: &str| pki.join(f).display().to_string();
            vec![
                "--cert".into(),
                file("host.pem"),
                "--key".into(),
                file("host.key"),
                "--cacert".into(),
                file("ca.pem"),
                "--resolve".into(),
                format!("coordinator.vr:7443:{}", PEER_PORT.split(':').next().unwrap()),
                format!("https://coordinator.vr:7443/v1/blobs/sha256/{sha256}"),
            ]
        },
        false,
    )
}

/// Runs `curl -sSf --tlsv1.3 -o <data>/curl-copy.bin ARGS` (then `sha256sum` of the copy when
/// `verify`) in each host at once; the wall time.
fn curl_all(
    net: &TestFleet,
    hosts: &[(usize, &TestDaemon)],
    args: impl Fn(&TestDaemon) -> Vec<String>,
    verify: bool,
) -> Duration {
    let started = Instant::now();
    let copies: Vec<_> = hosts
        .iter()
        .map(|(i, d)| {
            let dest = d.data().join("curl-copy.bin");
            let mut line = format!("curl -sSf --tlsv1.3 -o '{}'", dest.display());
            for arg in args(d) {
                line.push_str(&format!(" '{arg}'"));
            }
            if verify {
                line.push_str(&format!(" && sha256sum '{}' >/dev/null", dest.display()));
            }
            net.command(*i, "sh").args(["-c", &line]).spawn().unwrap()
        })
        .collect();
    for mut c in copies {
        assert!(c.wait().unwrap().success(), "curl failed");
    }
    let took = started.elapsed();
    for (_, d) in hosts {
        let _ = std::fs::remove_file(d.data().join("curl-copy.bin"));
    }
    took
}

/// Makes v1 of the app carry `mib` MiB of random bytes (they do not compress).
fn big_app(fx: &Fx, mib: usize) {
    let mut bytes = vec![0u8; mib << 20];
    let mut urandom = std::fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut urandom, &mut bytes).unwrap();
    std::fs::write(fx.app.join("public/big.bin"), bytes).unwrap();
    for args in [&["add", "-A"][..], &["commit", "-q", "-m", "big"], &["tag", "-f", "v1"]] {
        let out = std::process::Command::new("git").arg("-C").arg(&fx.app).args(args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

fn artifacts(out: &mut String) {
    let net = TestFleet::new(3);
    let fx = coordinator(&net, "");
    let hosts = join_hosts(&net, &fx, 3);
    big_app(&fx, 110);
    fx.create_swarm(&["app=hello", "version=v1", "size=3"]);
    let (mut vr, mut curl, mut syncs, mut served) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut verified = Vec::new();
    let mut size = 0;
    for i in 0..trials() {
        let before: Vec<usize> = hosts.iter().map(|h| fetch_times(h).len()).collect();
        fx.ok(&["swarm", "hello-prod-web", "v1"]);
        let took: Vec<Duration> = hosts
            .iter()
            .zip(&before)
            .map(|(h, n)| *fetch_times(h).get(*n).expect("a fetch on each host"))
            .collect();
        vr.push(took.into_iter().max().unwrap());

        let synced: Vec<Duration> = hosts
            .iter()
            .zip(&before)
            .filter_map(|(h, n)| log_times(h, "synced a fetched artifact").get(*n).copied())
            .collect();
        syncs.push(synced.into_iter().max().unwrap_or_default());
        let store = fx.d.data().join("store/sha256");
        let slug = walk_files(&store).into_iter().max_by_key(|p| p.metadata().unwrap().len()).unwrap();
        size = slug.metadata().unwrap().len();
        let nginx = TlsNginx::start(&net, "198.18.0.1:8443", &slug);
        curl.push(curl_copies(&net, &[(2, &hosts[0]), (3, &hosts[1])], "198.18.0.1:8443"));
        verified.push(verified_curl_copies(&net, &[(2, &hosts[0]), (3, &hosts[1])], "198.18.0.1:8443"));
        let sha = slug.file_name().unwrap().to_string_lossy().to_string();
        served.push(curl_from_coordinator(&net, &[(2, &hosts[0]), (3, &hosts[1])], &sha));
        drop(nginx);
        fx.ok(&["swarms", "delete", "hello-prod-web"]);
        if i + 1 < trials() {
            fx.create_swarm(&["app=hello", "version=v1", "size=3"]);
            for h in &hosts {
                std::fs::remove_dir_all(h.data().join("store/sha256")).unwrap();
            }
        }
    }
    let (mv, mc) = (median(vr.clone()), median(curl.clone()));
    out.push_str(&format!(
        "### Artifacts: a {:.0} MB build to 2 hosts at once\n\n\
         | copy | each trial (s) | median (s) | MB/s per host |\n|---|---|---|---|\n\
         | vr: `host.fetch` from the coordinator's store (mTLS, sha256 checked, fsynced into the store) | {} | {} | {:.0} |\n\
         | curl from nginx over TLS 1.3, same links, same disks | {} | {} | {:.0} |\n\
         | curl from the coordinator's vrd (its blob endpoint, each host's certificate) | {} | {} | {:.0} |\n\
         | curl from nginx, then `sha256sum` of the copy (verified, as vr's is) | {} | {} | {:.0} |\n\n\
         Ratio vr / curl: **{:.2}x** (target <= 1.2x). Of vr's time, the final fsync (median of the\n\
         slower host's): {} s (curl does not sync).\n\n",
        size as f64 / 1e6,
        list(&vr),
        secs(mv),
        size as f64 / 1e6 / mv.as_secs_f64(),
        list(&curl),
        secs(mc),
        size as f64 / 1e6 / mc.as_secs_f64(),
        list(&served),
        secs(median(served.clone())),
        size as f64 / 1e6 / median(served.clone()).as_secs_f64(),
        list(&verified),
        secs(median(verified.clone())),
        size as f64 / 1e6 / median(verified.clone()).as_secs_f64(),
        mv.as_secs_f64() / mc.as_secs_f64(),
        secs(median(syncs))
    ));
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk_files(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn nodes(fx: &Fx) -> Vec<String> {
    fx.ok(&["balancers", "nodes", "bench", "hello"]).lines().map(str::to_string).collect()
}

fn detection(out: &mut String) {
    let net = TestFleet::new(3);
    let fx =
        coordinator(&net, "[balancers.bench]\nkind = \"builtin\"\npools = { hello = \"198.18.0.1:8080\" }\n");
    let mut hosts = join_hosts(&net, &fx, 3);
    let lost = format!("{}:", net.address(3));
    let (mut derouted, mut full) = (Vec::new(), Vec::new());
    for _ in 0..trials() {
        fx.create_swarm(&["app=hello", "version=v1", "size=3", "pool=hello", "balancer=bench"]);
        fx.ok(&["swarm", "hello-prod-web", "v1"]);
        assert_eq!(procs_on(&hosts[1], "h2"), 1);
        // The machine vanishes: no FIN reaches the coordinator, only silence.
        let cut = Instant::now();
        net.set_link(3, false);
        hosts[1].kill();
        eventually("h2 de-routed", 120, &fx, || !nodes(&fx).iter().any(|n| n.starts_with(&lost)));
        derouted.push(cut.elapsed());
        eventually("3 procs on the others, routed", 240, &fx, || {
            procs_on(&fx.d, "coord") + procs_on(&hosts[0], "h1") == 3 && nodes(&fx).len() == 3
        });
        full.push(cut.elapsed());
        net.set_link(3, true);
        hosts[1].start_again();
        // Back: the surplus (on whichever host) is retired.
        eventually("h2 back and reconciled", 120, &fx, || {
            fx.ok(&["hosts", "list"]).lines().any(|l| l.starts_with("h2 ") && l.contains(" up "))
                && procs_on(&fx.d, "coord") + procs_on(&hosts[0], "h1") + procs_on(&hosts[1], "h2") == 3
        });
        fx.ok(&["swarms", "delete", "hello-prod-web"]);
    }
    out.push_str(&format!(
        "### Failure detection (default timings: heartbeat 5 s, silence limit 15 s, grace 60 s)\n\n\
         | from the host cut off (link down, vrd killed) to | each trial (s) | median (s) | target |\n|---|---|---|---|\n\
         | its nodes de-routed | {} | {} | <= 20 s |\n| the swarm at full size again, routed | {} | {} | <= 80 s |\n\n",
        list(&derouted),
        secs(median(derouted.clone())),
        list(&full),
        secs(median(full.clone()))
    ));
}

/// (RSS, PSS) of a process, in kB.
fn memory_of(pid: u32) -> (u64, u64) {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    let field = |name: &str| {
        rollup
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Rss:"), field("Pss:"))
}

fn memory(out: &mut String) {
    let net = TestFleet::new(4);
    let fx = coordinator(&net, "");
    for i in 1..=100 {
        let yaml = format!(
            "app_name: idle\nversion: \"1\"\nconfig_name: bench\nrelease_hash: \"\"\nproc_name: p{i:03}\nport: 0\n\
             cmd: sleep 1000000\nuser: root\nimage_url: file://{}\nimage_name: busybox\n",
            busybox_image().display()
        );
        let file = fx.d.write(&format!("p{i:03}.yaml"), &yaml);
        fx.ok(&["proc", "deploy", file.to_str().unwrap()]);
    }
    let settle = Duration::from_secs(10);
    std::thread::sleep(settle);
    let alone = memory_of(fx.d.pid());
    let hosts = join_hosts(&net, &fx, 4);
    std::thread::sleep(Duration::from_secs(30));
    let joined = memory_of(fx.d.pid());
    let host = memory_of(hosts[0].pid());
    let listed = text(&fx.vr(&["procs", "list"])).0.lines().count() - 1;
    assert_eq!(listed, 100);
    out.push_str(&format!(
        "### Memory: the coordinator's vrd with 100 procs\n\n\
         | vrd | RSS (kB) | PSS (kB) |\n|---|---|---|\n\
         | coordinator, 100 procs, no host joined ({} s after the last deploy) | {} | {} |\n\
         | the same vrd, 3 hosts joined and linked (30 s later: heartbeats, events gathered) | {} | {} |\n\
         | a joined host's vrd, no procs | {} | {} |\n\n",
        settle.as_secs(),
        alone.0,
        alone.1,
        joined.0,
        joined.1,
        host.0,
        host.1
    ));
}

/// p50 and p99 of `xs` (milliseconds).
fn p50_p99(mut xs: Vec<f64>) -> (f64, f64) {
    xs.sort_by(f64::total_cmp);
    let at = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// How long `run` takes, `n` times (ms).
fn timed(n: usize, mut run: impl FnMut()) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect()
}

/// The dashboard with 500 procs on 3 hosts (issue 14 §5): its load in the real browser, a
/// state change to the box that shows it, and the API's listing against the socket's.
fn dashboard(out: &mut String) {
    const PROCS: usize = 500;
    let net = TestFleet::new(3);
    let port = 8443;
    let config = Fx::ports(
        400,
        &format!("host_name = \"coord\"\npeer_listen = \"{PEER_PORT}\"\ndrain_secs = 1\nhttp_listen = \"127.0.0.1:{port}\"\n"),
    );
    let fx = Fx::with_daemon(TestDaemon::start_in_namespace(&net.netns(1), &config, |_| {}));
    let _hosts: Vec<TestDaemon> = (2..=3)
        .map(|i| {
            let name = format!("h{}", i - 1);
            let args = add_host(&fx, &name, &net.address(i));
            let config = Fx::ports(400, &format!("host_name = \"{name}\"\n"));
            crate::fleet::joined_host_config(&net, i, &name, &args, &config)
        })
        .collect();
    wait_for_links(&fx, &["h1", "h2"]);
    fx.create_swarm(&["app=hello", "version=v1", &format!("size={PROCS}")]);
    let started = Instant::now();
    fx.ok(&["swarm", "hello-prod-web", "v1"]);
    let dispatched = started.elapsed();
    eventually("500 procs listed", 120, &fx, || {
        text(&fx.vr(&["procs", "list"])).0.lines().filter(|l| l.contains(" RUNNING ")).count() == PROCS
    });
    let args = ["users", "create", "bench", "--role", "deployer", "--password-stdin"];
    assert!(fx.d.run_vr_with_input(&args, "a long enough password\n").status.success());
    let token = fx.ok(&["tokens", "create", "--user", "bench"]).trim().to_string();

    // The API's listing (curl over HTTPS) against `vr procs list` over the socket, alternated.
    let (mut api, mut socket) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        api.extend(timed(1, || {
            let out = net
                .command(1, "curl")
                .args(["-skf", "-H", &format!("Authorization: Bearer {token}")])
                .arg(format!("https://127.0.0.1:{port}/api/v1/procs?limit=1000"))
                .output()
                .unwrap();
            assert!(out.status.success() && text(&out).0.matches("\"name\"").count() >= PROCS);
        }));
        socket.extend(timed(1, || assert_eq!(text(&fx.vr(&["procs", "list"])).0.lines().count(), PROCS + 1)));
    }

    // The browser, in the coordinator's namespace.
    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-failure.png");
    let browsed = net
        .command(1, "/usr/bin/python3")
        .arg(crate::harness::repo().join("tests/browser/bench.py"))
        .arg(format!("https://localhost:{port}/"))
        .args(["bench", "a long enough password", &PROCS.to_string(), "30"])
        .arg(&screenshot)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&browsed);
    assert!(browsed.status.success(), "bench.py: {stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let loads: Vec<(f64, f64)> = report["loads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l[0].as_f64().unwrap(), l[1].as_f64().unwrap()))
        .collect();
    let (paint, live) =
        (p50_p99(loads.iter().map(|l| l.0).collect()).0, p50_p99(loads.iter().map(|l| l.1).collect()).0);
    let mut rows = String::new();
    let mut all = Vec::new();
    for (host, xs) in report["latencies"].as_object().unwrap() {
        let xs: Vec<f64> = xs.as_array().unwrap().iter().filter_map(|x| x.as_f64()).collect();
        all.extend(xs.iter().copied());
        let (p50, p99) = p50_p99(xs.clone());
        rows.push_str(&format!("| procs on {host} | {} | {p50:.0} | {p99:.0} |\n", xs.len()));
    }
    let (p50, p99) = p50_p99(all.clone());
    rows.push_str(&format!("| all | {} | {p50:.0} | {p99:.0} |\n", all.len()));
    let (api50, api99) = p50_p99(api);
    let (sock50, sock99) = p50_p99(socket);
    out.push_str(&format!(
        "### The dashboard with {PROCS} procs on 3 hosts (one swarm, dispatched in {} s)\n\n\
         | load of the procs page (Chromium, headless; 5 loads, median) | ms |\n|---|---|\n\
         | to the first useful paint (every box drawn) | {paint:.0} |\n| to live (the events stream open) | {live:.0} |\n\n\
         | a proc stopped or started through the API: vrd's event to its box changed | changes | p50 (ms) | p99 (ms) |\n|---|---|---|---|\n{rows}\n\
         Target: median <= 250 ms. A joined host's events reach its coordinator by a long poll (`host.events_wait`).\n\n\
         | listing {PROCS} procs, 20 each, alternated | p50 (ms) | p99 (ms) |\n|---|---|---|\n\
         | `GET /api/v1/procs` over HTTPS (curl, a token) | {api50:.0} | {api99:.0} |\n\
         | `vr procs list` over the socket | {sock50:.0} | {sock99:.0} |\n\n",
        secs(dispatched)
    ));
    fx.ok(&["swarms", "delete", "hello-prod-web"]);
}

#[test]
#[ignore = "a benchmark: run by benches/fleet.sh"]
fn benchmark() {
    require_root!("fleet_bench::benchmark");
    let parts = std::env::var("FLEET_PARTS").unwrap_or_else(|_| "dispatch,artifacts,detection,memory".into());
    let mut out = String::new();
    for part in parts.split(',') {
        match part {
            "dispatch" => dispatch(&mut out),
            "artifacts" => artifacts(&mut out),
            "detection" => detection(&mut out),
            "memory" => memory(&mut out),
            "dashboard" => dashboard(&mut out),
            other => {
                panic!("FLEET_PARTS names '{other}': use dispatch, artifacts, detection, memory, dashboard")
            }
        }
        eprintln!("{out}");
    }
    if let Ok(path) = std::env::var("FLEET_REPORT") {
        std::fs::write(path, &out).unwrap();
    }
}
