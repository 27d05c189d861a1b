//! The composition root: opens the daemon's directories, builds the services, and serves the API on
//! the Unix socket until told to stop. Procs keep running when the daemon stops.

pub mod attach;
pub mod rpc;
pub mod server;

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::DaemonConfig;
use crate::services::runner::layout::Layout;
use crate::services::runner::Runner;

/// The running daemon's shared state.
pub struct Daemon {
    /// The runner service.
    pub runner: Runner,
    /// Foreground `run`s in progress, by proc name.
    pub foreground: std::sync::Mutex<std::collections::HashMap<String, crate::services::runner::LaunchWatch>>,
    /// Keeps the sealed copy of the binary open; `runner.exe` names it through /proc/self/fd.
    _sealed_exe: OwnedFd,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A directory or the socket could not be prepared.
    #[error("failed to {what} {path}: {cause}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
}

impl Daemon {
    /// Prepares the directories and services described by `config`.
    pub fn open(config: &DaemonConfig) -> Result<Arc<Daemon>, DaemonError> {
        for dir in [&config.data_dir, &config.run_dir] {
            fs::create_dir_all(dir).map_err(|cause| DaemonError::Io {
                what: "create",
                path: dir.clone(),
                cause,
            })?;
        }
        let sealed = crate::sys::sealed_copy_of_self().map_err(|cause| DaemonError::Io {
            what: "copy",
            path: "/proc/self/exe".into(),
            cause,
        })?;
        let exe = PathBuf::from(format!("/proc/self/fd/{}", sealed.as_raw_fd()));
        let runner = Runner {
            layout: Layout { data_dir: config.data_dir.clone() },
            exe,
            cgroup_root: config.cgroup_root.clone(),
            cgroup_parent: config.cgroup_parent.clone(),
            locks: Default::default(),
        };
        Ok(Arc::new(Daemon { runner, foreground: Default::default(), _sealed_exe: sealed }))
    }
}
