//! Routing across hosts: a swarm spread over three hosts, routed by a builtin router that lives
//! on a fourth (the coordinator's `remote` balancer), serving under continuous load while a host
//! dies; then the router itself cut off during a change and brought back.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use crate::fleet::{coordinator_with, eventually, joined_host_with, procs_on, wait_for_links};
use crate::harness::{text, TestDaemon};
use crate::load::{Load, Plan};
use crate::netns::TestFleet;
use crate::require_root;
use crate::swarm_fixture::Fx;

/// Host 4 of the fleet runs the router.
const EDGE: &str = "198.18.0.4:8080";

/// `vr hosts add ARGS...` on the coordinator: the `vrd join` arguments it printed.
fn add(fx: &Fx, args: &[&str]) -> Vec<String> {
    let out = fx.ok(&[&["hosts", "add"], args].concat());
    let line =
        out.lines().map(str::trim).find(|l| l.starts_with("vrd join ")).unwrap_or_else(|| panic!("{out}"));
    line.split_whitespace().skip(1).map(str::to_string).collect()
}

/// The nodes of pool `hello` in host `d`'s own builtin router.
fn router_nodes(d: &TestDaemon) -> BTreeSet<String> {
    let out = d.run_vr(&["balancers", "nodes", "builtin", "hello"]);
    text(&out).0.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// The nodes of the coordinator's `edge` balancer's pool `hello`.
fn edge_nodes(fx: &Fx) -> BTreeSet<String> {
    fx.ok(&["balancers", "nodes", "edge", "hello"]).lines().map(str::trim).map(str::to_string).collect()
}

#[test]
fn a_swarm_over_three_hosts_routed_on_a_fourth_loses_no_request_after_a_dead_host_is_derouted() {
    require_root!(
        "a_swarm_over_three_hosts_routed_on_a_fourth_loses_no_request_after_a_dead_host_is_derouted"
    );
    let net = TestFleet::new(4);
    let fx = coordinator_with(
        &net,
        "[balancers.edge]\nkind = \"remote\"\nhosts = [\"r\"]\nbalancer = \"builtin\"\n",
    );
    fx.ok(&["squads", "create", "routers"]);
    let h1_args = add(&fx, &["h1", "--address", &net.address(2)]);
    let h2_args = add(&fx, &["h2", "--address", &net.address(3)]);
    let r_args = add(&fx, &["r", "--address", &net.address(4), "--squad", "routers"]);
    let router_config =
        format!("[balancers.builtin]\nkind = \"builtin\"\npools = {{ hello = \"{EDGE}\" }}\n");
    let h1 = joined_host_with(&net, 2, "h1", &h1_args, "");
    let mut h2 = joined_host_with(&net, 3, "h2", &h2_args, "");
    let r = joined_host_with(&net, 4, "r", &r_args, &router_config);
    wait_for_links(&fx, &["h1", "h2", "r"]);

    fx.create_swarm(&["app=hello", "version=v1", "size=6", "pool=hello", "balancer=edge"]);
    let out = fx.ok(&["swarm", "hello-prod-web", "v1"]);
    assert!(out.contains("6 of 6 procs"), "{out}");
    let spread = [procs_on(&fx.d, "coord"), procs_on(&h1, "h1"), procs_on(&h2, "h2"), procs_on(&r, "r")];
    assert_eq!(spread, [2, 2, 2, 0], "two procs on each host of the squad, none on the router");
    assert_eq!(edge_nodes(&fx).len(), 6);
    assert_eq!(router_nodes(&r), edge_nodes(&fx), "the router on r holds the coordinator's pool");
    for _ in 0..6 {
        let page =
            net.http_get(1, &format!("http://{EDGE}/")).unwrap_or_else(|e| panic!("{e}\n{}", fx.vrd_log()));
        assert!(page.contains("Hello from vr"), "{page}");
    }

    // Continuous load through the router while h2 dies (its vrd killed, its link cut).
    let plan = Plan {
        ip: [198, 18, 0, 4].into(),
        port: 8080,
        netns: Some(net.netns(1)),
        path: "/".into(),
        workers: 4,
        timeout: Duration::from_secs(5),
        pause: Duration::from_millis(20),
        limit: Duration::from_secs(300),
    };
    let load = Load::start(&plan);
    std::thread::sleep(Duration::from_secs(1));
    let lost = format!("{}:", net.address(3));
    h2.kill();
    net.set_link(3, false);
    let took = eventually("h2's nodes out of the router on r", 30, &fx, || {
        !router_nodes(&r).iter().any(|n| n.starts_with(&lost))
    });
    let derouted = SystemTime::now();
    eventually("the swarm back at 6 procs on the others, all routed on r", 60, &fx, || {
        procs_on(&fx.d, "coord") + procs_on(&h1, "h1") == 6 && router_nodes(&r).len() == 6
    });
    std::thread::sleep(Duration::from_secs(2));
    let report = load.stop();
    let after: Vec<_> = report.failures.iter().filter(|f| f.sent >= derouted).collect();
    let before = report.failures.len() - after.len();
    eprintln!(
        "de-routed {took:?} after the kill; {} answers, {before} failures before de-routing, {} after",
        report.answers.len(),
        after.len()
    );
    assert!(report.answers.len() > 50, "the load ran: {} answers", report.answers.len());
    assert!(after.is_empty(), "requests failed after de-routing: {:?}", &after[..after.len().min(5)]);

    // The router cut off during a change: the change is kept, and applied once it is back.
    net.set_link(4, false);
    eventually("r suspect", 40, &fx, || {
        fx.ok(&["hosts", "list"])
            .lines()
            .any(|l| l.starts_with("r ") && (l.contains("suspect") || l.contains("down")))
    });
    fx.ok(&["swarms", "edit", "hello-prod-web", "--set", "size=4"]);
    let refused = fx.vr(&["swarm", "hello-prod-web", "v1"]);
    let (stdout, stderr) = text(&refused);
    assert!(!refused.status.success(), "{stdout}");
    assert!(
        format!("{stdout}{stderr}").contains("applied when one is back"),
        "the dispatch says the router missed the change: {stdout}{stderr}"
    );
    // The surplus is de-routed one proc at a time before it goes: the first change is recorded
    // (kept for r) and the dispatch stops there.
    assert_eq!(edge_nodes(&fx).len(), 5, "the coordinator's pool holds the change: {stdout}");
    net.set_link(4, true);
    eventually("r back with the coordinator's pool", 90, &fx, || router_nodes(&r) == edge_nodes(&fx));
    let out = fx.ok(&["swarm", "hello-prod-web", "v1"]);
    assert!(out.contains("4 of 4 procs"), "{out}");
    assert_eq!(procs_on(&fx.d, "coord") + procs_on(&h1, "h1"), 4, "the surplus is retired");
    let page = net.http_get(1, &format!("http://{EDGE}/"));
    assert!(page.as_ref().is_ok_and(|p| p.contains("Hello from vr")), "{page:?}");
    drop(h2);
}
