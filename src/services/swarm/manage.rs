//! Changes to procs and swarms outside a dispatch, kept as careful as one: destroying a proc
//! de-routes it first (VR #200), deleting a swarm scales it to nothing first, and a manual deploy
//! of a release (VR's `deploy RELEASE HOST PORT PROC`) goes through the same host interface.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{SwarmError, Swarms};
use crate::api::host::ProcAction;
use crate::model::deploy::records::NumberedRelease;
use crate::model::deploy::release::{Placement, ProcOrder, ReleaseSpec};
use crate::model::deploy::{Definition, HostSpec, Kind};

impl Swarms {
    /// The joined host that runs `proc`, as the swarms' records say (`None`: this vrd runs it,
    /// or nobody does).
    pub async fn joined_host_of(&self, proc: &str) -> Result<Option<HostSpec>, SwarmError> {
        let records = self.state.swarm_procs(None).await?;
        let Some(record) = records.iter().find(|r| r.proc == proc) else { return Ok(None) };
        let hosts = self.hosts().await?;
        Ok(hosts.into_iter().find(|h| h.name == record.host && h.peer.is_some()))
    }

    /// Starts, stops or restarts a proc on the joined host that runs it; false when no joined
    /// host does (the caller acts on this vrd's own procs).
    pub async fn act_on_joined_proc(&self, proc: &str, action: ProcAction) -> Result<bool, SwarmError> {
        let Some(host) = self.joined_host_of(proc).await? else { return Ok(false) };
        self.agent(&host)?.act(proc, action).await?;
        Ok(true)
    }

    /// Destroys a proc, on whichever host runs it (this vrd's, unless the swarms' records put it
    /// on a joined host); when a swarm owns it, it leaves its pool first. A balancer that refuses
    /// stops the destroy (the proc keeps serving), unless `force`: then the proc goes and its
    /// node is left for the next change of the pool to drop.
    pub async fn destroy_proc(&self, proc: &str, force: bool) -> Result<(), SwarmError> {
        let records = self.state.swarm_procs(None).await?;
        let hosts = self.hosts().await?;
        let local = hosts.iter().find(|h| h.peer.is_none()).ok_or_else(|| {
            SwarmError::Invalid("this vrd has no host definition of its own (one without `peer`)".into())
        })?;
        let record = records.iter().find(|r| r.proc == proc);
        let host = record.and_then(|r| hosts.iter().find(|h| h.name == r.host)).unwrap_or(local);
        if let Some(record) = record.filter(|r| r.host == host.name) {
            if let Some((balancer, pool)) = &record.routed {
                let node = format!("{}:{}", host.node_address(), record.port);
                match self.balancers.remove(balancer, pool, &BTreeSet::from([node.clone()])).await {
                    Ok(()) => {}
                    Err(e) if force => tracing::warn!(
                        proc, pool = %pool, node, error = %e,
                        "destroying a proc whose node its balancer refused to remove (--force)"
                    ),
                    Err(source) => {
                        return Err(SwarmError::Deroute {
                            proc: proc.to_string(),
                            pool: pool.clone(),
                            source: Box::new(source),
                        })
                    }
                }
            }
            self.state.forget_swarm_proc(record.host.clone(), record.proc.clone()).await?;
        }
        Ok(self.agent(host)?.destroy(proc).await?)
    }

    /// Scales a swarm to nothing (de-routing before destroying), then deletes its definition.
    pub async fn delete_swarm(self: &Arc<Self>, name: &str) -> Result<(), SwarmError> {
        let swarm = self.swarm(name).await?;
        let lock = self.swarm_lock(name);
        let _guard = lock.lock().await;
        let trace = self.trace(name);
        let survey = self.survey(&swarm, &trace).await?;
        for p in survey.owned.clone() {
            self.retire(&p, &survey, &trace).await?;
        }
        if let Some(pool) = &swarm.pool {
            self.balancers.route(swarm.balancer_name(), pool, &BTreeSet::new()).await?;
        }
        self.state.delete_definition(Kind::Swarm, name.to_string()).await?;
        trace.step(&["swarm", "deleted", "done"], format!("Swarm {name} deleted")).await;
        Ok(())
    }

    /// A swarm's numbered releases.
    pub async fn releases(&self, swarm: &str) -> Result<Vec<NumberedRelease>, SwarmError> {
        self.swarm(swarm).await?;
        Ok(self.state.swarm_releases(swarm.to_string()).await?)
    }

    /// Deploys release `id` by hand on `host` (not owned by a swarm, not routed).
    pub async fn deploy_release(&self, id: u64, mut at: Placement) -> Result<String, SwarmError> {
        let record = self.state.release(id).await?.ok_or_else(|| {
            SwarmError::Invalid(format!("there is no release {id}: `vr swarms releases SWARM` lists them"))
        })?;
        let release: ReleaseSpec = serde_json::from_value(record.spec)
            .map_err(|e| SwarmError::Invalid(format!("release {id} does not decode: {e}")))?;
        let Definition::Host(host) = self.state.definition(Kind::Host, &at.host).await? else {
            return Err(SwarmError::Invalid(format!("'{}' is not a host", at.host)));
        };
        let agent = self.agent(&host)?;
        at.address = Some(host.node_address().to_string());
        if !agent.port_is_free(at.port).await? {
            return Err(SwarmError::Placement(format!(
                "port {} on {} is in use: pick another",
                at.port, at.host
            )));
        }
        let order = ProcOrder { release, at };
        let name = order.name().map_err(|e| SwarmError::Invalid(e.to_string()))?;
        agent.deploy(&order).await?;
        Ok(name.to_string())
    }
}
