//! The dummy balancer: node sets kept in vrd's state and routed nowhere. VR's was an in-memory
//! dict lost on every restart; this one survives them.

use std::collections::BTreeSet;

use async_trait::async_trait;

use super::{Balancer, BalancerError, Node};
use crate::services::state::State;

/// Pools in the `balancer_nodes` table under this balancer's name.
pub struct Dummy {
    name: String,
    state: State,
}

impl Dummy {
    /// The dummy balancer called `name`.
    pub fn new(name: &str, state: State) -> Dummy {
        Dummy { name: name.to_string(), state }
    }
}

#[async_trait]
impl Balancer for Dummy {
    async fn get_nodes(&self, pool: &str) -> Result<BTreeSet<Node>, BalancerError> {
        Ok(self.state.pool_nodes(self.name.clone(), pool.to_string()).await?)
    }

    async fn add_nodes(&self, pool: &str, nodes: &BTreeSet<Node>) -> Result<(), BalancerError> {
        let mut all = self.get_nodes(pool).await?;
        all.extend(nodes.iter().cloned());
        Ok(self.state.set_pool_nodes(self.name.clone(), pool.to_string(), all).await?)
    }

    async fn delete_nodes(&self, pool: &str, nodes: &BTreeSet<Node>) -> Result<(), BalancerError> {
        let mut all = self.get_nodes(pool).await?;
        all.retain(|n| !nodes.contains(n));
        Ok(self.state.set_pool_nodes(self.name.clone(), pool.to_string(), all).await?)
    }

    async fn delete_pool_if_empty(&self, _pool: &str) -> Result<(), BalancerError> {
        // An empty pool has no rows: nothing to remove.
        Ok(())
    }
}
