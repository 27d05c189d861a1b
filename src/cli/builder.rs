//! `vr builder` (alias `vbuild`): Velociraptor's builder commands against vrd. The client opens the
//! outputs in its own current directory (build.tar.gz and build_result.yaml as temp files renamed
//! into place only when the build succeeds; compile.log directly, kept either way) and lends them,
//! with its stdout and stderr, to vrd over the attach socket.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

use super::client::{connect, explain};
use super::terminal::{AttachSocket, RawMode};
use crate::api::{Attach, BuildFile, VrdClient};

/// The builder's actions, each on one build.yaml.
#[derive(Debug, Subcommand)]
pub enum BuilderAction {
    /// Build the app: writes build.tar.gz, build_result.yaml and compile.log here.
    Build {
        /// The build.yaml (a build_result.yaml rebuilds the same app and buildpack revisions).
        file: PathBuf,
    },
    /// An interactive shell in the build container, set up as for a build.
    Shell {
        /// The build.yaml.
        file: PathBuf,
    },
}

fn read_file(path: &Path) -> anyhow::Result<BuildFile> {
    let mut yaml = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut yaml))
        .with_context(|| format!("failed to read {}", path.display()))?;
    Ok(BuildFile { path: path.display().to_string(), yaml })
}

/// The outputs in the current directory.
struct Outputs {
    tarball: tempfile::NamedTempFile,
    result: tempfile::NamedTempFile,
    log: File,
}

impl Outputs {
    fn create(dir: &Path) -> anyhow::Result<Outputs> {
        let temp = |name: &str| {
            tempfile::Builder::new()
                .prefix(&format!(".{name}."))
                .tempfile_in(dir)
                .with_context(|| format!("failed to create {name} in {}: is it writable?", dir.display()))
        };
        let log = File::create(dir.join("compile.log"))
            .with_context(|| format!("failed to create compile.log in {}", dir.display()))?;
        Ok(Outputs { tarball: temp("build.tar.gz")?, result: temp("build_result.yaml")?, log })
    }

    /// Our stdout and stderr, then the three files: the order `builder.build` expects.
    fn fds(&self) -> anyhow::Result<Vec<OwnedFd>> {
        let fds = [
            std::io::stdout().as_fd().try_clone_to_owned(),
            std::io::stderr().as_fd().try_clone_to_owned(),
            self.tarball.as_file().as_fd().try_clone_to_owned(),
            self.result.as_file().as_fd().try_clone_to_owned(),
            self.log.as_fd().try_clone_to_owned(),
        ];
        fds.into_iter().collect::<std::io::Result<Vec<_>>>().context("failed to copy the output fds")
    }

    /// Renames the temp files into place, readable as files made with a 022 umask would be.
    fn keep(self, dir: &Path) -> anyhow::Result<()> {
        for (file, name) in [(self.tarball, "build.tar.gz"), (self.result, "build_result.yaml")] {
            file.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
            file.persist(dir.join(name)).with_context(|| format!("failed to write {name}"))?;
        }
        Ok(())
    }
}

async fn build(socket: &Path, file: &Path) -> anyhow::Result<i32> {
    let file = read_file(file)?;
    let client = connect(socket).await?;
    let dir = std::env::current_dir().context("failed to find the current directory")?;
    let outputs = Outputs::create(&dir)?;
    let attach = AttachSocket::new()?;
    let path = attach.path().display().to_string();
    attach.serve_fds(outputs.fds()?);
    let call = client.builder_build(file, Attach::socket(path));
    // On Ctrl-C or TERM the temp files are removed here; vrd stops the build when we hang up.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let report = tokio::select! {
        report = call => report.map_err(explain)?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; the build was stopped"),
        _ = term.recv() => anyhow::bail!("terminated; the build was stopped"),
    };
    outputs.keep(&dir)?;
    eprintln!(
        "vr: built {} at {} into build.tar.gz (md5 {}); see build_result.yaml and compile.log",
        report.app_name, report.app_commit, report.build_md5
    );
    Ok(0)
}

/// Runs one builder action; returns the exit code.
pub async fn run(socket: &Path, action: BuilderAction) -> anyhow::Result<i32> {
    match action {
        BuilderAction::Build { file } => build(socket, &file).await,
        BuilderAction::Shell { file } => {
            let file = read_file(&file)?;
            let client = connect(socket).await?;
            let attach = AttachSocket::new()?;
            let path = attach.path().display().to_string();
            attach.serve();
            let raw = RawMode::enter();
            let status = client.builder_shell(file, Attach::socket(path)).await;
            drop(raw);
            Ok(super::runner::report_exit(&status.map_err(explain)?))
        }
    }
}
