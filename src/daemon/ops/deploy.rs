//! The deployment API: definitions (create, update, get, list, delete), swarm dispatch and
//! rollback, releases, builds of apps, the deployment log and its live stream, uptest runs.

use regex::{Regex, RegexBuilder};
use serde_json::Value;

use super::access::Principal;
use super::error::{error, invalid, state_error, swarm_error, OpResult};
use super::feed::{feed, replay_then_live, Feed, FeedEnd, Numbered};
use super::privilege::Privilege;
use super::Ops;
use crate::api::{
    codes, DeployLogEntry, Dispatched, Kind, NumberedRelease, ProcInfo, ReleaseRecord, SwarmChanges,
    SwarmProcRecord, UptestRun,
};
use crate::model::deploy::release::Placement;
use crate::model::deploy::{Definition, SwarmSpec};
use crate::services::swarm::Target;

/// VR's FILTER: an anchored, case-sensitive regex on the swarm's name or `app-config-proc`.
fn filter_regex(filter: &str) -> OpResult<Regex> {
    Regex::new(&format!("^(?:{filter})"))
        .map_err(|e| invalid(format!("FILTER '{filter}' is not a regular expression: {e}")))
}

fn swarms_of(defs: Vec<Definition>) -> Vec<SwarmSpec> {
    defs.into_iter().filter_map(|d| if let Definition::Swarm(s) = d { Some(s) } else { None }).collect()
}

/// Applies `vr swarm`'s changes to one swarm; returns whether anything changed.
fn apply(swarm: &mut SwarmSpec, changes: &SwarmChanges) -> bool {
    let before = swarm.clone();
    if let Some(v) = &changes.version {
        swarm.version = v.clone();
    }
    if let Some(squad) = &changes.squad {
        swarm.squad = squad.clone();
    }
    if let Some(list) = &changes.replace_ingredients {
        swarm.ingredients = list.clone();
    }
    swarm.ingredients.retain(|i| !changes.remove_ingredients.contains(i));
    for i in &changes.add_ingredients {
        if !swarm.ingredients.contains(i) {
            swarm.ingredients.push(i.clone());
        }
    }
    *swarm != before
}

impl Ops {
    pub(super) async fn put_object(
        &self,
        who: &Principal,
        kind: Kind,
        spec: Value,
        create: bool,
    ) -> OpResult<Value> {
        let def = Definition::from_value(kind, spec).map_err(|e| invalid(e.to_string()))?;
        let def = self.permit(who, def, |p, def| p.definition(def)).await?;
        if let Definition::Swarm(s) = &def {
            if s.pool.is_some() {
                self.daemon
                    .swarms
                    .balancers()
                    .check(s.balancer_name())
                    .map_err(|e| invalid(e.to_string()))?;
            }
        }
        let state = self.daemon.supervisor.state();
        state.put_definition(def.clone(), create).await.map_err(state_error)?;
        Ok(def.to_value())
    }

    pub(super) async fn get_object(&self, kind: Kind, name: String) -> OpResult<Value> {
        let def = self.daemon.supervisor.state().definition(kind, &name).await.map_err(state_error)?;
        Ok(def.to_value())
    }

    pub(super) async fn list_objects(&self, kind: Kind) -> OpResult<Vec<Value>> {
        let defs = self.daemon.supervisor.state().list_definitions(kind).await.map_err(state_error)?;
        Ok(defs.iter().map(Definition::to_value).collect())
    }

    pub(super) async fn delete_object(&self, who: &Principal, kind: Kind, name: String) -> OpResult<()> {
        Privilege::of(who, &self.daemon.policy).deletion(kind, &name)?;
        if kind == Kind::Swarm {
            return self.daemon.swarms.delete_swarm(&name).await.map_err(swarm_error);
        }
        self.daemon.supervisor.state().delete_definition(kind, name.clone()).await.map_err(state_error)?;
        if kind == Kind::Host {
            self.revoke_host(&name).await?;
        }
        Ok(())
    }

    pub(super) async fn dispatch(
        &self,
        filter: String,
        changes: SwarmChanges,
        exclude: Option<String>,
        rebuild: bool,
    ) -> OpResult<Vec<Dispatched>> {
        let matching = filter_regex(&filter)?;
        let excluding = exclude
            .map(|x| RegexBuilder::new(&x).case_insensitive(true).build())
            .transpose()
            .map_err(|e| invalid(format!("the exclude pattern is not a regular expression: {e}")))?;
        let state = self.daemon.supervisor.state();
        let all = swarms_of(state.list_definitions(Kind::Swarm).await.map_err(state_error)?);
        let chosen: Vec<SwarmSpec> = all
            .into_iter()
            .filter(|s| matching.is_match(&s.name) || matching.is_match(&s.display_name()))
            .filter(|s| !excluding.as_ref().is_some_and(|x| x.is_match(&s.display_name())))
            .collect();
        if chosen.is_empty() {
            return Err(error(
                codes::NOT_FOUND,
                format!("no swarm matches '{filter}': `vr list-swarms` shows them"),
            ));
        }
        let mut started = Vec::new();
        for mut swarm in chosen {
            if apply(&mut swarm, &changes) {
                let def = Definition::Swarm(swarm.clone()).validated().map_err(|e| invalid(e.to_string()))?;
                state.put_definition(def, false).await.map_err(state_error)?;
            }
            let target = Target::Current { fresh_build: rebuild };
            let trace = self.daemon.swarms.start_dispatch(&swarm.name, target).await.map_err(swarm_error)?;
            started.push(Dispatched { swarm: swarm.name, trace });
        }
        Ok(started)
    }

    pub(super) async fn rollback(&self, swarm: String, number: Option<u64>) -> OpResult<Dispatched> {
        let releases = self.daemon.swarms.releases(&swarm).await.map_err(swarm_error)?;
        let wanted = match number {
            Some(n) => releases.iter().find(|r| r.number == n),
            None => releases.len().checked_sub(2).and_then(|i| releases.get(i)),
        };
        let Some(release) = wanted.cloned() else {
            let known: Vec<String> = releases.iter().map(|r| r.number.to_string()).collect();
            return Err(error(
                codes::NOT_FOUND,
                format!("swarm {swarm} has no such release to roll back to (it has: {}); `vr swarms releases {swarm}` lists them", known.join(", ")),
            ));
        };
        self.keep_version_of(&swarm, &release).await?;
        let trace = self
            .daemon
            .swarms
            .start_dispatch(&swarm, Target::Release(release.release))
            .await
            .map_err(swarm_error)?;
        Ok(Dispatched { swarm, trace })
    }

    /// Sets the swarm's version to the rolled-back release's, so `vr swarm NAME -` keeps it.
    async fn keep_version_of(&self, swarm: &str, release: &NumberedRelease) -> OpResult<()> {
        let version =
            release.release.spec.pointer("/build/version").and_then(Value::as_str).map(str::to_string);
        let state = self.daemon.supervisor.state();
        if let (Some(version), Definition::Swarm(mut s)) =
            (version, state.definition(Kind::Swarm, swarm).await.map_err(state_error)?)
        {
            s.version = version;
            state.put_definition(Definition::Swarm(s), false).await.map_err(state_error)?;
        }
        Ok(())
    }

    pub(super) async fn releases(&self, swarm: String) -> OpResult<Vec<NumberedRelease>> {
        self.daemon.swarms.releases(&swarm).await.map_err(swarm_error)
    }

    pub(super) async fn owned_procs(&self, swarm: Option<String>) -> OpResult<Vec<SwarmProcRecord>> {
        self.daemon.supervisor.state().swarm_procs(swarm).await.map_err(state_error)
    }

    pub(super) async fn show_release(&self, id: u64) -> OpResult<ReleaseRecord> {
        let found = self.daemon.supervisor.state().release(id).await.map_err(state_error)?;
        found.ok_or_else(|| {
            error(
                codes::NOT_FOUND,
                format!("there is no release {id}: `vr swarms releases SWARM` lists them"),
            )
        })
    }

    pub(super) async fn deploy_release(&self, id: u64, at: Placement) -> OpResult<ProcInfo> {
        let name = self.daemon.swarms.deploy_release(id, at).await.map_err(swarm_error)?;
        let record = self.daemon.supervisor.get(&name).await.map_err(super::error::supervisor_error)?;
        Ok(super::procs::proc_info(&record, &self.daemon.host))
    }

    pub(super) async fn build_app(&self, app: String, version: String) -> OpResult<Dispatched> {
        let trace = self.daemon.swarms.start_build(&app, &version).await.map_err(swarm_error)?;
        Ok(Dispatched { swarm: app, trace })
    }

    pub(super) async fn deploy_log(
        &self,
        trace: Option<String>,
        after: u64,
        limit: usize,
    ) -> OpResult<Vec<DeployLogEntry>> {
        self.daemon.supervisor.state().deploy_log(trace, after, limit.min(10_000)).await.map_err(state_error)
    }

    /// The stored entries after `after`, then live ones; with a trace, only its entries, ending
    /// after its last.
    pub(super) fn follow_deploys(&self, trace: Option<String>, after: u64) -> Feed<DeployLogEntry> {
        // Subscribed before the replay starts, so nothing falls between the two.
        let live = self.daemon.swarms.subscribe();
        let ops = self.clone();
        feed(FeedEnd::Quiet, move |tx| async move {
            let wanted = trace.clone();
            let stored = |after| {
                let (ops, trace) = (ops.clone(), trace.clone());
                async move { ops.deploy_log(trace, after, 1000).await }
            };
            let keep = |e: &DeployLogEntry| wanted.as_ref().is_none_or(|t| *t == e.trace);
            let last = |e: &DeployLogEntry| wanted.is_some() && e.is_last();
            replay_then_live(&tx, after, live, stored, keep, last).await
        })
    }

    pub(super) async fn pool_nodes(&self, balancer: String, pool: String) -> OpResult<Vec<String>> {
        let nodes = self.daemon.swarms.balancers().nodes(&balancer, &pool).await;
        Ok(nodes.map_err(|e| error(codes::BALANCER, e.to_string()))?.into_iter().collect())
    }

    pub(super) async fn run_uptests(&self) -> OpResult<UptestRun> {
        self.daemon.swarms.uptest_all().await.map_err(swarm_error)
    }

    pub(super) async fn latest_uptests(&self) -> OpResult<Option<UptestRun>> {
        Ok(self.daemon.swarms.latest_uptests())
    }
}

impl Numbered for DeployLogEntry {
    fn id(&self) -> u64 {
        self.id
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn vr_swarm_changes_version_squad_and_ingredients_in_order() {
        let mut s: SwarmSpec =
            serde_json::from_value(json!({"app": "a", "version": "1", "ingredients": ["x", "y"]})).unwrap();
        assert!(!apply(&mut s, &SwarmChanges::default()), "no change is no change");
        let changes = SwarmChanges {
            version: Some("2".into()),
            squad: Some("east".into()),
            add_ingredients: vec!["z".into(), "x".into()],
            remove_ingredients: vec!["y".into()],
            replace_ingredients: None,
        };
        assert!(apply(&mut s, &changes));
        assert_eq!((s.version.as_str(), s.squad.as_str()), ("2", "east"));
        assert_eq!(s.ingredients, ["x", "z"]);
        let replace =
            SwarmChanges { replace_ingredients: Some(vec!["b".into(), "a".into()]), ..Default::default() };
        apply(&mut s, &replace);
        assert_eq!(s.ingredients, ["b", "a"]);
    }
}
