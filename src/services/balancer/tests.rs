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

#[tokio::test]
async fn a_hosts_pool_changes_apply_in_generation_order_and_older_ones_are_refused() {
    use crate::api::host::{PoolApplied, PoolChange};
    let state = State::open_in_memory().unwrap();
    let b = dummy_registry(state.clone()).await;
    let change = |generation, list: &[&str]| PoolChange {
        balancer: "d".into(),
        pool: "web".into(),
        nodes: nodes(list),
        generation,
    };
    let applied = b.apply(&change(1, &["h:1", "h:2"]), &state).await.unwrap();
    assert_eq!(applied, PoolApplied::Applied { added: vec!["h:1".into(), "h:2".into()], removed: vec![] });
    assert_eq!(
        b.apply(&change(3, &["h:2"]), &state).await.unwrap(),
        PoolApplied::Applied { added: vec![], removed: vec!["h:1".into()] }
    );
    assert_eq!(b.apply(&change(3, &["h:2"]), &state).await.unwrap(), PoolApplied::Current);
    // A delayed change 2 must not put h:1 back.
    assert_eq!(
        b.apply(&change(2, &["h:1", "h:2"]), &state).await.unwrap(),
        PoolApplied::Newer { generation: 3 }
    );
    assert_eq!(b.nodes("d", "web").await.unwrap(), nodes(&["h:2"]));
    let err = b.apply(&PoolChange { balancer: "nope".into(), ..change(4, &[]) }, &state).await.unwrap_err();
    assert!(err.to_string().contains("no balancer named 'nope'"), "{err}");
}
