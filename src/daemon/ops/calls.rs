//! The table of operations, one public method per API method (named after it): each checks who
//! may call it and audits what it changes ([`Ops::read`], [`Ops::audited`]), then does the work in
//! the subject's file. Transports call these and nothing else.

use serde_json::{json, Value};

use super::access::Principal;
use super::attach::ReceivedFds;
use super::error::{supervisor_error, swarm_error, OpResult};
use super::feed::Feed;
use super::forward::Duty;
use super::Ops;
use crate::api::{
    Attach, AuditInfo, BuildFile, BuildInfo, BuildReport, DeployLogEntry, Dispatched, EventItem, ExitStatus,
    GcReport, HostJoin, HostLink, HostRow, ImageBuilt, ImageFile, ImageInfo, Kind, LeaderView, LogLine,
    NewToken, NumberedRelease, ProcFile, ProcInfo, ReleaseRecord, Role, SetupReport, SwarmChanges,
    SwarmProcRecord, TokenInfo, UptestResult, UptestRun, UserInfo,
};
use crate::model::deploy::release::Placement;

fn file_param(path: &str, yaml: &str) -> Value {
    json!({ "path": path, "yaml": yaml })
}

impl Ops {
    /// `vrd.version`.
    pub async fn version(&self, who: &Principal) -> OpResult<String> {
        self.read(who, "vrd.version", async { Ok(env!("CARGO_PKG_VERSION").to_string()) }).await
    }

    // ---- The fleet ----

    /// `hosts.add`.
    pub async fn hosts_add(
        &self,
        who: &Principal,
        name: String,
        address: String,
        squad: Option<String>,
    ) -> OpResult<HostJoin> {
        let params = json!({ "name": name, "address": address, "squad": squad });
        self.audited(who, "hosts.add", params, self.add_host(name.clone(), address.clone(), squad.clone()))
            .await
    }

    /// `users.create`: audited without the password.
    pub async fn users_create(
        &self,
        who: &Principal,
        name: String,
        role: Role,
        password: String,
    ) -> OpResult<UserInfo> {
        let params = json!({ "name": name, "role": role });
        self.audited(who, "users.create", params, self.create_user(&name, role, &password)).await
    }

    /// `users.update`: audited without the password.
    pub async fn users_update(
        &self,
        who: &Principal,
        name: String,
        role: Option<Role>,
        password: Option<String>,
    ) -> OpResult<UserInfo> {
        let params = json!({ "name": name, "role": role, "password_changed": password.is_some() });
        self.audited(who, "users.update", params, self.update_user(&name, role, password.as_deref())).await
    }

    /// `users.delete`.
    pub async fn users_delete(&self, who: &Principal, name: String) -> OpResult<()> {
        self.audited(who, "users.delete", json!({ "name": name }), self.delete_user(&name)).await
    }

    /// `users.list`.
    pub async fn users_list(&self, who: &Principal) -> OpResult<Vec<UserInfo>> {
        self.read(who, "users.list", self.list_users()).await
    }

    /// `tokens.create`: the token's text is in the answer only.
    pub async fn tokens_create(
        &self,
        who: &Principal,
        user: String,
        name: String,
        ttl_secs: Option<i64>,
    ) -> OpResult<NewToken> {
        let params = json!({ "user": user, "name": name, "ttl_secs": ttl_secs });
        self.audited(who, "tokens.create", params, self.create_token(&user, &name, ttl_secs)).await
    }

    /// `tokens.list`.
    pub async fn tokens_list(&self, who: &Principal, user: Option<String>) -> OpResult<Vec<TokenInfo>> {
        self.read(who, "tokens.list", self.list_tokens(user.as_deref())).await
    }

    /// `tokens.revoke`.
    pub async fn tokens_revoke(&self, who: &Principal, id: u64) -> OpResult<TokenInfo> {
        self.audited(who, "tokens.revoke", json!({ "id": id }), self.revoke_token(id)).await
    }

    /// `metrics.read`: the Prometheus text (the HTTPS listener's `GET /metrics`).
    pub async fn metrics_read(&self, who: &Principal) -> OpResult<String> {
        self.read(who, "metrics.read", async { Ok(crate::daemon::metrics_http::scrape(&self.daemon).await) })
            .await
    }

    /// `hosts.token`.
    pub async fn hosts_token(&self, who: &Principal, name: String) -> OpResult<HostJoin> {
        self.audited(who, "hosts.token", json!({ "name": name }), self.host_token(name.clone())).await
    }

    /// `hosts.drain`.
    pub async fn hosts_drain(&self, who: &Principal, name: String) -> OpResult<Vec<Dispatched>> {
        let work = async {
            let started = self.daemon.swarms.drain_host(&name).await.map_err(swarm_error)?;
            Ok(started.into_iter().map(|(swarm, trace)| Dispatched { swarm, trace }).collect())
        };
        self.leader_duty(who, Duty::Drain { name: name.clone() }, work).await
    }

    /// `hosts.list`.
    pub async fn hosts_list(&self, who: &Principal) -> OpResult<Vec<HostRow>> {
        self.read(who, "hosts.list", self.list_hosts()).await
    }

    /// `hosts.links`.
    pub async fn hosts_links(&self, who: &Principal) -> OpResult<Vec<HostLink>> {
        self.read(who, "hosts.links", self.host_links()).await
    }

    /// `hosts.leader`.
    pub async fn hosts_leader(&self, who: &Principal) -> OpResult<LeaderView> {
        self.read(who, "hosts.leader", self.leader()).await
    }

    // ---- VR's runner ----

    /// `runner.setup`.
    pub async fn runner_setup(&self, who: &Principal, file: ProcFile) -> OpResult<SetupReport> {
        let params = file_param(&file.path, &file.yaml);
        self.audited(who, "runner.setup", params, self.setup(who, file)).await
    }

    /// `runner.run`: the container runs with the caller's terminal.
    pub async fn runner_run(
        &self,
        who: &Principal,
        passed: ReceivedFds,
        file: ProcFile,
        attach: Attach,
    ) -> OpResult<ExitStatus> {
        let params = file_param(&file.path, &file.yaml);
        self.audited(who, "runner.run", params, self.attached(who, passed, file, attach, false)).await
    }

    /// `runner.shell`.
    pub async fn runner_shell(
        &self,
        who: &Principal,
        passed: ReceivedFds,
        file: ProcFile,
        attach: Attach,
    ) -> OpResult<ExitStatus> {
        let params = file_param(&file.path, &file.yaml);
        self.audited(who, "runner.shell", params, self.attached(who, passed, file, attach, true)).await
    }

    /// `runner.signal`.
    pub async fn runner_signal(&self, who: &Principal, file: ProcFile, signal: String) -> OpResult<bool> {
        let params = json!({ "path": file.path, "signal": signal });
        self.audited(who, "runner.signal", params, self.signal(file, signal.clone())).await
    }

    /// `runner.uptest`.
    pub async fn runner_uptest(&self, who: &Principal, file: ProcFile) -> OpResult<Vec<UptestResult>> {
        self.read(who, "runner.uptest", self.uptest(who, file)).await
    }

    /// `runner.teardown`.
    pub async fn runner_teardown(&self, who: &Principal, file: ProcFile) -> OpResult<()> {
        let params = file_param(&file.path, &file.yaml);
        self.audited(who, "runner.teardown", params, self.teardown(file)).await
    }

    // ---- Supervision ----

    /// `proc.deploy`.
    pub async fn proc_deploy(&self, who: &Principal, file: ProcFile) -> OpResult<ProcInfo> {
        let params = file_param(&file.path, &file.yaml);
        self.audited(who, "proc.deploy", params, self.deploy(who, file)).await
    }

    /// `procs.list`.
    pub async fn procs_list(&self, who: &Principal) -> OpResult<Vec<ProcInfo>> {
        self.read(who, "procs.list", self.list()).await
    }

    /// `procs.act`: audited as `procs.<action>`.
    pub async fn procs_act(&self, who: &Principal, name: String, action: String) -> OpResult<()> {
        let params = json!({ "name": name, "action": action });
        self.audited(who, &format!("procs.{action}"), params, self.act(&name, &action)).await
    }

    /// `logs.read`.
    pub async fn logs_read(
        &self,
        who: &Principal,
        name: String,
        since: Option<String>,
        tail: Option<usize>,
    ) -> OpResult<Vec<LogLine>> {
        self.read(who, "logs.read", self.logs(&name, since, tail)).await
    }

    /// `logs.follow`.
    pub async fn logs_follow(
        &self,
        who: &Principal,
        name: String,
        since: Option<String>,
        tail: Option<usize>,
    ) -> OpResult<Feed<LogLine>> {
        self.read(who, "logs.follow", self.follow_logs(name, since, tail)).await
    }

    /// `events.list`.
    pub async fn events_list(&self, who: &Principal, after: u64, limit: usize) -> OpResult<Vec<EventItem>> {
        self.read(who, "events.list", self.events(after, limit)).await
    }

    /// The newest event's id (0: none yet), read as `events.list`: where a reader that wants
    /// only the last few, or only what comes next, starts.
    pub async fn events_latest(&self, who: &Principal) -> OpResult<u64> {
        self.read(who, "events.list", self.latest_event()).await
    }

    /// `events.follow`.
    pub async fn events_follow(&self, who: &Principal, after: u64) -> OpResult<Feed<EventItem>> {
        self.read(who, "events.follow", async { Ok(self.follow_events(after)) }).await
    }

    /// `audit.list`.
    pub async fn audit_list(&self, who: &Principal, limit: usize) -> OpResult<Vec<AuditInfo>> {
        self.read(who, "audit.list", self.audit(limit)).await
    }

    /// `housekeeping.scoop`.
    pub async fn housekeeping_scoop(&self, who: &Principal, dry_run: bool) -> OpResult<Vec<String>> {
        let work = async { self.daemon.supervisor.scoop(dry_run).await.map_err(supervisor_error) };
        self.audited(who, "housekeeping.scoop", json!({ "dry_run": dry_run }), work).await
    }

    // ---- Images and builds ----

    /// `imager.build`.
    pub async fn imager_build(
        &self,
        who: &Principal,
        passed: ReceivedFds,
        file: ImageFile,
        attach: Attach,
        term: Option<String>,
    ) -> OpResult<ImageBuilt> {
        let params = super::imager::audit_params(&file);
        self.audited(who, "imager.build", params, self.image_build(who, passed, file, attach, term)).await
    }

    /// `imager.shell`.
    pub async fn imager_shell(
        &self,
        who: &Principal,
        passed: ReceivedFds,
        file: ImageFile,
        attach: Attach,
        term: Option<String>,
    ) -> OpResult<ExitStatus> {
        let params = super::imager::audit_params(&file);
        self.audited(who, "imager.shell", params, self.image_shell(who, passed, file, attach, term)).await
    }

    /// `builder.build`.
    pub async fn builder_build(
        &self,
        who: &Principal,
        passed: ReceivedFds,
        file: BuildFile,
        attach: Attach,
    ) -> OpResult<BuildReport> {
        let params = file_param(&file.path, &file.yaml);
        self.audited(who, "builder.build", params, self.build(who, passed, file, attach)).await
    }

    /// `builder.shell`.
    pub async fn builder_shell(
        &self,
        who: &Principal,
        passed: ReceivedFds,
        file: BuildFile,
        attach: Attach,
    ) -> OpResult<ExitStatus> {
        let params = file_param(&file.path, &file.yaml);
        self.audited(who, "builder.shell", params, self.build_shell(who, passed, file, attach)).await
    }

    /// `builds.list`.
    pub async fn builds_list(&self, who: &Principal, app: Option<String>) -> OpResult<Vec<BuildInfo>> {
        self.read(who, "builds.list", self.list_builds(app)).await
    }

    /// `builds.show`.
    pub async fn builds_show(&self, who: &Principal, id: u64) -> OpResult<BuildInfo> {
        self.read(who, "builds.show", self.show_build(id)).await
    }

    /// `builds.log`.
    pub async fn builds_log(&self, who: &Principal, id: u64) -> OpResult<String> {
        self.read(who, "builds.log", self.build_log(id)).await
    }

    /// `builds.follow`.
    pub async fn builds_follow(&self, who: &Principal, id: u64) -> OpResult<Feed<LogLine>> {
        self.read(who, "builds.follow", self.follow_build(id)).await
    }

    /// `builds.gc`.
    pub async fn builds_gc(
        &self,
        who: &Principal,
        dry_run: bool,
        max_age_days: Option<u64>,
        keep: Option<usize>,
    ) -> OpResult<GcReport> {
        let params = json!({ "dry_run": dry_run, "max_age_days": max_age_days, "keep": keep });
        self.audited(who, "builds.gc", params, self.gc_builds(dry_run, max_age_days, keep)).await
    }

    // ---- Definitions, swarms, releases ----

    /// `objects.create`.
    pub async fn objects_create(&self, who: &Principal, kind: Kind, spec: Value) -> OpResult<Value> {
        let params = json!({ "kind": kind, "spec": spec });
        self.audited(who, "objects.create", params, self.put_object(who, kind, spec, true)).await
    }

    /// `objects.update`.
    pub async fn objects_update(&self, who: &Principal, kind: Kind, spec: Value) -> OpResult<Value> {
        let params = json!({ "kind": kind, "spec": spec });
        self.audited(who, "objects.update", params, self.put_object(who, kind, spec, false)).await
    }

    /// `objects.get`.
    pub async fn objects_get(&self, who: &Principal, kind: Kind, name: String) -> OpResult<Value> {
        self.read(who, "objects.get", self.get_object(kind, name)).await
    }

    /// `objects.list`.
    pub async fn objects_list(&self, who: &Principal, kind: Kind) -> OpResult<Vec<Value>> {
        self.read(who, "objects.list", self.list_objects(kind)).await
    }

    /// `objects.delete`.
    pub async fn objects_delete(&self, who: &Principal, kind: Kind, name: String) -> OpResult<()> {
        let params = json!({ "kind": kind, "name": name });
        self.audited(who, "objects.delete", params, self.delete_object(who, kind, name.clone())).await
    }

    /// `swarms.dispatch`.
    pub async fn swarms_dispatch(
        &self,
        who: &Principal,
        filter: String,
        changes: SwarmChanges,
        exclude: Option<String>,
        rebuild: bool,
    ) -> OpResult<Vec<Dispatched>> {
        let duty = Duty::Dispatch {
            filter: filter.clone(),
            changes: changes.clone(),
            exclude: exclude.clone(),
            rebuild,
        };
        self.leader_duty(who, duty, self.dispatch(filter, changes, exclude, rebuild)).await
    }

    /// `swarms.rollback`.
    pub async fn swarms_rollback(
        &self,
        who: &Principal,
        swarm: String,
        number: Option<u64>,
    ) -> OpResult<Dispatched> {
        let duty = Duty::Rollback { swarm: swarm.clone(), number };
        self.leader_duty(who, duty, self.rollback(swarm, number)).await
    }

    /// `swarms.releases`.
    pub async fn swarms_releases(&self, who: &Principal, swarm: String) -> OpResult<Vec<NumberedRelease>> {
        self.read(who, "swarms.releases", self.releases(swarm)).await
    }

    /// `swarms.procs`.
    pub async fn swarms_procs(
        &self,
        who: &Principal,
        swarm: Option<String>,
    ) -> OpResult<Vec<SwarmProcRecord>> {
        self.read(who, "swarms.procs", self.owned_procs(swarm)).await
    }

    /// `releases.show`.
    pub async fn releases_show(&self, who: &Principal, id: u64) -> OpResult<ReleaseRecord> {
        self.read(who, "releases.show", self.show_release(id)).await
    }

    /// `releases.deploy`.
    pub async fn releases_deploy(&self, who: &Principal, id: u64, at: Placement) -> OpResult<ProcInfo> {
        let params = json!({ "id": id, "host": at.host, "port": at.port, "proc": at.proc_name, "config": at.config_name });
        self.audited(who, "releases.deploy", params, self.deploy_release(id, at.clone())).await
    }

    /// `apps.build`.
    pub async fn apps_build(&self, who: &Principal, app: String, version: String) -> OpResult<Dispatched> {
        let duty = Duty::AppBuild { app: app.clone(), version: version.clone() };
        self.leader_duty(who, duty, self.build_app(app, version)).await
    }

    /// `deploys.log`.
    pub async fn deploys_log(
        &self,
        who: &Principal,
        trace: Option<String>,
        after: u64,
        limit: usize,
    ) -> OpResult<Vec<DeployLogEntry>> {
        self.read(who, "deploys.log", self.deploy_log(trace, after, limit)).await
    }

    /// `deploys.follow`.
    pub async fn deploys_follow(
        &self,
        who: &Principal,
        trace: Option<String>,
        after: u64,
    ) -> OpResult<Feed<DeployLogEntry>> {
        self.read(who, "deploys.follow", async { Ok(self.follow_deploys(trace, after)) }).await
    }

    /// `uptests.run`.
    pub async fn uptests_run(&self, who: &Principal) -> OpResult<UptestRun> {
        self.audited(who, "uptests.run", json!({}), self.run_uptests()).await
    }

    /// `uptests.latest`.
    pub async fn uptests_latest(&self, who: &Principal) -> OpResult<Option<UptestRun>> {
        self.read(who, "uptests.latest", self.latest_uptests()).await
    }

    /// `balancers.list`.
    pub async fn balancers_list(&self, who: &Principal) -> OpResult<Vec<(String, String)>> {
        self.read(who, "balancers.list", async { Ok(self.daemon.swarms.balancers().kinds()) }).await
    }

    /// `balancers.nodes`.
    pub async fn balancers_nodes(
        &self,
        who: &Principal,
        balancer: String,
        pool: String,
    ) -> OpResult<Vec<String>> {
        self.read(who, "balancers.nodes", self.pool_nodes(balancer, pool)).await
    }

    // ---- Stacks ----

    /// `stacks.build`.
    pub async fn stacks_build(&self, who: &Principal, stack: String) -> OpResult<ImageInfo> {
        self.leader_duty(who, Duty::StackBuild { stack: stack.clone() }, self.build_stack(stack)).await
    }

    /// `stacks.images`.
    pub async fn stacks_images(&self, who: &Principal, stack: String) -> OpResult<Vec<ImageInfo>> {
        self.read(who, "stacks.images", self.stack_images(stack)).await
    }

    /// `stacks.activate`.
    pub async fn stacks_activate(
        &self,
        who: &Principal,
        stack: String,
        image: String,
    ) -> OpResult<ImageInfo> {
        let params = json!({ "stack": stack, "image": image });
        self.audited(who, "stacks.activate", params, self.activate_stack_image(stack.clone(), image.clone()))
            .await
    }

    /// `stacks.follow`.
    pub async fn stacks_follow(
        &self,
        who: &Principal,
        stack: String,
        image: String,
    ) -> OpResult<Feed<LogLine>> {
        self.read(who, "stacks.follow", self.follow_stack_image(stack, image)).await
    }
}
