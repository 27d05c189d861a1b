//! A build with its record: `started` in the state before the work, the compile log kept under
//! `builds/<id>/`, the slug published to the store, the outcome recorded after. One path for the
//! builds a user asks for (`vr builder build`, whose files come from the caller) and the builds a
//! swarm asks for (whose only outputs are the record, the log and the stored slug).

use std::fs::File;

use super::{BuildStore, BuildsError};
use crate::model::build_data::BuildData;
use crate::model::build_record::{FAILED, SUCCEEDED};
use crate::services::builder::{BuildFiles, BuildReport, BuildWatch, Builder, BuilderError};
use crate::services::state::{BuildOutcome, State};

/// What a recorded build needs.
#[derive(Clone)]
pub struct BuildService {
    /// Runs the build.
    pub builder: Builder,
    /// Keeps its log and slug.
    pub store: BuildStore,
    /// Keeps its record.
    pub state: State,
}

/// Where a build's output goes besides the kept log: the caller's files, or nowhere.
pub enum Outputs {
    /// The caller's stdout, stderr, build.tar.gz, build_result.yaml and compile.log, received by
    /// the closure (which runs on the build's thread, after the record exists).
    Caller(Box<dyn FnOnce() -> Result<BuildFiles, BuilderError> + Send>),
    /// Only the kept log and the store (a swarm's build).
    Kept,
}

/// A finished build: its record id, what the builder reported and the slug's sha256.
pub type Built = (BuildReport, String);

impl BuildService {
    /// Records, runs and records the end of a build of `data` on the image with `image_md5`.
    /// Returns the record's id and the outcome; the record is written even if the caller of this
    /// future goes away (the work runs in a task of its own).
    pub async fn run(
        &self,
        data: BuildData,
        image_md5: Option<String>,
        outputs: Outputs,
        watch: BuildWatch,
        started: Option<tokio::sync::oneshot::Sender<u64>>,
    ) -> Result<(u64, Result<Built, BuilderError>), crate::services::state::StateError> {
        let busy = self.store.busy.clone().read_owned().await;
        let state = self.state.clone();
        let id = state.start_build_on(data.app_name.clone(), data.version.clone(), image_md5).await?;
        if let Some(tell) = started {
            let _ = tell.send(id);
        }
        let log_path = self.store.build_dir(id).join("compile.log");
        state.set_build_log(id, log_path.display().to_string()).await?;
        let this = self.clone();
        let recorded = tokio::spawn(async move {
            let work = move || this.kept_build(id, &data, outputs, &watch);
            let started = std::time::Instant::now();
            let result = tokio::task::spawn_blocking(work)
                .await
                .unwrap_or_else(|e| Err(BuilderError::Io(format!("a daemon task failed: {e}"))));
            crate::services::metrics::metrics().built(result.is_ok(), started.elapsed());
            if let Err(e) = state.finish_build(id, outcome(&result)).await {
                tracing::error!(error = %e, id, "failed to record the end of a build");
            }
            drop(busy);
            result
        });
        let result =
            recorded.await.unwrap_or_else(|e| Err(BuilderError::Io(format!("a daemon task failed: {e}"))));
        Ok((id, result))
    }

    /// The build itself: its log kept under `builds/<id>/`, its slug published to the store (and
    /// copied to the caller's build.tar.gz when there is a caller).
    fn kept_build(
        &self,
        id: u64,
        data: &BuildData,
        outputs: Outputs,
        watch: &BuildWatch,
    ) -> Result<Built, BuilderError> {
        let kept = |e: BuildsError| BuilderError::Io(e.to_string());
        let io = |e: std::io::Error| BuilderError::Io(format!("failed to open /dev/null: {e}"));
        let (_, log) = self.store.create_log(id).map_err(kept)?;
        let temp = self.store.temp_artifact().map_err(kept)?;
        let tarball =
            temp.as_file().try_clone().map_err(|e| BuilderError::Io(format!("failed to copy an fd: {e}")))?;
        let (files, mut copy) = match outputs {
            Outputs::Caller(receive) => {
                let files = receive()?;
                let copy =
                    File::from(files.tarball.try_clone().map_err(|e| BuilderError::Io(e.to_string()))?);
                (files, copy)
            }
            Outputs::Kept => {
                let null = || File::options().write(true).open("/dev/null").map_err(io);
                let files = BuildFiles {
                    stdout: null()?.into(),
                    stderr: null()?.into(),
                    tarball: null()?.into(),
                    result: null()?.into(),
                    log: null()?.into(),
                    kept_log: None,
                };
                (files, null()?)
            }
        };
        let ours = BuildFiles { tarball: tarball.into(), kept_log: Some(log.into()), ..files };
        let report = self.builder.build(data, ours, watch)?;
        let sha = self.store.publish(temp, &mut copy).map_err(kept)?;
        Ok((report, sha))
    }
}

/// How a build ended, as its record keeps it.
pub fn outcome(result: &Result<Built, BuilderError>) -> BuildOutcome {
    match result {
        Ok((report, sha)) => BuildOutcome {
            status: SUCCEEDED.into(),
            app_commit: Some(report.app_commit.clone()),
            buildpacks: report.buildpacks.clone(),
            build_md5: Some(report.build_md5.clone()),
            artifact: Some(sha.clone()),
            env: config_vars(report),
            ..BuildOutcome::default()
        },
        Err(e) => BuildOutcome {
            status: FAILED.into(),
            step: Some(failed_step(e)),
            error: Some(e.to_string()),
            ..BuildOutcome::default()
        },
    }
}

/// The buildpacks' config_vars from build_result.yaml's release data, as JSON.
fn config_vars(report: &BuildReport) -> serde_json::Map<String, serde_json::Value> {
    let vars = report.result.release_data.as_ref().and_then(|r| r.get("config_vars")).cloned();
    match vars.map(serde_json::to_value) {
        Some(Ok(serde_json::Value::Object(map))) => map,
        _ => serde_json::Map::new(),
    }
}

/// The step a failed build is recorded as failing in.
fn failed_step(e: &BuilderError) -> String {
    match e {
        BuilderError::Step { step, .. } => step.to_string(),
        BuilderError::Invalid(_) => "invalid".into(),
        BuilderError::Checkout(_) => "checkout".into(),
        BuilderError::Runner(_) => "container".into(),
        BuilderError::Io(_) => "io".into(),
        BuilderError::Cancelled => "cancelled".into(),
    }
}
