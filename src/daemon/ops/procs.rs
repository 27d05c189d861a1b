//! The supervision API: deploy, list and act on procs, read and follow their logs and events.

use std::time::Duration;

use super::access::Principal;
use super::error::{error, state_error, supervisor_error, swarm_error, OpResult};
use super::feed::{feed, replay_then_live, Feed, FeedEnd, Numbered, Stop};
use super::runner::parse;
use super::Ops;
use crate::api::{codes, AuditInfo, EventItem, LogLine, ProcFile, ProcInfo};
use crate::model::names::ProcName;
use crate::services::logs;
use crate::services::runner::retained;

pub use crate::services::hosts::local::proc_info;

impl Ops {
    pub(super) async fn deploy(&self, who: &Principal, file: ProcFile) -> OpResult<ProcInfo> {
        let (spec, _) = parse(&file).await?;
        let spec = self.permit(who, spec, |p, spec| p.proc(spec)).await?;
        let sup = &self.daemon.supervisor;
        let record = sup.deploy(spec, file.yaml).await.map_err(supervisor_error)?;
        Ok(proc_info(&record, &self.daemon.host))
    }

    pub(super) async fn list(&self) -> OpResult<Vec<ProcInfo>> {
        let records = self.daemon.supervisor.list().await.map_err(supervisor_error)?;
        let mut all: Vec<ProcInfo> = records.iter().map(|r| proc_info(r, &self.daemon.host)).collect();
        // A coordinator lists its joined hosts' procs too (each host at most 2 s).
        all.extend(self.daemon.swarms.joined_procs().await.map_err(swarm_error)?);
        self.daemon.swarms.flag_volumes(&mut all).await.map_err(swarm_error)?;
        Ok(all)
    }

    pub(super) async fn act(&self, name: &str, action: &str) -> OpResult<()> {
        if let Some(action) = crate::api::host::ProcAction::parse(action) {
            // A proc on a joined host is acted on there.
            if self.daemon.swarms.act_on_joined_proc(name, action).await.map_err(swarm_error)? {
                return Ok(());
            }
        }
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
                    .destroy_proc(name, action == "force-destroy")
                    .await
                    .map_err(swarm_error)
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

    async fn log_path(&self, name: &str) -> OpResult<std::path::PathBuf> {
        self.daemon.supervisor.get(name).await.map_err(supervisor_error)?;
        let parsed = ProcName::parse(name).map_err(|e| error(codes::INVALID, e.to_string()))?;
        Ok(self.daemon.supervisor.runner().layout.proc_dir(&parsed).join("log"))
    }

    pub(super) async fn logs(
        &self,
        name: &str,
        since: Option<String>,
        tail: Option<usize>,
    ) -> OpResult<Vec<LogLine>> {
        let path = match self.log_path(name).await {
            Ok(path) => path,
            Err(not_here) => {
                let swarms = &self.daemon.swarms;
                let remote = swarms.joined_proc_logs(name, since.clone(), tail).await.map_err(swarm_error)?;
                if let Some(lines) = remote {
                    return Ok(lines.into_iter().map(|line| LogLine { line }).collect());
                }
                // A proc that is gone: its log is kept for the retention period.
                let data_dir = &self.daemon.runner.layout.data_dir;
                retained::find(data_dir, name).ok_or(not_here)?
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
        name: String,
        since: Option<String>,
        tail: Option<usize>,
    ) -> OpResult<Feed<LogLine>> {
        let path = match self.log_path(&name).await {
            Ok(p) => p,
            Err(e) => {
                let remote = self.daemon.swarms.joined_proc_logs(&name, None, Some(0)).await;
                if let Ok(Some(_)) = remote {
                    return self.follow_joined_logs(name, since, tail).await;
                }
                return Err(e);
            }
        };
        // One read of the live file for the backlog and the follower's start: no line between.
        let (backlog, mut follower) = if since.is_some() || tail.is_some() {
            let since =
                since.map(|s| logs::parse_since(&s)).transpose().map_err(|e| error(codes::INVALID, e))?;
            let (lines, follower) =
                tokio::task::spawn_blocking(move || logs::read_then_follow(&path, since, tail))
                    .await
                    .map_err(|e| error(codes::INTERNAL, e.to_string()))?
                    .map_err(|e| error(codes::IO, format!("failed to read the log: {e}")))?;
            (lines.into_iter().map(|line| LogLine { line }).collect(), follower)
        } else {
            (Vec::new(), logs::Follower::at_end(&path))
        };
        Ok(feed(FeedEnd::Quiet, move |tx| async move {
            for line in backlog {
                tx.send(line).await?;
            }
            loop {
                for line in follower.poll() {
                    tx.send(LogLine { line }).await?;
                }
                tokio::select! {
                    _ = tx.closed() => return Err(Stop::Gone),
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }))
    }

    /// Follows the log of a proc on a joined host by asking it every second for the lines since
    /// the last one sent (a line is sent once: the ones up to the last sent are skipped).
    async fn follow_joined_logs(
        &self,
        name: String,
        since: Option<String>,
        tail: Option<usize>,
    ) -> OpResult<Feed<LogLine>> {
        let backlog = self.logs(&name, since, tail.or(Some(0))).await?;
        let swarms = std::sync::Arc::clone(&self.daemon.swarms);
        Ok(feed(FeedEnd::Quiet, move |tx| async move {
            let mut last: Option<String> = None;
            // Without a backlog, the first answer only marks where the log ends now.
            let mut primed = !backlog.is_empty();
            for line in backlog {
                last = Some(line.line.clone());
                tx.send(line).await?;
            }
            loop {
                let from = last.as_deref().and_then(|l| l.split(' ').next()).map(str::to_string);
                if let Ok(Some(lines)) = swarms.joined_proc_logs(&name, from, None).await {
                    if !primed {
                        last = lines.last().cloned();
                        primed = true;
                    } else {
                        let start = last
                            .as_ref()
                            .and_then(|l| lines.iter().rposition(|x| x == l))
                            .map_or(0, |i| i + 1);
                        for line in lines.into_iter().skip(start) {
                            last = Some(line.clone());
                            tx.send(LogLine { line }).await?;
                        }
                    }
                }
                tokio::select! {
                    _ = tx.closed() => return Err(Stop::Gone),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }))
    }

    pub(super) async fn events(&self, after: u64, limit: usize) -> OpResult<Vec<EventItem>> {
        let events = self.daemon.supervisor.events_since(after, limit).await.map_err(supervisor_error)?;
        Ok(events.into_iter().map(|(id, event)| EventItem { id, event }).collect())
    }

    pub(super) async fn latest_event(&self) -> OpResult<u64> {
        self.daemon.supervisor.state().latest_event_id().await.map_err(state_error)
    }

    /// Stored events after `after`, then live ones; ids never go backwards or repeat.
    pub(super) fn follow_events(&self, after: u64) -> Feed<EventItem> {
        // Subscribed before the replay starts, so nothing falls between the two.
        let live = self.daemon.supervisor.subscribe();
        let ops = self.clone();
        feed(FeedEnd::Quiet, move |tx| async move {
            let stored = |after| {
                let ops = ops.clone();
                async move { ops.events(after, 1000).await }
            };
            replay_then_live(&tx, after, live, stored, |_| true, |_| false).await
        })
    }

    pub(super) async fn audit(&self, limit: usize) -> OpResult<Vec<AuditInfo>> {
        let entries = self.daemon.supervisor.state().latest_audit(limit).await.map_err(state_error)?;
        Ok(entries)
    }
}

impl Numbered for EventItem {
    fn id(&self) -> u64 {
        self.id
    }
}

impl From<(u64, crate::api::ProcEvent)> for EventItem {
    fn from((id, event): (u64, crate::api::ProcEvent)) -> EventItem {
        EventItem { id, event }
    }
}
