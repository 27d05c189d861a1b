//! Builds as objects over the API: `builds.list`, `builds.show`, `builds.log`, `builds.follow`
//! and `builds.gc` (which collects stack images too).

use std::path::{Path, PathBuf};

use super::error::{builds_error, error, state_error, task_failed, OpResult};
use super::feed::Feed;
use super::Ops;
use crate::api::{codes, BuildInfo, GcReport, LogLine};
use crate::model::build_record::STARTED;
use crate::services::builds::gc;

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Ops {
    pub(super) async fn list_builds(&self, app: Option<String>) -> OpResult<Vec<BuildInfo>> {
        self.daemon.supervisor.state().list_builds(app).await.map_err(state_error)
    }

    pub(super) async fn show_build(&self, id: u64) -> OpResult<BuildInfo> {
        match self.daemon.supervisor.state().get_build(id).await.map_err(state_error)? {
            Some(build) => Ok(build),
            None => Err(error(
                codes::UNKNOWN_BUILD,
                format!("there is no build {id}; `vr builds list` shows the builds vrd knows"),
            )),
        }
    }

    pub(super) async fn build_log(&self, id: u64) -> OpResult<String> {
        let build = self.show_build(id).await?;
        let Some(path) = build.log_path else {
            let why = if build.collected.is_some() { "gc removed it" } else { "none was kept" };
            return Err(error(codes::UNKNOWN_BUILD, format!("build {id} has no compile log: {why}")));
        };
        let store = self.daemon.builds.clone();
        tokio::task::spawn_blocking(move || store.read_log(Path::new(&path)))
            .await
            .map_err(task_failed)?
            .map_err(builds_error)
    }

    pub(super) async fn gc_builds(
        &self,
        dry_run: bool,
        max_age_days: Option<u64>,
        keep: Option<usize>,
    ) -> OpResult<GcReport> {
        let max_age = max_age_days
            .map(|d| i64::try_from(d.saturating_mul(24 * 3600)).unwrap_or(i64::MAX))
            .unwrap_or(gc::DEFAULT_MAX_AGE_SECS);
        let keep = keep.unwrap_or(gc::DEFAULT_KEEP);
        // No build may store a slug it has not recorded yet while gc looks for orphans.
        let _quiet = self.daemon.builds.busy.write().await;
        let state = self.daemon.supervisor.state();
        let builds = state.list_builds(None).await.map_err(state_error)?;
        let images = state.list_images(None).await.map_err(state_error)?;
        let in_use = self.store_in_use().await?;
        let mut doomed = gc::Doomed {
            builds: gc::doomed(&builds, now_secs(), max_age, keep, &in_use),
            images: gc::doomed_images(&images, now_secs(), max_age, keep, &in_use),
        };
        if !dry_run {
            // Marked first: an image activated meanwhile is not marked, and so not removed.
            doomed.images = state.mark_images_collected(doomed.images).await.map_err(state_error)?;
        }
        let store = self.daemon.builds.clone();
        let chosen = doomed.clone();
        let removed = tokio::task::spawn_blocking(move || {
            let orphans = gc::orphans(&store, &builds, &images, &chosen, &in_use)?;
            gc::sweep(&store, &builds, &images, &chosen, &orphans, dry_run)
        })
        .await
        .map_err(task_failed)?
        .map_err(builds_error)?;
        if !dry_run {
            state.mark_builds_collected(doomed.builds.clone()).await.map_err(state_error)?;
        }
        Ok(GcReport { builds: doomed.builds, images: doomed.images, removed })
    }

    /// What the supervisor's procs (by their proc.yaml) and the swarms' releases use now.
    async fn store_in_use(&self) -> OpResult<gc::InUse> {
        let state = self.daemon.supervisor.state();
        let procs = state.list_procs().await.map_err(state_error)?;
        let yamls: Vec<String> = procs.into_iter().map(|p| p.yaml).collect();
        let builds = state.builds_in_use().await.map_err(state_error)?;
        Ok(gc::InUse::gather(&self.daemon.builds, &yamls, builds))
    }
}

impl Ops {
    /// Streams build `id`'s compile.log from its start until the build has ended.
    pub(super) async fn follow_build(&self, id: u64) -> OpResult<Feed<LogLine>> {
        let build = self.show_build(id).await?;
        if build.collected.is_some() {
            return Err(error(codes::UNKNOWN_BUILD, format!("build {id} has no compile log: gc removed it")));
        }
        // A build just started may not have recorded its log's path yet; it is always this one.
        let path = build
            .log_path
            .map_or_else(|| self.daemon.builds.build_dir(id).join("compile.log"), PathBuf::from);
        let state = self.daemon.supervisor.state().clone();
        let elsewhere =
            self.log_elsewhere(&format!("build {id}'s compile log"), &format!("vr builds log {id}"));
        Ok(super::follow::stream_log(path, elsewhere, move || {
            let state = state.clone();
            async move {
                let build = state.get_build(id).await.map_err(state_error)?;
                Ok(build.is_some_and(|b| b.status == STARTED))
            }
        }))
    }
}
