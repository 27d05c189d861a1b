//! Velociraptor's builder over the API: `builder.build` (the caller's output files and stdio come
//! with the request or over its attach socket) and `builder.shell`. The work runs on a blocking thread; when the caller
//! goes away, a build waiting for a lock gives up and a running build container is stopped.
//! Every build is recorded in the state (`started` before the work, the outcome after); its
//! compile log is kept under `builds/<id>/` and its slug in the content-addressed store.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use jsonrpsee::core::RpcResult;
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::Extensions;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::attach::Handover;
use super::proc_calls::state_error;
use super::rpc::{error, runner_error, RpcHandler};
use super::Daemon;
use crate::api::{codes, Attach, BuildFile, BuildReport, ExitStatus, BUILD_FDS};
use crate::model::build_data::BuildData;
use crate::model::build_record::{FAILED, SUCCEEDED};
use crate::services::builder::{BuildFiles, BuildReport as BuilderReport, BuildWatch, BuilderError};
use crate::services::builds::BuildsError;
use crate::services::state::BuildOutcome;

/// Maps every builder error to its stable code: no wildcard, so a new variant must be mapped.
pub fn builder_error(e: BuilderError) -> ErrorObjectOwned {
    let code = match e {
        BuilderError::Runner(r) => return runner_error(r),
        BuilderError::Invalid(_) => codes::INVALID,
        BuilderError::Checkout(_) => codes::CHECKOUT,
        BuilderError::Step { .. } | BuilderError::Cancelled => codes::BUILD_FAILED,
        BuilderError::Io(_) => codes::IO,
    };
    error(code, e.to_string())
}

/// Receives the caller's stdout, stderr and output files ([`BUILD_FDS`]).
fn receive_build_files(handover: &Handover) -> Result<BuildFiles, BuilderError> {
    let fds = handover.fds(BUILD_FDS).map_err(BuilderError::Io)?;
    let mut fds = fds.into_iter();
    let mut next = || fds.next().ok_or_else(|| BuilderError::Io("the client sent too few fds".into()));
    Ok(BuildFiles {
        stdout: next()?,
        stderr: next()?,
        tarball: next()?,
        result: next()?,
        log: next()?,
        kept_log: None,
    })
}

/// How a build ended, as its record keeps it.
fn outcome(result: &Result<(BuilderReport, String), BuilderError>) -> BuildOutcome {
    match result {
        Ok((report, sha)) => BuildOutcome {
            status: SUCCEEDED.into(),
            app_commit: Some(report.app_commit.clone()),
            buildpacks: report.buildpacks.clone(),
            build_md5: Some(report.build_md5.clone()),
            artifact: Some(sha.clone()),
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

/// A build whose compile log is also kept under `builds/<id>/` and whose
/// slug goes to the store (and is copied to the caller's build.tar.gz). Returns the report with
/// the slug's sha256.
fn kept_build(
    d: &Daemon,
    id: u64,
    data: &BuildData,
    files: BuildFiles,
    watch: &BuildWatch,
) -> Result<(BuilderReport, String), BuilderError> {
    let store = &d.builds;
    let kept = |e: BuildsError| BuilderError::Io(e.to_string());
    let (_, log) = store.create_log(id).map_err(kept)?;
    let temp = store.temp_artifact().map_err(kept)?;
    let caller_tarball = files.tarball;
    let tarball =
        temp.as_file().try_clone().map_err(|e| BuilderError::Io(format!("failed to copy an fd: {e}")))?;
    let ours = BuildFiles { tarball: tarball.into(), kept_log: Some(log.into()), ..files };
    let report = d.builder.build(data, ours, watch)?;
    let sha = store.publish(temp, &mut std::fs::File::from(caller_tarball)).map_err(kept)?;
    Ok((report, sha))
}

/// Parses a build.yaml; errors name the file.
fn parse(file: &BuildFile) -> RpcResult<BuildData> {
    BuildData::from_yaml(&file.yaml).map_err(|e| error(codes::INVALID, format!("{}: {e}", file.path)))
}

/// Cancels a build whose caller went away (the call's future was dropped): a lock wait ends, and
/// the build container's launcher gets SIGTERM (and kills it after the grace period).
struct CancelOnDrop(BuildWatch);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        if let pid @ 1.. = self.0.launch.load(Ordering::SeqCst) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
}

impl RpcHandler {
    async fn build_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Daemon) -> Result<T, BuilderError> + Send + 'static,
    ) -> RpcResult<T> {
        let daemon = Arc::clone(&self.daemon);
        match tokio::task::spawn_blocking(move || f(&daemon)).await {
            Ok(result) => result.map_err(builder_error),
            Err(e) => {
                tracing::error!(error = %e, "a builder task failed");
                Err(error(codes::INTERNAL, format!("a daemon task failed: {e}")))
            }
        }
    }

    pub(super) async fn build(
        &self,
        ext: &Extensions,
        file: BuildFile,
        attach: Attach,
    ) -> RpcResult<BuildReport> {
        let data = parse(&file)?;
        let handover = Handover::new(attach, ext)?;
        let busy = self.daemon.builds.busy.clone().read_owned().await;
        let state = self.daemon.supervisor.state().clone();
        let id = state.start_build(data.app_name.clone(), data.version.clone()).await.map_err(state_error)?;
        let log_path = self.daemon.builds.build_dir(id).join("compile.log");
        state.set_build_log(id, log_path.display().to_string()).await.map_err(state_error)?;
        let watch = BuildWatch::default();
        let _cancel = CancelOnDrop(watch.clone());
        let daemon = Arc::clone(&self.daemon);
        // A task of its own, so the outcome is recorded even when the caller hangs up (which
        // drops this future and cancels the build through `_cancel`).
        let recorded = tokio::spawn(async move {
            let work = move || {
                let files = receive_build_files(&handover)?;
                kept_build(&daemon, id, &data, files, &watch)
            };
            let result = tokio::task::spawn_blocking(work)
                .await
                .unwrap_or_else(|e| Err(BuilderError::Io(format!("a daemon task failed: {e}"))));
            if let Err(e) = state.finish_build(id, outcome(&result)).await {
                tracing::error!(error = %e, id, "failed to record the end of a build");
            }
            drop(busy);
            result
        });
        let result =
            recorded.await.unwrap_or_else(|e| Err(BuilderError::Io(format!("a daemon task failed: {e}"))));
        let (report, _) = result.map_err(builder_error)?;
        Ok(BuildReport {
            app_name: report.result.app_name,
            app_commit: report.app_commit,
            buildpacks: report.buildpacks,
            build_md5: report.build_md5,
        })
    }

    pub(super) async fn build_shell(
        &self,
        ext: &Extensions,
        file: BuildFile,
        attach: Attach,
    ) -> RpcResult<ExitStatus> {
        let data = parse(&file)?;
        let handover = Handover::new(attach, ext)?;
        let watch = BuildWatch::default();
        let _cancel = CancelOnDrop(watch.clone());
        self.build_blocking(move |d| {
            let stdio = handover.stdio().map_err(BuilderError::Io)?;
            d.builder.shell(&data, stdio, &watch)
        })
        .await
    }
}
