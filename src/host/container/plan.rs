//! The launch plan: everything one container gets, as plain data.
//!
//! The daemon computes a [`LaunchPlan`], writes it next to the proc as JSON, and starts the
//! launcher (`vrd init --plan FILE`), which applies it. Nothing in the plan is decided by the
//! launcher, so tests can check a plan as a value, and a plan on disk says exactly what ran.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::log::Rotation;
use super::passwd::UserIds;
pub use crate::model::exit::ExitStatus;
use crate::model::limits::Limits;

/// One container, fully decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchPlan {
    /// The proc name, for messages.
    pub name: String,
    /// The UTS hostname inside the container.
    pub hostname: String,
    /// The root file system.
    pub rootfs: Overlay,
    /// Host directories bound into the container, checked to exist before anything is mounted.
    pub volumes: Vec<Bind>,
    /// Host files bound read-only for name resolution (/etc/hosts, /etc/resolv.conf).
    pub host_files: Vec<Bind>,
    /// The cgroup and its limits.
    pub cgroup: CgroupPlan,
    /// The ids the process runs as.
    pub user: UserIds,
    /// Capabilities kept (bounding set; also effective and permitted when the user is root).
    pub capabilities: Vec<String>,
    /// The network namespace, if the proc has one of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<crate::host::network::PrivatePlan>,
    /// The seccomp filter installed just before exec.
    #[serde(default)]
    pub seccomp: crate::model::proc_data::Seccomp,
    /// The program and its arguments; `argv[0]` is an absolute path inside the container.
    pub argv: Vec<String>,
    /// The environment handed to `argv[0]` (proc.sh builds the app's own environment).
    pub env: Vec<(String, String)>,
    /// The working directory inside the container.
    pub cwd: String,
    /// How the container's terminal and output are wired.
    pub stdio: StdioPlan,
    /// When the log rotates.
    #[serde(default)]
    pub log_rotation: Rotation,
    /// Seconds between a terminating signal and SIGKILL.
    pub stop_grace_secs: u64,
    /// Where the launcher writes the [`ExitStatus`] as JSON when the container is gone.
    pub status_path: PathBuf,
}

/// An overlay root: read-only shared lowers (first = top), a private upper and work dir. With no
/// lowers the root is the upper dir itself, bound in place and written directly (used to
/// provision a stack image on a writable copy of its base).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overlay {
    /// Lower directories, top first.
    pub lowers: Vec<PathBuf>,
    /// The per-container writable layer.
    pub upper: PathBuf,
    /// overlayfs's work dir, on the same file system as `upper`.
    pub work: PathBuf,
    /// An empty directory the overlay is mounted on.
    pub target: PathBuf,
    /// Whether the overlay stays mounted on `target` in vrd's mount namespace between containers
    /// (a proc's own root, until setup or teardown releases it); otherwise it is mounted inside
    /// each container's mount namespace and goes with it (uptest and shell siblings, builds).
    #[serde(default)]
    pub keep_mounted: bool,
    /// A size-limited tmpfs holding `upper` and `work`, so the container's writes cannot fill the
    /// host's disk; `None`: they live on the data dir's file system.
    #[serde(default)]
    pub rw: Option<RwLayer>,
}

/// The tmpfs a container's writable layer lives on (see [`Overlay::rw`]). Its pages are charged to
/// the container's memory cgroup as it writes them, so its memory limit bounds them too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RwLayer {
    /// Where it is mounted: the parent of `upper` and `work`.
    pub dir: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// A host path bound into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    /// The host path.
    pub outside: PathBuf,
    /// The absolute path inside the container.
    pub inside: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// The container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPlan {
    /// The cgroup file system root, normally /sys/fs/cgroup.
    pub root: PathBuf,
    /// Path of the cgroup below the root, e.g. `vrd/<proc name>`.
    pub name: String,
    /// The limits.
    pub limits: Limits,
}

/// Where output goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StdioPlan {
    /// stdout and stderr through pipes the launcher copies to the log file (timestamped) and to the
    /// launcher's own stdout and stderr; stdin is /dev/null.
    Pipes {
        /// The proc's log file, appended to.
        log: Option<PathBuf>,
    },
    /// An interactive terminal: a pty made inside the container, proxied to the launcher's stdin
    /// and stdout (which are the user's terminal).
    Tty,
}

/// The exit code used when the container could not be set up, as `docker run` uses it.
pub const SETUP_FAILED_CODE: i32 = 125;

/// The capabilities a container keeps: Docker's default set without NET_RAW and MKNOD.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_AUDIT_WRITE",
    "CAP_SETFCAP",
];
