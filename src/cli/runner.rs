//! `vr runner` (alias `vrun`): Velociraptor's runner commands against vrd.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use clap::Subcommand;
use nix::fcntl::{Flock, FlockArg};

use super::client::{call, explain};
use super::oneshot::OneShot;
use super::terminal::{own_stdio, RawMode};
use crate::api::{Attach, ExitStatus, ProcFile, VrdClient};

/// The runner's actions, each on one proc.yaml.
#[derive(Debug, Subcommand)]
pub enum RunnerAction {
    /// Fetch the image and build and prepare the proc.
    Setup {
        /// The proc.yaml.
        file: PathBuf,
    },
    /// Run the proc in the foreground; exits with the app's exit code.
    Run {
        /// The proc.yaml.
        file: PathBuf,
    },
    /// An interactive shell in a container identical to the proc's.
    Shell {
        /// The proc.yaml.
        file: PathBuf,
    },
    /// Run the proc's uptests; prints only the JSON results.
    Uptest {
        /// The proc.yaml.
        file: PathBuf,
    },
    /// Remove the proc dir (cached images and builds stay).
    Teardown {
        /// The proc.yaml.
        file: PathBuf,
    },
}

/// Reads the file and, for setup, run and teardown, holds VR's non-blocking lock on it.
fn read_file(path: &Path, lock: bool) -> anyhow::Result<(ProcFile, Option<Flock<File>>)> {
    let mut file = File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    let mut yaml = String::new();
    file.read_to_string(&mut yaml).with_context(|| format!("failed to read {}", path.display()))?;
    let guard = if lock {
        Some(
            Flock::lock(file, FlockArg::LockExclusiveNonblock)
                .map_err(|_| anyhow!("ERROR: {} is locked by another process.", path.display()))?,
        )
    } else {
        None
    };
    Ok((ProcFile { path: path.display().to_string(), yaml }, guard))
}

/// Explains how a container ended (when it did not just exit) and returns the exit code to use.
pub(super) fn report_exit(status: &ExitStatus) -> i32 {
    if let Some(error) = &status.error {
        eprintln!("vr: the container could not start: {error}");
    } else if status.oom_killed {
        eprintln!("vr: the proc was killed for exceeding its memory limit (OOM kill)");
    } else if let Some(sig) = status.signal {
        eprintln!("vr: the proc was killed by signal {sig}");
    }
    status.code
}

/// Lends our stdin, stdout and stderr to vrd with the next call (the container's terminal).
fn lend_stdio(client: &OneShot) -> anyhow::Result<Attach> {
    client.send_fds_with_next_call(own_stdio()?);
    Ok(Attach::inline())
}

/// Runs one runner action; returns the exit code.
pub async fn run(socket: &Path, action: RunnerAction) -> anyhow::Result<i32> {
    let client = call(socket).await?;
    match action {
        RunnerAction::Setup { file } => {
            let (file, _lock) = read_file(&file, true)?;
            let report = client.runner_setup(file).await.map_err(explain)?;
            for w in &report.warnings {
                eprintln!("vr: warning: {w}");
            }
            eprintln!("vr: {} is set up in {}", report.name, report.proc_dir);
            Ok(0)
        }
        RunnerAction::Run { file } => {
            let (file, _lock) = read_file(&file, true)?;
            let call = client.runner_run(file.clone(), lend_stdio(&client)?);
            tokio::pin!(call);
            // Ctrl-C or a TERM stops the container (vrd escalates to KILL after its grace period)
            // while we keep showing its output until it has ended.
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            let status = loop {
                let signal = tokio::select! {
                    status = &mut call => break status.map_err(explain)?,
                    _ = tokio::signal::ctrl_c() => "INT",
                    _ = term.recv() => "TERM",
                };
                let _ = client.runner_signal(file.clone(), signal.to_string()).await;
            };
            Ok(report_exit(&status))
        }
        RunnerAction::Shell { file } => {
            let (file, _) = read_file(&file, false)?;
            let attach = lend_stdio(&client)?;
            let raw = RawMode::enter();
            let status = client.runner_shell(file, attach).await;
            drop(raw);
            Ok(report_exit(&status.map_err(explain)?))
        }
        RunnerAction::Uptest { file } => {
            let (file, _) = read_file(&file, false)?;
            let results = client.runner_uptest(file).await.map_err(explain)?;
            say!("{}", serde_json::to_string(&results)?)?;
            Ok(0)
        }
        RunnerAction::Teardown { file } => {
            let (file, _lock) = read_file(&file, true)?;
            client.runner_teardown(file).await.map_err(explain)?;
            Ok(0)
        }
    }
}
