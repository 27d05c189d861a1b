//! The builtin balancer: vrd's own L4 TCP proxy. Each pool named in the config's `pools` gets a
//! listener; connections are forwarded round-robin to the pool's nodes. The node sets are kept in
//! vrd's state (like the dummy backend's), so a restarted vrd serves the same pools, and in memory
//! as snapshots the accept loops read (see `members`, `proxy`).

mod members;
mod proxy;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{Balancer, BalancerError, Node};
use crate::model::balancer::BuiltinConfig;
use crate::services::state::State;
use proxy::Pool;

/// The builtin balancer called `name`. Dropping it stops its listeners and closes its connections.
pub struct Builtin {
    name: String,
    state: State,
    pools: HashMap<String, Arc<Pool>>,
    _stop: DropGuard,
}

impl Builtin {
    /// Listens on every configured pool's address, serving the nodes saved in `state`. Fails,
    /// with the pool and address, when an address cannot be bound.
    pub async fn start(name: &str, cfg: &BuiltinConfig, state: State) -> Result<Builtin, BalancerError> {
        let stop = CancellationToken::new();
        // Armed before the first listener, so a later bind failure stops the earlier ones.
        let guard = stop.clone().drop_guard();
        let mut saved: HashMap<String, BTreeSet<Node>> =
            state.balancer_pools(name.to_string()).await?.into_iter().collect();
        let drain = Duration::from_secs(cfg.drain_secs);
        let mut pools = HashMap::new();
        for (pool, addr) in &cfg.pools {
            let served = Pool::serve(name, pool, addr, drain, &stop).await.map_err(BalancerError::Invalid)?;
            served.install(&saved.remove(pool).unwrap_or_default());
            pools.insert(pool.clone(), served);
        }
        for pool in saved.keys() {
            tracing::warn!(
                balancer = name,
                pool,
                "pool has nodes but no address in pools: not served; \
                add pools.{pool} = \"ADDR:PORT\" to [balancers.{name}] in vrd's config"
            );
        }
        Ok(Builtin { name: name.to_string(), state, pools, _stop: guard })
    }

    /// The served pool, or why nodes cannot be added to it.
    fn served(&self, pool: &str) -> Result<&Arc<Pool>, BalancerError> {
        self.pools.get(pool).ok_or_else(|| {
            BalancerError::Invalid(format!(
                "balancer '{name}' has no address to serve pool '{pool}' on; add pools.{pool} = \
                 \"ADDR:PORT\" to the [balancers.{name}] table (kind = \"builtin\") of vrd's config \
                 and restart vrd",
                name = self.name
            ))
        })
    }

    async fn save(&self, pool: &str, nodes: BTreeSet<Node>) -> Result<(), BalancerError> {
        self.state.set_pool_nodes(self.name.clone(), pool.to_string(), nodes.clone()).await?;
        if let Some(served) = self.pools.get(pool) {
            served.install(&nodes);
        }
        Ok(())
    }

    #[cfg(test)]
    fn local_addr(&self, pool: &str) -> std::net::SocketAddr {
        self.pools[pool].local_addr()
    }
}

#[async_trait]
impl Balancer for Builtin {
    async fn get_nodes(&self, pool: &str) -> Result<BTreeSet<Node>, BalancerError> {
        Ok(self.state.pool_nodes(self.name.clone(), pool.to_string()).await?)
    }

    async fn add_nodes(&self, pool: &str, nodes: &BTreeSet<Node>) -> Result<(), BalancerError> {
        self.served(pool)?;
        for node in nodes {
            members::check_node(node).map_err(|e| {
                BalancerError::Invalid(format!("balancer '{}', pool '{pool}': {e}", self.name))
            })?;
        }
        let mut all = self.get_nodes(pool).await?;
        all.extend(nodes.iter().cloned());
        self.save(pool, all).await
    }

    async fn delete_nodes(&self, pool: &str, nodes: &BTreeSet<Node>) -> Result<(), BalancerError> {
        let mut all = self.get_nodes(pool).await?;
        all.retain(|n| !nodes.contains(n));
        self.save(pool, all).await
    }

    async fn delete_pool_if_empty(&self, _pool: &str) -> Result<(), BalancerError> {
        // An empty pool has no rows, and its listener stays: its address is configuration.
        Ok(())
    }
}

#[cfg(test)]
mod tests;
