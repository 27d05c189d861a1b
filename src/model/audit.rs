//! The audit log's record of one API call: who, what, when, and how it ended.

use serde::{Deserialize, Serialize};

/// One API call, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Set by the database when appended (ignored by [`State::append_audit`]); increases.
    pub id: u64,
    /// When the call was made, in unix milliseconds.
    pub time: i64,
    /// The caller's uid (from SO_PEERCRED).
    pub uid: u32,
    /// The caller's gid.
    pub gid: u32,
    /// The caller's pid, when known.
    pub pid: Option<i32>,
    /// The user, for a call over the HTTP API (its uid and gid are then nobody's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The method called, e.g. `proc.start`.
    pub method: String,
    /// The call's parameters, as JSON text.
    pub params: String,
    /// `ok`, or the error message the caller got.
    pub outcome: String,
}
