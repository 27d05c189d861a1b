//! A host's side of a `remote` balancer: its coordinator's pool changes applied to this host's own
//! balancer, fenced by generation. The generation is checked and recorded under the pool's lock,
//! so two changes of one pool arriving together are applied in order or the older one refused.

use super::{BalancerError, Balancers};
use crate::api::host::{PoolApplied, PoolChange};
use crate::services::state::State;

impl Balancers {
    /// Applies `change` unless the pool is at its generation already (nothing to do) or at a newer
    /// one (refused as stale). The generation is recorded only once the change is applied, so a
    /// change that failed half way is tried again in full.
    pub async fn apply(&self, change: &PoolChange, state: &State) -> Result<PoolApplied, BalancerError> {
        let backend = self.backend(&change.balancer)?;
        let _guard = self.lock(&change.balancer, &change.pool).await;
        let at = state.pool_generation(change.balancer.clone(), change.pool.clone()).await?;
        if change.generation < at {
            return Ok(PoolApplied::Newer { generation: at });
        }
        if change.generation == at {
            return Ok(PoolApplied::Current);
        }
        let routed = backend.set_nodes(&change.pool, &change.nodes).await?;
        state.set_pool_generation(change.balancer.clone(), change.pool.clone(), change.generation).await?;
        tracing::info!(
            balancer = %change.balancer, pool = %change.pool, generation = change.generation,
            added = routed.added.len(), removed = routed.removed.len(),
            "applied the coordinator's pool change"
        );
        Ok(PoolApplied::Applied {
            added: routed.added.into_iter().collect(),
            removed: routed.removed.into_iter().collect(),
        })
    }
}
