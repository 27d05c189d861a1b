//! The builder: Velociraptor's `vbuild` (build and shell of one build.yaml), done by vrd in its own
//! containers with the Heroku classic buildpack API.
//!
//! A build checks out the app and its buildpacks on the host with real git or hg (caches under
//! `builder/`, see [`layout`]), then runs [`script`] in a one-off container of the stack image as an
//! unprivileged user, memory- and pids-capped, with the app, the buildpacks (read-only), the app's
//! cache and ENV_DIR mounted. When it succeeds vrd packs the app dir ([`package`]) and writes
//! build_result.yaml. Everything goes to files the caller opened in its own directory and handed
//! over: vrd never opens a path on the caller's behalf.

pub mod layout;
pub mod locks;
pub mod output;
pub mod package;
mod prepare;
pub mod release;
pub mod script;
pub mod vcs;

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use layout::BuilderLayout;
use output::Output;
use prepare::{Mode, Prepared};
use script::Stopped;

use crate::host::container::plan::{ExitStatus, StdioPlan};
use crate::model::build_data::BuildData;
use crate::model::slugignore::SlugIgnore;
use crate::services::runner::{CallerStdio, LaunchWatch, Runner, RunnerError};

/// The memory cap of a build container.
pub const BUILD_MEMORY: u64 = 2 << 30;
/// The pids cap of a build container: room for parallel compilers, none for a fork bomb.
pub const BUILD_PIDS: u64 = 1024;
/// The user builds run as, from the stack image's /etc/passwd (VR's choice too).
pub const BUILD_USER: &str = "nobody";
/// Release YAML and the like are small; more is refused.
const SMALL_FILE: u64 = 1 << 20;

/// A step of a build that can fail after the checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Finding the buildpack.
    Detect,
    /// `bin/compile`.
    Compile,
    /// `bin/release`.
    Release,
    /// Making build.tar.gz and build_result.yaml.
    Package,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Detect => "detect",
            Step::Compile => "compile",
            Step::Release => "release",
            Step::Package => "package",
        })
    }
}

/// Why a build or a build shell failed; the message names the step and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum BuilderError {
    /// build.yaml (or the app's `.buildpacks`) is wrong.
    #[error("{0}")]
    Invalid(String),
    /// Getting the app or a buildpack failed.
    #[error("checkout failed: {0}")]
    Checkout(String),
    /// A step in or after the build container failed.
    #[error("{step} failed: {message}")]
    Step {
        /// Which step.
        step: Step,
        /// What happened, and where to look.
        message: String,
    },
    /// The stack image or the container failed.
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// A file system operation on the host failed.
    #[error("{0}")]
    Io(String),
    /// The caller went away before the build started.
    #[error("the build was cancelled: its caller went away")]
    Cancelled,
}

fn step(step: Step, message: impl Into<String>) -> BuilderError {
    BuilderError::Step { step, message: message.into() }
}

/// The builder of one daemon.
#[derive(Clone)]
pub struct Builder {
    /// Its directories.
    pub layout: BuilderLayout,
    /// Runs the build containers and keeps the stack images.
    pub runner: Arc<Runner>,
}

/// The files a build writes, opened by the caller in its own directory, and its stdout/stderr.
pub struct BuildFiles {
    /// The caller's stdout: the container's stdout, live.
    pub stdout: OwnedFd,
    /// The caller's stderr: the container's stderr and vr's progress, live.
    pub stderr: OwnedFd,
    /// build.tar.gz.
    pub tarball: OwnedFd,
    /// build_result.yaml.
    pub result: OwnedFd,
    /// compile.log: everything the caller saw on stdout and stderr.
    pub log: OwnedFd,
    /// The copy of compile.log vrd keeps, when it keeps one.
    pub kept_log: Option<OwnedFd>,
}

/// Lets the one who started a build stop it: the launcher's pid while the container runs, and a
/// flag a build waiting for a lock looks at.
#[derive(Debug, Clone, Default)]
pub struct BuildWatch {
    /// The build container's launcher.
    pub launch: LaunchWatch,
    /// Set when the caller went away.
    pub cancelled: Arc<AtomicBool>,
}

/// What a finished build made.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The exact app revision built.
    pub app_commit: String,
    /// Each buildpack that ran, as `url#<revision>`.
    pub buildpacks: Vec<String>,
    /// The md5 of build.tar.gz.
    pub build_md5: String,
    /// build_result.yaml's data.
    pub result: BuildData,
}

/// How a failed container is described: "exited with status 2", "was killed ...".
fn how(status: &ExitStatus) -> String {
    if status.oom_killed {
        format!("was killed for using more than the build's {} GiB of memory", BUILD_MEMORY >> 30)
    } else if let Some(signal) = status.signal {
        format!("was killed by signal {signal}")
    } else {
        format!("exited with status {}", status.code)
    }
}

impl Builder {
    /// Builds the app of `data` into the caller's files; returns what it made.
    pub fn build(
        &self,
        data: &BuildData,
        files: BuildFiles,
        watch: &BuildWatch,
    ) -> Result<BuildReport, BuilderError> {
        let logs = std::iter::once(files.log).chain(files.kept_log).collect();
        let out = Output::build(files.stdout, files.stderr, logs);
        for key in &data.unknown_keys {
            out.line(&format!("vr: warning: build.yaml key '{key}' is not known to vr and was ignored"));
        }
        let result = self.build_with(data, &out, files.tarball, files.result, watch);
        if let Err(e) = &result {
            // The caller prints the error itself; compile.log gets it too, so the file tells all.
            out.log_only(&format!("vr: {e}"));
        }
        result
    }

    fn build_with(
        &self,
        data: &BuildData,
        out: &Output,
        tarball: OwnedFd,
        result: OwnedFd,
        watch: &BuildWatch,
    ) -> Result<BuildReport, BuilderError> {
        let prep = self.prepare(data, out, watch)?;
        let status = self.compile(&prep, out, watch)?;
        if status.code != 0 || status.setup_failed {
            return Err(self.failure(&prep, &status));
        }
        let used = prep.used()?;
        let release = prep.release(&used)?;
        let defaults = release::default_process_types(&release).map_err(|e| step(Step::Release, e))?;
        out.step("Packaging build.tar.gz");
        let md5 = pack(&prep.app_dir(), File::from(tarball), &defaults, prep.commit_time, out)?;
        let pinned: Vec<String> = used.iter().map(|n| prep.buildpacks[*n - 1].pinned()).collect();
        let mut record = data.clone();
        record.app_commit = Some(prep.app_commit.clone());
        record.build_md5 = Some(md5.clone());
        record.release_data = Some(release);
        prep.record_buildpacks(data, &mut record, &used);
        let yaml = record
            .to_yaml()
            .map_err(|e| step(Step::Package, format!("failed to write build_result.yaml: {e}")))?;
        File::from(result)
            .write_all(yaml.as_bytes())
            .map_err(|e| step(Step::Package, format!("failed to write build_result.yaml: {e}")))?;
        out.step(&format!("Built {} at {} (md5 {md5})", data.app_name, prep.app_commit));
        Ok(BuildReport {
            app_commit: prep.app_commit.clone(),
            buildpacks: pinned,
            build_md5: md5,
            result: record,
        })
    }

    /// Runs the builder script in the build container, its output teed to the caller and the log.
    fn compile(&self, prep: &Prepared, out: &Output, watch: &BuildWatch) -> Result<ExitStatus, BuilderError> {
        let pipe = || std::io::pipe().map_err(|e| BuilderError::Io(format!("failed to create a pipe: {e}")));
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let stdin = File::open("/dev/null")
            .map_err(|e| BuilderError::Io(format!("failed to open /dev/null: {e}")))?;
        let tees = [out.tee(out_r.into(), false), out.tee(err_r.into(), true)];
        let mut job = prep.job.clone();
        job.argv = vec![prep.shell_program(), script::SCRIPT.into()];
        job.stdio = StdioPlan::Pipes { log: None };
        let stdio = CallerStdio { stdin: stdin.into(), stdout: out_w.into(), stderr: err_w.into() };
        let status = self.runner.run_job_watched(&job, stdio, &watch.launch);
        for tee in tees {
            let _ = tee.join();
        }
        Ok(status?)
    }

    /// The error for a build container that did not succeed, from where the script stopped.
    fn failure(&self, prep: &Prepared, status: &ExitStatus) -> BuilderError {
        if status.setup_failed {
            let why = status.error.clone().unwrap_or_default();
            return BuilderError::Runner(RunnerError::Launch(format!(
                "the build container could not start: {why}"
            )));
        }
        let label = |n: usize| prep.label(n);
        match script::stopped(&prep.meta_file("step").unwrap_or_default()) {
            Stopped::NoneDetected => {
                let tried: Vec<String> = (1..=prep.buildpacks.len())
                    .map(|n| {
                        let why = prep.not_runnable(n, "bin/detect");
                        format!(
                            "\n  {}: {}",
                            label(n),
                            why.unwrap_or_else(|| "bin/detect exited non-zero".into())
                        )
                    })
                    .collect();
                step(
                    Step::Detect,
                    format!(
                        "no buildpack detected this app; tried:{}\nadd a buildpack for this kind of app to build.yaml, or a .buildpacks file to the app",
                        tried.concat()
                    ),
                )
            }
            Stopped::Step { step: name, n } => self.step_failure(prep, status, &name, n),
            Stopped::Setup | Stopped::Done | Stopped::Unknown => step(
                Step::Compile,
                format!("the build container {} outside any buildpack; see compile.log", how(status)),
            ),
        }
    }

    /// The error for a build that stopped in step `name` (detect, compile, release, export) of
    /// buildpack `n`.
    fn step_failure(&self, prep: &Prepared, status: &ExitStatus, name: &str, n: usize) -> BuilderError {
        let kind = match name {
            "detect" => Step::Detect,
            "release" => Step::Release,
            _ => Step::Compile,
        };
        let program = format!("bin/{name}");
        if let Some(why) = prep.not_runnable(n, &program).filter(|_| name != "export") {
            return step(kind, format!("{}: {why}", prep.label(n)));
        }
        if name == "export" {
            let bash = if prep.shell_program() == "/bin/sh" {
                "; the stack image has no /bin/bash, so the file was read by sh: write plain `export NAME=value` lines, or build on a stack with bash"
            } else {
                ""
            };
            return step(
                kind,
                format!(
                    "{} wrote an export file that failed to load (a line in it {}){bash}; its output is in compile.log",
                    prep.label(n),
                    how(status)
                ),
            );
        }
        let hint = if kind == Step::Detect && prep.mode == Mode::All {
            "; every buildpack of .buildpacks must detect the app"
        } else {
            ""
        };
        step(kind, format!("{} {}{hint}; its output is in compile.log", prep.label(n), how(status)))
    }

    /// An interactive shell in the build container, set up as for a build (VR's `vbuild shell`).
    pub fn shell(
        &self,
        data: &BuildData,
        stdio: CallerStdio,
        watch: &BuildWatch,
    ) -> Result<ExitStatus, BuilderError> {
        let dup =
            |fd: &OwnedFd| fd.try_clone().map_err(|e| BuilderError::Io(format!("failed to copy an fd: {e}")));
        let out = Output::shell(dup(&stdio.stdout)?, dup(&stdio.stderr)?);
        let prep = self.prepare(data, &out, watch)?;
        let mut job = prep.job.clone();
        job.argv = vec![prep.shell_program()];
        job.stdio = StdioPlan::Tty;
        out.line(&format!(
            "vr: a shell in the build container of {}; the app is in {}; `sh {}` builds it as `vr builder build` would",
            data.app_name,
            job.cwd,
            script::SCRIPT
        ));
        Ok(self.runner.run_job_watched(&job, stdio, &watch.launch)?)
    }
}

/// Writes the slug of the app dir with the Procfile completed from `defaults`; returns its md5.
fn pack(
    app: &Path,
    tarball: File,
    defaults: &[(String, String)],
    mtime_clamp: Option<u64>,
    out: &Output,
) -> Result<String, BuilderError> {
    let ignore = SlugIgnore::parse(&package::read_small(app, ".slugignore", SMALL_FILE).unwrap_or_default());
    for skipped in &ignore.skipped {
        out.line(&format!("vr: warning: .slugignore line {skipped}; it was ignored"));
    }
    let existing = package::read_small(app, "Procfile", SMALL_FILE);
    let procfile = release::procfile_with_defaults(existing.as_deref(), defaults);
    if procfile.is_some() {
        out.step("Adding the buildpacks' default process types the Procfile lacks");
    }
    let plan = package::SlugPlan { ignore: &ignore, procfile: procfile.as_deref(), mtime_clamp };
    package::write_slug(app, tarball, &plan)
        .map_err(|e| step(Step::Package, format!("failed to write build.tar.gz: {e}")))
}
