//! `vr imager` (alias `vimage`): Velociraptor's stack image commands against vrd.
//!
//! The client creates the outputs in its own directory, with its own permissions, and hands vrd
//! the open files over the attach socket: `<name>.log` directly, the tarball and its md5 as
//! temporary files that are renamed into place only when the build succeeds, so a failed build
//! leaves the log and never a partial (or stale-looking) tarball.

use std::fs::{self, File};
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use clap::Subcommand;
use tempfile::NamedTempFile;

use super::client::{connect, explain};
use super::terminal::{AttachSocket, RawMode};
use crate::api::{Attach, ImageFile, VrdClient};
use crate::model::image_data::ImageData;

/// The imager's actions, each on one image.yaml.
#[derive(Debug, Subcommand)]
pub enum ImagerAction {
    /// Build a stack image: run image.yaml's script (script_url) as root on a fresh copy of the
    /// base (base_image_url, base_image_name, base_image_md5), with image.yaml's env; writes
    /// <new_image_name>.tar.gz, .tar.gz.md5 and .log in the current directory.
    Build {
        /// The image.yaml.
        file: PathBuf,
    },
    /// An interactive shell in the provisioning container, with the script copied in but not
    /// run; nothing is kept.
    Shell {
        /// The image.yaml.
        file: PathBuf,
    },
}

/// Runs one imager action; returns the exit code.
pub async fn run(socket: &Path, action: ImagerAction) -> anyhow::Result<i32> {
    match action {
        ImagerAction::Build { file } => build(socket, &file).await,
        ImagerAction::Shell { file } => shell(socket, &file).await,
    }
}

/// Reads and checks image.yaml here, so a mistake is reported before anything is created.
fn read_file(path: &Path) -> anyhow::Result<(ImageFile, ImageData)> {
    let mut yaml = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut yaml))
        .with_context(|| format!("failed to read {}", path.display()))?;
    let data = ImageData::from_yaml(&yaml).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let cwd = std::env::current_dir().context("failed to find the current directory")?;
    Ok((ImageFile { path: path.display().to_string(), yaml, cwd: cwd.display().to_string() }, data))
}

fn term() -> Option<String> {
    std::env::var("TERM").ok().filter(|t| !t.is_empty())
}

/// A temporary file beside `name` in the current directory, renamed onto it on success.
fn pending(name: &str) -> anyhow::Result<NamedTempFile> {
    let file = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .tempfile_in(".")
        .with_context(|| format!("failed to create a temporary file for {name} in the current directory"))?;
    file.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .with_context(|| format!("failed to chmod {}", file.path().display()))?;
    Ok(file)
}

fn dup(fd: impl AsFd, what: &str) -> anyhow::Result<OwnedFd> {
    fd.as_fd().try_clone_to_owned().with_context(|| format!("failed to duplicate {what}"))
}

async fn build(socket: &Path, path: &Path) -> anyhow::Result<i32> {
    let (file, data) = read_file(path)?;
    let (tarball_name, md5_name, log_name) = data.output_names();
    let client = connect(socket).await?;
    let log = File::create(&log_name).with_context(|| format!("failed to create {log_name}"))?;
    let tarball = pending(&tarball_name)?;
    let md5 = pending(&md5_name)?;
    let fds = vec![
        dup(std::io::stdout(), "stdout")?,
        dup(std::io::stderr(), "stderr")?,
        OwnedFd::from(log),
        dup(tarball.as_file(), &tarball_name)?,
        dup(md5.as_file(), &md5_name)?,
    ];
    let attach = AttachSocket::new()?;
    let socket_path = attach.path().display().to_string();
    attach.serve_fds(fds);
    let call = client.imager_build(file, Attach::socket(socket_path), term());
    // Ctrl-C drops the call, which makes vrd stop the container; the temporary files go too.
    let built = tokio::select! {
        built = call => built.map_err(explain)?,
        _ = tokio::signal::ctrl_c() => {
            return Err(anyhow!("interrupted: the provisioning container is stopped, {log_name} has its output so far"))
        }
    };
    tarball
        .persist(&tarball_name)
        .with_context(|| format!("failed to rename the new image to {tarball_name}"))?;
    md5.persist(&md5_name).with_context(|| format!("failed to rename the md5 to {md5_name}"))?;
    for w in &built.warnings {
        eprintln!("vr: warning: {w}");
    }
    eprintln!(
        "vr: built {tarball_name} ({} entries{}); log in {log_name}",
        built.entries,
        if built.skipped > 0 {
            format!(", {} device nodes, fifos or sockets left out", built.skipped)
        } else {
            String::new()
        }
    );
    say!("{}  {tarball_name}", built.md5)?;
    Ok(0)
}

async fn shell(socket: &Path, path: &Path) -> anyhow::Result<i32> {
    let (file, data) = read_file(path)?;
    let script = data.script_name().map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let client = connect(socket).await?;
    eprintln!(
        "vr: a shell on a fresh copy of {}; the script is /{script}; nothing here is kept",
        data.base_image_name
    );
    let attach = AttachSocket::new()?;
    let socket_path = attach.path().display().to_string();
    attach.serve();
    let raw = RawMode::enter();
    let status = client.imager_shell(file, Attach::socket(socket_path), term()).await;
    drop(raw);
    let status = status.map_err(explain)?;
    if let Some(error) = &status.error {
        eprintln!("vr: the container could not start: {error}");
    }
    Ok(status.code)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{normalize_args, Cli, Command};
    use super::ImagerAction;

    #[test]
    fn vimage_is_vr_imager() {
        for (argv0, action) in [("/usr/bin/vimage", "build"), ("vimage", "shell")] {
            let args = normalize_args(vec![argv0.into(), action.into(), "image.yaml".into()]);
            let cli = Cli::try_parse_from(args).unwrap();
            let file = match cli.command {
                Command::Imager { action: ImagerAction::Build { file } | ImagerAction::Shell { file } } => {
                    file
                }
                other => panic!("{other:?}"),
            };
            assert_eq!(file, std::path::PathBuf::from("image.yaml"));
        }
    }
}
