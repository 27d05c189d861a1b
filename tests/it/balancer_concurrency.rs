//! Fifty concurrent changes of one pool, through vrd's balancer registry, against each real
//! balancer (issue 5 §6; VR lost updates when two workers changed one pool): forty add a node
//! each while ten remove one each, all at once, and the pool must end with exactly the nodes
//! expected, as the balancer itself reports them (haproxy: its running servers; nginx and
//! varnish: the files they accepted; the builtin router: its saved set).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vr::services::balancer::{Balancers, Context, Node};
use vr::services::state::State;

use crate::proxies::{Frontend, Kind};

fn node(port: u16) -> Node {
    format!("127.0.0.1:{port}")
}

/// Runs the fifty changes against `kind` and checks the end; how long they took, or `None` when
/// the balancer's program is not installed (the test is skipped).
pub async fn fifty_concurrent_updates(kind: Kind, test: &str) -> Option<Duration> {
    let frontend = Frontend::start(kind, test)?;
    let (name, pool) = (frontend.name(), frontend.pool);
    let configs = BTreeMap::from([(name.to_string(), frontend.config.clone())]);
    let ctx = Context { state: State::open_in_memory().unwrap() };
    let balancers = Arc::new(Balancers::start(&configs, &ctx).await.unwrap());
    let first: BTreeSet<Node> = (6000..6020).map(node).collect();
    balancers.route(name, pool, &first).await.unwrap();

    let started = Instant::now();
    let changes = (0..50u16).map(|i| {
        let balancers = Arc::clone(&balancers);
        tokio::spawn(async move {
            if i < 40 {
                balancers.add(name, pool, &BTreeSet::from([node(7000 + i)])).await
            } else {
                balancers.remove(name, pool, &BTreeSet::from([node(6000 + i - 40)])).await
            }
        })
    });
    for change in changes.collect::<Vec<_>>() {
        change.await.unwrap().unwrap_or_else(|e| panic!("{}: a change failed: {e}", kind.name()));
    }
    let took = started.elapsed();

    let expected: BTreeSet<Node> = (6010..6020).chain(7000..7040).map(node).collect();
    let ended = balancers.nodes(name, pool).await.unwrap();
    let lost: Vec<_> = expected.difference(&ended).collect();
    let extra: Vec<_> = ended.difference(&expected).collect();
    assert!(lost.is_empty() && extra.is_empty(), "{}: lost {lost:?}, left over {extra:?}", kind.name());
    eprintln!("{test}: 50 concurrent changes took {took:?}");
    Some(took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_updates_of_one_pool_end_exact_on_the_builtin_router() {
    fifty_concurrent_updates(
        Kind::Builtin,
        "fifty_concurrent_updates_of_one_pool_end_exact_on_the_builtin_router",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_updates_of_one_pool_end_exact_on_nginx() {
    fifty_concurrent_updates(Kind::Nginx, "fifty_concurrent_updates_of_one_pool_end_exact_on_nginx").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_updates_of_one_pool_end_exact_on_haproxy() {
    fifty_concurrent_updates(Kind::Haproxy, "fifty_concurrent_updates_of_one_pool_end_exact_on_haproxy")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_updates_of_one_pool_end_exact_on_varnish() {
    fifty_concurrent_updates(Kind::Varnish, "fifty_concurrent_updates_of_one_pool_end_exact_on_varnish")
        .await;
}
