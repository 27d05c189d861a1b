//! Starting a foreground container's launcher and hearing how the container ended.
//!
//! With the spawner (the normal case) the launcher is forked, not exec'd (see
//! `host::container::spawner`): vrd sends the plan's path with the caller's stdio, and the launcher
//! answers its pid, then the [`ExitStatus`] as soon as the container and its cgroup are gone. vrd
//! answers its caller then, without waiting for the launcher to exit or reading status.json.
//! Without a spawner (it failed to start or to answer) the launcher is exec'd from the sealed
//! copy of vrd and status.json is read after it exits.

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

use super::{CallerStdio, LaunchWatch, Runner, RunnerError};
use crate::host::container::plan::{ExitStatus, LaunchPlan};
use crate::host::container::spawner::{self, Attached};

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

    /// Writes the plan, runs the launcher with the caller's stdio, and returns how it ended.
    pub(super) fn launch(
        &self,
        plan: &LaunchPlan,
        cdir: &Path,
        stdio: CallerStdio,
        watch: &LaunchWatch,
    ) -> Result<ExitStatus, RunnerError> {
        let plan_path = self.write_plan(plan, cdir)?;
        if let Some(socket) = &self.spawner {
            let fds = [stdio.stdin.as_fd(), stdio.stdout.as_fd(), stdio.stderr.as_fd()];
            match spawner::request_attached(socket, &plan_path, fds) {
                Ok(attached) => {
                    // The launcher has its own copies; ours must not hold the caller's terminal.
                    drop(stdio);
                    return wait_attached(attached, watch);
                }
                Err(e) => tracing::warn!(error = %e, "the spawner failed; starting the launcher with exec"),
            }
        }
        self.launch_exec(plan, &plan_path, stdio, watch)
    }

    /// Execs `vrd init` from the sealed copy, waits for it, and reads status.json.
    fn launch_exec(
        &self,
        plan: &LaunchPlan,
        plan_path: &Path,
        stdio: CallerStdio,
        watch: &LaunchWatch,
    ) -> Result<ExitStatus, RunnerError> {
        let _ = fs::remove_file(&plan.status_path);
        let mut child = Command::new(&self.exe)
            .arg0("vrd")
            .arg("init")
            .arg("--plan")
            .arg(plan_path)
            .stdin(Stdio::from(stdio.stdin))
            .stdout(Stdio::from(stdio.stdout))
            .stderr(Stdio::from(stdio.stderr))
            .env_clear()
            .spawn()
            .map_err(|e| {
                RunnerError::Launch(format!("failed to start the launcher {}: {e}", self.exe.display()))
            })?;
        watch.store(child.id(), Ordering::SeqCst);
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

/// Waits for a forked launcher's report, publishing its pid in `watch` meanwhile.
fn wait_attached(attached: Attached, watch: &LaunchWatch) -> Result<ExitStatus, RunnerError> {
    let pid = attached.pid;
    watch.store(u32::try_from(pid).unwrap_or(0), Ordering::SeqCst);
    let status = attached.wait();
    watch.store(0, Ordering::SeqCst);
    match status {
        Ok(Some(status)) => Ok(status),
        Ok(None) => Err(RunnerError::Launch(format!(
            "the launcher (pid {pid}) ended without saying how the container ended: it was killed"
        ))),
        Err(e) => Err(RunnerError::Launch(format!("failed to hear from the launcher (pid {pid}): {e}"))),
    }
}
