//! `kind = "remote"`: a balancer that lives on other hosts of the fleet (the coordinator's side;
//! the hosts' side is `fenced`). The coordinator owns the pool: its node set and a generation are
//! kept in the coordinator's state, and every change is sent to each host the balancer lives on
//! as the pool's whole node set with the next generation. Hosts apply it to their own balancer
//! (adds before removes) and refuse a change older than one they applied, so a delayed or replayed
//! change never puts back nodes taken out since.
//!
//! A host that cannot be reached does not stop the change: it is applied where it can be, and the
//! host gets the pool's current nodes when it is back (the watcher resyncs a host that returns
//! before anything else is done there, and every pool is resent every [`RESYNC_INTERVAL`]; a host
//! already at the generation answers at once). Only when no host could be reached does the change
//! fail; it is kept, and applied when one returns.

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;

use super::{Balancer, BalancerError, FleetContext, Node, Routed};
use crate::api::host::{PoolApplied, PoolChange};
use crate::model::balancer::RemoteConfig;
use crate::model::deploy::{Definition, Kind};
use crate::services::hosts::{HostAgent, HostError};

/// How often every pool is sent again to every host of the balancer.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(5);

/// A balancer on other hosts.
pub struct Remote {
    name: String,
    on_hosts: String,
    hosts: Vec<String>,
    fleet: FleetContext,
}

/// How one host took a change.
enum Outcome {
    Done,
    Missed(String),
}

impl Remote {
    /// The remote balancer `name`, resynced in the background for as long as it exists.
    pub fn start(name: &str, cfg: &RemoteConfig, fleet: FleetContext) -> Arc<Remote> {
        let remote = Arc::new(Remote {
            name: name.to_string(),
            on_hosts: cfg.name_on_hosts(name).to_string(),
            hosts: cfg.hosts.clone(),
            fleet,
        });
        spawn_resync(Arc::downgrade(&remote));
        remote
    }

    /// The agent of one of its hosts.
    async fn agent(&self, host: &str) -> Result<Arc<dyn HostAgent>, String> {
        match self.fleet.state.get_definition(Kind::Host, host.to_string()).await {
            Ok(Some(Definition::Host(spec))) => self.fleet.hosts.agent(&spec).map_err(|e| e.to_string()),
            Ok(_) => Err(format!(
                "balancer {} lives on host {host}, which is not a host of this coordinator: add it (vr hosts add {host} ...) or change [balancers.{}] hosts",
                self.name, self.name
            )),
            Err(e) => Err(format!("failed to read host {host}: {e}")),
        }
    }

    /// Sends `change` to `host`: `Ok(Done)` when the host has it, `Ok(Missed)` when the host could
    /// not be reached, an error when it refused.
    async fn push(&self, host: &str, change: &PoolChange) -> Result<Outcome, BalancerError> {
        let agent = match self.agent(host).await {
            Ok(agent) => agent,
            Err(why) => return Ok(Outcome::Missed(format!("{host}: {why}"))),
        };
        match agent.route(change).await {
            Ok(PoolApplied::Applied { .. } | PoolApplied::Current) => Ok(Outcome::Done),
            Ok(PoolApplied::Newer { generation }) => Err(BalancerError::Invalid(format!(
                "host {host} refused change {} of pool {} (balancer {}): it has applied change {generation}, \
                 newer than this coordinator's; its pool is left as it is. Was this coordinator's state restored \
                 from an older copy? `vr swarm` the swarm again once the state is right",
                change.generation, change.pool, self.name
            ))),
            Err(HostError::Unreachable { why, .. }) => Ok(Outcome::Missed(format!("{host}: {why}"))),
            Err(e) => Err(BalancerError::Command {
                what: format!("changing pool {} of balancer {} on host {host}", change.pool, self.name),
                output: e.to_string(),
            }),
        }
    }

    /// Sends `change` to every host at once; fails when one refused it, or when none has it.
    async fn push_all(&self, change: &PoolChange) -> Result<(), BalancerError> {
        let outcomes = futures::future::join_all(self.hosts.iter().map(|h| self.push(h, change))).await;
        let mut missed = Vec::new();
        let mut done = 0;
        for outcome in outcomes {
            match outcome? {
                Outcome::Done => done += 1,
                Outcome::Missed(why) => missed.push(why),
            }
        }
        if done == 0 {
            return Err(BalancerError::Unreachable(format!(
                "no host of balancer {} could be reached ({}); the change of pool {} is kept and applied when one is back",
                self.name,
                missed.join("; "),
                change.pool
            )));
        }
        if !missed.is_empty() {
            tracing::warn!(balancer = %self.name, pool = %change.pool, missed = %missed.join("; "),
                "some hosts of the balancer missed a pool change; they get it when they are back");
        }
        Ok(())
    }

    /// Records `nodes` as the pool (with a new generation when they differ from what it holds)
    /// and sends it to the hosts. An unchanged pool is sent again at its generation, so a host
    /// that refused or missed it before gets another chance.
    async fn record_and_push(&self, pool: &str, nodes: &BTreeSet<Node>) -> Result<Routed, BalancerError> {
        let state = &self.fleet.state;
        let before = state.pool_nodes(self.name.clone(), pool.to_string()).await?;
        let generation = if &before == nodes {
            state.pool_generation(self.name.clone(), pool.to_string()).await?
        } else {
            state.set_pool_nodes_next_generation(self.name.clone(), pool.to_string(), nodes.clone()).await?
        };
        let change = PoolChange {
            balancer: self.on_hosts.clone(),
            pool: pool.to_string(),
            nodes: nodes.clone(),
            generation,
        };
        if generation > 0 {
            self.push_all(&change).await?;
        }
        Ok(Routed {
            added: nodes.difference(&before).cloned().collect(),
            removed: before.difference(nodes).cloned().collect(),
            before,
        })
    }

    /// Sends every pool at its current generation to `only` (or every host, all at once); a host
    /// that is behind applies it, one that is current answers at once.
    async fn resend(&self, only: Option<&str>) -> Result<(), BalancerError> {
        let pools = self.fleet.state.pool_generations(self.name.clone()).await?;
        let hosts = self.hosts.iter().filter(|h| only.is_none_or(|o| o == h.as_str()));
        futures::future::join_all(hosts.map(|host| self.resend_to(host, &pools))).await;
        Ok(())
    }

    /// [`Remote::resend`] to one host, pool by pool; stops at the first it cannot reach.
    async fn resend_to(&self, host: &str, pools: &[(String, u64, BTreeSet<Node>)]) {
        for (pool, generation, nodes) in pools {
            let change = PoolChange {
                balancer: self.on_hosts.clone(),
                pool: pool.clone(),
                nodes: nodes.clone(),
                generation: *generation,
            };
            match self.push(host, &change).await {
                Ok(Outcome::Done) => {}
                Ok(Outcome::Missed(why)) => {
                    tracing::debug!(balancer = %self.name, %pool, why, "a host of the balancer is out of reach");
                    return;
                }
                Err(e) => {
                    tracing::warn!(balancer = %self.name, %pool, host, error = %e, "a host of the balancer did not take its pool")
                }
            }
        }
    }
}

/// Resends every pool every [`RESYNC_INTERVAL`] until the balancer is gone.
fn spawn_resync(remote: Weak<Remote>) {
    tokio::spawn(async move {
        let first = tokio::time::Instant::now() + RESYNC_INTERVAL;
        let mut tick = tokio::time::interval_at(first, RESYNC_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(remote) = remote.upgrade() else { return };
            if let Err(e) = remote.resend(None).await {
                tracing::warn!(balancer = %remote.name, error = %e, "failed to resend the balancer's pools");
            }
        }
    });
}

#[async_trait]
impl Balancer for Remote {
    async fn get_nodes(&self, pool: &str) -> Result<BTreeSet<Node>, BalancerError> {
        Ok(self.fleet.state.pool_nodes(self.name.clone(), pool.to_string()).await?)
    }

    async fn add_nodes(&self, pool: &str, nodes: &BTreeSet<Node>) -> Result<(), BalancerError> {
        let mut all = self.get_nodes(pool).await?;
        all.extend(nodes.iter().cloned());
        self.record_and_push(pool, &all).await.map(drop)
    }

    async fn delete_nodes(&self, pool: &str, nodes: &BTreeSet<Node>) -> Result<(), BalancerError> {
        let mut all = self.get_nodes(pool).await?;
        all.retain(|n| !nodes.contains(n));
        self.record_and_push(pool, &all).await.map(drop)
    }

    async fn delete_pool_if_empty(&self, _pool: &str) -> Result<(), BalancerError> {
        // The hosts drop a pool that ends up empty when they apply the change.
        Ok(())
    }

    async fn set_nodes(&self, pool: &str, wanted: &BTreeSet<Node>) -> Result<Routed, BalancerError> {
        // One change, the whole set: each host adds before it removes.
        self.record_and_push(pool, wanted).await
    }

    async fn resync(&self, host: Option<&str>) -> Result<(), BalancerError> {
        self.resend(host).await
    }
}

#[cfg(test)]
mod tests;
