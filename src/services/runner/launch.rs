//! Starting a foreground container's launcher and hearing how the container ended.
//!
//! With the spawner (the normal case) the launcher is forked, not exec'd (see
//! `host::container::spawner`): vrd sends the plan's path with the caller's stdio, and the launcher
//! answers its pid, then the [`ExitStatus`] as soon as the container and its cgroup are gone. vrd
//! answers its caller then, without waiting for the launcher to exit or reading status.json. A
//! `run` or `shell` call waits for those lines on the runtime ([`Foreground::wait`]), so neither
//! the start nor the end of its container crosses to another thread of vrd.
//! Without a spawner (it failed to start or to answer) the launcher is exec'd from the sealed
//! copy of vrd and status.json is read after it exits.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::locks::BusyGuard;
use super::{CallerStdio, LaunchWatch, Runner, RunnerError};
use crate::host::container::plan::{ExitStatus, LaunchPlan};
use crate::host::container::spawner;

impl Runner {
    /// Writes the launch plan next to the container's dirs, unless the same plan is there already
    /// (a proc run again): rewriting a file frees and reallocates its blocks for nothing.
    pub(super) fn write_plan(&self, plan: &LaunchPlan, cdir: &Path) -> Result<PathBuf, RunnerError> {
        let plan_path = cdir.join("launch.json");
        let json = serde_json::to_vec_pretty(plan)
            .map_err(|e| RunnerError::Launch(format!("failed to encode the launch plan: {e}")))?;
        if fs::read(&plan_path).is_ok_and(|old| old == json) {
            return Ok(plan_path);
        }
        fs::write(&plan_path, json)
            .map_err(|e| RunnerError::Io(format!("failed to write {}: {e}", plan_path.display())))?;
        Ok(plan_path)
    }

    /// Writes the plan and asks the spawner to start the launcher with the caller's stdio; does not
    /// wait for it. Without a spawner (or when it cannot be reached) the launcher is to be exec'd
    /// instead, by [`ExecLaunch::wait`] on a thread that may block.
    pub(super) fn start(
        &self,
        plan: &LaunchPlan,
        cdir: &Path,
        stdio: CallerStdio,
        held: Held,
    ) -> Result<Started, RunnerError> {
        let plan_path = self.write_plan(plan, cdir)?;
        if let Some(socket) = &self.spawner {
            let fds = [stdio.stdin.as_fd(), stdio.stdout.as_fd(), stdio.stderr.as_fd()];
            match spawner::send_attached(socket, &plan_path, fds) {
                // The launcher gets its own copies; ours must not hold the caller's terminal.
                Ok(conn) => return Ok(Started::Spawned(Foreground { conn, _held: held })),
                Err(e) => tracing::warn!(error = %e, "the spawner failed; starting the launcher with exec"),
            }
        }
        Ok(Started::Exec(Box::new(ExecLaunch {
            exe: self.exe.clone(),
            plan: plan.clone(),
            plan_path,
            stdio,
            _held: held,
        })))
    }

    /// Writes the plan, runs the launcher with the caller's stdio, and returns how it ended; for
    /// callers on a thread that may block (builds, uptests).
    pub(super) fn launch(
        &self,
        plan: &LaunchPlan,
        cdir: &Path,
        stdio: CallerStdio,
        watch: &LaunchWatch,
    ) -> Result<ExitStatus, RunnerError> {
        match self.start(plan, cdir, stdio, Held::default())? {
            Started::Spawned(foreground) => foreground.wait_blocking(watch),
            Started::Exec(launch) => launch.wait(watch, &AtomicBool::new(false)),
        }
    }
}

/// What a foreground container holds until it has ended: the proc's busy mark (a run), the
/// sibling dirs it runs in (a shell).
#[derive(Default)]
pub struct Held {
    pub(super) _busy: Option<BusyGuard>,
    pub(super) _sibling: Option<super::Sibling>,
}

/// A foreground container on its way.
pub enum Started {
    /// The spawner is forking its launcher: wait with [`Foreground::wait`].
    Spawned(Foreground),
    /// The launcher is to be exec'd: [`ExecLaunch::wait`] on a thread that may block.
    Exec(Box<ExecLaunch>),
}

/// A launcher forked by the spawner, whose pid and report come on the spawner connection.
pub struct Foreground {
    conn: UnixStream,
    _held: Held,
}

impl Foreground {
    /// Waits for the container's end on the runtime (no thread of its own), publishing the
    /// launcher's pid in `watch` meanwhile; stops the container at once (SIGTERM to the launcher)
    /// when its caller is gone (`abandoned`) before the pid was known.
    pub async fn wait(
        self,
        watch: LaunchWatch,
        abandoned: Arc<AtomicBool>,
    ) -> Result<ExitStatus, RunnerError> {
        use tokio::io::AsyncBufReadExt;
        let io = |e: std::io::Error| RunnerError::Launch(format!("failed to hear from the launcher: {e}"));
        self.conn.set_nonblocking(true).map_err(io)?;
        let conn = tokio::net::UnixStream::from_std(self.conn).map_err(io)?;
        let mut reader = tokio::io::BufReader::new(conn);
        let mut line = String::new();
        reader.read_line(&mut line).await.map_err(io)?;
        let pid = spawner::parse_pid(&line).map_err(RunnerError::Launch)?;
        line.clear();
        publish(&watch, pid, &abandoned);
        let report = reader.read_line(&mut line).await.and_then(|_| spawner::parse_report(&line));
        watch.store(0, Ordering::SeqCst);
        outcome(pid, report)
    }

    /// [`Foreground::wait`] for a thread that may block.
    pub fn wait_blocking(self, watch: &LaunchWatch) -> Result<ExitStatus, RunnerError> {
        let io = |e: std::io::Error| RunnerError::Launch(format!("failed to hear from the launcher: {e}"));
        let mut reader = BufReader::new(&self.conn);
        let mut line = String::new();
        reader.read_line(&mut line).map_err(io)?;
        let pid = spawner::parse_pid(&line).map_err(RunnerError::Launch)?;
        line.clear();
        watch.store(u32::try_from(pid).unwrap_or(0), Ordering::SeqCst);
        let report = reader.read_line(&mut line).and_then(|_| spawner::parse_report(&line));
        watch.store(0, Ordering::SeqCst);
        outcome(pid, report)
    }
}

/// Publishes launcher `pid` in `watch`, then stops it at once (SIGTERM) if its caller is already
/// gone: published first, read second, so whichever of this and the caller's stop
/// (`StopOnDrop`, which signals what `watch` holds) comes last sends it, and none is lost.
fn publish(watch: &LaunchWatch, pid: i32, abandoned: &AtomicBool) {
    watch.store(u32::try_from(pid).unwrap_or(0), Ordering::SeqCst);
    if abandoned.load(Ordering::SeqCst) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    }
}

/// How the container of launcher `pid` ended, from its report.
fn outcome(pid: i32, report: std::io::Result<Option<ExitStatus>>) -> Result<ExitStatus, RunnerError> {
    match report {
        Ok(Some(status)) => Ok(status),
        Ok(None) => Err(RunnerError::Launch(format!(
            "the launcher (pid {pid}) ended without saying how the container ended: it was killed"
        ))),
        Err(e) => Err(RunnerError::Launch(format!("failed to hear from the launcher (pid {pid}): {e}"))),
    }
}

/// A launcher to exec from the sealed copy of vrd (no spawner).
pub struct ExecLaunch {
    exe: PathBuf,
    plan: LaunchPlan,
    plan_path: PathBuf,
    stdio: CallerStdio,
    _held: Held,
}

impl ExecLaunch {
    /// Execs `vrd init`, waits for it, and reads status.json; blocks. A launcher whose caller is
    /// gone (`abandoned`) before its pid was published is stopped at once, as with the spawner.
    pub fn wait(self, watch: &LaunchWatch, abandoned: &AtomicBool) -> Result<ExitStatus, RunnerError> {
        let (plan, stdio) = (&self.plan, self.stdio);
        let _ = fs::remove_file(&plan.status_path);
        let mut child = Command::new(&self.exe)
            .arg0("vrd")
            .arg("init")
            .arg("--plan")
            .arg(&self.plan_path)
            .stdin(Stdio::from(stdio.stdin))
            .stdout(Stdio::from(stdio.stdout))
            .stderr(Stdio::from(stdio.stderr))
            .env_clear()
            .spawn()
            .map_err(|e| {
                RunnerError::Launch(format!("failed to start the launcher {}: {e}", self.exe.display()))
            })?;
        publish(watch, child.id() as i32, abandoned);
        let code = child.wait();
        watch.store(0, Ordering::SeqCst);
        let code = code.map_err(|e| RunnerError::Launch(format!("failed to wait for the launcher: {e}")))?;
        let text = fs::read(&plan.status_path).map_err(|e| {
            RunnerError::Launch(format!(
                "the launcher ended ({code}) without recording how the container ended in {}: {e}",
                plan.status_path.display()
            ))
        })?;
        serde_json::from_slice(&text)
            .map_err(|e| RunnerError::Launch(format!("failed to read {}: {e}", plan.status_path.display())))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    fn sleeper() -> std::process::Child {
        Command::new("sleep").arg("30").spawn().unwrap()
    }

    #[test]
    fn a_launcher_published_after_its_caller_left_is_stopped_at_once() {
        let (watch, abandoned) = (LaunchWatch::default(), AtomicBool::new(true));
        let mut child = sleeper();
        publish(&watch, child.id() as i32, &abandoned);
        assert_eq!(watch.load(Ordering::SeqCst), child.id(), "published for a later stop");
        assert_eq!(child.wait().unwrap().signal(), Some(nix::sys::signal::Signal::SIGTERM as i32));
    }

    #[test]
    fn a_launcher_whose_caller_is_there_is_only_published() {
        let (watch, abandoned) = (LaunchWatch::default(), AtomicBool::new(false));
        let mut child = sleeper();
        publish(&watch, child.id() as i32, &abandoned);
        assert_eq!(child.try_wait().unwrap(), None, "still running");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
