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
const LEASE_SECS: u64 = 5;

/// Held by each test here for its whole run: one restarts the database cluster, which every
/// vrd on it sees (a state read in that second fails), so they take turns.
static CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// This test's turn on the cluster (a failed test before it does not poison the others' turn).
fn cluster_turn() -> std::sync::MutexGuard<'static, ()> {
    CLUSTER.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

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
    assert!(out.status.success(), "vr hosts leader: {stdout}{stderr}\nvrd log:\n{}", log(d));
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

/// Waits until `d`'s log says `what`.
fn wait_for_log(d: &TestDaemon, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log(d).contains(what) {
        assert!(Instant::now() < deadline, "the log does not say '{what}':\n{}", log(d));
        std::thread::sleep(Duration::from_millis(50));
    }
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

/// Version v2 of the fixture's app: the same, with an uptest that takes 4 s, so a dispatch of it
/// is surely still under way (uptesting its procs) when a test pauses or kills its coordinator
/// right after its release step. A dispatch of v1 is over in a few tens of milliseconds.
fn slow_version(fx: &Fx) {
    fx.app_version("v2", "uptests/web/02_takes_its_time", "#!/bin/sh\nsleep 4\necho took its time\n", 0o755);
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
    let _turn = cluster_turn();
    let Some(schema) = PgSchema::create(name) else { return };
    let (router1, router2) = (free_port(), free_port());
    let fx = Fx::with_daemon(TestDaemon::start_with_config(&coordinator_config(&schema, "c1", router1), &[]));
    wait_until_leads(&fx.d, Duration::from_secs(30));
    let c1_pki = fx.d.data().join("pki");
    let c2 =
        TestDaemon::start_with_config_prepared(&coordinator_config(&schema, "c2", router2), &[], |data| {
            fleet::copy_ca(&c1_pki, data);
        });

    // The standby reads the shared model, names the leader, and hands the leader's duties to it.
    let view = leader(&c2);
    assert_eq!((view["holder"].as_str(), view["leads"].as_bool()), (Some("c1"), Some(false)), "{view}");
    fx.create_swarm(&["app=hello", "version=v1", "size=2", "pool=hello"]);
    slow_version(&fx);
    assert!(ok(&c2, &["swarms", "list"]).contains("hello-prod-web"), "a standby lists the shared swarms");
    let forwarded = c2.run_vr(&["stacks", "build", "nosuch"]);
    assert!(!forwarded.status.success() && text(&forwarded).1.contains("nosuch"), "{:?}", text(&forwarded));
    let audited = "SELECT count(*) FROM audit WHERE method = 'stacks.build' AND params LIKE '%\"forwarded_by\":\"c2\"%'";
    assert_eq!(schema.value(audited), "1", "the leader ran (and audited) the standby's call");

    ok(&c2, &["swarm", "hello-prod-web", "v1"]);
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
    let out = ok(&c2, &["swarm", "hello-prod-web", "v2", "--detach"]);
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
    // Its lease loop says so once it runs again; a refused write may have stood it down first.
    wait_for_log(&c2, "this coordinator is a standby now");
    // Its next write may wait for procs to start or uptests to run; its last is its end's step.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log(&c2).contains("failed to write the deployment log") {
        assert!(Instant::now() < deadline, "no refused write on c2 ({trace}):\n{}", log(&c2));
        std::thread::sleep(Duration::from_millis(100));
    }
    let late = schema.value(&format!(
        "SELECT count(*) FROM deploy_log WHERE trace = '{trace}' AND body LIKE '%this coordinator is a standby%'"
    ));
    assert_eq!(late, "0", "c2 wrote after it lost the lead");
    // c1's take-over runs beside c2's refused writes: either may come first.
    wait_for_log(&c1, "dispatching again a swarm the last leader left unfinished");
    let dispatched = c1.run_vr(&["swarm", "hello-prod-web", "v1"]);
    assert!(dispatched.status.success(), "{:?}\n{}", text(&dispatched), log(&c1));
    serves(router1);

    // The database restarts: both reconnect, nothing is lost, the leader goes on leading.
    restart_cluster();
    assert!(ok(&c2, &["swarms", "list"]).contains("hello-prod-web"));
    // While the database was down the leader could not renew: either may lead now. Go on with
    // whichever the lease names once both agree.
    let mut ds = [c1, c2];
    let routers = [router1, router2];
    let lead = settled_leader(&ds);
    ok(&ds[lead], &["swarm", "hello-prod-web", "v1"]);
    serves(routers[lead]);

    // The leader is killed mid-dispatch: the standby leads, finds the dispatch unfinished and
    // completes it, and the swarm serves through the new leader.
    let other = 1 - lead;
    let out = ok(&ds[lead], &["swarm", "hello-prod-web", "v2", "--detach"]);
    let trace = out.split_whitespace().find(|w| w.len() == 32).unwrap_or_else(|| panic!("no trace: {out}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while schema
        .value(&format!("SELECT count(*) FROM deploy_log WHERE trace = '{trace}' AND tags = 'release'"))
        != "1"
    {
        assert!(Instant::now() < deadline, "the dispatch {trace} did not get under way\n{}", log(&ds[lead]));
        std::thread::sleep(Duration::from_millis(20));
    }
    ds[lead].kill();
    wait_until_leads(&ds[other], Duration::from_secs(LEASE_SECS * 10));
    let closed = format!("SELECT count(*) FROM deploy_log WHERE trace = '{trace}' AND tags LIKE '%aborted%'");
    let deadline = Instant::now() + Duration::from_secs(60);
    while schema.value(&closed) == "0" {
        assert!(
            Instant::now() < deadline,
            "the standby did not take over the dispatch {trace}\n{}",
            log(&ds[other])
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let again = format!(
        "SELECT count(*) FROM deploy_log WHERE swarm = 'hello-prod-web' AND tags LIKE '%done%' AND id > \
         (SELECT max(id) FROM deploy_log WHERE trace = '{trace}')"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while schema.value(&again) == "0" {
        assert!(Instant::now() < deadline, "the new leader's dispatch did not finish\n{}", log(&ds[other]));
        std::thread::sleep(Duration::from_millis(100));
    }
    serves(routers[other]);
}

/// Waits until `count` (a `SELECT count(*)` in `schema`) is not 0; on a timeout the panic shows
/// `log`.
fn wait_for(schema: &PgSchema, count: &str, secs: u64, log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while schema.value(count) == "0" {
        assert!(Instant::now() < deadline, "{count}: still 0 after {secs} s\n{}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Which of `ds` leads, once the lease names it, it says it leads, and the other says it does not.
fn settled_leader(ds: &[TestDaemon; 2]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(LEASE_SECS * 10);
    loop {
        let views = [leader(&ds[0]), leader(&ds[1])];
        let leads = views.iter().map(|v| v["leads"].as_bool() == Some(true)).collect::<Vec<_>>();
        let held_by = |i: usize| views[i]["holder"].as_str() == views[i]["this"].as_str();
        let live = views.iter().all(|v| v["expires_in_ms"].as_i64().unwrap_or(0) > 0);
        if live && leads[0] != leads[1] {
            let lead = if leads[0] { 0 } else { 1 };
            if held_by(lead) {
                return lead;
            }
        }
        assert!(Instant::now() < deadline, "the lead did not settle: {views:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The benchmark (benches/coordinators.sh, docs/benchmarks.md "Several coordinators"):
/// `failover` kills the leader of two coordinators (default lease) COORD_TRIALS times and times
/// it to the standby leading and dispatching; `state` times the model's operations on PostgreSQL
/// against SQLite in the same run.
#[test]
#[ignore = "a benchmark: run by benches/coordinators.sh"]
fn benchmark() {
    require_root!("coordinators::benchmark");
    let parts = std::env::var("COORD_PARTS").unwrap_or_else(|_| "failover,state".into());
    let trials: usize = std::env::var("COORD_TRIALS").ok().and_then(|t| t.parse().ok()).unwrap_or(10);
    let mut out = String::new();
    for part in parts.split(',') {
        match part {
            "failover" => failover(&mut out, trials),
            "state" => bench::state_operations(&mut out),
            other => panic!("COORD_PARTS names '{other}': use failover, state"),
        }
    }
    eprintln!("{out}");
    if let Ok(path) = std::env::var("COORD_REPORT") {
        std::fs::write(path, &out).unwrap();
    }
}

/// Median and max of `samples`, in seconds.
fn median_max(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

fn failover(out: &mut String, trials: usize) {
    let _turn = cluster_turn();
    let Some(schema) = PgSchema::create("coordinators::benchmark") else { return };
    let lease = std::env::var("COORD_LEASE").unwrap_or_else(|_| "15".into());
    let config = |name: &str| {
        coordinator_config(&schema, name, free_port())
            .replace(&format!("lease_secs = {LEASE_SECS}"), &format!("lease_secs = {lease}"))
    };
    let fx = Fx::with_daemon(TestDaemon::start_with_config(&config("c1"), &[]));
    wait_until_leads(&fx.d, Duration::from_secs(60));
    fx.create_swarm(&["app=hello", "version=v1", "size=1", "pool=hello"]);
    fx.ok(&["swarm", "hello-prod-web", "v1"]);
    let c1_pki = fx.d.data().join("pki");
    let c2 = TestDaemon::start_with_config_prepared(&config("c2"), &[], |data| fleet::copy_ca(&c1_pki, data));
    let mut ds = [fx.d, c2];
    forwarding(out, &schema, &ds);
    let (mut to_lead, mut to_dispatch) = (Vec::new(), Vec::new());
    for trial in 0..trials {
        let (leader, standby) = if leader(&ds[0])["leads"].as_bool() == Some(true) { (0, 1) } else { (1, 0) };
        // A kill at a random point of the leader's renewal period, as a crash would come.
        std::thread::sleep(Duration::from_millis(rand_ms(5000)));
        ds[leader].kill();
        let killed = Instant::now();
        let waiting = Duration::from_secs(120);
        while leader_of(&ds[standby]) != Some(true) {
            assert!(killed.elapsed() < waiting, "trial {trial}: no new leader\n{}", log(&ds[standby]));
            std::thread::sleep(Duration::from_millis(20));
        }
        to_lead.push(killed.elapsed().as_secs_f64());
        let accepted = ds[standby].run_vr(&["swarm", "hello-prod-web", "v1", "--detach"]);
        assert!(accepted.status.success(), "trial {trial}: {:?}", text(&accepted));
        to_dispatch.push(killed.elapsed().as_secs_f64());
        let out = text(&accepted).0;
        let trace =
            out.split_whitespace().find(|w| w.len() == 32).unwrap_or_else(|| panic!("no trace: {out}"));
        eprintln!(
            "trial {trial}: led after {:.2} s, dispatching after {:.2} s",
            to_lead[trial], to_dispatch[trial]
        );
        ds[leader].start_again();
        wait_until_ended(&schema, trace);
    }
    let (lead_median, lead_max) = median_max(&mut to_lead);
    let (dispatch_median, dispatch_max) = median_max(&mut to_dispatch);
    out.push_str(&format!(
        "Failover, {trials} trials, lease {lease} s (renewed every third): the leader killed (SIGKILL, at a random \
         point of its renewal period) → the standby leads: median {lead_median:.1} s, max {lead_max:.1} s; → \
         it has accepted a `vr swarm`: median {dispatch_median:.1} s, max {dispatch_max:.1} s (target ≤ 20 s).\n\n"
    ));
}

/// What forwarding costs: `vr swarm --detach` answered by the leader, and by the standby (which
/// forwards it to the leader over their peer ports), p50 of 10 each.
fn forwarding(out: &mut String, schema: &PgSchema, ds: &[TestDaemon; 2]) {
    let leader = if leader(&ds[0])["leads"].as_bool() == Some(true) { 0 } else { 1 };
    let timed = |d: &TestDaemon| {
        let started = Instant::now();
        let answer = d.run_vr(&["swarm", "hello-prod-web", "v1", "--detach"]);
        let took = started.elapsed().as_secs_f64() * 1000.0;
        assert!(answer.status.success(), "{:?}", text(&answer));
        let stdout = text(&answer).0;
        let trace = stdout.split_whitespace().find(|w| w.len() == 32).map(str::to_string);
        wait_until_ended(schema, &trace.unwrap_or_else(|| panic!("no trace: {stdout}")));
        took
    };
    let (mut direct, mut forwarded) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        direct.push(timed(&ds[leader]));
        forwarded.push(timed(&ds[1 - leader]));
    }
    let (direct, _) = median_max(&mut direct);
    let (forwarded, _) = median_max(&mut forwarded);
    out.push_str(&format!(
        "Forwarding, p50 of 10: `vr swarm --detach` answered by the leader {direct:.1} ms; by the standby, which \
         forwards it to the leader (mutual TLS on the peer ports, a new connection each time) {forwarded:.1} ms.\n\n"
    ));
}

/// `leads` of `vr hosts leader` on `d`, or `None` while it does not answer.
fn leader_of(d: &TestDaemon) -> Option<bool> {
    let out = d.run_vr(&["hosts", "leader", "--json"]);
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    view["leads"].as_bool()
}

/// Waits until the dispatch `trace` ended, so the next trial kills an idle leader.
fn wait_until_ended(schema: &PgSchema, trace: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let ended = format!(
        "SELECT count(*) FROM deploy_log WHERE trace = '{trace}' AND (tags LIKE '%done%' OR tags LIKE '%aborted%')"
    );
    while schema.value(&ended) == "0" {
        assert!(Instant::now() < deadline, "the dispatch {trace} did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A pseudo-random number of milliseconds below `below` (no crate for one number).
fn rand_ms(below: u64) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    u64::from(nanos) % below
}

mod bench {
    use std::time::{Duration, Instant};

    use vr::model::deploy::records::SwarmProcRecord;
    use vr::services::leadership::Leadership;
    use vr::services::state::{PgTarget, State, StateOptions};

    use crate::pg::PgSchema;

    const RUNS: usize = 30;

    /// p50 of `runs` timings of `f`, in milliseconds.
    fn p50<F: FnMut() -> Duration>(mut f: F) -> f64 {
        let mut ms: Vec<f64> = (0..RUNS).map(|_| f().as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        ms[ms.len() / 2]
    }

    /// One engine's numbers: list 500 swarm procs, create a release, a 10-proc dispatch's writes.
    fn measure(rt: &tokio::runtime::Runtime, state: &State) -> [f64; 3] {
        rt.block_on(async {
            use vr::model::deploy::{Definition, Kind};
            for (kind, v) in [
                (Kind::Stack, serde_json::json!({"name": "st", "base_image_url": "/i.tar"})),
                (Kind::Squad, serde_json::json!({"name": "default"})),
                (Kind::App, serde_json::json!({"name": "a", "repo_url": "/r", "stack": "st"})),
                (Kind::Swarm, serde_json::json!({"app": "a", "version": "1"})),
            ] {
                state.put_definition(Definition::from_value(kind, v).unwrap(), true).await.unwrap();
            }
            let build = state.start_build("a".into(), "1".into()).await.unwrap();
            let release = state.release_for(build, "00000000".into(), serde_json::json!({})).await.unwrap();
            for i in 0..500u16 {
                let p = SwarmProcRecord {
                    host: format!("h{}", i % 10),
                    proc: format!("a-1-prod-00000000-web-{}", 5000 + i),
                    swarm: "a-prod-web".into(),
                    release: release.id,
                    port: 5000 + i,
                    routed: Some(("remote".into(), "a-prod-web".into())),
                };
                state.record_swarm_proc(p).await.unwrap();
            }
        });
        let list = p50(|| {
            let t = Instant::now();
            assert_eq!(rt.block_on(state.swarm_procs(None)).unwrap().len(), 500);
            t.elapsed()
        });
        let mut n = 0u32;
        let create = p50(|| {
            n += 1;
            let t = Instant::now();
            rt.block_on(state.release_for(1, format!("{n:08x}"), serde_json::json!({"n": n}))).unwrap();
            t.elapsed()
        });
        let dispatch = p50(|| {
            n += 1;
            let t = Instant::now();
            rt.block_on(dispatch_writes(state, n));
            t.elapsed()
        });
        [list, create, dispatch]
    }

    /// What a 10-proc dispatch writes: its release numbered, ports locked, procs recorded and
    /// routed, the pool's next generation, and its steps in the deployment log.
    async fn dispatch_writes(state: &State, n: u32) {
        let trace = format!("t{n}");
        let release = state.release_for(1, format!("d{n:07x}"), serde_json::json!({})).await.unwrap();
        state.number_release("a-prod-web".into(), release.id).await.unwrap();
        for i in 0..10u16 {
            let port = 6000 + (n as u16 % 100) * 10 + i;
            state.lock_port("h1".into(), port).await.unwrap();
            let p = SwarmProcRecord {
                host: "h1".into(),
                proc: format!("a-1-prod-{n:08x}-web-{port}"),
                swarm: "a-prod-web".into(),
                release: release.id,
                port,
                routed: None,
            };
            state.record_swarm_proc(p).await.unwrap();
            state
                .set_proc_route(
                    "h1".into(),
                    format!("a-1-prod-{n:08x}-web-{port}"),
                    Some(("remote".into(), "a-prod-web".into())),
                )
                .await
                .unwrap();
            state.unlock_port("h1".into(), port).await.unwrap();
        }
        let nodes = (0..10).map(|i| format!("198.18.0.1:{}", 6000 + i)).collect();
        state.set_pool_nodes_next_generation("remote".into(), "a-prod-web".into(), nodes).await.unwrap();
        for step in 0..8 {
            state
                .log_deploy(
                    trace.clone(),
                    Some("a-prod-web".into()),
                    vec!["swarm".into()],
                    format!("step {step}"),
                    None,
                )
                .await
                .unwrap();
        }
    }

    pub fn state_operations(out: &mut String) {
        let Some(schema) = PgSchema::create("coordinators::benchmark::state") else { return };
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let options = StateOptions { keep_events: 10_000 };
        let dir = tempfile::tempdir().unwrap();
        let sqlite = State::open_with(&dir.path().join("state.db"), options).unwrap();
        let pg = State::open_postgres(PgTarget { url: schema.url(), ca_file: None }, None, options).unwrap();
        let s = measure(&rt, &sqlite);
        let p = measure(&rt, &pg);
        // The leader's duties write fenced: each write in a transaction that reads the lease first.
        let fenced_schema = PgSchema::create("coordinators::benchmark::fenced").unwrap();
        let plain = State::open_postgres(PgTarget { url: fenced_schema.url(), ca_file: None }, None, options)
            .unwrap();
        let leadership = rt.block_on(async {
            let l = Leadership::compete(plain.clone(), "bench".into(), None, Duration::from_secs(15));
            while !l.leads() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            l
        });
        let f = measure(&rt, &plain.fenced(leadership.fence()));
        let version = crate::pg::psql("SHOW server_version");
        out.push_str(&format!(
            "State operations, p50 of {RUNS} (ms), SQLite file (WAL) against PostgreSQL {} on loopback, \
             one connection each, through vrd's typed state methods:\n\n\
             | operation | SQLite | PostgreSQL | PostgreSQL, fenced (the leader's writes) |\n|---|---|---|---|\n\
             | list 500 swarm procs | {:.2} | {:.2} | {:.2} |\n\
             | create a release | {:.2} | {:.2} | {:.2} |\n\
             | a 10-proc dispatch's writes (65 statements) | {:.2} | {:.2} | {:.2} |\n\n",
            version.trim(), s[0], p[0], f[0], s[1], p[1], f[1], s[2], p[2], f[2]
        ));
        drop(rt);
    }
}

/// Two coordinators and two hosts, each in a network namespace of its own (issue 15 §3).
mod fleet {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::{leader, log, ok, wait_until_leads, LEASE_SECS};
    use crate::fleet::{joined_host_config, procs_on};
    use crate::harness::TestDaemon;
    use crate::netns::TestFleet;
    use crate::pg::PgSchema;
    use crate::require_root;
    use crate::swarm_fixture::Fx;

    /// Coordinator `name` in namespace `i` of `net`, its model in `schema`, its router for pool
    /// `hello` on port 8080 of its own address.
    fn config(net: &TestFleet, schema: &PgSchema, i: usize, name: &str) -> String {
        let addr = net.address(i);
        Fx::port_range(&format!(
            "host_name = \"{name}\"\nstate_url = \"{}\"\nlease_secs = {LEASE_SECS}\npeer_listen = \"{addr}:7443\"\n\
             drain_secs = 1\nhost_grace_secs = 5\n[balancers.builtin]\nkind = \"builtin\"\n\
             pools = {{ hello = \"{addr}:8080\" }}\n",
            schema.socket_url()
        ))
    }

    /// `vr hosts add NAME` in squad `workers` on `d`: the `vrd join` arguments it printed.
    fn add_host(d: &TestDaemon, name: &str, address: &str) -> Vec<String> {
        let out = ok(d, &["hosts", "add", name, "--address", address, "--squad", "workers"]);
        let line = out
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("vrd join "))
            .unwrap_or_else(|| panic!("{out}"));
        line.split_whitespace().skip(1).map(str::to_string).collect()
    }

    /// Waits until `d` lists `hosts` linked to it.
    fn linked_to(d: &TestDaemon, hosts: &[&str], secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let links = ok(d, &["hosts", "links"]);
            let up =
                |h: &&str| links.lines().any(|l| l.starts_with(&format!("{h} ")) && l.contains("connected"));
            if hosts.iter().all(up) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{hosts:?} did not link to this coordinator: {links}\n{}",
                log(d)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The fleet CA of `from` copied into the data dir `data` of another coordinator.
    pub fn copy_ca(from: &Path, data: &Path) {
        let pki = data.join("pki");
        std::fs::create_dir_all(&pki).unwrap();
        for file in ["ca.key", "ca.pem"] {
            std::fs::copy(from.join(file), pki.join(file)).unwrap();
        }
    }

    #[test]
    fn hosts_follow_the_leader_and_a_standby_forwards_the_leaders_duties() {
        let name = "hosts_follow_the_leader_and_a_standby_forwards_the_leaders_duties";
        require_root!(name);
        let _turn = super::cluster_turn();
        let Some(schema) = PgSchema::create(name) else { return };
        let net = TestFleet::new(4);
        let fx = Fx::with_daemon(TestDaemon::start_in_namespace(
            &net.netns(1),
            &config(&net, &schema, 1, "c1"),
            |_| {},
        ));
        wait_until_leads(&fx.d, Duration::from_secs(30));

        // A coordinator with a fleet CA of its own is refused: a host joined through one would
        // be refused by the other.
        let (status, refused) =
            TestDaemon::start_refused_in_namespace(&net.netns(2), &config(&net, &schema, 2, "c2"));
        assert!(
            status.is_some_and(|s| !s.success()) && refused.contains("need one fleet CA"),
            "{status:?}: {refused}"
        );
        let c1_pki = fx.d.data().join("pki");
        let c2 = TestDaemon::start_in_namespace(&net.netns(2), &config(&net, &schema, 2, "c2"), |config| {
            copy_ca(&c1_pki, &config.parent().unwrap().join("data"));
        });
        let view = leader(&c2);
        assert_eq!((view["holder"].as_str(), view["leads"].as_bool()), (Some("c1"), Some(false)), "{view}");
        assert_eq!(view["coordinators"].as_array().map(Vec::len), Some(2), "{view}");

        // h1 joins through the leader, h2 through the standby, which refuses its link and names
        // the leader: both end up linked to c1, knowing both coordinators.
        fx.ok(&["squads", "create", "workers"]);
        let h1_args = add_host(&fx.d, "h1", &net.address(3));
        let h2_args = add_host(&c2, "h2", &net.address(4));
        assert!(h2_args.contains(&format!("{}:7443", net.address(2))), "{h2_args:?}");
        let host = |name: &str| Fx::port_range(&format!("host_name = \"{name}\"\n"));
        let h1 = joined_host_config(&net, 3, "h1", &h1_args, &host("h1"));
        let h2 = joined_host_config(&net, 4, "h2", &h2_args, &host("h2"));
        linked_to(&fx.d, &["h1", "h2"], 30);
        let link: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(h2.data().join("pki/link.json")).unwrap()).unwrap();
        let (c1_addr, c2_addr) = (format!("{}:7443", net.address(1)), format!("{}:7443", net.address(2)));
        assert_eq!(link["coordinator"].as_str(), Some(c1_addr.as_str()), "h2 remembers the leader: {link}");
        let listed = link["coordinators"].as_array().cloned().unwrap_or_default();
        assert!(
            listed.contains(&c1_addr.clone().into()) && listed.contains(&c2_addr.clone().into()),
            "{link}"
        );

        // `vr swarm` on the standby runs on the leader, as its caller, and is followed to its end.
        fx.create_swarm(&["app=hello", "version=v1", "size=2", "pool=hello", "squad=workers"]);
        super::slow_version(&fx);
        let out = ok(&c2, &["swarm", "hello-prod-web", "v1"]);
        assert!(out.contains("Swarm hello-prod-web finished"), "{out}");
        assert_eq!((procs_on(&h1, "h1"), procs_on(&h2, "h2")), (1, 1), "one proc per host");
        let forwarded = schema.value(
            "SELECT count(*) FROM audit WHERE method = 'swarms.dispatch' AND params LIKE '%\"forwarded_by\":\"c2\"%'",
        );
        assert_eq!(forwarded, "1", "the leader audits the call, naming the standby it came through");
        let serves = |i: usize| {
            let url = format!("http://{}:8080/", net.address(i));
            let deadline = Instant::now() + Duration::from_secs(30);
            while !net.http_get(i, &url).is_ok_and(|b| b.contains("Hello")) {
                assert!(Instant::now() < deadline, "{url} does not serve hello");
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        serves(1);

        // The standby holds its own copy of the slug before anyone needs it.
        let slug = schema.value("SELECT artifact FROM builds WHERE status = 'succeeded'");
        let copy = c2.data().join("store/sha256").join(&slug);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !copy.exists() {
            assert!(Instant::now() < deadline, "c2 did not copy slug {slug}\n{}", log(&c2));
            std::thread::sleep(Duration::from_millis(200));
        }

        // The leader dies: c2 leads, the hosts link to it on their own, procs keep running, and
        // a swarm through c2 uses the build c1 made and serves through c2's router.
        let mut c1 = fx.d;
        c1.kill();
        let took = wait_until_leads(&c2, Duration::from_secs(LEASE_SECS * 10));
        eprintln!("c2 led {took:?} after c1 was killed");
        assert!(
            ok(&c2, &["swarms", "list"]).contains("hello-prod-web"),
            "listings never wait on the dead one"
        );
        linked_to(&c2, &["h1", "h2"], 60);
        let out = ok(&c2, &["swarm", "hello-prod-web", "v1"]);
        assert!(out.contains("Using build") && !out.contains("anew"), "{out}");
        assert_eq!((procs_on(&h1, "h1"), procs_on(&h2, "h2")), (1, 1), "the procs ran on through it");
        serves(2);

        // c1 comes back as a standby and forwards a dispatch to c2, which dies during it: c1
        // leads, completes the swarm, and the hosts come back to it.
        c1.start_again();
        let view = leader(&c1);
        assert_eq!((view["holder"].as_str(), view["leads"].as_bool()), (Some("c2"), Some(false)), "{view}");
        let out = ok(&c1, &["swarm", "hello-prod-web", "v2", "--detach"]);
        let trace =
            out.split_whitespace().find(|w| w.len() == 32).unwrap_or_else(|| panic!("no trace: {out}"));
        let under_way =
            format!("SELECT count(*) FROM deploy_log WHERE trace = '{trace}' AND tags = 'release'");
        let both = |c1: &TestDaemon, c2: &TestDaemon| format!("c1:\n{}\nc2:\n{}", log(c1), log(c2));
        super::wait_for(&schema, &under_way, 60, || both(&c1, &c2));
        let mut c2 = c2;
        c2.kill();
        wait_until_leads(&c1, Duration::from_secs(LEASE_SECS * 10));
        let closed =
            format!("SELECT count(*) FROM deploy_log WHERE trace = '{trace}' AND tags LIKE '%aborted%'");
        super::wait_for(&schema, &closed, 60, || both(&c1, &c2));
        let again = format!(
            "SELECT count(*) FROM deploy_log WHERE swarm = 'hello-prod-web' AND tags LIKE '%done%' AND id > \
             (SELECT max(id) FROM deploy_log WHERE trace = '{trace}')"
        );
        super::wait_for(&schema, &again, 120, || both(&c1, &c2));
        linked_to(&c1, &["h1", "h2"], 60);
        assert_eq!((procs_on(&h1, "h1"), procs_on(&h2, "h2")), (1, 1), "no proc lost or doubled");
        serves(1);
    }
}
