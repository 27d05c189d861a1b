//! Peer mode end to end: vrds in network namespaces of their own on a private bridge
//! (`netns::TestFleet`), one coordinating, the others joining it with `vr hosts add` and
//! `vrd join`, and a swarm spread over all of them, routed through the coordinator's router.

use std::time::{Duration, Instant};

use crate::harness::{text, TestDaemon};
use crate::netns::TestFleet;
use crate::require_root;
use crate::swarm_fixture::Fx;

const ROUTER: &str = "198.18.0.1:8080";
const PEER_PORT: &str = "198.18.0.1:7443";

/// The coordinator (host 1 of `net`), with the builtin router on pool `hello`; lost hosts are
/// replaced after 5 s.
/// Where a coordinator serves /metrics, in its own network namespace.
const METRICS: &str = "127.0.0.1:9477";

fn coordinator(net: &TestFleet) -> Fx {
    coordinator_with(net, "")
}

/// [`coordinator`] with `more` added to its config.
pub fn coordinator_with(net: &TestFleet, more: &str) -> Fx {
    let config = Fx::port_range(&format!(
        "host_name = \"coord\"\npeer_listen = \"{PEER_PORT}\"\ndrain_secs = 1\nhost_grace_secs = 5\n\
         metrics_listen = \"{METRICS}\"\n\
         [balancers.builtin]\nkind = \"builtin\"\npools = {{ hello = \"{ROUTER}\" }}\n{more}"
    ));
    Fx::with_daemon(TestDaemon::start_in_namespace(&net.netns(1), &config, |_| {}))
}

/// `vr hosts add NAME` on the coordinator: the `vrd join` arguments it printed.
pub fn add_host(fx: &Fx, name: &str, address: &str) -> Vec<String> {
    let out = fx.ok(&["hosts", "add", name, "--address", address]);
    let line =
        out.lines().map(str::trim).find(|l| l.starts_with("vrd join ")).unwrap_or_else(|| panic!("{out}"));
    line.split_whitespace().skip(1).map(str::to_string).collect()
}

/// Runs `vrd join ARGS --config CONFIG` inside host `i`.
pub fn join(net: &TestFleet, i: usize, args: &[String], config: &std::path::Path) -> std::process::Output {
    net.command(i, env!("CARGO_BIN_EXE_vrd")).args(args).arg("--config").arg(config).output().unwrap()
}

/// A host vrd in namespace `i` that joined with `args` first.
fn joined_host(net: &TestFleet, i: usize, name: &str, args: &[String]) -> TestDaemon {
    joined_host_with(net, i, name, args, "")
}

/// [`joined_host`] with `more` added to its config.
pub fn joined_host_with(net: &TestFleet, i: usize, name: &str, args: &[String], more: &str) -> TestDaemon {
    joined_host_config(net, i, name, args, &Fx::port_range(&format!("host_name = \"{name}\"\n{more}")))
}

/// A host vrd in namespace `i` with all of `config`, that joined with `args` first.
pub fn joined_host_config(
    net: &TestFleet,
    i: usize,
    name: &str,
    args: &[String],
    config: &str,
) -> TestDaemon {
    TestDaemon::start_in_namespace(&net.netns(i), config, |config| {
        let out = join(net, i, args, config);
        assert!(out.status.success(), "vrd join: {:?}", text(&out));
        assert!(text(&out).0.contains(&format!("as host {name}")), "{:?}", text(&out));
    })
}

pub fn wait_for_links(fx: &Fx, hosts: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let links = fx.ok(&["hosts", "links"]);
        if hosts
            .iter()
            .all(|h| links.lines().any(|l| l.starts_with(&format!("{h} ")) && l.contains("connected")))
        {
            return;
        }
        assert!(Instant::now() < deadline, "hosts {hosts:?} did not connect: {links}\n{}", fx.vrd_log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How many procs `vr procs list` on `d` shows on `host` (a coordinator lists its hosts' too).
pub fn procs_on(d: &TestDaemon, host: &str) -> usize {
    let out = d.run_vr(&["procs", "list"]);
    text(&out).0.lines().skip(1).filter(|l| l.split_whitespace().next() == Some(host)).count()
}

#[test]
fn hosts_join_with_a_token_and_a_swarm_spreads_over_them_and_serves() {
    require_root!("hosts_join_with_a_token_and_a_swarm_spreads_over_them_and_serves");
    let net = TestFleet::new(3);
    let fx = coordinator(&net);
    let h1_args = add_host(&fx, "h1", &net.address(2));
    let h2_args = add_host(&fx, "h2", &net.address(3));
    let h1 = joined_host(&net, 2, "h1", &h1_args);
    let h2 = joined_host(&net, 3, "h2", &h2_args);
    wait_for_links(&fx, &["h1", "h2"]);

    fx.create_swarm(&["app=hello", "version=v1", "size=3", "pool=hello"]);
    let out = fx.ok(&["swarm", "hello-prod-web", "v1"]);
    assert!(out.contains("Uptests passed: 2 tests on 3 procs") || out.contains("on 3 procs"), "{out}");
    assert_eq!((procs_on(&h1, "h1"), procs_on(&h2, "h2")), (1, 1), "one proc per host");
    let everywhere = ["coord", "h1", "h2"].map(|h| procs_on(&fx.d, h));
    assert_eq!(everywhere, [1, 1, 1], "the coordinator lists the whole fleet");
    let hosts = fx.ok(&["hosts", "list"]);
    for (host, state) in [("coord", "local"), ("h1", "up"), ("h2", "up")] {
        let row = hosts.lines().find(|l| l.starts_with(&format!("{host} "))).unwrap_or_default();
        let cols: Vec<&str> = row.split_whitespace().collect();
        let procs = cols.len().checked_sub(2).and_then(|i| cols.get(i));
        assert_eq!((cols.get(3), procs), (Some(&state), Some(&"1")), "{host}: {hosts}");
        if host != "coord" {
            assert!(row.contains("s ago"), "a joined host shows its last heartbeat: {hosts}");
        }
    }
    // The coordinator's metrics: each joined host's heartbeat age, and this host's proc.
    let scrape = || net.http_get(1, &format!("http://{METRICS}/metrics")).unwrap_or_else(|e| panic!("{e}"));
    let metrics = scrape();
    for host in ["h1", "h2"] {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&format!("vr_peer_heartbeat_age_seconds{{host=\"{host}\"}}")));
        let age: Option<f64> = line.and_then(|l| l.rsplit(' ').next()?.parse().ok());
        assert!(age.is_some_and(|a| (0.0..30.0).contains(&a)), "{host}'s heartbeat age: {metrics}");
    }
    assert!(metrics.contains("vr_procs{host=\"coord\",state=\"RUNNING\"} 1"), "{metrics}");
    let nodes = fx.ok(&["balancers", "nodes", "builtin", "hello"]);
    for address in [net.address(2), net.address(3)] {
        assert!(nodes.contains(&format!("{address}:")), "{address} is routed: {nodes}");
    }
    for _ in 0..6 {
        let page =
            net.http_get(1, &format!("http://{ROUTER}/")).unwrap_or_else(|e| panic!("{e}\n{}", fx.vrd_log()));
        assert!(page.contains("Hello from vr"), "{page}");
    }
    // A joined host's proc's log, read through the coordinator.
    let on_h1 = fx
        .ok(&["procs", "list"])
        .lines()
        .find(|l| l.starts_with("h1 "))
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    let logs = fx.vr(&["logs", &on_h1]);
    assert!(logs.status.success(), "{:?}", text(&logs));
    let unknown = fx.vr(&["logs", "nope-1-prod-abcdef12-web-1"]);
    assert!(!unknown.status.success());
    // The swarm's logs as one stream: every proc (each was uptested, so each logged a request),
    // on every host, merged by time and tagged with its proc.
    let merged = fx.ok(&["logs", "--swarm", "hello-prod-web"]);
    let tagged: std::collections::BTreeSet<&str> =
        merged.lines().filter_map(|l| l.split_whitespace().nth(1)?.strip_suffix('|')).collect();
    assert_eq!(tagged.len(), 3, "lines of all 3 procs: {merged}");
    assert!(tagged.contains(on_h1.as_str()), "{merged}");
    // Acting on it from the coordinator acts on h1.
    let state_on_h1 = || {
        let listing = h1.run_vr(&["procs", "list"]);
        let (listing, _) = text(&listing);
        let row = listing.lines().find(|l| l.contains(&on_h1)).map(str::to_string);
        row.unwrap_or_default()
    };
    fx.ok(&["procs", "stop", &on_h1]);
    assert!(state_on_h1().contains("STOPPED"), "{}", state_on_h1());
    fx.ok(&["procs", "start", &on_h1]);
    eventually("h1's proc running again", 20, &fx, || state_on_h1().contains("RUNNING"));
    // The coordinator's events show h1's, with its host name.
    eventually("h1's STOPPED event on the coordinator", 10, &fx, || {
        fx.ok(&["events"])
            .lines()
            .any(|l| l.contains(" STOPPED ") && l.contains(" h1 ") && l.contains(&on_h1))
    });

    // The slug came from the coordinator's store, once, verified.
    for h in [&h1, &h2] {
        let store: Vec<_> = std::fs::read_dir(h.data().join("store/sha256")).unwrap().flatten().collect();
        assert_eq!(store.len(), 1, "one artifact in {}", h.data().display());
    }

    // Draining h2: its proc is replaced on another host and routed before it goes.
    let drained = fx.ok(&["hosts", "drain", "h2"]);
    assert!(drained.contains("finished"), "{drained}");
    assert_eq!(procs_on(&h2, "h2"), 0);
    assert_eq!(procs_on(&fx.d, "coord") + procs_on(&fx.d, "h1"), 3);
    let nodes = fx.ok(&["balancers", "nodes", "builtin", "hello"]);
    assert!(!nodes.contains(&format!("{}:", net.address(3))) && nodes.lines().count() == 3, "{nodes}");
    assert!(net.http_get(1, &format!("http://{ROUTER}/")).is_ok_and(|p| p.contains("Hello from vr")));
}

#[test]
fn joining_is_refused_for_a_used_token_a_wrong_pin_and_a_deleted_host() {
    require_root!("joining_is_refused_for_a_used_token_a_wrong_pin_and_a_deleted_host");
    let net = TestFleet::new(2);
    let fx = coordinator(&net);
    let args = add_host(&fx, "h1", &net.address(2));
    let h1 = joined_host(&net, 2, "h1", &args);
    wait_for_links(&fx, &["h1"]);
    let config = h1.dir.path().join("vrd.toml");

    let again = join(&net, 2, &args, &config);
    assert!(!again.status.success());
    assert!(text(&again).1.contains("used already"), "{:?}", text(&again));

    let mut wrong_pin = args.clone();
    let at = wrong_pin.iter().position(|a| a == "--ca-sha256").unwrap() + 1;
    wrong_pin[at] = "0".repeat(64);
    let refused = join(&net, 2, &wrong_pin, &config);
    assert!(text(&refused).1.contains("--ca-sha256"), "{:?}", text(&refused));

    let taken = fx.vr(&["hosts", "add", "h1", "--address", "198.18.0.9"]);
    assert!(text(&taken).1.contains("exists already"), "{:?}", text(&taken));

    // Deleting the host revokes its certificate: its link is cut and cannot come back.
    fx.ok(&["hosts", "delete", "h1"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let log = h1.dir.path().join("vrd.log");
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("revoked or replaced") {
        assert!(
            Instant::now() < deadline,
            "h1 was not refused: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!fx.ok(&["hosts", "links"]).contains("h1 "));
}

/// Waits until `done` holds, for at most `secs`; says what it waited for when it gives up.
pub fn eventually(what: &str, secs: u64, fx: &Fx, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "not within {secs} s: {what}\n{}",
            fx.vrd_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    started.elapsed()
}

#[test]
fn a_lost_host_is_derouted_then_replaced_and_its_return_leaves_no_duplicate() {
    require_root!("a_lost_host_is_derouted_then_replaced_and_its_return_leaves_no_duplicate");
    let net = TestFleet::new(3);
    let fx = coordinator(&net);
    let h1_args = add_host(&fx, "h1", &net.address(2));
    let h2_args = add_host(&fx, "h2", &net.address(3));
    let h1 = joined_host(&net, 2, "h1", &h1_args);
    let mut h2 = joined_host(&net, 3, "h2", &h2_args);
    wait_for_links(&fx, &["h1", "h2"]);
    fx.create_swarm(&["app=hello", "version=v1", "size=3", "pool=hello"]);
    fx.ok(&["swarm", "hello-prod-web", "v1"]);
    let lost_node = format!("{}:", net.address(3));
    assert!(fx.ok(&["balancers", "nodes", "builtin", "hello"]).contains(&lost_node));

    let on_h2 = fx
        .ok(&["procs", "list"])
        .lines()
        .find(|l| l.starts_with("h2 "))
        .map(|l| l.split_whitespace().last().unwrap_or_default().to_string());
    let on_h2 = on_h2.expect("a proc on h2");
    // h2 dies: its vrd killed and its link cut (its procs keep running, unreachable).
    h2.kill();
    net.set_link(3, false);
    let derouted = eventually("h2's node de-routed", 20, &fx, || {
        !fx.ok(&["balancers", "nodes", "builtin", "hello"]).contains(&lost_node)
    });
    for _ in 0..10 {
        let page = net.http_get(1, &format!("http://{ROUTER}/"));
        assert!(page.as_ref().is_ok_and(|p| p.contains("Hello from vr")), "{page:?}");
    }
    let listed = Instant::now();
    let listing = fx.ok(&["procs", "list"]);
    assert!(listed.elapsed() < Duration::from_secs(2), "a listing never waits on a dead host");
    assert!(
        listing.lines().any(|l| l.starts_with("h2 ") && l.contains("UNKNOWN")),
        "the lost host's procs are shown as unknown: {listing}"
    );
    let listed = Instant::now();
    let hosts = fx.ok(&["hosts", "list"]);
    assert!(listed.elapsed() < Duration::from_secs(2), "the host listing never waits on a dead host");
    let row = hosts.lines().find(|l| l.starts_with("h2 ")).unwrap_or_default();
    assert!(
        (row.contains("suspect") || row.contains("down")) && row.contains(" ? "),
        "the lost host is suspect or down, its procs unknown: {hosts}"
    );
    let replaced = eventually("the swarm back at 3 procs on the others", 40, &fx, || {
        procs_on(&fx.d, "coord") + procs_on(&fx.d, "h1") == 3
            && fx.ok(&["balancers", "nodes", "builtin", "hello"]).lines().count() == 3
    });
    eprintln!("de-routed after {derouted:?}, replaced after {replaced:?} more (grace 5 s)");

    // h2 comes back with its old proc: the surplus is retired, nothing is duplicated.
    net.set_link(3, true);
    h2.start_again();
    eventually("h2 reconciled: 3 procs in all", 40, &fx, || {
        procs_on(&fx.d, "coord") + procs_on(&h1, "h1") + procs_on(&h2, "h2") == 3
    });
    eventually("3 routed nodes", 20, &fx, || {
        fx.ok(&["balancers", "nodes", "builtin", "hello"]).lines().count() == 3
    });
    // h2's first proc, running still or retired, has its log readable from the coordinator (a
    // retired one's is kept on h2 for the retention period).
    let kept = fx.vr(&["logs", &on_h2]);
    assert!(kept.status.success(), "{on_h2}: {:?}", text(&kept));
}

#[test]
fn a_coordinator_killed_during_a_dispatch_converges_on_the_next_swarm() {
    require_root!("a_coordinator_killed_during_a_dispatch_converges_on_the_next_swarm");
    let net = TestFleet::new(2);
    let mut fx = coordinator(&net);
    let args = add_host(&fx, "h1", &net.address(2));
    let h1 = joined_host(&net, 2, "h1", &args);
    wait_for_links(&fx, &["h1"]);
    fx.create_swarm(&["app=hello", "version=v1", "size=4", "pool=hello"]);
    // Start the dispatch and kill the coordinator as soon as its first proc is deployed.
    let mut swarm =
        fx.d.vr()
            .args(["swarm", "hello-prod-web", "v1"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    eventually("a first deploy", 60, &fx, || fx.vrd_log().contains("deploy 1/4"));
    fx.d.kill();
    let _ = swarm.wait();
    fx.d.start_again();
    wait_for_links(&fx, &["h1"]);
    let out = fx.ok(&["swarm", "hello-prod-web", "v1"]);
    assert!(out.contains("finished: 4 of 4 procs"), "{out}");
    assert_eq!(procs_on(&fx.d, "coord") + procs_on(&h1, "h1"), 4, "no proc left over or missing");
    eventually("4 routed nodes", 10, &fx, || {
        fx.ok(&["balancers", "nodes", "builtin", "hello"]).lines().count() == 4
    });
}
