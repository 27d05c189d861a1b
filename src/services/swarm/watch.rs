//! The coordinator watching its hosts (ARCHITECTURE "The fleet"): a host that goes `Suspect` (its
//! link lost) has its nodes taken out of their pools at once; one that goes `Down` (lost for the
//! grace period) has its swarms dispatched again, which places replacements on the squad's other
//! hosts through the usual uptest gate (procs with volumes are never moved: the deployment log
//! says so); one that comes back has the swarms it was acted on dispatched again, which routes
//! its procs again or retires the surplus, once the pools its balancers hold are brought up to date
//! (see `balancer::remote`). Nothing is moved on a host's first sighting, so a
//! coordinator restart, during which every host is briefly unconnected, moves nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::dispatch::Target;
use super::{SwarmError, Swarms};
use crate::model::deploy::{HostSpec, Kind};
use crate::services::hosts::HostHealth;

/// How often the watcher looks.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// What the watcher remembers between looks.
#[derive(Debug, Default)]
pub struct Watched {
    /// Each joined host's health at the last look.
    seen: HashMap<String, HostHealth>,
    /// Hosts it acted on (de-routed or replaced), to reconcile when they come back.
    acted: BTreeSet<String>,
}

impl Swarms {
    /// Watches the hosts every `every` for as long as the swarms exist.
    pub fn spawn_watch(self: &Arc<Self>, every: Duration) {
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut watched = Watched::default();
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(swarms) = this.upgrade() else { return };
                if !swarms.leads() {
                    // A standby starts afresh when it leads: hosts are first sighted again.
                    watched = Watched::default();
                    continue;
                }
                if let Err(e) = swarms.watch_once(&mut watched).await {
                    tracing::error!(error = %e, "watching the hosts failed");
                }
            }
        });
    }

    /// One look at every joined host; acts on each whose health changed.
    pub async fn watch_once(self: &Arc<Self>, watched: &mut Watched) -> Result<(), SwarmError> {
        for host in self.hosts().await?.into_iter().filter(|h| h.peer.is_some()) {
            let now = self.hosts.health(&host);
            let Some(before) = watched.seen.insert(host.name.clone(), now) else {
                if now == HostHealth::Up {
                    // Seen first since this coordinator started: the pools it routes may have
                    // missed changes made while it was away.
                    self.balancers.resync_host(&host.name).await;
                }
                continue;
            };
            match (before, now) {
                (b, n) if b == n => {}
                (_, HostHealth::Suspect) => {
                    self.deroute_host(&host, "its link to this coordinator was lost").await?;
                    watched.acted.insert(host.name.clone());
                }
                (_, HostHealth::Down) => {
                    self.deroute_host(&host, "it is down").await?;
                    self.redispatch_host(&host, true).await?;
                    watched.acted.insert(host.name.clone());
                }
                (_, HostHealth::Up) => {
                    // Its balancers get the pools' current nodes before anything else is done
                    // there, so it never routes to procs retired while it was away.
                    self.balancers.resync_host(&host.name).await;
                    if watched.acted.remove(&host.name) {
                        self.redispatch_host(&host, false).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Drains `host` (Diego's evacuation): marks it draining and inactive, then dispatches every
    /// swarm with procs on it, which places replacements elsewhere, uptests and routes them, and
    /// only then retires the host's procs. Returns (swarm, trace id) of each dispatch.
    pub async fn drain_host(self: &Arc<Self>, name: &str) -> Result<Vec<(String, String)>, SwarmError> {
        let Some(crate::model::deploy::Definition::Host(mut host)) =
            self.state.get_definition(Kind::Host, name.to_string()).await?
        else {
            return Err(SwarmError::Invalid(format!("there is no host {name}: `vr hosts list` shows them")));
        };
        host.draining = true;
        host.active = false;
        let def = crate::model::deploy::Definition::Host(host.clone());
        self.state.put_definition(def, false).await?;
        let records = self.state.swarm_procs(None).await?;
        let swarms: BTreeSet<String> =
            records.into_iter().filter(|r| r.host == name).map(|r| r.swarm).collect();
        let trace = self.trace(&format!("host {name}"));
        let message =
            format!("Draining host {name}: {} swarms move their procs elsewhere first", swarms.len());
        trace.step(&["host"], message).await;
        let mut started = Vec::new();
        for swarm in swarms {
            let id = self.start_dispatch(&swarm, Target::Current { fresh_build: false }).await?;
            started.push((swarm, id));
        }
        Ok(started)
    }

    /// Takes every routed proc of `host` out of its pool (its procs stay recorded).
    async fn deroute_host(&self, host: &HostSpec, why: &str) -> Result<(), SwarmError> {
        let trace = self.trace(&format!("host {}", host.name));
        let mut nodes = 0;
        for record in self.state.swarm_procs(None).await?.into_iter().filter(|r| r.host == host.name) {
            let Some((balancer, pool)) = record.routed.clone() else { continue };
            let node = format!("{}:{}", host.node_address(), record.port);
            self.balancers.remove(&balancer, &pool, &BTreeSet::from([node])).await?;
            self.state.set_proc_route(record.host.clone(), record.proc.clone(), None).await?;
            nodes += 1;
        }
        let message =
            format!("Host {} is suspect ({why}): took its {nodes} nodes out of their pools", host.name);
        trace.step(&["host", "warning", "route"], message).await;
        Ok(())
    }

    /// Dispatches again every swarm with procs on `host`: to replace them (`down`), or to route or
    /// retire them once it is back. Swarms with volumes are not moved off a down host.
    async fn redispatch_host(self: &Arc<Self>, host: &HostSpec, down: bool) -> Result<(), SwarmError> {
        let trace = self.trace(&format!("host {}", host.name));
        let records = self.state.swarm_procs(None).await?;
        let swarms: BTreeSet<String> =
            records.into_iter().filter(|r| r.host == host.name).map(|r| r.swarm).collect();
        let what = if down { "is down: replacing its procs" } else { "is back: reconciling its swarms" };
        trace.step(&["host"], format!("Host {} {what} ({} swarms)", host.name, swarms.len())).await;
        for name in swarms {
            let Ok(crate::model::deploy::Definition::Swarm(spec)) =
                self.state.definition(Kind::Swarm, &name).await
            else {
                continue;
            };
            if down && !spec.volumes.is_empty() {
                let message = format!(
                    "Swarm {name} has volumes, so its procs on {} are not moved: bring the host back, or move them by hand",
                    host.name
                );
                trace.step(&["host", "warning"], message).await;
                continue;
            }
            self.start_dispatch(&name, Target::Current { fresh_build: false }).await?;
        }
        Ok(())
    }
}
