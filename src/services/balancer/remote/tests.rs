//! A remote balancer over fake hosts: every change reaches every host with the next generation,
//! an unreachable host does not stop a change and gets the pool when it is back, a host ahead of
//! the coordinator refuses, and an unchanged pool is sent again to a host that missed it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::*;
use crate::model::deploy::HostSpec;
use crate::services::balancer::Balancers;
use crate::services::hosts::fake::{FakeDirectory, FakeHost, Journal};
use crate::services::hosts::HostDirectory;
use crate::services::state::State;

struct Fx {
    balancers: Balancers,
    hosts: BTreeMap<String, Arc<FakeHost>>,
}

fn nodes(list: &[&str]) -> BTreeSet<Node> {
    list.iter().map(|n| (*n).to_string()).collect()
}

async fn fixture(routers: &[&str]) -> Fx {
    let state = State::open_in_memory().unwrap();
    let journal = Journal::default();
    let mut hosts = BTreeMap::new();
    for name in routers {
        let spec = HostSpec {
            name: (*name).to_string(),
            squad: None,
            active: true,
            address: Some(format!("10.0.9.{}", hosts.len() + 1)),
            peer: Some("joined".into()),
            draining: false,
        };
        state.put_definition(Definition::Host(spec), true).await.unwrap();
        hosts.insert((*name).to_string(), FakeHost::new(name, &journal));
    }
    let directory: Arc<dyn HostDirectory> =
        Arc::new(FakeDirectory { hosts: hosts.clone(), health: Default::default() });
    let cfg = RemoteConfig {
        hosts: routers.iter().map(|h| (*h).to_string()).collect(),
        balancer: Some("nginx".into()),
    };
    let configs = BTreeMap::from([("edge".to_string(), crate::model::balancer::BalancerConfig::Remote(cfg))]);
    let fleet = FleetContext { state, hosts: directory };
    let balancers = Balancers::from_backends(BTreeMap::new()).with_remotes(&configs, &fleet).unwrap();
    Fx { balancers, hosts }
}

#[tokio::test]
async fn every_change_reaches_every_host_as_the_whole_pool_with_the_next_generation() {
    let fx = fixture(&["r1", "r2"]).await;
    fx.balancers.route("edge", "web", &nodes(&["10.0.0.1:5000", "10.0.0.2:5000"])).await.unwrap();
    let routed =
        fx.balancers.route("edge", "web", &nodes(&["10.0.0.2:5000", "10.0.0.3:5000"])).await.unwrap();
    assert_eq!(routed.added, nodes(&["10.0.0.3:5000"]));
    assert_eq!(routed.removed, nodes(&["10.0.0.1:5000"]));
    for host in fx.hosts.values() {
        assert_eq!(host.pool("nginx", "web"), (2, nodes(&["10.0.0.2:5000", "10.0.0.3:5000"])));
    }
    fx.balancers.remove("edge", "web", &nodes(&["10.0.0.2:5000"])).await.unwrap();
    assert_eq!(fx.hosts["r1"].pool("nginx", "web"), (3, nodes(&["10.0.0.3:5000"])));
    assert_eq!(fx.balancers.nodes("edge", "web").await.unwrap(), nodes(&["10.0.0.3:5000"]));
}

#[tokio::test]
async fn a_host_out_of_reach_misses_changes_and_gets_the_pool_when_back() {
    let fx = fixture(&["r1", "r2"]).await;
    fx.balancers.route("edge", "web", &nodes(&["10.0.0.1:5000"])).await.unwrap();
    fx.balancers.route("edge", "api", &nodes(&["10.0.0.1:6000"])).await.unwrap();
    fx.hosts["r2"].set_unreachable(true);
    fx.balancers.route("edge", "web", &nodes(&["10.0.0.2:5000"])).await.unwrap();
    fx.balancers.route("edge", "api", &BTreeSet::new()).await.unwrap();
    assert_eq!(fx.hosts["r1"].pool("nginx", "web"), (2, nodes(&["10.0.0.2:5000"])));
    assert_eq!(fx.hosts["r2"].pool("nginx", "web"), (1, nodes(&["10.0.0.1:5000"])), "r2 was out of reach");
    fx.hosts["r2"].set_unreachable(false);
    fx.balancers.resync_host("r2").await;
    assert_eq!(fx.hosts["r2"].pool("nginx", "web"), (2, nodes(&["10.0.0.2:5000"])));
    assert_eq!(
        fx.hosts["r2"].pool("nginx", "api"),
        (2, BTreeSet::new()),
        "an emptied pool is emptied there too"
    );
}

#[tokio::test]
async fn with_every_host_out_of_reach_the_change_fails_and_is_kept_for_their_return() {
    let fx = fixture(&["r1"]).await;
    fx.hosts["r1"].set_unreachable(true);
    let err = fx.balancers.route("edge", "web", &nodes(&["10.0.0.1:5000"])).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("no host of balancer edge could be reached") && text.contains("r1"), "{text}");
    assert!(text.contains("applied when one is back"), "{text}");
    fx.hosts["r1"].set_unreachable(false);
    // A dispatch routing the same nodes again sends them, though the coordinator's pool has them.
    fx.balancers.route("edge", "web", &nodes(&["10.0.0.1:5000"])).await.unwrap();
    assert_eq!(fx.hosts["r1"].pool("nginx", "web"), (1, nodes(&["10.0.0.1:5000"])));
}

#[tokio::test]
async fn a_host_that_applied_a_newer_change_refuses_an_older_one() {
    let fx = fixture(&["r1"]).await;
    let newer = PoolChange {
        balancer: "nginx".into(),
        pool: "web".into(),
        nodes: nodes(&["10.0.0.7:1"]),
        generation: 9,
    };
    fx.hosts["r1"].route(&newer).await.unwrap();
    let err = fx.balancers.route("edge", "web", &nodes(&["10.0.0.1:5000"])).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("refused change 1 of pool web") && text.contains("applied change 9"), "{text}");
    assert_eq!(fx.hosts["r1"].pool("nginx", "web"), (9, nodes(&["10.0.0.7:1"])), "left as it was");
}

#[test]
fn a_remote_balancer_must_name_its_hosts() {
    let none = RemoteConfig { hosts: vec![], balancer: None };
    assert!(none.check("edge").unwrap_err().contains("hosts = ["));
    let bad = RemoteConfig { hosts: vec!["../x".into()], balancer: None };
    assert!(bad.check("edge").unwrap_err().contains("'../x'"));
    assert_eq!(RemoteConfig { hosts: vec!["r".into()], balancer: None }.name_on_hosts("edge"), "edge");
}

#[tokio::test(start_paused = true)]
async fn a_hung_host_never_holds_the_watcher_resyncing_it() {
    let fx = fixture(&["r1"]).await;
    fx.balancers.route("edge", "web", &nodes(&["10.0.0.1:5000"])).await.unwrap();
    fx.hosts["r1"].set_hanging(true);
    let waited = tokio::time::timeout(
        crate::services::balancer::RESYNC_WAIT + std::time::Duration::from_secs(1),
        fx.balancers.resync_host("r1"),
    )
    .await;
    assert!(waited.is_ok(), "resync_host gave up on the hung host in time");
}
