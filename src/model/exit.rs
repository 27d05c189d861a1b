//! How a container ended: what the launcher records and the runner reports.

use serde::{Deserialize, Serialize};

/// How a container ended, as the launcher records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code a shell would report: the app's code, or 128 + signal.
    pub code: i32,
    /// The signal that killed the app, if one did.
    pub signal: Option<i32>,
    /// The kernel's OOM killer killed a process of the container.
    pub oom_killed: bool,
    /// The container never started (setup failed); `code` is then 125.
    pub setup_failed: bool,
    /// Why setup failed, when it did.
    pub error: Option<String>,
}
