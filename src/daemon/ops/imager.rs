//! Stack images over the API (`imager.build`, `imager.shell`): parse image.yaml, take the files
//! and terminal the client hands over on its attach socket, and run the imager on a blocking
//! thread. If the client goes away, the provisioning container is stopped.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use super::access::Principal;
use super::attach::{Handover, ReceivedFds};
use super::error::{error, imager_error, off_runtime, task_failed, OpResult};
use super::runner::StopOnDrop;
use super::{Daemon, Ops};
use crate::api::{codes, Attach, ExitStatus, ImageBuilt, ImageFile, IMAGER_BUILD_FDS};
use crate::model::image_data::ImageData;
use crate::services::imager::{self, BuildOutputs, Provision};
use crate::services::runner::LaunchWatch;

/// Parses an image.yaml on a blocking thread and resolves its relative paths; errors name the file.
async fn parse(file: &ImageFile, term: Option<String>) -> OpResult<(Provision, Vec<String>)> {
    let file = file.clone();
    off_runtime(move || parse_now(&file, term)).await
}

fn parse_now(file: &ImageFile, term: Option<String>) -> OpResult<(Provision, Vec<String>)> {
    let mut image =
        ImageData::from_yaml(&file.yaml).map_err(|e| error(codes::INVALID, format!("{}: {e}", file.path)))?;
    if !file.cwd.starts_with('/') {
        return Err(error(codes::INVALID, format!("the client's directory '{}' is not absolute", file.cwd)));
    }
    image.resolve_relative(Path::new(&file.cwd));
    let warnings = image
        .unknown_keys
        .iter()
        .map(|k| format!("image.yaml key '{k}' is not known to vr and was ignored"))
        .collect();
    Ok((Provision { image, term }, warnings))
}

/// What the audit log records of an imager call.
pub fn audit_params(file: &ImageFile) -> serde_json::Value {
    serde_json::json!({ "path": file.path, "cwd": file.cwd, "yaml": file.yaml })
}

impl Ops {
    async fn imager_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Daemon) -> OpResult<T> + Send + 'static,
    ) -> OpResult<T> {
        let daemon = Arc::clone(&self.daemon);
        match tokio::task::spawn_blocking(move || f(&daemon)).await {
            Ok(result) => result,
            Err(e) => Err(task_failed(e)),
        }
    }

    pub(super) async fn image_build(
        &self,
        who: &Principal,
        passed: ReceivedFds,
        file: ImageFile,
        attach: Attach,
        term: Option<String>,
    ) -> OpResult<ImageBuilt> {
        let (provision, warnings) = parse(&file, term).await?;
        let provision = self.permit(who, provision, |p, provision| p.image(&provision.image)).await?;
        let handover = Handover::new(attach, passed, who);
        let watch = LaunchWatch::default();
        let _stop = StopOnDrop::new(&watch);
        self.imager_blocking(move |d| {
            let fds = handover.fds(IMAGER_BUILD_FDS).map_err(|e| error(codes::LAUNCH, e))?;
            let [stdout, stderr, log, tarball, md5] = <[_; IMAGER_BUILD_FDS]>::try_from(fds)
                .map_err(|_| error(codes::LAUNCH, "wrong number of fds"))?;
            let outputs = BuildOutputs {
                stdout,
                stderr,
                log: File::from(log),
                tarball: File::from(tarball),
                md5: Some(File::from(md5)),
            };
            let built = imager::build(&d.runner, &provision, outputs, &watch).map_err(imager_error)?;
            Ok(ImageBuilt {
                name: provision.image.new_image_name.clone(),
                md5: built.md5,
                entries: built.archived.entries,
                skipped: built.archived.skipped,
                warnings,
            })
        })
        .await
    }

    pub(super) async fn image_shell(
        &self,
        who: &Principal,
        passed: ReceivedFds,
        file: ImageFile,
        attach: Attach,
        term: Option<String>,
    ) -> OpResult<ExitStatus> {
        let (provision, _) = parse(&file, term).await?;
        let provision = self.permit(who, provision, |p, provision| p.image(&provision.image)).await?;
        let handover = Handover::new(attach, passed, who);
        let watch = LaunchWatch::default();
        let _stop = StopOnDrop::new(&watch);
        self.imager_blocking(move |d| {
            let stdio = handover.stdio().map_err(|e| error(codes::LAUNCH, e))?;
            imager::shell(&d.runner, &provision, stdio, &watch).map_err(imager_error)
        })
        .await
    }
}
