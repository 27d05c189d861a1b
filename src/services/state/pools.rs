//! The `balancer_nodes` table: the node sets of the balancers vrd keeps itself (dummy, builtin),
//! so a restarted vrd routes exactly as before.

use std::collections::BTreeSet;

use rusqlite::params;

use super::{State, StateError};

impl State {
    /// The nodes of `pool` in `balancer` (empty when the pool is unknown).
    pub async fn pool_nodes(&self, balancer: String, pool: String) -> Result<BTreeSet<String>, StateError> {
        self.call(format!("read pool {pool} of balancer {balancer}"), move |db, what| {
            let mut stmt = db
                .conn
                .prepare_cached("SELECT node FROM balancer_nodes WHERE balancer = ?1 AND pool = ?2")
                .map_err(StateError::query(what))?;
            let rows = stmt
                .query_map(params![balancer, pool], |row| row.get::<_, String>(0))
                .map_err(StateError::query(what))?;
            rows.collect::<Result<BTreeSet<_>, _>>().map_err(StateError::query(what))
        })
        .await
    }

    /// Every pool of `balancer` with its nodes (pools without nodes are not kept).
    pub async fn balancer_pools(
        &self,
        balancer: String,
    ) -> Result<Vec<(String, BTreeSet<String>)>, StateError> {
        self.call(format!("read the pools of balancer {balancer}"), move |db, what| {
            let mut stmt = db
                .conn
                .prepare_cached("SELECT pool, node FROM balancer_nodes WHERE balancer = ?1 ORDER BY pool")
                .map_err(StateError::query(what))?;
            let rows = stmt
                .query_map(params![balancer], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))
                .map_err(StateError::query(what))?;
            let mut pools: Vec<(String, BTreeSet<String>)> = Vec::new();
            for row in rows {
                let (pool, node) = row.map_err(StateError::query(what))?;
                match pools.last_mut() {
                    Some((last, nodes)) if *last == pool => {
                        nodes.insert(node);
                    }
                    _ => pools.push((pool, BTreeSet::from([node]))),
                }
            }
            Ok(pools)
        })
        .await
    }

    /// Replaces the nodes of `pool` in `balancer` with `nodes`, in one transaction.
    pub async fn set_pool_nodes(
        &self,
        balancer: String,
        pool: String,
        nodes: BTreeSet<String>,
    ) -> Result<(), StateError> {
        self.call(format!("write pool {pool} of balancer {balancer}"), move |db, what| {
            let tx = db.conn.transaction().map_err(StateError::query(what))?;
            tx.execute(
                "DELETE FROM balancer_nodes WHERE balancer = ?1 AND pool = ?2",
                params![balancer, pool],
            )
            .map_err(StateError::query(what))?;
            for node in &nodes {
                tx.execute(
                    "INSERT INTO balancer_nodes (balancer, pool, node) VALUES (?1, ?2, ?3)",
                    params![balancer, pool, node],
                )
                .map_err(StateError::query(what))?;
            }
            tx.commit().map_err(StateError::query(what))
        })
        .await
    }
}
