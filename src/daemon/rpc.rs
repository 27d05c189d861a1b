//! The API's implementation: the trait impl is a table of one-liners; the work is in
//! `runner_calls.rs` (VR's runner contract), `proc_calls.rs` (supervision, logs, events) and
//! `imager_calls.rs` (stack images), `builder_calls.rs` (VR's builder), `builds_calls.rs` (builds
//! as objects: list, show, log, follow, gc), `deploy_calls.rs` (definitions, swarms, releases, the
//! deployment log), `stacks_calls.rs` (stacks' images).
//! Every mutating call is written to the audit log with the caller's SO_PEERCRED identity.

use std::sync::Arc;

use jsonrpsee::core::{async_trait, RpcResult, SubscriptionResult};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::{Extensions, PendingSubscriptionSink};

use super::imager_calls::audit_params;
use super::server::Caller;
use super::Daemon;
use crate::api::{
    codes, Attach, AuditInfo, BuildFile, BuildInfo, BuildReport, DeployLogEntry, Dispatched, EventItem,
    ExitStatus, GcReport, HostJoin, HostLink, ImageBuilt, ImageFile, Kind, LogLine, NumberedRelease,
    ProcFile, ProcInfo, ReleaseRecord, SetupReport, SwarmChanges, SwarmProcRecord, UptestResult, UptestRun,
    VrdServer,
};
use crate::model::deploy::release::Placement;
use crate::model::proc_data::ProcSpec;
use crate::services::runner::{self, RunnerError};
use crate::services::state::AuditEntry;
use serde_json::Value;

/// Answers API calls with the daemon's services.
pub struct RpcHandler {
    /// The daemon.
    pub daemon: Arc<Daemon>,
}

/// Maps every runner error to its stable code: no wildcard, so a new variant must be mapped.
pub fn runner_error(e: RunnerError) -> ErrorObjectOwned {
    let code = match &e {
        RunnerError::Invalid(_) => codes::INVALID,
        RunnerError::Busy(_) => codes::BUSY,
        RunnerError::NotSetUp(_) => codes::NOT_SET_UP,
        RunnerError::Artifact(_) => codes::ARTIFACT,
        RunnerError::User(_) => codes::USER,
        RunnerError::Io(_) => codes::IO,
        RunnerError::Launch(_) => codes::LAUNCH,
    };
    ErrorObjectOwned::owned(code, e.to_string(), None::<()>)
}

/// An error object with a code and a message.
pub fn error(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), None::<()>)
}

/// Parses a proc.yaml; errors name the file.
pub fn parse(file: &ProcFile) -> RpcResult<(ProcSpec, Vec<String>)> {
    runner::parse(&file.yaml).map_err(|e| error(codes::INVALID, format!("{}: {e}", file.path)))
}

/// The caller's identity, attached by the server to every request.
pub fn caller(ext: &Extensions) -> RpcResult<Caller> {
    ext.get::<Caller>().copied().ok_or_else(|| error(codes::INTERNAL, "the caller's identity is unknown"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl RpcHandler {
    /// Runs a mutating call and writes who did it, with what, and how it ended to the audit log.
    async fn audited<T>(
        &self,
        ext: &Extensions,
        method: &str,
        params: serde_json::Value,
        call: impl std::future::Future<Output = RpcResult<T>>,
    ) -> RpcResult<T> {
        let who = caller(ext)?;
        let result = call.await;
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => e.message().to_string(),
        };
        let entry = AuditEntry {
            id: 0,
            time: now_ms(),
            uid: who.uid,
            gid: who.gid,
            pid: who.pid,
            method: method.to_string(),
            params: params.to_string(),
            outcome,
        };
        // Queued, not awaited: the answer need not wait for the disk, and the next call sees it.
        if let Err(e) = self.daemon.supervisor.state().queue_audit(entry).await {
            tracing::error!(error = %e, method, "failed to write the audit log");
        }
        result
    }
}

fn file_param(file: &ProcFile) -> serde_json::Value {
    serde_json::json!({ "path": file.path, "yaml": file.yaml })
}

#[async_trait]
impl VrdServer for RpcHandler {
    async fn version(&self) -> RpcResult<String> {
        Ok(env!("CARGO_PKG_VERSION").to_string())
    }

    async fn hosts_add(
        &self,
        ext: &Extensions,
        name: String,
        address: String,
        squad: Option<String>,
    ) -> RpcResult<HostJoin> {
        let params = serde_json::json!({ "name": name, "address": address, "squad": squad });
        self.audited(ext, "hosts.add", params, self.add_host(name.clone(), address.clone(), squad.clone()))
            .await
    }

    async fn hosts_token(&self, ext: &Extensions, name: String) -> RpcResult<HostJoin> {
        let params = serde_json::json!({ "name": name });
        self.audited(ext, "hosts.token", params, self.host_token(name.clone())).await
    }

    async fn hosts_drain(&self, ext: &Extensions, name: String) -> RpcResult<Vec<Dispatched>> {
        let params = serde_json::json!({ "name": name });
        let work = async {
            let started =
                self.daemon.swarms.drain_host(&name).await.map_err(super::deploy_calls::swarm_error)?;
            Ok(started.into_iter().map(|(swarm, trace)| Dispatched { swarm, trace }).collect())
        };
        self.audited(ext, "hosts.drain", params, work).await
    }

    async fn hosts_links(&self) -> RpcResult<Vec<HostLink>> {
        self.host_links().await
    }

    async fn runner_setup(&self, ext: &Extensions, file: ProcFile) -> RpcResult<SetupReport> {
        self.audited(ext, "runner.setup", file_param(&file), self.setup(file.clone())).await
    }

    async fn runner_run(&self, ext: &Extensions, file: ProcFile, attach: Attach) -> RpcResult<ExitStatus> {
        self.audited(ext, "runner.run", file_param(&file), self.attached(ext, file.clone(), attach, false))
            .await
    }

    async fn runner_shell(&self, ext: &Extensions, file: ProcFile, attach: Attach) -> RpcResult<ExitStatus> {
        self.audited(ext, "runner.shell", file_param(&file), self.attached(ext, file.clone(), attach, true))
            .await
    }

    async fn runner_signal(&self, ext: &Extensions, file: ProcFile, signal: String) -> RpcResult<bool> {
        let params = serde_json::json!({ "path": file.path, "signal": signal });
        self.audited(ext, "runner.signal", params, self.signal(file, signal.clone())).await
    }

    async fn runner_uptest(&self, file: ProcFile) -> RpcResult<Vec<UptestResult>> {
        self.uptest(file).await
    }

    async fn runner_teardown(&self, ext: &Extensions, file: ProcFile) -> RpcResult<()> {
        self.audited(ext, "runner.teardown", file_param(&file), self.teardown(file.clone())).await
    }

    async fn proc_deploy(&self, ext: &Extensions, file: ProcFile) -> RpcResult<ProcInfo> {
        self.audited(ext, "proc.deploy", file_param(&file), self.deploy(file.clone())).await
    }

    async fn procs_list(&self) -> RpcResult<Vec<ProcInfo>> {
        self.list().await
    }

    async fn procs_act(&self, ext: &Extensions, name: String, action: String) -> RpcResult<()> {
        let params = serde_json::json!({ "name": name, "action": action });
        self.audited(ext, &format!("procs.{action}"), params, self.act(&name, &action)).await
    }

    async fn logs_read(
        &self,
        name: String,
        since: Option<String>,
        tail: Option<usize>,
    ) -> RpcResult<Vec<LogLine>> {
        self.logs(&name, since, tail).await
    }

    async fn logs_follow(
        &self,
        pending: PendingSubscriptionSink,
        name: String,
        since: Option<String>,
        tail: Option<usize>,
    ) -> SubscriptionResult {
        self.follow_logs(pending, name, since, tail).await
    }

    async fn events_list(&self, after: u64, limit: usize) -> RpcResult<Vec<EventItem>> {
        self.events(after, limit).await
    }

    async fn events_follow(&self, pending: PendingSubscriptionSink, after: u64) -> SubscriptionResult {
        self.follow_events(pending, after).await
    }

    async fn audit_list(&self, limit: usize) -> RpcResult<Vec<AuditInfo>> {
        self.audit(limit).await
    }

    async fn imager_build(
        &self,
        ext: &Extensions,
        file: ImageFile,
        attach: Attach,
        term: Option<String>,
    ) -> RpcResult<ImageBuilt> {
        let params = audit_params(&file);
        self.audited(ext, "imager.build", params, self.image_build(ext, file, attach, term)).await
    }

    async fn imager_shell(
        &self,
        ext: &Extensions,
        file: ImageFile,
        attach: Attach,
        term: Option<String>,
    ) -> RpcResult<ExitStatus> {
        let params = audit_params(&file);
        self.audited(ext, "imager.shell", params, self.image_shell(ext, file, attach, term)).await
    }

    async fn builder_build(
        &self,
        ext: &Extensions,
        file: BuildFile,
        attach: Attach,
    ) -> RpcResult<BuildReport> {
        let params = build_param(&file);
        self.audited(ext, "builder.build", params, self.build(ext, file, attach)).await
    }

    async fn builder_shell(
        &self,
        ext: &Extensions,
        file: BuildFile,
        attach: Attach,
    ) -> RpcResult<ExitStatus> {
        let params = build_param(&file);
        self.audited(ext, "builder.shell", params, self.build_shell(ext, file, attach)).await
    }

    async fn builds_list(&self, app: Option<String>) -> RpcResult<Vec<BuildInfo>> {
        self.list_builds(app).await
    }

    async fn builds_show(&self, id: u64) -> RpcResult<BuildInfo> {
        self.show_build(id).await
    }

    async fn builds_log(&self, id: u64) -> RpcResult<String> {
        self.build_log(id).await
    }

    async fn builds_gc(
        &self,
        ext: &Extensions,
        dry_run: bool,
        max_age_days: Option<u64>,
        keep: Option<usize>,
    ) -> RpcResult<GcReport> {
        let params = serde_json::json!({ "dry_run": dry_run, "max_age_days": max_age_days, "keep": keep });
        self.audited(ext, "builds.gc", params, self.gc_builds(dry_run, max_age_days, keep)).await
    }

    async fn objects_create(&self, ext: &Extensions, kind: Kind, spec: Value) -> RpcResult<Value> {
        let params = serde_json::json!({ "kind": kind, "spec": spec });
        self.audited(ext, "objects.create", params, self.put_object(kind, spec, true)).await
    }

    async fn objects_update(&self, ext: &Extensions, kind: Kind, spec: Value) -> RpcResult<Value> {
        let params = serde_json::json!({ "kind": kind, "spec": spec });
        self.audited(ext, "objects.update", params, self.put_object(kind, spec, false)).await
    }

    async fn objects_get(&self, kind: Kind, name: String) -> RpcResult<Value> {
        self.get_object(kind, name).await
    }

    async fn objects_list(&self, kind: Kind) -> RpcResult<Vec<Value>> {
        self.list_objects(kind).await
    }

    async fn objects_delete(&self, ext: &Extensions, kind: Kind, name: String) -> RpcResult<()> {
        let params = serde_json::json!({ "kind": kind, "name": name });
        self.audited(ext, "objects.delete", params, self.delete_object(kind, name.clone())).await
    }

    async fn swarms_dispatch(
        &self,
        ext: &Extensions,
        filter: String,
        changes: SwarmChanges,
        exclude: Option<String>,
        rebuild: bool,
    ) -> RpcResult<Vec<Dispatched>> {
        let params = serde_json::json!({ "filter": filter, "changes": changes, "exclude": exclude, "rebuild": rebuild });
        self.audited(
            ext,
            "swarms.dispatch",
            params,
            self.dispatch(filter.clone(), changes.clone(), exclude.clone(), rebuild),
        )
        .await
    }

    async fn swarms_rollback(
        &self,
        ext: &Extensions,
        swarm: String,
        number: Option<u64>,
    ) -> RpcResult<Dispatched> {
        let params = serde_json::json!({ "swarm": swarm, "number": number });
        self.audited(ext, "swarms.rollback", params, self.rollback(swarm.clone(), number)).await
    }

    async fn swarms_releases(&self, swarm: String) -> RpcResult<Vec<NumberedRelease>> {
        self.releases(swarm).await
    }

    async fn swarms_procs(&self, swarm: Option<String>) -> RpcResult<Vec<SwarmProcRecord>> {
        self.owned_procs(swarm).await
    }

    async fn releases_show(&self, id: u64) -> RpcResult<ReleaseRecord> {
        self.show_release(id).await
    }

    async fn releases_deploy(
        &self,
        ext: &Extensions,
        id: u64,
        host: String,
        port: u16,
        proc_name: String,
        config_name: String,
    ) -> RpcResult<ProcInfo> {
        let params = serde_json::json!({ "id": id, "host": host, "port": port, "proc": proc_name, "config": config_name });
        let at = Placement { config_name, proc_name, host, port, address: None };
        self.audited(ext, "releases.deploy", params, self.deploy_release(id, at)).await
    }

    async fn apps_build(&self, ext: &Extensions, app: String, version: String) -> RpcResult<Dispatched> {
        let params = serde_json::json!({ "app": app, "version": version });
        self.audited(ext, "apps.build", params, self.build_app(app.clone(), version.clone())).await
    }

    async fn deploys_log(
        &self,
        trace: Option<String>,
        after: u64,
        limit: usize,
    ) -> RpcResult<Vec<DeployLogEntry>> {
        self.deploy_log(trace, after, limit).await
    }

    async fn deploys_follow(
        &self,
        pending: PendingSubscriptionSink,
        trace: Option<String>,
        after: u64,
    ) -> SubscriptionResult {
        self.follow_deploys(pending, trace, after).await
    }

    async fn uptests_run(&self, ext: &Extensions) -> RpcResult<UptestRun> {
        self.audited(ext, "uptests.run", serde_json::json!({}), self.run_uptests()).await
    }

    async fn uptests_latest(&self) -> RpcResult<Option<UptestRun>> {
        self.latest_uptests().await
    }

    async fn balancers_list(&self) -> RpcResult<Vec<(String, String)>> {
        Ok(self.daemon.swarms.balancers().kinds())
    }

    async fn balancers_nodes(&self, balancer: String, pool: String) -> RpcResult<Vec<String>> {
        self.pool_nodes(balancer, pool).await
    }

    async fn housekeeping_scoop(&self, ext: &Extensions, dry_run: bool) -> RpcResult<Vec<String>> {
        let params = serde_json::json!({ "dry_run": dry_run });
        let work = async {
            let sup = &self.daemon.supervisor;
            sup.scoop(dry_run).await.map_err(super::proc_calls::supervisor_error)
        };
        self.audited(ext, "housekeeping.scoop", params, work).await
    }

    // ---- Stacks ----

    async fn stacks_build(&self, ext: &Extensions, stack: String) -> RpcResult<crate::api::ImageInfo> {
        self.audited(
            ext,
            "stacks.build",
            serde_json::json!({ "stack": stack }),
            self.build_stack(stack.clone()),
        )
        .await
    }

    async fn stacks_images(&self, stack: String) -> RpcResult<Vec<crate::api::ImageInfo>> {
        self.stack_images(stack).await
    }

    async fn stacks_activate(
        &self,
        ext: &Extensions,
        stack: String,
        image: String,
    ) -> RpcResult<crate::api::ImageInfo> {
        let params = serde_json::json!({ "stack": stack, "image": image });
        self.audited(ext, "stacks.activate", params, self.activate_stack_image(stack.clone(), image.clone()))
            .await
    }

    async fn stacks_follow(
        &self,
        pending: PendingSubscriptionSink,
        stack: String,
        image: String,
    ) -> SubscriptionResult {
        self.follow_stack_image(pending, stack, image).await
    }

    async fn builds_follow(&self, pending: PendingSubscriptionSink, id: u64) -> SubscriptionResult {
        self.follow_build(pending, id).await
    }
}

fn build_param(file: &BuildFile) -> serde_json::Value {
    serde_json::json!({ "path": file.path, "yaml": file.yaml })
}
