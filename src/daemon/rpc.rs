//! The Unix socket's JSON-RPC transport: each method turns the connection's identity into a
//! [`Principal`], calls the operation of the same name ([`Ops`]), and turns its error into a
//! JSON-RPC error object (code, message, causes in `data`) or its feed into a subscription.
//! Nothing here decides anything: authorisation, audit and the work are in `ops`.

use jsonrpsee::core::{async_trait, RpcResult, SubscriptionResult};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::{Extensions, PendingSubscriptionSink};
use serde_json::Value;

use super::ops::feed::{Feed, FeedEnd};
use super::ops::{OpResult, Ops, Principal, ReceivedFds};
use crate::api::{
    codes, ApiError, Attach, AuditInfo, BuildFile, BuildInfo, BuildReport, DeployLogEntry, Dispatched,
    EventItem, ExitStatus, GcReport, HostJoin, HostLink, HostRow, ImageBuilt, ImageFile, ImageInfo, Kind,
    LeaderView, LogLine, NewToken, NumberedRelease, ProcFile, ProcInfo, ReleaseRecord, Role, SetupReport,
    SwarmChanges, SwarmProcRecord, TokenInfo, UptestResult, UptestRun, UserInfo, VrdServer, LOG_ENDED,
};
use crate::model::deploy::release::Placement;

/// Answers the socket's calls with the operations.
pub struct RpcHandler {
    /// The operations.
    pub ops: Ops,
}

/// The caller's identity, attached by the server to every request.
fn who(ext: &Extensions) -> RpcResult<Principal> {
    ext.get::<Principal>()
        .cloned()
        .ok_or_else(|| ApiError::new(codes::INTERNAL, "the caller's identity is unknown").into())
}

/// The fds the caller passed on its connection.
fn passed(ext: &Extensions) -> ReceivedFds {
    ext.get::<ReceivedFds>().cloned().unwrap_or_default()
}

fn answer<T>(result: OpResult<T>) -> RpcResult<T> {
    result.map_err(ErrorObjectOwned::from)
}

/// Forwards a feed to a subscription until either side ends; a refused feed rejects it.
async fn subscribe<T: serde::Serialize>(
    pending: PendingSubscriptionSink,
    feed: OpResult<Feed<T>>,
) -> SubscriptionResult {
    let mut feed = match feed {
        Ok(feed) => feed,
        Err(e) => {
            pending.reject(ErrorObjectOwned::from(e)).await;
            return Ok(());
        }
    };
    let sink = pending.accept().await?;
    loop {
        let next = tokio::select! {
            _ = sink.closed() => return Ok(()),
            next = feed.next() => next,
        };
        match next {
            Some(Ok(item)) => sink.send(serde_json::value::to_raw_value(&item)?).await?,
            Some(Err(e)) => return Err(e.full().into()),
            None if feed.end == FeedEnd::LogEnded => return Err(LOG_ENDED.into()),
            None => return Ok(()),
        }
    }
}

#[async_trait]
impl VrdServer for RpcHandler {
    async fn version(&self, ext: &Extensions) -> RpcResult<String> {
        answer(self.ops.version(&who(ext)?).await)
    }

    async fn hosts_add(
        &self,
        ext: &Extensions,
        name: String,
        address: String,
        squad: Option<String>,
    ) -> RpcResult<HostJoin> {
        answer(self.ops.hosts_add(&who(ext)?, name, address, squad).await)
    }

    async fn users_create(
        &self,
        ext: &Extensions,
        name: String,
        role: Role,
        password: String,
    ) -> RpcResult<UserInfo> {
        answer(self.ops.users_create(&who(ext)?, name, role, password).await)
    }

    async fn users_update(
        &self,
        ext: &Extensions,
        name: String,
        role: Option<Role>,
        password: Option<String>,
    ) -> RpcResult<UserInfo> {
        answer(self.ops.users_update(&who(ext)?, name, role, password).await)
    }

    async fn users_delete(&self, ext: &Extensions, name: String) -> RpcResult<()> {
        answer(self.ops.users_delete(&who(ext)?, name).await)
    }

    async fn users_list(&self, ext: &Extensions) -> RpcResult<Vec<UserInfo>> {
        answer(self.ops.users_list(&who(ext)?).await)
    }

    async fn tokens_create(
        &self,
        ext: &Extensions,
        user: String,
        name: String,
        ttl_secs: Option<i64>,
    ) -> RpcResult<NewToken> {
        answer(self.ops.tokens_create(&who(ext)?, user, name, ttl_secs).await)
    }

    async fn tokens_list(&self, ext: &Extensions, user: Option<String>) -> RpcResult<Vec<TokenInfo>> {
        answer(self.ops.tokens_list(&who(ext)?, user).await)
    }

    async fn tokens_revoke(&self, ext: &Extensions, id: u64) -> RpcResult<TokenInfo> {
        answer(self.ops.tokens_revoke(&who(ext)?, id).await)
    }

    async fn hosts_token(&self, ext: &Extensions, name: String) -> RpcResult<HostJoin> {
        answer(self.ops.hosts_token(&who(ext)?, name).await)
    }

    async fn hosts_drain(&self, ext: &Extensions, name: String) -> RpcResult<Vec<Dispatched>> {
        answer(self.ops.hosts_drain(&who(ext)?, name).await)
    }

    async fn hosts_links(&self, ext: &Extensions) -> RpcResult<Vec<HostLink>> {
        answer(self.ops.hosts_links(&who(ext)?).await)
    }

    async fn hosts_leader(&self, ext: &Extensions) -> RpcResult<LeaderView> {
        answer(self.ops.hosts_leader(&who(ext)?).await)
    }

    async fn hosts_list(&self, ext: &Extensions) -> RpcResult<Vec<HostRow>> {
        answer(self.ops.hosts_list(&who(ext)?).await)
    }

    async fn runner_setup(&self, ext: &Extensions, file: ProcFile) -> RpcResult<SetupReport> {
        answer(self.ops.runner_setup(&who(ext)?, file).await)
    }

    async fn runner_run(&self, ext: &Extensions, file: ProcFile, attach: Attach) -> RpcResult<ExitStatus> {
        answer(self.ops.runner_run(&who(ext)?, passed(ext), file, attach).await)
    }

    async fn runner_shell(&self, ext: &Extensions, file: ProcFile, attach: Attach) -> RpcResult<ExitStatus> {
        answer(self.ops.runner_shell(&who(ext)?, passed(ext), file, attach).await)
    }

    async fn runner_signal(&self, ext: &Extensions, file: ProcFile, signal: String) -> RpcResult<bool> {
        answer(self.ops.runner_signal(&who(ext)?, file, signal).await)
    }

    async fn runner_uptest(&self, ext: &Extensions, file: ProcFile) -> RpcResult<Vec<UptestResult>> {
        answer(self.ops.runner_uptest(&who(ext)?, file).await)
    }

    async fn runner_teardown(&self, ext: &Extensions, file: ProcFile) -> RpcResult<()> {
        answer(self.ops.runner_teardown(&who(ext)?, file).await)
    }

    async fn proc_deploy(&self, ext: &Extensions, file: ProcFile) -> RpcResult<ProcInfo> {
        answer(self.ops.proc_deploy(&who(ext)?, file).await)
    }

    async fn procs_list(&self, ext: &Extensions) -> RpcResult<Vec<ProcInfo>> {
        answer(self.ops.procs_list(&who(ext)?).await)
    }

    async fn procs_act(&self, ext: &Extensions, name: String, action: String) -> RpcResult<()> {
        answer(self.ops.procs_act(&who(ext)?, name, action).await)
    }

    async fn logs_read(
        &self,
        ext: &Extensions,
        name: String,
        since: Option<String>,
        tail: Option<usize>,
    ) -> RpcResult<Vec<LogLine>> {
        answer(self.ops.logs_read(&who(ext)?, name, since, tail).await)
    }

    async fn logs_follow(
        &self,
        pending: PendingSubscriptionSink,
        ext: &Extensions,
        name: String,
        since: Option<String>,
        tail: Option<usize>,
    ) -> SubscriptionResult {
        subscribe(pending, self.ops.logs_follow(&who(ext)?, name, since, tail).await).await
    }

    async fn events_list(&self, ext: &Extensions, after: u64, limit: usize) -> RpcResult<Vec<EventItem>> {
        answer(self.ops.events_list(&who(ext)?, after, limit).await)
    }

    async fn events_follow(
        &self,
        pending: PendingSubscriptionSink,
        ext: &Extensions,
        after: u64,
    ) -> SubscriptionResult {
        subscribe(pending, self.ops.events_follow(&who(ext)?, after).await).await
    }

    async fn audit_list(&self, ext: &Extensions, limit: usize) -> RpcResult<Vec<AuditInfo>> {
        answer(self.ops.audit_list(&who(ext)?, limit).await)
    }

    async fn imager_build(
        &self,
        ext: &Extensions,
        file: ImageFile,
        attach: Attach,
        term: Option<String>,
    ) -> RpcResult<ImageBuilt> {
        answer(self.ops.imager_build(&who(ext)?, passed(ext), file, attach, term).await)
    }

    async fn imager_shell(
        &self,
        ext: &Extensions,
        file: ImageFile,
        attach: Attach,
        term: Option<String>,
    ) -> RpcResult<ExitStatus> {
        answer(self.ops.imager_shell(&who(ext)?, passed(ext), file, attach, term).await)
    }

    async fn builder_build(
        &self,
        ext: &Extensions,
        file: BuildFile,
        attach: Attach,
    ) -> RpcResult<BuildReport> {
        answer(self.ops.builder_build(&who(ext)?, passed(ext), file, attach).await)
    }

    async fn builder_shell(
        &self,
        ext: &Extensions,
        file: BuildFile,
        attach: Attach,
    ) -> RpcResult<ExitStatus> {
        answer(self.ops.builder_shell(&who(ext)?, passed(ext), file, attach).await)
    }

    async fn builds_list(&self, ext: &Extensions, app: Option<String>) -> RpcResult<Vec<BuildInfo>> {
        answer(self.ops.builds_list(&who(ext)?, app).await)
    }

    async fn builds_show(&self, ext: &Extensions, id: u64) -> RpcResult<BuildInfo> {
        answer(self.ops.builds_show(&who(ext)?, id).await)
    }

    async fn builds_log(&self, ext: &Extensions, id: u64) -> RpcResult<String> {
        answer(self.ops.builds_log(&who(ext)?, id).await)
    }

    async fn builds_gc(
        &self,
        ext: &Extensions,
        dry_run: bool,
        max_age_days: Option<u64>,
        keep: Option<usize>,
    ) -> RpcResult<GcReport> {
        answer(self.ops.builds_gc(&who(ext)?, dry_run, max_age_days, keep).await)
    }

    async fn objects_create(&self, ext: &Extensions, kind: Kind, spec: Value) -> RpcResult<Value> {
        answer(self.ops.objects_create(&who(ext)?, kind, spec).await)
    }

    async fn objects_update(&self, ext: &Extensions, kind: Kind, spec: Value) -> RpcResult<Value> {
        answer(self.ops.objects_update(&who(ext)?, kind, spec).await)
    }

    async fn objects_get(&self, ext: &Extensions, kind: Kind, name: String) -> RpcResult<Value> {
        answer(self.ops.objects_get(&who(ext)?, kind, name).await)
    }

    async fn objects_list(&self, ext: &Extensions, kind: Kind) -> RpcResult<Vec<Value>> {
        answer(self.ops.objects_list(&who(ext)?, kind).await)
    }

    async fn objects_delete(&self, ext: &Extensions, kind: Kind, name: String) -> RpcResult<()> {
        answer(self.ops.objects_delete(&who(ext)?, kind, name).await)
    }

    async fn swarms_dispatch(
        &self,
        ext: &Extensions,
        filter: String,
        changes: SwarmChanges,
        exclude: Option<String>,
        rebuild: bool,
    ) -> RpcResult<Vec<Dispatched>> {
        answer(self.ops.swarms_dispatch(&who(ext)?, filter, changes, exclude, rebuild).await)
    }

    async fn swarms_rollback(
        &self,
        ext: &Extensions,
        swarm: String,
        number: Option<u64>,
    ) -> RpcResult<Dispatched> {
        answer(self.ops.swarms_rollback(&who(ext)?, swarm, number).await)
    }

    async fn swarms_releases(&self, ext: &Extensions, swarm: String) -> RpcResult<Vec<NumberedRelease>> {
        answer(self.ops.swarms_releases(&who(ext)?, swarm).await)
    }

    async fn swarms_procs(&self, ext: &Extensions, swarm: Option<String>) -> RpcResult<Vec<SwarmProcRecord>> {
        answer(self.ops.swarms_procs(&who(ext)?, swarm).await)
    }

    async fn releases_show(&self, ext: &Extensions, id: u64) -> RpcResult<ReleaseRecord> {
        answer(self.ops.releases_show(&who(ext)?, id).await)
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
        let at = Placement { config_name, proc_name, host, port, address: None };
        answer(self.ops.releases_deploy(&who(ext)?, id, at).await)
    }

    async fn apps_build(&self, ext: &Extensions, app: String, version: String) -> RpcResult<Dispatched> {
        answer(self.ops.apps_build(&who(ext)?, app, version).await)
    }

    async fn deploys_log(
        &self,
        ext: &Extensions,
        trace: Option<String>,
        after: u64,
        limit: usize,
    ) -> RpcResult<Vec<DeployLogEntry>> {
        answer(self.ops.deploys_log(&who(ext)?, trace, after, limit).await)
    }

    async fn deploys_follow(
        &self,
        pending: PendingSubscriptionSink,
        ext: &Extensions,
        trace: Option<String>,
        after: u64,
    ) -> SubscriptionResult {
        subscribe(pending, self.ops.deploys_follow(&who(ext)?, trace, after).await).await
    }

    async fn uptests_run(&self, ext: &Extensions) -> RpcResult<UptestRun> {
        answer(self.ops.uptests_run(&who(ext)?).await)
    }

    async fn uptests_latest(&self, ext: &Extensions) -> RpcResult<Option<UptestRun>> {
        answer(self.ops.uptests_latest(&who(ext)?).await)
    }

    async fn balancers_list(&self, ext: &Extensions) -> RpcResult<Vec<(String, String)>> {
        answer(self.ops.balancers_list(&who(ext)?).await)
    }

    async fn balancers_nodes(
        &self,
        ext: &Extensions,
        balancer: String,
        pool: String,
    ) -> RpcResult<Vec<String>> {
        answer(self.ops.balancers_nodes(&who(ext)?, balancer, pool).await)
    }

    async fn housekeeping_scoop(&self, ext: &Extensions, dry_run: bool) -> RpcResult<Vec<String>> {
        answer(self.ops.housekeeping_scoop(&who(ext)?, dry_run).await)
    }

    async fn stacks_build(&self, ext: &Extensions, stack: String) -> RpcResult<ImageInfo> {
        answer(self.ops.stacks_build(&who(ext)?, stack).await)
    }

    async fn stacks_images(&self, ext: &Extensions, stack: String) -> RpcResult<Vec<ImageInfo>> {
        answer(self.ops.stacks_images(&who(ext)?, stack).await)
    }

    async fn stacks_activate(&self, ext: &Extensions, stack: String, image: String) -> RpcResult<ImageInfo> {
        answer(self.ops.stacks_activate(&who(ext)?, stack, image).await)
    }

    async fn stacks_follow(
        &self,
        pending: PendingSubscriptionSink,
        ext: &Extensions,
        stack: String,
        image: String,
    ) -> SubscriptionResult {
        subscribe(pending, self.ops.stacks_follow(&who(ext)?, stack, image).await).await
    }

    async fn builds_follow(
        &self,
        pending: PendingSubscriptionSink,
        ext: &Extensions,
        id: u64,
    ) -> SubscriptionResult {
        subscribe(pending, self.ops.builds_follow(&who(ext)?, id).await).await
    }
}
