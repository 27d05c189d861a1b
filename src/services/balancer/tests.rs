//! The registry's guarantees, on the dummy backend: per-pool serialisation, reconciling, and
//! persistence across a restart of the state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::*;
use crate::model::balancer::DummyConfig;

fn nodes(list: &[&str]) -> BTreeSet<Node> {
    list.iter().map(|n| (*n).to_string()).collect()
}

async fn dummy_registry(state: State) -> Balancers {
    let configs = BTreeMap::from([("d".to_string(), BalancerConfig::Dummy(DummyConfig {}))]);
    let mut only = BTreeMap::new();
    let ctx = Context { state };
    for (name, cfg) in &configs {
        only.insert(name.clone(), build(name, cfg, &ctx).await.unwrap());
    }
    Balancers::from_backends(only)
}

#[tokio::test]
async fn route_reconciles_and_reports_what_changed() {
    let b = dummy_registry(State::open_in_memory().unwrap()).await;
    let r = b.route("d", "web", &nodes(&["h:5001", "h:5002"])).await.unwrap();
    assert_eq!(r.added, nodes(&["h:5001", "h:5002"]));
    let r = b.route("d", "web", &nodes(&["h:5002", "h:5003"])).await.unwrap();
    assert_eq!((r.added, r.removed), (nodes(&["h:5003"]), nodes(&["h:5001"])));
    assert_eq!(b.nodes("d", "web").await.unwrap(), nodes(&["h:5002", "h:5003"]));
    let err = b.nodes("nope", "web").await.unwrap_err().to_string();
    assert!(err.contains("'nope'") && err.contains("d"), "{err}");
}

#[tokio::test]
async fn fifty_concurrent_updates_of_one_pool_lose_nothing() {
    let b = Arc::new(dummy_registry(State::open_in_memory().unwrap()).await);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let b = Arc::clone(&b);
        tasks.push(tokio::spawn(
            async move { b.add("d", "web", &nodes(&[&format!("h:{}", 5000 + i)])).await },
        ));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let expected: BTreeSet<Node> = (0..50).map(|i| format!("h:{}", 5000 + i)).collect();
    assert_eq!(b.nodes("d", "web").await.unwrap(), expected);
}

#[tokio::test]
async fn dummy_pools_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let b = dummy_registry(State::open(&path).unwrap()).await;
    b.add("d", "web", &nodes(&["h:1"])).await.unwrap();
    drop(b);
    let b = dummy_registry(State::open(&path).unwrap()).await;
    assert_eq!(b.nodes("d", "web").await.unwrap(), nodes(&["h:1"]));
}
