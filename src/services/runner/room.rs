//! What the host keeps back from its procs: room on the data dir's file system (no new work starts
//! while it is short, so one app that fills the disk cannot make every later deploy, build and
//! audit entry fail) and a memory limit for procs that name none.

use super::{Runner, RunnerError};
pub use crate::model::limits::HostLimits;

/// Free bytes (for unprivileged users too: root's reserve does not count) on `path`'s file system.
fn free_bytes(path: &std::path::Path) -> Result<u64, String> {
    let stat =
        nix::sys::statvfs::statvfs(path).map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
    Ok(stat.blocks_available().saturating_mul(stat.fragment_size()))
}

fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

impl Runner {
    /// Refuses `what` (a deploy, a build, a fetch) while the data dir's file system has less free
    /// than `min_free_disk`; the error says how much there is and what to free.
    pub fn room_for(&self, what: &str) -> Result<(), RunnerError> {
        let dir = &self.layout.data_dir;
        let free = free_bytes(dir).map_err(RunnerError::Io)?;
        let needed = self.limits.min_free_disk;
        if free >= needed {
            return Ok(());
        }
        Err(RunnerError::NoRoom(format!(
            "refusing {what}: the file system of {} has {} MiB free, less than the {} MiB vrd keeps \
             free (config min_free_disk); free space first (vr builds gc, vr scoop, or a proc filling \
             its volume or root)",
            dir.display(),
            mib(free),
            mib(needed)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_measured_on_the_paths_file_system() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert!(free_bytes(&dir.path().join("missing")).is_err());
    }
}
