//! One stack image as vrd's state keeps it (`vr stacks build`): which stack it belongs to, how its
//! build ended, where its tarball and build log are kept, and whether it is the stack's active image.

use serde::{Deserialize, Serialize};

/// One image of a stack. Statuses are the builds' ([`super::build_record::STARTED`], ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Increasing id, given by the database.
    pub id: u64,
    /// The stack.
    pub stack: String,
    /// `<stack>-<n>`: its name in procs' image cache, unique.
    pub name: String,
    /// started, succeeded or failed.
    pub status: String,
    /// Why a failed build failed.
    pub error: Option<String>,
    /// The tarball's md5 (procs check it; releases hash it).
    pub md5: Option<String>,
    /// The tarball's sha256: its address in the store, until gc removes it.
    pub artifact: Option<String>,
    /// Where procs fetch it: its path in the store, until gc removes it.
    pub url: Option<String>,
    /// The kept build log, until gc removes it.
    pub log_path: Option<String>,
    /// Whether apps of the stack build and run on it now (one per stack at most).
    pub active: bool,
    /// When its build started, in unix seconds.
    pub created: i64,
    /// When its build ended, in unix seconds.
    pub ended: Option<i64>,
    /// When gc removed its tarball and log, in unix seconds.
    pub collected: Option<i64>,
}
