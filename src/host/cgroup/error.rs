//! `CgroupError`, the one error type of `host::cgroup`: each variant names the cgroup, file or
//! directory involved, and the ones a user sees say what to do next.

use std::path::PathBuf;
use std::time::Duration;

use cgroups_rs::fs::error::Error as CrateError;

/// Why a cgroup operation failed. Paths name the exact cgroup file or directory involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// `statfs` on the cgroup root failed.
    #[error("failed to detect the cgroup version at {path}: check that cgroupfs is mounted there or configure another cgroup root")]
    Detect {
        /// The root that was examined.
        path: PathBuf,
        /// The `statfs(2)` error.
        #[source]
        source: nix::Error,
    },
    /// A v1 root holds no hierarchy directories.
    #[error("failed to find cgroup v1 hierarchies under {root}: mount the cgroup controllers there or configure another cgroup root")]
    NoHierarchies {
        /// The root that was searched.
        root: PathBuf,
    },
    /// The cgroup name could escape the root or is not a path.
    #[error("failed to use cgroup name '{name}': {reason}")]
    InvalidName {
        /// The refused name.
        name: String,
        /// What is wrong with it, and what to write instead.
        reason: &'static str,
    },
    /// The limits contradict themselves or the kernel's accepted ranges.
    #[error("failed to apply limits to cgroup {name}: {reason}")]
    InvalidLimits {
        /// The cgroup the limits were meant for.
        name: String,
        /// What is wrong, and the fix.
        reason: String,
    },
    /// The cgroup to create is already there (a leftover of an earlier run).
    #[error("failed to create cgroup {name}: {path} already exists; destroy the leftover (vrd sweeps strays at startup) or use a new name")]
    AlreadyExists {
        /// The cgroup name.
        name: String,
        /// The existing directory.
        path: PathBuf,
    },
    /// The cgroup to load is in no hierarchy.
    #[error("failed to load cgroup {name}: it does not exist under {root}; it was destroyed or never created, so create it instead")]
    NotFound {
        /// The cgroup name.
        name: String,
        /// The root that was searched.
        root: PathBuf,
    },
    /// A limit needs a controller the host does not offer to this cgroup.
    #[error("failed to apply limits to cgroup {name}: the {controller} controller is not available; mount it (v1) or enable it above the cgroup root (v2), or drop that limit")]
    ControllerMissing {
        /// The missing controller.
        controller: &'static str,
        /// The cgroup name.
        name: String,
    },
    /// memsw was asked for, but the kernel does not account swap.
    #[error("failed to set the memory+swap limit: {path} is missing because the kernel does not account swap; boot with swapaccount=1 (v1) or a kernel with memory.swap support (v2), or drop memsw from the limits")]
    NoSwapAccounting {
        /// The swap limit file that is missing.
        path: PathBuf,
    },
    /// Reading, listing or creating a cgroup file or directory failed.
    #[error("failed to {action} {path}")]
    Io {
        /// What was being done: read, list, create.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Writing a value to a cgroup file failed.
    #[error("failed to write '{value}' to {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The value that was refused.
        value: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `rmdir` of a cgroup directory failed.
    #[error("failed to remove cgroup {path}: tasks or child cgroups may remain in it; kill them and retry")]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A cgroups-rs operation on one file failed.
    #[error("failed to {action} {path}")]
    Crate {
        /// What was being done.
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The cgroups-rs error.
        #[source]
        source: CrateError,
    },
    /// cgroups-rs failed to create the cgroup in some hierarchy.
    #[error("failed to create cgroup {name}: check that vrd runs as root and the cgroup root is writable")]
    Create {
        /// The cgroup name.
        name: String,
        /// The cgroups-rs error.
        #[source]
        source: CrateError,
    },
    /// Moving a process into the cgroup failed.
    #[error("failed to add pid {pid} to cgroup {name}: check that the process is still alive")]
    AddPid {
        /// The process.
        pid: i32,
        /// The cgroup name.
        name: String,
        /// The cgroups-rs error.
        #[source]
        source: CrateError,
    },
    /// A pid that no process can have.
    #[error("failed to add pid {pid} to cgroup {name}: not a process id")]
    InvalidPid {
        /// The refused value.
        pid: i32,
        /// The cgroup name.
        name: String,
    },
    /// A cgroup file did not hold what the kernel documents.
    #[error("failed to parse {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was unexpected.
        reason: String,
    },
    /// Sending a signal to a member of the cgroup failed (other than it having exited).
    #[error("failed to signal pid {pid} in cgroup {name}")]
    Signal {
        /// The process.
        pid: i32,
        /// The cgroup name.
        name: String,
        /// The `kill(2)` error.
        #[source]
        source: nix::Error,
    },
    /// Killed tasks did not leave the cgroup in time.
    #[error("failed to empty cgroup {name} within {timeout:?}: pids {remaining:?} remain, probably stuck in uninterruptible sleep; retry the destroy later")]
    KillTimeout {
        /// The cgroup name.
        name: String,
        /// How long was waited.
        timeout: Duration,
        /// The pids still in the cgroup.
        remaining: Vec<i32>,
    },
    /// Creating failed, and removing the half-made cgroup failed too.
    #[error("{error}; cleaning up also failed: {rollback}")]
    RollbackFailed {
        /// Why the creation failed.
        error: Box<CgroupError>,
        /// Why the cleanup failed.
        rollback: Box<CgroupError>,
    },
}
