//! What only v1 does differently: OOM counters in `memory.oom_control`, and killing a cgroup with
//! the freezer because v1 has no `cgroup.kill`.

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use cgroups_rs::fs::error::Error as CrateError;
use cgroups_rs::fs::freezer::FreezerController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::{Cgroup, Controller};
use cgroups_rs::FreezerState;
use nix::sys::signal::Signal;

use super::{files, CgroupError, ProcCgroup};

/// How long to wait for the freezer to report FROZEN before killing anyway. A task in
/// uninterruptible sleep can hold a v1 cgroup in FREEZING indefinitely; SIGKILL still lands once it
/// wakes, so a stuck freeze only costs the guarantee against forks racing the kill.
const FREEZE_WAIT: Duration = Duration::from_millis(500);
const POLL: Duration = Duration::from_millis(10);

/// The `oom_kill` count of `memory.oom_control` (kernels since 4.13 report it).
pub(super) fn oom_kills(cg: &Cgroup, name: &str) -> Result<u64, CgroupError> {
    let mem: &MemController = cg
        .controller_of()
        .ok_or_else(|| CgroupError::ControllerMissing { controller: "memory", name: name.to_string() })?;
    let path = mem.path().join("memory.oom_control");
    let text = files::read(&path)?;
    files::keyed_value(&path, &text, "oom_kill")?.ok_or_else(|| CgroupError::Parse {
        path,
        reason: "no oom_kill line; the kernel is older than 4.13, which does not count OOM kills".to_string(),
    })
}

/// The memory hierarchy files for usage and peak on v1.
pub(super) fn memory_files(cg: &Cgroup) -> Option<(PathBuf, PathBuf)> {
    let mem: &MemController = cg.controller_of()?;
    Some((mem.path().join("memory.usage_in_bytes"), mem.path().join("memory.max_usage_in_bytes")))
}

/// Freezes the cgroup (if a freezer hierarchy exists), SIGKILLs every task, and thaws so the
/// signals are delivered. Freezing first means no task can fork a new one between reading
/// `cgroup.procs` and the kill.
pub(super) fn freeze_and_kill(pc: &ProcCgroup, deadline: Instant) -> Result<(), CgroupError> {
    let freezer: Option<&FreezerController> = pc.cg.controller_of();
    let freezer = freezer.filter(|f| f.path().exists());
    if let Some(f) = freezer {
        f.freeze().map_err(|e| freezer_err(f.path(), "freeze", e))?;
        let until = deadline.min(Instant::now() + FREEZE_WAIT);
        while !matches!(f.state(), Ok(FreezerState::Frozen)) && Instant::now() < until {
            sleep(POLL);
        }
    }
    let killed = pc.signal_all(Signal::SIGKILL);
    if let Some(f) = freezer {
        // Thaw even when the kill failed, or the tasks stay frozen for good.
        f.thaw().map_err(|e| freezer_err(f.path(), "thaw", e))?;
    }
    killed.map(|_| ())
}

fn freezer_err(dir: &Path, action: &'static str, source: CrateError) -> CgroupError {
    CgroupError::Crate { action, path: dir.join("freezer.state"), source }
}
