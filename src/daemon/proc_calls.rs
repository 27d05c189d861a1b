//! The supervision API: deploy, list and act on procs, read and follow their logs and events.

use std::time::Duration;

use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::PendingSubscriptionSink;
use tokio::sync::broadcast::error::RecvError;

use super::rpc::{error, parse, RpcHandler};
use crate::api::{codes, AuditInfo, EventItem, LogLine, ProcFile, ProcInfo};
use crate::model::names::ProcName;
use crate::services::logs;
use crate::services::state::StateError;
use crate::services::supervisor::SupervisorError;

/// Maps every supervisor error to its stable code (the inner match has no wildcard).
pub fn supervisor_error(e: SupervisorError) -> ErrorObjectOwned {
    match e {
        SupervisorError::Runner(r) => super::rpc::runner_error(r),
        other => {
            let code = match &other {
                SupervisorError::Unknown { .. } => codes::UNKNOWN_PROC,
                SupervisorError::State(_) => codes::STATE,
                SupervisorError::Gone(_) | SupervisorError::Runner(_) => codes::INTERNAL,
            };
            error(code, other.to_string())
        }
    }
}

pub(super) fn state_error(e: StateError) -> ErrorObjectOwned {
    super::deploy_calls::state_error(e)
}

pub use crate::services::hosts::local::proc_info;

impl RpcHandler {
    pub(super) async fn deploy(&self, file: ProcFile) -> RpcResult<ProcInfo> {
        let (spec, _) = parse(&file)?;
        let sup = &self.daemon.supervisor;
        let record = sup.deploy(spec, file.yaml).await.map_err(supervisor_error)?;
        Ok(proc_info(&record, &self.daemon.host))
    }

    pub(super) async fn list(&self) -> RpcResult<Vec<ProcInfo>> {
        let records = self.daemon.supervisor.list().await.map_err(supervisor_error)?;
        let mut all: Vec<ProcInfo> = records.iter().map(|r| proc_info(r, &self.daemon.host)).collect();
        // A coordinator lists its joined hosts' procs too (each host at most 2 s).
        all.extend(self.daemon.swarms.joined_procs().await.map_err(super::deploy_calls::swarm_error)?);
        Ok(all)
    }

    pub(super) async fn act(&self, name: &str, action: &str) -> RpcResult<()> {
        let sup = &self.daemon.supervisor;
        let result = match action {
            "start" => sup.start_proc(name).await,
            "stop" => sup.stop_proc(name).await,
            "restart" => sup.restart_proc(name).await,
            // A proc a swarm routes leaves its pool before it stops (VR #200); `force-destroy`
            // goes on when its balancer refuses.
            "destroy" | "force-destroy" => {
                return self
                    .daemon
                    .swarms
                    .destroy_local_proc(name, action == "force-destroy")
                    .await
                    .map_err(super::deploy_calls::swarm_error)
            }
            other => {
                return Err(error(
                    codes::INVALID,
                    format!("'{other}' is not an action: use start, stop, restart, destroy or force-destroy"),
                ))
            }
        };
        result.map_err(supervisor_error)
    }

    async fn log_path(&self, name: &str) -> RpcResult<std::path::PathBuf> {
        self.daemon.supervisor.get(name).await.map_err(supervisor_error)?;
        let parsed = ProcName::parse(name).map_err(|e| error(codes::INVALID, e.to_string()))?;
        Ok(self.daemon.supervisor.runner().layout.proc_dir(&parsed).join("log"))
    }

    pub(super) async fn logs(
        &self,
        name: &str,
        since: Option<String>,
        tail: Option<usize>,
    ) -> RpcResult<Vec<LogLine>> {
        let path = match self.log_path(name).await {
            Ok(path) => path,
            Err(not_here) => {
                let swarms = &self.daemon.swarms;
                let remote = swarms
                    .joined_proc_logs(name, since, tail)
                    .await
                    .map_err(super::deploy_calls::swarm_error)?;
                return remote
                    .map(|lines| lines.into_iter().map(|line| LogLine { line }).collect())
                    .ok_or(not_here);
            }
        };
        let since = since.map(|s| logs::parse_since(&s)).transpose().map_err(|e| error(codes::INVALID, e))?;
        let lines = tokio::task::spawn_blocking(move || logs::read(&path, since, tail))
            .await
            .map_err(|e| error(codes::INTERNAL, e.to_string()))?
            .map_err(|e| error(codes::IO, format!("failed to read the log: {e}")))?;
        Ok(lines.into_iter().map(|line| LogLine { line }).collect())
    }

    pub(super) async fn follow_logs(
        &self,
        pending: PendingSubscriptionSink,
        name: String,
        since: Option<String>,
        tail: Option<usize>,
    ) -> SubscriptionResult {
        let path = match self.log_path(&name).await {
            Ok(p) => p,
            Err(e) => {
                let remote = self.daemon.swarms.joined_proc_logs(&name, None, Some(0)).await;
                if let Ok(Some(_)) = remote {
                    return self.follow_joined_logs(pending, name, since, tail).await;
                }
                pending.reject(e).await;
                return Ok(());
            }
        };
        let backlog =
            if since.is_some() || tail.is_some() { self.logs(&name, since, tail).await? } else { Vec::new() };
        let sink = pending.accept().await?;
        let mut follower = logs::Follower::at_end(&path);
        for line in backlog {
            sink.send(serde_json::value::to_raw_value(&line)?).await?;
        }
        loop {
            for line in follower.poll() {
                sink.send(serde_json::value::to_raw_value(&LogLine { line })?).await?;
            }
            tokio::select! {
                _ = sink.closed() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// Follows the log of a proc on a joined host by asking it every second for the lines since
    /// the last one sent (a line is sent once: the ones up to the last sent are skipped).
    async fn follow_joined_logs(
        &self,
        pending: PendingSubscriptionSink,
        name: String,
        since: Option<String>,
        tail: Option<usize>,
    ) -> SubscriptionResult {
        let backlog = self.logs(&name, since, tail.or(Some(0))).await?;
        let sink = pending.accept().await?;
        let mut last: Option<String> = None;
        // Without a backlog, the first answer only marks where the log ends now.
        let mut primed = !backlog.is_empty();
        for line in backlog {
            sink.send(serde_json::value::to_raw_value(&line)?).await?;
            last = Some(line.line);
        }
        let swarms = &self.daemon.swarms;
        loop {
            let from = last.as_deref().and_then(|l| l.split(' ').next()).map(str::to_string);
            if let Ok(Some(lines)) = swarms.joined_proc_logs(&name, from, None).await {
                if !primed {
                    last = lines.last().cloned();
                    primed = true;
                } else {
                    let start =
                        last.as_ref().and_then(|l| lines.iter().rposition(|x| x == l)).map_or(0, |i| i + 1);
                    for line in lines.into_iter().skip(start) {
                        sink.send(serde_json::value::to_raw_value(&LogLine { line: line.clone() })?).await?;
                        last = Some(line);
                    }
                }
            }
            tokio::select! {
                _ = sink.closed() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    pub(super) async fn events(&self, after: u64, limit: usize) -> RpcResult<Vec<EventItem>> {
        let events = self.daemon.supervisor.events_since(after, limit).await.map_err(supervisor_error)?;
        Ok(events.into_iter().map(|(id, event)| EventItem { id, event }).collect())
    }

    /// Replays stored events after `after`, then live ones; ids never go backwards or repeat.
    pub(super) async fn follow_events(
        &self,
        pending: PendingSubscriptionSink,
        after: u64,
    ) -> SubscriptionResult {
        // Subscribe before replaying, so nothing falls between the replay and the live stream.
        let mut live = self.daemon.supervisor.subscribe();
        let sink = pending.accept().await?;
        let mut last = after;
        loop {
            let stored = self.events(last, 1000).await?;
            if stored.is_empty() {
                break;
            }
            for item in stored {
                last = item.id;
                sink.send(serde_json::value::to_raw_value(&item)?).await?;
            }
        }
        loop {
            let (id, event) = tokio::select! {
                _ = sink.closed() => return Ok(()),
                received = live.recv() => match received {
                    Ok(pair) => pair,
                    // Too slow for the live stream: catch up from the store instead of losing events.
                    Err(RecvError::Lagged(_)) => {
                        for item in self.events(last, 10_000).await? {
                            last = item.id;
                            sink.send(serde_json::value::to_raw_value(&item)?).await?;
                        }
                        continue;
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
            };
            if id > last {
                last = id;
                sink.send(serde_json::value::to_raw_value(&EventItem { id, event })?).await?;
            }
        }
    }

    pub(super) async fn audit(&self, limit: usize) -> RpcResult<Vec<AuditInfo>> {
        let entries = self.daemon.supervisor.state().latest_audit(limit).await.map_err(state_error)?;
        Ok(entries)
    }
}
