//! One dispatch, VR's §7 with its failures fixed: release → survey → grow or shrink → uptests →
//! route → cleanup. Uptest failures stop it before routing: the old procs keep serving and the new
//! ones stay up for inspection. Stale procs are de-routed before they are destroyed, and only once
//! the current ones reach the swarm's size.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use futures::future::join_all;

use super::progress::Trace;
use super::{SwarmError, Swarms};
use crate::model::deploy::plan::{self, HostLoad, OwnedProc};
use crate::model::deploy::records::{ReleaseRecord, SwarmProcRecord};
use crate::model::deploy::release::{Placement, ProcOrder, ReleaseSpec};
use crate::model::deploy::{Definition, HostSpec, IngredientSpec, Kind, SwarmSpec};
use crate::model::names::ProcName;
use crate::model::uptest::UptestResult;
use crate::services::hosts::{HostAgent, HostError};

/// What a dispatch deploys.
#[derive(Debug, Clone)]
pub enum Target {
    /// What the swarm's definition says now (with a new build when `fresh_build`).
    Current {
        /// Build anew even when a build exists (VR's rebuild-all).
        fresh_build: bool,
    },
    /// An earlier release (a rollback).
    Release(ReleaseRecord),
}

/// A reachable host during one dispatch.
struct Reached {
    spec: HostSpec,
    agent: Arc<dyn HostAgent>,
    procs: BTreeSet<String>,
}

/// What a dispatch found before acting.
pub(super) struct Survey {
    hosts: BTreeMap<String, Reached>,
    squad_hosts: BTreeSet<String>,
    pub(super) owned: Vec<OwnedProc>,
}

impl Survey {
    pub(super) fn agent(&self, host: &str) -> Option<&Arc<dyn HostAgent>> {
        self.hosts.get(host).map(|h| &h.agent)
    }

    fn node(&self, p: &OwnedProc) -> String {
        let addr = self.hosts.get(&p.host).map_or(p.host.as_str(), |h| h.spec.node_address());
        format!("{addr}:{}", p.port)
    }
}

impl Swarms {
    /// Starts a dispatch of `swarm` in a task of its own; returns its trace id at once.
    pub async fn start_dispatch(self: &Arc<Self>, swarm: &str, target: Target) -> Result<String, SwarmError> {
        self.ensure_leader()?;
        let spec = self.swarm(swarm).await?;
        let trace = self.trace(&spec.name);
        let id = trace.id.clone();
        let this = Arc::clone(self);
        tokio::spawn(async move { this.run_dispatch(spec.name, target, trace).await });
        Ok(id)
    }

    async fn run_dispatch(&self, name: String, target: Target, trace: Trace) {
        let lock = self.swarm_lock(&name);
        let _guard = match lock.clone().try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => {
                trace
                    .step(
                        &["swarm", "wait"],
                        format!("Waiting for the dispatch of swarm {name} already running"),
                    )
                    .await;
                lock.lock_owned().await
            }
        };
        let started = std::time::Instant::now();
        let result = self.dispatch(&name, target, &trace).await;
        crate::services::metrics::metrics().dispatched(result.is_ok(), started.elapsed());
        match result {
            Ok(outcome) => {
                trace.step(&["swarm", "deploy", "done"], format!("Swarm {name} finished: {outcome}")).await
            }
            Err(e) => trace.step(&["swarm", "failed", "aborted"], format!("Swarm {name} aborted: {e}")).await,
        }
    }

    pub(super) async fn dispatch(
        &self,
        name: &str,
        target: Target,
        trace: &Trace,
    ) -> Result<String, SwarmError> {
        let swarm = self.swarm(name).await?;
        if swarm.pool.is_some() {
            self.balancers.check(swarm.balancer_name())?;
        }
        trace.step(&["swarm", "user"], describe(&swarm)).await;
        let (release_id, release) = self.release(&swarm, target, trace).await?;
        let hash = release.hash();
        let number = self.state.number_release(swarm.name.clone(), release_id).await?;
        trace
            .step(
                &["release"],
                format!("Release {number} of {name}: hash {hash}, build {}", release.build.id),
            )
            .await;
        let survey = self.survey(&swarm, trace).await?;
        let census = plan::census(&survey.owned, &swarm, &hash, &survey.squad_hosts);
        let size = swarm.size as usize;
        let mut current = census.current.clone();
        if current.len() < size {
            let needed = size - current.len();
            current.extend(self.grow(&swarm, &release, release_id, needed, &survey, trace).await?);
        } else if current.len() > size {
            let gone = plan::surplus(&current, current.len() - size);
            trace
                .step(&["swarm", "shrink"], format!("Removing {} procs to reach size {size}", gone.len()))
                .await;
            // De-route first (VR #173 deleted before de-routing), let requests in flight finish.
            self.drain(&gone, &survey).await?;
            for p in &gone {
                self.retire(p, &survey, trace).await?;
            }
            current.retain(|p| !gone.contains(p));
        }
        self.uptest_current(&swarm, &current, &survey, trace).await?;
        self.route(&swarm, &current, &survey, trace).await?;
        let removed = self.cleanup(&census.stale, current.len(), size, &survey, trace).await?;
        Ok(format!(
            "{} of {size} procs at release {number} ({hash}); {removed} old procs removed",
            current.len()
        ))
    }

    /// The release to deploy: the pinned one, or the current build merged with the swarm's config.
    async fn release(
        &self,
        swarm: &SwarmSpec,
        target: Target,
        trace: &Trace,
    ) -> Result<(u64, ReleaseSpec), SwarmError> {
        let fresh_build = match target {
            Target::Release(record) => {
                let spec: ReleaseSpec = serde_json::from_value(record.spec).map_err(|e| {
                    SwarmError::Invalid(format!("release {} does not decode: {e}", record.id))
                })?;
                return Ok((record.id, spec));
            }
            Target::Current { fresh_build } => fresh_build,
        };
        let Definition::App(app) = self.state.definition(Kind::App, &swarm.app).await? else {
            return Err(SwarmError::Invalid(format!("'{}' is not an app", swarm.app)));
        };
        let image = self.stack_image(&app.stack).await?;
        let build = self.build_for(&app, &swarm.version, &image, fresh_build, trace).await?;
        let ingredients = self.ingredients(swarm).await?;
        let release = ReleaseSpec::merge(&app.name, build, swarm, &ingredients);
        let spec = serde_json::to_value(&release).map_err(|e| SwarmError::Invalid(e.to_string()))?;
        let record = self.state.release_for(release.build.id, release.hash(), spec).await?;
        Ok((record.id, release))
    }

    async fn ingredients(&self, swarm: &SwarmSpec) -> Result<Vec<IngredientSpec>, SwarmError> {
        let mut found = Vec::new();
        for name in &swarm.ingredients {
            if let Definition::Ingredient(i) = self.state.definition(Kind::Ingredient, name).await? {
                found.push(i);
            }
        }
        Ok(found)
    }

    /// Every host's procs, and the swarm's procs as recorded and still present. A host that can't
    /// be reached is left out (its procs neither count nor get touched) and said so.
    pub(super) async fn survey(&self, swarm: &SwarmSpec, trace: &Trace) -> Result<Survey, SwarmError> {
        let mut hosts = BTreeMap::new();
        for spec in self.hosts().await? {
            let reached = match self.agent(&spec) {
                Ok(agent) => agent.procs().await.map(|procs| (agent, procs)),
                Err(e) => Err(e),
            };
            match reached {
                Ok((agent, procs)) => {
                    let procs = procs.into_iter().map(|p| p.name).collect();
                    hosts.insert(spec.name.clone(), Reached { spec, agent, procs });
                }
                Err(e) => {
                    trace.step(&["host", "warning"], format!("Leaving host {} out: {e}", spec.name)).await
                }
            }
        }
        let squad_hosts = hosts
            .values()
            // A draining host's procs are stale: replaced elsewhere, then retired.
            .filter(|h| h.spec.squad.as_deref() == Some(&swarm.squad) && !h.spec.draining)
            .map(|h| h.spec.name.clone())
            .collect();
        let mut owned = Vec::new();
        for record in self.state.swarm_procs(Some(swarm.name.clone())).await? {
            match hosts.get(&record.host) {
                Some(h) if !h.procs.contains(&record.proc) => {
                    // Destroyed outside any swarm (vr procs destroy): forget it.
                    self.state.forget_swarm_proc(record.host, record.proc).await?;
                }
                Some(_) => owned.push(owned_proc(&record)),
                None => {}
            }
        }
        Ok(Survey { hosts, squad_hosts, owned })
    }

    fn loads(&self, swarm: &SwarmSpec, survey: &Survey) -> Vec<HostLoad> {
        survey
            .hosts
            .values()
            .filter(|h| survey.squad_hosts.contains(&h.spec.name))
            .map(|h| HostLoad {
                name: h.spec.name.clone(),
                active: h.spec.active,
                swarm_procs: survey
                    .owned
                    .iter()
                    .filter(|p| p.host == h.spec.name && p.proc == swarm.proc_name)
                    .count(),
                total_procs: h.procs.len(),
            })
            .collect()
    }

    /// Deploys `needed` new procs: placed round-robin over the prioritized hosts, ports locked
    /// before any deploy starts, hosts in parallel, one deploy at a time per host.
    async fn grow(
        &self,
        swarm: &SwarmSpec,
        release: &ReleaseSpec,
        release_id: u64,
        needed: usize,
        survey: &Survey,
        trace: &Trace,
    ) -> Result<Vec<OwnedProc>, SwarmError> {
        let order = plan::prioritized_hosts(&self.loads(swarm, survey));
        if order.is_empty() {
            return Err(SwarmError::Placement(format!(
                "squad '{}' has no active, reachable host: add one (vr hosts create NAME --set squad={}) or activate one",
                swarm.squad, swarm.squad
            )));
        }
        let mut used: HashMap<String, BTreeSet<u16>> = HashMap::new();
        let mut by_host: BTreeMap<String, Vec<u16>> = BTreeMap::new();
        for host in plan::placements(needed, &order) {
            let port = self.lock_free_port(&host, survey, used.entry(host.clone()).or_default()).await?;
            by_host.entry(host).or_default().push(port);
        }
        if let Err(e) = self.fetch_artifacts(release, by_host.keys(), survey, trace).await {
            for (host, ports) in &by_host {
                for port in ports {
                    let _ = self.state.unlock_port(host.clone(), *port).await;
                }
            }
            return Err(e);
        }
        let total = needed;
        let counter = std::sync::atomic::AtomicUsize::new(0);
        let runs = by_host.into_iter().map(|(host, ports)| {
            let counter = &counter;
            async move {
                let mut made = Vec::new();
                let mut failure = None;
                for port in ports {
                    let at = Placement {
                        config_name: swarm.config_name.clone(),
                        proc_name: swarm.proc_name.clone(),
                        host: host.clone(),
                        port,
                        address: survey.hosts.get(&host).map(|h| h.spec.node_address().to_string()),
                    };
                    let result = self.deploy_one(swarm, release, release_id, &at, survey).await;
                    let _ = self.state.unlock_port(host.clone(), port).await;
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    match result {
                        Ok(p) => {
                            trace
                                .step(&["deploy"], format!("deploy {n}/{total}: {} on {host}", p.name))
                                .await;
                            made.push(p);
                        }
                        Err(e) => {
                            trace
                                .step(
                                    &["deploy", "failed"],
                                    format!("deploy {n}/{total} on {host} port {port} failed: {e}"),
                                )
                                .await;
                            failure.get_or_insert(e);
                        }
                    }
                }
                (made, failure)
            }
        });
        let mut made = Vec::new();
        let mut failure = None;
        for (procs, err) in join_all(runs).await {
            made.extend(procs);
            if failure.is_none() {
                failure = err;
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(made),
        }
    }

    /// Has every host that gets new procs make sure it has the release's build and image (a
    /// joined host fetches them from this coordinator's store), all hosts at once and before any
    /// deploy, so transfers run in parallel and no deploy's setup competes with them.
    async fn fetch_artifacts(
        &self,
        release: &ReleaseSpec,
        hosts: impl Iterator<Item = &String>,
        survey: &Survey,
        trace: &Trace,
    ) -> Result<(), SwarmError> {
        let build = &release.build;
        let artifacts: Vec<_> = [&build.artifact, &build.image.artifact].into_iter().flatten().collect();
        if artifacts.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let fetches = hosts.map(|host| {
            let artifacts = &artifacts;
            async move {
                let agent = survey
                    .agent(host)
                    .ok_or_else(|| SwarmError::Placement(format!("host {host} went away")))?;
                for artifact in artifacts {
                    agent.fetch(artifact).await?;
                }
                Ok::<_, SwarmError>(host.clone())
            }
        });
        let mut ready = Vec::new();
        for fetched in join_all(fetches).await {
            ready.push(fetched?);
        }
        let message = format!(
            "Artifacts on {}: {} ({} ms)",
            ready.join(", "),
            artifacts
                .iter()
                .map(|a| format!("sha256:{:.12} {} bytes", a.sha256, a.size))
                .collect::<Vec<_>>()
                .join(", "),
            started.elapsed().as_millis()
        );
        trace.step(&["fetch"], message).await;
        Ok(())
    }

    async fn deploy_one(
        &self,
        swarm: &SwarmSpec,
        release: &ReleaseSpec,
        release_id: u64,
        at: &Placement,
        survey: &Survey,
    ) -> Result<OwnedProc, SwarmError> {
        let agent = survey
            .agent(&at.host)
            .ok_or_else(|| SwarmError::Placement(format!("host {} went away", at.host)))?;
        let order = ProcOrder { release: release.clone(), at: at.clone() };
        let name = order.name().map_err(|e| SwarmError::Invalid(e.to_string()))?.to_string();
        let record = SwarmProcRecord {
            host: at.host.clone(),
            proc: name,
            swarm: swarm.name.clone(),
            release: release_id,
            port: at.port,
            routed: None,
        };
        // Recorded before the deploy: a coordinator killed, or a reply lost, while the host
        // deploys would otherwise leave a proc no dispatch owns. The next survey forgets a record
        // whose proc its host does not have.
        self.state.record_swarm_proc(record.clone()).await?;
        if let Err(e) = agent.deploy(&order).await {
            self.forget_unless_deployed(agent.as_ref(), &record, &e).await;
            return Err(e.into());
        }
        Ok(owned_proc(&record))
    }

    /// After a failed deploy: forgets its record when its host says it has no such proc. When the
    /// host can't say (it is unreachable), the record stays for the next survey to settle.
    async fn forget_unless_deployed(&self, agent: &dyn HostAgent, record: &SwarmProcRecord, e: &HostError) {
        if matches!(e, HostError::Unreachable { .. }) {
            return;
        }
        let deployed = match agent.procs().await {
            Ok(procs) => procs.iter().any(|p| p.name == record.proc),
            Err(_) => return,
        };
        if !deployed {
            if let Err(e) = self.state.forget_swarm_proc(record.host.clone(), record.proc.clone()).await {
                tracing::warn!(proc = %record.proc, host = %record.host, error = %e,
                    "could not forget the record of a failed deploy; the next dispatch will");
            }
        }
    }

    /// A random port of the range that no proc on `host` uses, nothing listens on, and no other
    /// dispatch has locked; the lock is taken here and released after the deploy.
    async fn lock_free_port(
        &self,
        host: &str,
        survey: &Survey,
        taken: &mut BTreeSet<u16>,
    ) -> Result<u16, SwarmError> {
        let agent =
            survey.agent(host).ok_or_else(|| SwarmError::Placement(format!("host {host} went away")))?;
        let on_host = survey
            .hosts
            .get(host)
            .map(|h| {
                h.procs.iter().filter_map(|n| ProcName::parse(n).ok()).map(|n| n.port).collect::<Vec<_>>()
            })
            .unwrap_or_default();
        taken.extend(on_host);
        taken.extend(self.state.locked_ports(host.to_string()).await?);
        loop {
            let seed = std::collections::hash_map::RandomState::new().build_hasher().finish();
            let Some(port) = plan::free_port(self.settings.port_range, taken, seed) else {
                let (a, b) = self.settings.port_range;
                return Err(SwarmError::Placement(format!(
                    "host {host} has no free port in {a}..{b}: widen port_range_start/port_range_end in vrd's config, or remove procs"
                )));
            };
            taken.insert(port);
            if !self.state.lock_port(host.to_string(), port).await? {
                continue;
            }
            if agent.port_is_free(port).await? {
                return Ok(port);
            }
            self.state.unlock_port(host.to_string(), port).await?;
        }
    }

    /// Runs every current proc's uptests once it is RUNNING (and, when routed, listening):
    /// hosts in parallel, serially within a host. Any failure stops the dispatch here.
    async fn uptest_current(
        &self,
        swarm: &SwarmSpec,
        current: &[OwnedProc],
        survey: &Survey,
        trace: &Trace,
    ) -> Result<(), SwarmError> {
        let mut by_host: BTreeMap<&str, Vec<&OwnedProc>> = BTreeMap::new();
        for p in current {
            by_host.entry(p.host.as_str()).or_default().push(p);
        }
        let runs = by_host.into_values().map(|procs| async move {
            let mut out = Vec::new();
            for p in procs {
                out.push((p, self.uptest_one(swarm, p, survey).await));
            }
            out
        });
        let results: Vec<(&OwnedProc, Vec<UptestResult>)> =
            join_all(runs).await.into_iter().flatten().collect();
        let tests: usize = results.iter().map(|(_, r)| r.len()).sum();
        let mut failed = 0;
        for (p, r) in &results {
            let bad: Vec<&UptestResult> = r.iter().filter(|t| !t.passed).collect();
            if !bad.is_empty() {
                failed += 1;
            }
            for t in bad {
                trace
                    .step(
                        &["failed", "uptest"],
                        format!("{}@{}: {} failed:{}", p.name, p.host, t.name, t.output),
                    )
                    .await;
            }
        }
        if failed > 0 {
            crate::services::metrics::metrics().uptests_failed(&swarm.name, failed);
            return Err(SwarmError::Uptests(format!(
                "{failed} of {} procs failed their uptests; nothing was routed, the old procs keep serving, and the new ones stay up for inspection (vr logs PROC)",
                results.len()
            )));
        }
        if tests == 0 {
            trace.step(&["warning", "uptest"], "No uptests!").await;
        } else {
            trace
                .step(
                    &["success", "uptest"],
                    format!("Uptests passed: {tests} tests on {} procs", results.len()),
                )
                .await;
        }
        Ok(())
    }

    /// One proc's uptests; a proc that never started or never listened fails as VR's `uptester`.
    async fn uptest_one(&self, swarm: &SwarmSpec, p: &OwnedProc, survey: &Survey) -> Vec<UptestResult> {
        let failed = |output: String| vec![UptestResult { name: "uptester".into(), output, passed: false }];
        let Some(agent) = survey.agent(&p.host) else { return failed(format!("host {} went away", p.host)) };
        if let Err(e) = agent.wait_running(&p.name, self.settings.start_timeout).await {
            return failed(e.to_string());
        }
        if swarm.pool.is_some() {
            if let Err(e) = agent.wait_listening(&p.name, p.port, self.settings.listen_timeout).await {
                return failed(e.to_string());
            }
        }
        agent.uptest(&p.name).await.unwrap_or_else(|e| failed(e.to_string()))
    }

    /// Points the swarm's pool at exactly its uptested current procs, and takes current procs out
    /// of any pool the swarm used before.
    async fn route(
        &self,
        swarm: &SwarmSpec,
        current: &[OwnedProc],
        survey: &Survey,
        trace: &Trace,
    ) -> Result<(), SwarmError> {
        let wanted_route = swarm.pool.as_ref().map(|p| (swarm.balancer_name().to_string(), p.clone()));
        let records = self.state.swarm_procs(Some(swarm.name.clone())).await?;
        for p in current {
            let old =
                records.iter().find(|r| r.host == p.host && r.proc == p.name).and_then(|r| r.routed.clone());
            if let Some((b, pool)) = old.filter(|o| Some(o) != wanted_route.as_ref()) {
                self.balancers.remove(&b, &pool, &BTreeSet::from([survey.node(p)])).await?;
                trace
                    .step(
                        &["route"],
                        format!("Took {} out of pool {pool} on {b}: the swarm's pool changed", p.name),
                    )
                    .await;
            }
        }
        let Some((balancer, pool)) = wanted_route else {
            trace.step(&["route"], format!("Swarm {} has no pool: nothing to route", swarm.name)).await;
            return Ok(());
        };
        let correct: BTreeSet<String> = current.iter().map(|p| survey.node(p)).collect();
        let routed = self.balancers.route(&balancer, &pool, &correct).await?;
        for p in current {
            self.state
                .set_proc_route(p.host.clone(), p.name.clone(), Some((balancer.clone(), pool.clone())))
                .await?;
        }
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
        trace.step(&["route"], format!(
            "Routed swarm {}. Nodes: current=[{}] correct=[{}] new=[{}] stale=[{}] (pool {pool} on {balancer})",
            swarm.name, list(&routed.before), list(&correct), list(&routed.added), list(&routed.removed)
        )).await;
        Ok(())
    }

    /// Removes stale procs, but only once `current` reached `size`.
    async fn cleanup(
        &self,
        stale: &[OwnedProc],
        current: usize,
        size: usize,
        survey: &Survey,
        trace: &Trace,
    ) -> Result<usize, SwarmError> {
        if stale.is_empty() {
            return Ok(0);
        }
        if current < size {
            trace
                .step(
                    &["cleanup"],
                    format!("Keeping {} old procs: only {current} of {size} current procs run", stale.len()),
                )
                .await;
            return Ok(0);
        }
        self.drain(stale, survey).await?;
        for p in stale {
            self.retire(p, survey, trace).await?;
        }
        Ok(stale.len())
    }

    /// De-routes the procs, then waits the drain time when any was routed, so new requests
    /// already go elsewhere and those in flight can finish before the procs stop.
    async fn drain(&self, procs: &[OwnedProc], survey: &Survey) -> Result<(), SwarmError> {
        if self.deroute(procs, survey).await? > 0 && !self.settings.drain.is_zero() {
            tokio::time::sleep(self.settings.drain).await;
        }
        Ok(())
    }

    /// Takes the procs out of whatever pool they are still in; returns how many were routed.
    async fn deroute(&self, procs: &[OwnedProc], survey: &Survey) -> Result<usize, SwarmError> {
        let records = self.state.swarm_procs(None).await?;
        let mut n = 0;
        for p in procs {
            let route =
                records.iter().find(|r| r.host == p.host && r.proc == p.name).and_then(|r| r.routed.clone());
            if let Some((balancer, pool)) = route {
                self.balancers.remove(&balancer, &pool, &BTreeSet::from([survey.node(p)])).await?;
                self.state.set_proc_route(p.host.clone(), p.name.clone(), None).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// De-routes a proc (when it is routed), then destroys it and forgets it.
    pub(super) async fn retire(
        &self,
        p: &OwnedProc,
        survey: &Survey,
        trace: &Trace,
    ) -> Result<(), SwarmError> {
        let records = self.state.swarm_procs(None).await?;
        let route =
            records.iter().find(|r| r.host == p.host && r.proc == p.name).and_then(|r| r.routed.clone());
        if let Some((balancer, pool)) = route {
            self.balancers.remove(&balancer, &pool, &BTreeSet::from([survey.node(p)])).await?;
        }
        if let Some(agent) = survey.agent(&p.host) {
            agent.destroy(&p.name).await?;
        }
        self.state.forget_swarm_proc(p.host.clone(), p.name.clone()).await?;
        trace.step(&["proc", "deleted"], format!("Deleted {} on {}", p.name, p.host)).await;
        Ok(())
    }
}

/// VR's `user,swarm` event text.
fn describe(s: &SwarmSpec) -> String {
    format!(
        "Swarm {} started: app {}, version {}, config {}, proc {}, squad {}, size {}, memory {}, balancer {}, pool {}",
        s.name,
        s.app,
        s.version,
        s.config_name,
        s.proc_name,
        s.squad,
        s.size,
        s.mem_limit.as_deref().unwrap_or("-"),
        if s.pool.is_some() { s.balancer_name() } else { "-" },
        s.pool.as_deref().unwrap_or("-"),
    )
}

pub(super) fn owned_proc(r: &SwarmProcRecord) -> OwnedProc {
    let n = ProcName::parse_lenient(&r.proc);
    OwnedProc {
        host: r.host.clone(),
        name: r.proc.clone(),
        app: n.app,
        config: n.config,
        proc: n.proc,
        hash: n.hash,
        port: r.port,
    }
}
