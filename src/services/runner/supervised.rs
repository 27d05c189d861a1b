//! The runner's side of supervision: start a proc's launcher detached (it outlives vrd), and read
//! back what it recorded. The supervisor decides when; this file only does.

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::layout::ProcDir;
use super::{Mode, Runner, RunnerError};
use crate::host::cgroup::{CgroupRoot, ProcCgroup};
use crate::host::container::launcher::app_pid_path;
use crate::host::container::spawner;
use crate::model::exit::ExitStatus;
use crate::model::proc_data::ProcSpec;

/// A launcher that was started detached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launched {
    /// The launcher's pid.
    pub pid: i32,
    /// Its start time (clock ticks since boot), to tell it from a later process with its pid.
    pub start_ticks: u64,
}

pub use crate::host::procfs::start_ticks;

/// Whether the launcher recorded as `launched` is still that same, living process.
pub fn is_alive(launched: Launched) -> bool {
    start_ticks(launched.pid) == Some(launched.start_ticks)
}

impl Runner {
    /// Starts the proc's launcher detached; returns once the launcher runs (the container's own
    /// start is then the launcher's business, and its outcome lands in status.json).
    pub fn launch_detached(&self, spec: &ProcSpec, stop_grace: Duration) -> Result<Launched, RunnerError> {
        let dir = self.set_up_dir(spec)?;
        let mut plan = self.plan(spec, &dir, dir.path(), Mode::Run)?;
        plan.stop_grace_secs = stop_grace.as_secs();
        let plan_path = self.write_plan(&plan, dir.path())?;
        // The supervisor reads both once the launcher is gone: nothing may be left of a run before.
        let _ = fs::remove_file(&plan.status_path);
        let _ = fs::remove_file(app_pid_path(&plan));
        let spawned = self.spawner.as_deref().map(|socket| spawner::request(socket, &plan_path));
        let pid = match spawned {
            Some(Ok(pid)) => pid,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "the spawner failed; starting the launcher with exec");
                self.exec_detached(&plan_path)?
            }
            None => self.exec_detached(&plan_path)?,
        };
        Ok(Launched { pid, start_ticks: start_ticks(pid).unwrap_or(0) })
    }

    /// Starts `vrd init --detach` and reads the launcher's pid from it.
    fn exec_detached(&self, plan_path: &std::path::Path) -> Result<i32, RunnerError> {
        let out = Command::new(&self.exe)
            .arg0("vrd")
            .args(["init", "--detach", "--plan"])
            .arg(plan_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_clear()
            .output()
            .map_err(|e| {
                RunnerError::Launch(format!("failed to start the launcher {}: {e}", self.exe.display()))
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim().parse().map_err(|_| {
            RunnerError::Launch(format!(
                "the launcher did not start: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        })
    }

    /// How the proc's last container ended, if its launcher recorded it.
    pub fn last_exit(&self, spec: &ProcSpec) -> Option<ExitStatus> {
        let dir = ProcDir(self.layout.proc_dir(&spec.name));
        serde_json::from_slice(&fs::read(dir.join("status.json")).ok()?).ok()
    }

    /// The container's pid 1 as the host sees it, once the launcher has recorded it.
    pub fn app_pid(&self, spec: &ProcSpec) -> Option<i32> {
        let dir = ProcDir(self.layout.proc_dir(&spec.name));
        fs::read_to_string(dir.join("app.pid")).ok()?.trim().parse().ok()
    }

    /// Removes the proc's cgroup when its launcher could not (it was killed): kills what is left.
    pub fn remove_cgroup(&self, spec: &ProcSpec) -> Result<(), RunnerError> {
        let root = CgroupRoot::detect(&self.cgroup_root).map_err(|e| RunnerError::Io(e.to_string()))?;
        match ProcCgroup::load(&root, &format!("{}/{}", self.cgroup_parent, spec.name)) {
            Ok(cgroup) => cgroup.destroy().map_err(|e| RunnerError::Io(e.to_string())),
            Err(_) => Ok(()),
        }
    }
}
