//! Several coordinators on one model in PostgreSQL (issue 15): one leads, fenced by its lease;
//! a standby serves reads and refuses the leader's duties; when the leader is killed, paused past
//! its lease, or the database restarts, the fleet carries on. The coordinators run on this
//! machine's loopback (the test cluster listens there), each with its own dirs, ports and router.

use std::time::{Duration, Instant};

use crate::harness::{free_port, http_get, text, TestDaemon};
use crate::pg::{restart_cluster, PgSchema};
use crate::require_root;
use crate::swarm_fixture::Fx;

/// The lease of these tests' coordinators: short, so a failover takes seconds.
const LEASE_SECS: u64 = 3;

/// A coordinator named `name` with its model in `schema` and a builtin router for pool `hello`
/// on `router`.
fn coordinator_config(schema: &PgSchema, name: &str, router: u16) -> String {
    Fx::port_range(&format!(
        "host_name = \"{name}\"\nstate_url = \"{}\"\nlease_secs = {LEASE_SECS}\npeer_listen = \"127.0.0.1:{}\"\n\
         drain_secs = 1\n[balancers.builtin]\nkind = \"builtin\"\npools = {{ hello = \"127.0.0.1:{router}\" }}\n",
        schema.url(),
        free_port()
    ))
}

/// `vr hosts leader --json` on `d`.
fn leader(d: &TestDaemon) -> serde_json::Value {
    let out = d.run_vr(&["hosts", "leader", "--json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "vr hosts leader: {stdout}{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// Waits until `d` leads; how long that took.
fn wait_until_leads(d: &TestDaemon, within: Duration) -> Duration {
    let started = Instant::now();
    while !leader(d)["leads"].as_bool().unwrap_or(false) {
        assert!(started.elapsed() < within, "no lead after {within:?}: {}\n{}", leader(d), log(d));
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

fn log(d: &TestDaemon) -> String {
    std::fs::read_to_string(d.dir.path().join("vrd.log")).unwrap_or_default()
}

fn signal(d: &TestDaemon, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(d.pid() as i32), sig).unwrap();
}

/// `vr ARGS` on `d`, which must succeed; its stdout.
fn ok(d: &TestDaemon, args: &[&str]) -> String {
    let out = d.run_vr(args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "vr {args:?}: {stdout}{stderr}\nvrd log:\n{}", log(d));
    stdout
}

/// Waits until the router on `port` serves the hello app.
fn serves(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http_get(port, "/").contains("Hello") {
        assert!(Instant::now() < deadline, "the router on {port} does not serve hello");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_standby_takes_the_lead_when_the_leader_dies_and_a_paused_leader_is_fenced() {
    let name = "a_standby_takes_the_lead_when_the_leader_dies_and_a_paused_leader_is_fenced";
    require_root!(name);
    let Some(schema) = PgSchema::create(name) else { return };
    let (router1, router2) = (free_port(), free_port());
    let fx = Fx::with_daemon(TestDaemon::start_with_config(&coordinator_config(&schema, "c1", router1), &[]));
    wait_until_leads(&fx.d, Duration::from_secs(30));
    let c2 = TestDaemon::start_with_config(&coordinator_config(&schema, "c2", router2), &[]);

    // The standby reads the shared model, names the leader, and refuses the leader's duties.
    let view = leader(&c2);
    assert_eq!((view["holder"].as_str(), view["leads"].as_bool()), (Some("c1"), Some(false)), "{view}");
    fx.create_swarm(&["app=hello", "version=v1", "size=2", "pool=hello"]);
    assert!(ok(&c2, &["swarms", "list"]).contains("hello-prod-web"), "a standby lists the shared swarms");
    let refused = c2.run_vr(&["swarm", "hello-prod-web", "v1"]);
    assert!(!refused.status.success());
    assert!(text(&refused).1.contains("standby"), "{:?}", text(&refused));

    fx.ok(&["swarm", "hello-prod-web", "v1"]);
    serves(router1);

    // The leader dies while idle: the standby leads within the lease and dispatches at once.
    let mut c1 = fx.d;
    c1.kill();
    let took = wait_until_leads(&c2, Duration::from_secs(LEASE_SECS * 10));
    eprintln!("c2 led {took:?} after c1 was killed (lease {LEASE_SECS} s)");
    assert!(ok(&c2, &["swarms", "list"]).contains("hello-prod-web"), "listings never wait on the dead one");
    ok(&c2, &["swarm", "hello-prod-web", "v1"]);
    serves(router2);

    // The leader is paused mid-dispatch past its lease: c1 (back) takes over and finishes what
    // c2 left; c2, woken, finds its writes refused and stands by.
    c1.start_again();
    let out = ok(&c2, &["swarm", "hello-prod-web", "v1", "--detach"]);
    let trace = out.split_whitespace().find(|w| w.len() == 32).unwrap_or_else(|| panic!("no trace: {out}"));
    // Paused once the dispatch is under way (its release chosen), not before it wrote anything.
    let deadline = Instant::now() + Duration::from_secs(60);
    while schema
        .value(&format!("SELECT count(*) FROM deploy_log WHERE trace = '{trace}' AND tags = 'release'"))
        != "1"
    {
        assert!(Instant::now() < deadline, "c2's dispatch {trace} did not get under way\n{}", log(&c2));
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&c2, nix::sys::signal::Signal::SIGSTOP);
    wait_until_leads(&c1, Duration::from_secs(LEASE_SECS * 10));
    signal(&c2, nix::sys::signal::Signal::SIGCONT);
    let deadline = Instant::now() + Duration::from_secs(LEASE_SECS * 10);
    while leader(&c2)["leads"].as_bool() == Some(true) {
        assert!(Instant::now() < deadline, "c2 still leads after it was paused past its lease\n{}", log(&c2));
        std::thread::sleep(Duration::from_millis(100));
    }
    let epochs = schema.value("SELECT epoch FROM lease");
    assert!(epochs.parse::<u64>().unwrap() >= 3, "c1, c2, c1 again: {epochs}");
    // c2's dispatch went on after SIGCONT until its next write, which was refused (by the fence
    // if it came before c2's lease loop noticed, as a standby's after); c1, taking over, found
    // the dispatch unfinished and dispatched the swarm again.
    let c2_log = log(&c2);
    assert!(c2_log.contains("this coordinator is a standby now"), "{c2_log}");
    assert!(
        c2_log.contains("failed to write the deployment log"),
        "no refused write on c2 ({trace}):\n{c2_log}"
    );
    let late = schema.value(&format!(
        "SELECT count(*) FROM deploy_log WHERE trace = '{trace}' AND body LIKE '%this coordinator is a standby%'"
    ));
    assert_eq!(late, "0", "c2 wrote after it lost the lead");
    let c1_log = log(&c1);
    assert!(c1_log.contains("dispatching again a swarm the last leader left unfinished"), "{c1_log}");
    let dispatched = c1.run_vr(&["swarm", "hello-prod-web", "v1"]);
    assert!(dispatched.status.success(), "{:?}\n{}", text(&dispatched), log(&c1));
    serves(router1);

    // The database restarts: both reconnect, nothing is lost, the leader goes on leading.
    restart_cluster();
    assert!(ok(&c2, &["swarms", "list"]).contains("hello-prod-web"));
    wait_until_leads(&c1, Duration::from_secs(LEASE_SECS * 10));
    ok(&c1, &["swarm", "hello-prod-web", "v1"]);
    serves(router1);
    drop(c2);
}
