//! The `balancer_nodes` table: the node sets of the balancers vrd keeps itself (dummy, builtin),
//! so a restarted vrd routes exactly as before.

use std::collections::BTreeSet;

use super::sql::{args, Conn, DbResult, OptionalRow};

use super::{State, StateError};

impl State {
    /// The nodes of `pool` in `balancer` (empty when the pool is unknown).
    pub async fn pool_nodes(&self, balancer: String, pool: String) -> Result<BTreeSet<String>, StateError> {
        self.call(format!("read pool {pool} of balancer {balancer}"), move |db, what| {
            let rows: Vec<_> = db
                .conn
                .query_map(
                    "SELECT node FROM balancer_nodes WHERE balancer = ?1 AND pool = ?2",
                    args![balancer, pool],
                    |row| row.get::<String>(0),
                )
                .map_err(StateError::query(what))?;
            Ok(rows.into_iter().collect())
        })
        .await
    }

    /// Every pool of `balancer` with its nodes (pools without nodes are not kept).
    pub async fn balancer_pools(
        &self,
        balancer: String,
    ) -> Result<Vec<(String, BTreeSet<String>)>, StateError> {
        self.call(format!("read the pools of balancer {balancer}"), move |db, what| {
            let rows: Vec<_> = db
                .conn
                .query_map(
                    "SELECT pool, node FROM balancer_nodes WHERE balancer = ?1 ORDER BY pool",
                    args![balancer],
                    |row| Ok((row.get::<String>(0)?, row.get::<String>(1)?)),
                )
                .map_err(StateError::query(what))?;
            let mut pools: Vec<(String, BTreeSet<String>)> = Vec::new();
            for row in rows {
                let (pool, node) = row;
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
            replace_nodes(&tx, &balancer, &pool, &nodes).map_err(StateError::query(what))?;
            tx.commit().map_err(StateError::query(what))
        })
        .await
    }

    /// Replaces the nodes of `pool` in `balancer` and issues the pool's next generation, in one
    /// transaction; returns that generation (1 for a pool never changed before).
    pub async fn set_pool_nodes_next_generation(
        &self,
        balancer: String,
        pool: String,
        nodes: BTreeSet<String>,
    ) -> Result<u64, StateError> {
        self.call(format!("write pool {pool} of balancer {balancer}"), move |db, what| {
            let tx = db.conn.transaction().map_err(StateError::query(what))?;
            let generation: i64 = tx
                .query_row(
                    "INSERT INTO pool_generations (balancer, pool, generation) VALUES (?1, ?2, 1)
                     ON CONFLICT (balancer, pool) DO UPDATE SET generation = pool_generations.generation + 1
                     RETURNING generation",
                    args![balancer, pool],
                    |row| row.get(0),
                )
                .map_err(StateError::query(what))?;
            replace_nodes(&tx, &balancer, &pool, &nodes).map_err(StateError::query(what))?;
            tx.commit().map_err(StateError::query(what))?;
            Ok(u64::try_from(generation).unwrap_or(0))
        })
        .await
    }

    /// Every pool of `balancer` that has a generation, with it and its nodes (empty pools too:
    /// a host that missed a pool being emptied must still hear of it).
    pub async fn pool_generations(
        &self,
        balancer: String,
    ) -> Result<Vec<(String, u64, BTreeSet<String>)>, StateError> {
        let nodes: std::collections::BTreeMap<String, BTreeSet<String>> =
            self.balancer_pools(balancer.clone()).await?.into_iter().collect();
        let generations = self
            .call(format!("read the generations of balancer {balancer}'s pools"), move |db, what| {
                let rows: Vec<_> = db
                    .conn
                    .query_map(
                        "SELECT pool, generation FROM pool_generations WHERE balancer = ?1 ORDER BY pool",
                        args![balancer],
                        |row| Ok((row.get::<String>(0)?, row.get::<i64>(1)?)),
                    )
                    .map_err(StateError::query(what))?;
                Ok(rows)
            })
            .await?;
        Ok(generations
            .into_iter()
            .map(|(pool, g)| {
                let n = nodes.get(&pool).cloned().unwrap_or_default();
                (pool, u64::try_from(g).unwrap_or(0), n)
            })
            .collect())
    }

    /// The generation of `pool` in `balancer` (0 when it never had one).
    pub async fn pool_generation(&self, balancer: String, pool: String) -> Result<u64, StateError> {
        self.call(format!("read the generation of pool {pool} of balancer {balancer}"), move |db, what| {
            let found: Option<i64> = db
                .conn
                .query_row(
                    "SELECT generation FROM pool_generations WHERE balancer = ?1 AND pool = ?2",
                    args![balancer, pool],
                    |row| row.get(0),
                )
                .optional()
                .map_err(StateError::query(what))?;
            Ok(found.map_or(0, |g| u64::try_from(g).unwrap_or(0)))
        })
        .await
    }

    /// Records that `pool` in `balancer` is at `generation`.
    pub async fn set_pool_generation(
        &self,
        balancer: String,
        pool: String,
        generation: u64,
    ) -> Result<(), StateError> {
        let value = i64::try_from(generation).unwrap_or(i64::MAX);
        self.call(format!("write the generation of pool {pool} of balancer {balancer}"), move |db, what| {
            db.conn
                .execute(
                    "INSERT INTO pool_generations (balancer, pool, generation) VALUES (?1, ?2, ?3)
                     ON CONFLICT (balancer, pool) DO UPDATE SET generation = excluded.generation",
                    args![balancer, pool, value],
                )
                .map_err(StateError::query(what))?;
            Ok(())
        })
        .await
    }
}

/// Replaces a pool's rows in `balancer_nodes` (inside the caller's transaction).
fn replace_nodes(tx: &Conn, balancer: &str, pool: &str, nodes: &BTreeSet<String>) -> DbResult<()> {
    tx.execute("DELETE FROM balancer_nodes WHERE balancer = ?1 AND pool = ?2", args![balancer, pool])?;
    for node in nodes {
        tx.execute(
            "INSERT INTO balancer_nodes (balancer, pool, node) VALUES (?1, ?2, ?3)",
            args![balancer, pool, node],
        )?;
    }
    Ok(())
}
