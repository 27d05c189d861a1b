//! The daemon's settings: paths are injected (never hard-coded elsewhere), so tests and several
//! daemons side by side use their own directories.

use std::path::PathBuf;

/// The default data dir (images, builds, procs, state).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/vrd";
/// The default run dir (socket, locks).
pub const DEFAULT_RUN_DIR: &str = "/run/vrd";
/// The default API socket.
pub const DEFAULT_SOCKET: &str = "/run/vrd/vrd.sock";
/// Where the cgroup file systems are mounted.
pub const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The cgroup under which this daemon's containers live.
pub const DEFAULT_CGROUP_PARENT: &str = "vrd";
/// The client's environment variable naming the socket.
pub const SOCKET_ENV: &str = "VR_SOCKET";

/// Everything the daemon needs to know to start.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Images, builds, procs.
    pub data_dir: PathBuf,
    /// Runtime files.
    pub run_dir: PathBuf,
    /// The API socket.
    pub socket: PathBuf,
    /// The cgroup root.
    pub cgroup_root: PathBuf,
    /// The cgroup parent of every container.
    pub cgroup_parent: String,
    /// The group that may use the socket (mode 0660); root only when `None`.
    pub socket_gid: Option<u32>,
}
