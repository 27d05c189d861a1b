//! The imager: Velociraptor's `vimage` (§5). A stack image is a base image plus what a
//! provisioning script does to it, run as root in a container on a fresh writable copy of the base.
//!
//! `build` fetches the base into the shared image cache (VR's md5 rule), unpacks a fresh copy into
//! a work dir, copies the script in as `/<name>` (a+x), runs it with the host network (vr
//! containers share it) and an environment of PATH, HOME=/root, TERM and image.yaml's `env`, and
//! tees its output to the caller and to `<new_image_name>.log`. On success it removes the script
//! (VR's inverted condition left it in every image) and writes the root as `<name>.tar.gz` and its
//! md5. `shell` is the same container with an interactive shell instead of the script; nothing is
//! kept. The caller's output files arrive as open files: vrd never opens paths in the caller's
//! directory.

mod tarball;
mod tee;
mod workspace;

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

pub use tarball::{write_tar_gz, Archived};

use crate::host::container::plan::{ExitStatus, StdioPlan};
use crate::host::image::ImageError;
use crate::model::image_data::ImageData;
use crate::model::limits::Limits;
use crate::model::proc_data::DEFAULT_PIDS_MAX;
use crate::services::runner::job::{JobRoot, JobSpec};
use crate::services::runner::scripts::DEFAULT_PATH;
use crate::services::runner::{CallerStdio, LaunchWatch, Runner, RunnerError};
use workspace::Workspace;

/// What can go wrong while building a stack image; every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ImagerError {
    /// image.yaml itself is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The base image could not be fetched or unpacked.
    #[error("failed to prepare the base image '{name}': {cause}")]
    Base {
        /// base_image_name.
        name: String,
        /// Why (the message says what to do).
        cause: ImageError,
    },
    /// The provisioning script could not be fetched.
    #[error("failed to fetch the provisioning script (script_url): {0}")]
    Script(ImageError),
    /// The base already has a file where the script would go.
    #[error("the base image already has /{0}, where the provisioning script would be copied: rename the script (script_url) so it does not replace a file of the image")]
    ScriptInTheWay(String),
    /// A file system operation in the work dir failed.
    #[error("failed to {action} {}: {cause}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// The container could not be prepared or launched.
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// The script ended unsuccessfully; the log is kept and no tarball is written.
    #[error(
        "the provisioning script /{script} {how}; its output is in {log}: fix the script and build again"
    )]
    ScriptFailed {
        /// The script's name in the image.
        script: String,
        /// How it ended, in words.
        how: String,
        /// The log's file name in the caller's directory.
        log: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// Writing the tarball or its md5 to the caller's files failed.
    #[error("failed to write {name}: {cause}; check the free space where you ran vr and build again")]
    Output {
        /// The output's file name.
        name: String,
        /// The cause.
        cause: std::io::Error,
    },
}

impl ImagerError {
    fn io(action: &'static str, path: impl Into<PathBuf>, cause: std::io::Error) -> ImagerError {
        ImagerError::Io { action, path: path.into(), cause }
    }
}

/// One build or shell: a validated image.yaml (relative paths already resolved) and the caller's
/// terminal type.
#[derive(Debug, Clone)]
pub struct Provision {
    /// The image.yaml.
    pub image: ImageData,
    /// The caller's `TERM`, if it has one.
    pub term: Option<String>,
}

/// Where a build's output goes: files the caller created in its own directory, and its stdout
/// and stderr for the script's output as it happens.
pub struct BuildOutputs {
    /// The caller's stdout.
    pub stdout: OwnedFd,
    /// The caller's stderr.
    pub stderr: OwnedFd,
    /// `<new_image_name>.log`.
    pub log: File,
    /// `<new_image_name>.tar.gz`.
    pub tarball: File,
    /// `<new_image_name>.tar.gz.md5`; none for a stack's image (its md5 goes to its record).
    pub md5: Option<File>,
}

/// What a build made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The tarball's md5, 32 lowercase hex digits.
    pub md5: String,
    /// What went into the tarball.
    pub archived: Archived,
}

/// Builds the image: provisioning script on a fresh copy of the base, then the tarball and md5.
pub fn build(
    runner: &Runner,
    provision: &Provision,
    out: BuildOutputs,
    watch: &LaunchWatch,
) -> Result<Built, ImagerError> {
    let image = &provision.image;
    let ws = Workspace::prepare(runner, image)?;
    let (stdio, tee) = tee::start(out.stdout, out.stderr, out.log)?;
    let job = job_spec(provision, &ws, vec![ws.script_path()], StdioPlan::Pipes { log: None });
    let status = runner.run_job_watched(&job, stdio, watch);
    tee.finish();
    let status = status?;
    if status.code != 0 || status.error.is_some() {
        let (_, _, log) = image.output_names();
        return Err(ImagerError::ScriptFailed {
            script: ws.script.clone(),
            how: describe(&status),
            log,
            status,
        });
    }
    ws.finish()?;
    let (tarball_name, md5_name, _) = image.output_names();
    let archived = write_tar_gz(ws.root(), out.tarball, &tarball_name)?;
    if let Some(mut md5_file) = out.md5 {
        writeln!(md5_file, "{}  {tarball_name}", archived.md5)
            .and_then(|()| md5_file.sync_all())
            .map_err(|cause| ImagerError::Output { name: md5_name, cause })?;
    }
    Ok(Built { md5: archived.md5.clone(), archived })
}

/// An interactive shell in the provisioning container (the script is copied in, not run);
/// nothing is kept. Returns how the shell ended.
pub fn shell(
    runner: &Runner,
    provision: &Provision,
    stdio: CallerStdio,
    watch: &LaunchWatch,
) -> Result<ExitStatus, ImagerError> {
    let ws = Workspace::prepare(runner, &provision.image)?;
    let job = job_spec(provision, &ws, vec![ws.shell()], StdioPlan::Tty);
    Ok(runner.run_job_watched(&job, stdio, watch)?)
}

/// The provisioning container: root, on the work dir's root, with the script's environment.
fn job_spec(provision: &Provision, ws: &Workspace, argv: Vec<String>, stdio: StdioPlan) -> JobSpec {
    JobSpec {
        stdio,
        name: format!("vimage-{}", provision.image.new_image_name),
        image: None,
        root: JobRoot::Dir(ws.root().to_path_buf()),
        volumes: Vec::new(),
        user: "root".into(),
        group: "root".into(),
        argv,
        env: script_env(provision),
        cwd: "/".into(),
        limits: Limits { pids_max: Some(DEFAULT_PIDS_MAX), ..Limits::default() },
    }
}

/// PATH, HOME=/root, TERM (when the caller has one), then image.yaml's `env`, which may replace
/// any of them. VR built this environment but never passed it to the container.
pub fn script_env(provision: &Provision) -> Vec<(String, String)> {
    let mut env = vec![("PATH".to_string(), DEFAULT_PATH.to_string()), ("HOME".into(), "/root".into())];
    if let Some(term) = provision.term.as_ref().filter(|t| !t.is_empty() && !t.contains('\0')) {
        env.push(("TERM".into(), term.clone()));
    }
    for (name, value) in &provision.image.env {
        match env.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value.clone(),
            None => env.push((name.clone(), value.clone())),
        }
    }
    env
}

/// How a container ended, in words for a message.
fn describe(status: &ExitStatus) -> String {
    if let Some(error) = &status.error {
        format!("could not start ({error})")
    } else if status.oom_killed {
        format!("was killed for running out of memory (code {})", status.code)
    } else if let Some(signal) = status.signal {
        format!("was killed by signal {signal}")
    } else {
        format!("failed with code {}", status.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provision(env: &[(&str, &str)], term: Option<&str>) -> Provision {
        let yaml = "base_image_url: /b.tar\nbase_image_name: b\nnew_image_name: n\nscript_url: /s.sh\n";
        let mut image = ImageData::from_yaml(yaml).unwrap();
        image.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Provision { image, term: term.map(str::to_string) }
    }

    #[test]
    fn the_script_gets_path_home_term_and_the_yaml_env() {
        let env = script_env(&provision(&[("LANG", "C.UTF-8"), ("HOME", "/srv")], Some("xterm")));
        let names: Vec<_> = env.iter().map(|(n, v)| format!("{n}={v}")).collect();
        assert_eq!(
            names,
            [format!("PATH={DEFAULT_PATH}"), "HOME=/srv".into(), "TERM=xterm".into(), "LANG=C.UTF-8".into()]
        );
        let env = script_env(&provision(&[], None));
        assert!(env.iter().all(|(n, _)| n != "TERM"), "no TERM without a terminal: {env:?}");
    }

    #[test]
    fn a_failure_says_how_the_script_ended() {
        let status = |code, signal, oom| ExitStatus {
            code,
            signal,
            oom_killed: oom,
            setup_failed: false,
            error: None,
        };
        assert_eq!(describe(&status(3, None, false)), "failed with code 3");
        assert_eq!(describe(&status(137, Some(9), false)), "was killed by signal 9");
        assert!(describe(&status(137, Some(9), true)).contains("memory"));
    }
}
