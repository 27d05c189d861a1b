//! Velociraptor's builder over the API: `builder.build` (the caller's output files and stdio come
//! with the request or over its attach socket) and `builder.shell`. The work runs on a blocking thread; when the caller
//! goes away, a build waiting for a lock gives up and a running build container is stopped.
//! Every build is recorded in the state (`started` before the work, the outcome after); its
//! compile log is kept under `builds/<id>/` and its slug in the content-addressed store.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::access::Principal;
use super::attach::{Handover, ReceivedFds};
use super::error::{builder_error, error, parse_request, state_error, task_failed, OpResult};
use super::{Daemon, Ops};
use crate::api::{codes, Attach, BuildFile, BuildReport, ExitStatus, BUILD_FDS};
use crate::model::build_data::BuildData;
use crate::services::builder::{BuildFiles, BuildWatch, BuilderError};
use crate::services::builds::recorded::Outputs;

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

/// Parses a build.yaml on a blocking thread; errors name the file.
async fn parse(file: &BuildFile) -> OpResult<BuildData> {
    let owned = file.clone();
    parse_request(&file.yaml, move || {
        BuildData::from_yaml(&owned.yaml).map_err(|e| error(codes::INVALID, format!("{}: {e}", owned.path)))
    })
    .await
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

impl Ops {
    async fn build_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Daemon) -> Result<T, BuilderError> + Send + 'static,
    ) -> OpResult<T> {
        let daemon = Arc::clone(&self.daemon);
        match tokio::task::spawn_blocking(move || f(&daemon)).await {
            Ok(result) => result.map_err(builder_error),
            Err(e) => Err(task_failed(e)),
        }
    }

    pub(super) async fn build(
        &self,
        who: &Principal,
        passed: ReceivedFds,
        file: BuildFile,
        attach: Attach,
    ) -> OpResult<BuildReport> {
        let data = parse(&file).await?;
        let data = self.permit(who, data, |p, data| p.build(data)).await?;
        let handover = Handover::new(attach, passed, who);
        let watch = BuildWatch::default();
        let _cancel = CancelOnDrop(watch.clone());
        let receive = move || receive_build_files(&handover);
        let service = self.daemon.build_service();
        let (_, result) = service
            .run(data, None, Outputs::Caller(Box::new(receive)), watch, None)
            .await
            .map_err(state_error)?;
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
        who: &Principal,
        passed: ReceivedFds,
        file: BuildFile,
        attach: Attach,
    ) -> OpResult<ExitStatus> {
        let data = parse(&file).await?;
        let data = self.permit(who, data, |p, data| p.build(data)).await?;
        let handover = Handover::new(attach, passed, who);
        let watch = BuildWatch::default();
        let _cancel = CancelOnDrop(watch.clone());
        self.build_blocking(move |d| {
            let stdio = handover.stdio().map_err(BuilderError::Io)?;
            d.builder.shell(&data, stdio, &watch)
        })
        .await
    }
}
