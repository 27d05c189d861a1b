//! Dispatch invariants without root: fake hosts (`hosts::fake`), an in-memory state, a balancer
//! that records what it is told, and paused time. What is checked here is the order of things,
//! which the root tests in tests/it can only see from outside.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::json;

use super::dispatch::Target;
use super::{Settings, SwarmError, Swarms};
use crate::model::build_record::SUCCEEDED;
use crate::model::deploy::{AppSpec, Definition, HostSpec, Kind, RepoType, SquadSpec, StackSpec};
use crate::services::balancer::{Balancer, BalancerError, Balancers, Node};
use crate::services::builder::layout::BuilderLayout;
use crate::services::builder::Builder;
use crate::services::builds::recorded::BuildService;
use crate::services::builds::BuildStore;
use crate::services::hosts::fake::{FakeDirectory, FakeHost, Journal};
use crate::services::runner::layout::Layout;
use crate::services::runner::Runner;
use crate::services::state::{BuildOutcome, State};

const IMAGE_MD5: &str = "0123456789abcdef0123456789abcdef";

/// A balancer that keeps pools in memory and writes every change to the journal.
struct Recording {
    journal: Journal,
    pools: Mutex<BTreeMap<String, BTreeSet<Node>>>,
}

#[async_trait]
impl Balancer for Recording {
    async fn get_nodes(&self, pool: &str) -> Result<BTreeSet<Node>, BalancerError> {
        Ok(self.pools.lock().unwrap().get(pool).cloned().unwrap_or_default())
    }

    async fn add_nodes(&self, pool: &str, nodes: &BTreeSet<Node>) -> Result<(), BalancerError> {
        for n in nodes {
            self.journal.write(format!("add {pool} {n}"));
        }
        self.pools.lock().unwrap().entry(pool.to_string()).or_default().extend(nodes.iter().cloned());
        Ok(())
    }

    async fn delete_nodes(&self, pool: &str, nodes: &BTreeSet<Node>) -> Result<(), BalancerError> {
        for n in nodes {
            self.journal.write(format!("remove {pool} {n}"));
        }
        self.pools.lock().unwrap().entry(pool.to_string()).or_default().retain(|n| !nodes.contains(n));
        Ok(())
    }

    async fn delete_pool_if_empty(&self, _pool: &str) -> Result<(), BalancerError> {
        Ok(())
    }
}

struct Fx {
    swarms: Arc<Swarms>,
    state: State,
    journal: Journal,
    hosts: BTreeMap<String, Arc<FakeHost>>,
    directory: Arc<FakeDirectory>,
    _dir: tempfile::TempDir,
}

impl Fx {
    async fn new(host_names: &[&str]) -> Fx {
        Fx::with_drain(host_names, std::time::Duration::from_secs(2)).await
    }

    async fn with_drain(host_names: &[&str], drain: std::time::Duration) -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open_in_memory().unwrap();
        let journal = Journal::default();
        define(&state, host_names).await;
        let store = BuildStore::new(dir.path());
        seed_build(&state, &store).await;
        let mut hosts = BTreeMap::new();
        for name in host_names {
            hosts.insert(name.to_string(), FakeHost::new(name, &journal));
        }
        let recording = Recording { journal: journal.clone(), pools: Mutex::default() };
        let balancers = Balancers::from_backends(BTreeMap::from([(
            "rec".to_string(),
            Arc::new(recording) as Arc<dyn Balancer>,
        )]));
        let settings = Settings {
            port_range: (5000, 5100),
            start_timeout: std::time::Duration::from_secs(60),
            listen_timeout: std::time::Duration::from_secs(10),
            local_host: host_names[0].to_string(),
            drain,
            leadership: Arc::new(crate::services::state::Fence::holding(1)),
        };
        let directory = Arc::new(FakeDirectory { hosts: hosts.clone(), health: Default::default() });
        let builds = BuildService { builder: builder(dir.path()), store, state: state.clone() };
        let seen = Arc::clone(&directory) as Arc<dyn crate::services::hosts::HostDirectory>;
        let swarms = Swarms::start(state.clone(), Arc::new(balancers), seen, builds, settings).await.unwrap();
        Fx { swarms, state, journal, hosts, directory, _dir: dir }
    }

    async fn swarm(&self, fields: serde_json::Value) {
        let mut spec = json!({"name": "hello-prod-web", "app": "hello", "version": "v1", "size": 2,
                              "pool": "web", "balancer": "rec"});
        spec.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
        let def = Definition::Swarm(serde_json::from_value(spec).unwrap()).validated().unwrap();
        let exists = self.state.get_definition(Kind::Swarm, "hello-prod-web".into()).await.unwrap().is_some();
        self.state.put_definition(def, !exists).await.unwrap();
    }

    async fn dispatch(&self) -> Result<String, SwarmError> {
        let trace = self.swarms.trace("hello-prod-web");
        self.swarms.dispatch("hello-prod-web", Target::Current { fresh_build: false }, &trace).await
    }

    fn all_procs(&self) -> Vec<String> {
        self.hosts.values().flat_map(|h| h.proc_names()).collect()
    }

    async fn pool(&self) -> BTreeSet<Node> {
        self.swarms.balancers().nodes("rec", "web").await.unwrap()
    }
}

/// A builder that is never asked to build (the build record exists); it only has to exist.
fn builder(dir: &std::path::Path) -> Builder {
    let runner = Runner {
        layout: Layout { data_dir: dir.to_path_buf() },
        exe: "/nonexistent".into(),
        cgroup_root: "/nonexistent".into(),
        cgroup_parent: "vrd-unit".into(),
        locks: Default::default(),
        uptest_timeout: std::time::Duration::from_secs(1),
        spawner: None,
        limits: Default::default(),
        network: Default::default(),
    };
    Builder { layout: BuilderLayout { root: dir.join("builder") }, runner: Arc::new(runner) }
}

async fn define(state: &State, host_names: &[&str]) {
    let stack = StackSpec {
        name: "s".into(),
        desc: String::new(),
        base_image_url: "/images/base.tar.gz".into(),
        base_image_name: None,
        base_image_md5: Some(IMAGE_MD5.into()),
        provisioning_script: None,
        env: Default::default(),
    };
    let app = AppSpec {
        name: "hello".into(),
        repo_url: "/repo".into(),
        repo_type: RepoType::Git,
        buildpack: None,
        stack: "s".into(),
        build_env: Default::default(),
    };
    let squad = SquadSpec { name: "default".into(), desc: String::new() };
    let mut defs = vec![Definition::Stack(stack), Definition::App(app), Definition::Squad(squad)];
    for (i, name) in host_names.iter().enumerate() {
        defs.push(Definition::Host(HostSpec {
            name: name.to_string(),
            squad: Some("default".into()),
            active: true,
            address: Some(format!("10.0.0.{}", i + 1)),
            // Joined hosts, but the first (the coordinator's own).
            peer: (i > 0).then(|| format!("10.0.0.{}", i + 1)),
            draining: false,
        }));
    }
    for def in defs {
        state.put_definition(def, true).await.unwrap();
    }
}

/// A succeeded build of hello v1 whose slug is in the store.
async fn seed_build(state: &State, store: &BuildStore) {
    let sha = "ab".repeat(32);
    let path = store.artifact_path(&sha);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"slug").unwrap();
    let id = state.start_build_on("hello".into(), "v1".into(), Some(IMAGE_MD5.into())).await.unwrap();
    let outcome = BuildOutcome {
        status: SUCCEEDED.into(),
        step: None,
        error: None,
        app_commit: Some("c".repeat(40)),
        buildpacks: Vec::new(),
        build_md5: Some("f".repeat(32)),
        artifact: Some(sha),
        env: Default::default(),
    };
    state.finish_build(id, outcome).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn procs_are_spread_uptested_before_routing_and_old_ones_leave_the_pool_before_they_stop() {
    let fx = Fx::new(&["h1", "h2"]).await;
    fx.swarm(json!({})).await;
    fx.dispatch().await.unwrap();
    let first: Vec<String> = fx.all_procs();
    assert_eq!(first.len(), 2);
    assert_eq!(fx.hosts["h1"].proc_names().len(), 1, "one per host: fewest procs of this swarm first");
    assert_eq!(fx.pool().await.len(), 2);
    let last_uptest = fx.journal.entries().iter().rposition(|e| e.starts_with("uptest ")).unwrap();
    assert!(last_uptest < fx.journal.position("add web").unwrap(), "{:?}", fx.journal.entries());

    // A new release: new procs uptested and added before any old one is removed, and each old
    // one removed from the pool before it is destroyed.
    fx.swarm(json!({"config": {"LEVEL": 2}})).await;
    let mark = fx.journal.entries().len();
    fx.dispatch().await.unwrap();
    let after: Vec<String> = fx.journal.entries()[mark..].to_vec();
    let at = |prefix: &str| {
        after.iter().position(|e| e.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}: {after:?}"))
    };
    assert!(at("uptest ") < at("add web") && at("add web") < at("remove web"), "{after:?}");
    assert!(at("remove web") < at("destroy "), "{after:?}");
    let now = fx.all_procs();
    assert!(now.iter().all(|p| !first.contains(p)), "old procs are gone: {now:?}");
    assert_eq!(fx.pool().await.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn failed_uptests_route_nothing_and_the_old_procs_keep_serving() {
    let fx = Fx::new(&["h1", "h2"]).await;
    fx.swarm(json!({})).await;
    fx.dispatch().await.unwrap();
    let serving = fx.pool().await;
    fx.hosts.values().for_each(|h| h.set_failing_uptests(true));
    fx.swarm(json!({"config": {"LEVEL": 2}})).await;
    let err = fx.dispatch().await.unwrap_err();
    assert!(matches!(err, SwarmError::Uptests(_)), "{err}");
    assert_eq!(fx.pool().await, serving, "nothing routed, nothing de-routed");
    assert_eq!(fx.all_procs().len(), 4, "the new procs stay up for inspection, the old keep serving");
    assert!(fx.journal.position("destroy ").is_none());
}

#[tokio::test(start_paused = true)]
async fn old_procs_stay_until_the_current_ones_reach_the_swarms_size() {
    let fx = Fx::new(&["h1"]).await;
    fx.swarm(json!({})).await;
    fx.dispatch().await.unwrap();
    fx.hosts["h1"].fail_deploys_after(1);
    fx.swarm(json!({"config": {"LEVEL": 2}})).await;
    assert!(fx.dispatch().await.is_err(), "one of two deploys failed");
    assert_eq!(fx.all_procs().len(), 3, "both old procs and the one new proc run");
    assert!(fx.journal.position("destroy ").is_none(), "{:?}", fx.journal.entries());
    assert_eq!(fx.pool().await.len(), 2, "the pool still has the old procs only");
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_host_is_left_out_and_the_others_take_its_share() {
    let fx = Fx::new(&["h1", "h2"]).await;
    fx.hosts["h2"].set_unreachable(true);
    fx.swarm(json!({})).await;
    let outcome = fx.dispatch().await.unwrap();
    assert!(outcome.starts_with("2 of 2 procs"), "{outcome}");
    assert_eq!(fx.hosts["h1"].proc_names().len(), 2);
    assert!(fx.pool().await.iter().all(|n| n.starts_with("10.0.0.1:")));
}

#[tokio::test(start_paused = true)]
async fn a_host_lost_mid_dispatch_fails_it_before_anything_is_routed() {
    let fx = Fx::new(&["h1", "h2"]).await;
    fx.swarm(json!({})).await;
    fx.dispatch().await.unwrap();
    let serving = fx.pool().await;
    fx.hosts["h2"].fail_deploys_after(0);
    fx.swarm(json!({"config": {"LEVEL": 2}})).await;
    let err = fx.dispatch().await.unwrap_err();
    assert!(err.to_string().contains("h2"), "{err}");
    assert_eq!(fx.pool().await, serving);
}

#[tokio::test(start_paused = true)]
async fn a_proc_deployed_when_its_reply_was_lost_is_owned_by_the_next_dispatch() {
    let fx = Fx::new(&["h1", "h2"]).await;
    fx.swarm(json!({"size": 4})).await;
    fx.hosts["h2"].set_losing_deploy_replies(true);
    let err = fx.dispatch().await.unwrap_err();
    assert!(err.to_string().contains("lost the reply"), "{err}");
    assert_eq!(fx.hosts["h2"].proc_names().len(), 2, "h2 deployed both, the coordinator heard of none");
    fx.hosts["h2"].set_losing_deploy_replies(false);
    let outcome = fx.dispatch().await.unwrap();
    assert!(outcome.starts_with("4 of 4 procs"), "{outcome}");
    assert_eq!(fx.all_procs().len(), 4, "no proc left over: {:?}", fx.all_procs());
    assert_eq!(fx.pool().await.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_deploy_the_host_refused_leaves_no_record() {
    let fx = Fx::new(&["h1", "h2"]).await;
    fx.swarm(json!({})).await;
    fx.hosts["h2"].fail_deploys_after(0);
    fx.dispatch().await.unwrap_err();
    let records = fx.state.swarm_procs(None).await.unwrap();
    assert_eq!(records.len(), 1, "only h1's proc is recorded: {records:?}");
    assert_eq!(records[0].host, "h1");
}

/// Waits until `done` holds (real time: the dispatches it waits for run in tasks of their own and
/// talk to the state's thread, which paused time would race).
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("never within 10 s: {what}");
}

#[tokio::test]
async fn a_lost_host_is_derouted_at_once_replaced_when_down_and_reconciled_when_back() {
    use crate::services::hosts::HostHealth;
    use crate::services::swarm::watch::Watched;
    let fx = Fx::with_drain(&["h1", "h2", "h3"], std::time::Duration::ZERO).await;
    fx.swarm(json!({"size": 3})).await;
    fx.dispatch().await.unwrap();
    let lost: Vec<String> = fx.hosts["h3"].proc_names();
    assert_eq!(lost.len(), 1);
    let mut watched = Watched::default();
    fx.swarms.watch_once(&mut watched).await.unwrap();

    fx.directory.set_health("h3", HostHealth::Suspect);
    fx.swarms.watch_once(&mut watched).await.unwrap();
    assert!(fx.pool().await.iter().all(|n| !n.starts_with("10.0.0.3:")), "de-routed at once");
    assert_eq!(fx.all_procs().len(), 3, "nothing replaced while only suspect");

    fx.directory.set_health("h3", HostHealth::Down);
    fx.swarms.watch_once(&mut watched).await.unwrap();
    until("a replacement routed", || {
        fx.journal.entries().iter().filter(|e| e.starts_with("deploy ")).count() == 4
    })
    .await;
    until("three nodes again", || {
        fx.journal.entries().iter().filter(|e| e.starts_with("add web")).count() == 4
    })
    .await;

    // Back: the surplus (4 procs for a size of 3) is retired, nothing duplicated.
    fx.directory.set_health("h3", HostHealth::Up);
    fx.swarms.watch_once(&mut watched).await.unwrap();
    until("back to three procs", || fx.all_procs().len() == 3).await;
    until("the surplus de-routed", || {
        fx.journal.entries().iter().filter(|e| e.starts_with("remove web")).count() == 2
    })
    .await;
    // Under load the full suite once read 2 here right after the journal's second "remove": wait
    // for the pool to settle (a real loss would never get back to 3).
    for _ in 0..1000 {
        if fx.pool().await.len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(fx.pool().await.len(), 3, "{:?}", fx.journal.entries());
    let destroyed = fx.journal.entries().iter().filter(|e| e.starts_with("destroy ")).count();
    assert_eq!(destroyed, 1, "exactly the surplus went: {:?}", fx.journal.entries());
}

#[tokio::test]
async fn a_drained_host_is_emptied_only_after_its_replacements_are_routed() {
    let fx = Fx::with_drain(&["h1", "h2", "h3"], std::time::Duration::ZERO).await;
    fx.swarm(json!({"size": 2})).await;
    fx.dispatch().await.unwrap();
    let on_h2 = fx.hosts["h2"].proc_names();
    assert_eq!(on_h2.len(), 1);
    let mark = fx.journal.entries().len();
    let started = fx.swarms.drain_host("h2").await.unwrap();
    assert_eq!(started.len(), 1);
    until("h2 empty", || fx.hosts["h2"].proc_names().is_empty()).await;
    let after = fx.journal.entries()[mark..].to_vec();
    let at = |prefix: &str| {
        after.iter().position(|e| e.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}: {after:?}"))
    };
    assert!(at("deploy h3:") < at("add web 10.0.0.3:"), "{after:?}");
    assert!(at("add web 10.0.0.3:") < at("remove web 10.0.0.2:"), "{after:?}");
    assert!(at("remove web 10.0.0.2:") < at("destroy h2:"), "{after:?}");
    let err = fx.swarms.drain_host("nope").await.unwrap_err().to_string();
    assert!(err.contains("no host nope"), "{err}");
}

#[tokio::test]
async fn a_listing_flags_the_procs_of_a_swarm_with_volumes_and_a_lost_host_keeps_them() {
    use crate::services::hosts::HostHealth;
    use crate::services::swarm::watch::Watched;
    let fx = Fx::with_drain(&["h1", "h2"], std::time::Duration::ZERO).await;
    fx.swarm(json!({"size": 2})).await;
    fx.dispatch().await.unwrap();
    let mut rows = fx.swarms.joined_procs().await.unwrap();
    fx.swarms.flag_volumes(&mut rows).await.unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|r| !r.volumes), "{rows:?}");

    fx.swarm(json!({"size": 2, "volumes": [["/srv/data", "/data"]]})).await;
    let mut rows = fx.swarms.joined_procs().await.unwrap();
    fx.swarms.flag_volumes(&mut rows).await.unwrap();
    assert!(rows.iter().all(|r| r.volumes), "{rows:?}");

    // The watcher does not move them off a host that is down.
    let mut watched = Watched::default();
    fx.swarms.watch_once(&mut watched).await.unwrap();
    fx.directory.set_health("h2", HostHealth::Down);
    fx.swarms.watch_once(&mut watched).await.unwrap();
    let log = fx.state.deploy_log(None, 0, 1000).await.unwrap();
    assert!(
        log.iter().any(|e| e.message.contains("has volumes, so its procs on h2 are not moved")),
        "the operator is told: {log:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let deploys = fx.journal.entries().iter().filter(|e| e.starts_with("deploy ")).count();
    assert_eq!(deploys, 2, "no replacement for a proc with volumes: {:?}", fx.journal.entries());
}

#[tokio::test]
async fn every_host_getting_procs_fetches_the_artifacts_before_any_deploy() {
    let fx = Fx::new(&["h1", "h2", "h3"]).await;
    fx.swarm(json!({"size": 3})).await;
    fx.dispatch().await.unwrap();
    let entries = fx.journal.entries();
    let fetched: Vec<&String> = entries.iter().filter(|e| e.starts_with("fetch ")).collect();
    assert_eq!(fetched.len(), 3, "one fetch per host: {entries:?}");
    let last_fetch = entries.iter().rposition(|e| e.starts_with("fetch ")).unwrap();
    let first_deploy = entries.iter().position(|e| e.starts_with("deploy ")).unwrap();
    assert!(last_fetch < first_deploy, "fetches first: {entries:?}");
}

#[tokio::test(start_paused = true)]
async fn a_new_leader_waits_for_its_joined_hosts_to_link_but_not_for_ever() {
    use crate::services::hosts::HostHealth;
    let fx = Fx::new(&["h1", "h2"]).await;
    let Some(Definition::Host(mut h2)) = fx.state.get_definition(Kind::Host, "h2".into()).await.unwrap()
    else {
        panic!("h2 is defined");
    };
    h2.peer = Some("h2".into());
    fx.state.put_definition(Definition::Host(h2), false).await.unwrap();
    // h1 has no peer (the coordinator's own host): never waited for.
    fx.directory.set_health("h1", HostHealth::Down);
    fx.directory.set_health("h2", HostHealth::Suspect);
    let directory = Arc::clone(&fx.directory);
    let started = tokio::time::Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        directory.set_health("h2", HostHealth::Up);
    });
    fx.swarms.await_relinks().await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= std::time::Duration::from_secs(3), "it waited for h2 to link: {waited:?}");
    assert!(waited < super::RELINK_WAIT, "and no longer: {waited:?}");

    fx.directory.set_health("h2", HostHealth::Down);
    let started = tokio::time::Instant::now();
    fx.swarms.await_relinks().await.unwrap();
    assert!(
        started.elapsed() >= super::RELINK_WAIT,
        "a host that stays away is waited for {:?}",
        super::RELINK_WAIT
    );
    assert!(started.elapsed() < super::RELINK_WAIT * 2, "and then left to the watcher");
}
