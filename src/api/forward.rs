//! A call one coordinator forwards to another (issue 15): a standby hands a leader's duty (a
//! dispatch, a build) to the leader over their peer ports, as the caller who made it. The leader
//! checks the caller's role again and audits the call as that caller, naming the coordinator it
//! came through.

use serde::{Deserialize, Serialize};

use super::{ApiError, Role};

/// Who made a forwarded call, as the coordinator it reached first saw them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// User id on that coordinator (nobody for a user over HTTPS).
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Process id, when known.
    pub pid: Option<i32>,
    /// What they may do.
    pub role: Role,
    /// The user, over HTTPS.
    pub user: Option<String>,
}

/// A call forwarded to the leader: the operation's method and its parameters, as the API names
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedCall {
    /// Who made it.
    pub caller: Caller,
    /// The API method (`swarms.dispatch`, ...).
    pub method: String,
    /// Its parameters by name.
    pub params: serde_json::Value,
}

/// The leader's answer: the operation's result, or its error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardedAnswer {
    /// The result, as the API serializes it.
    Ok(serde_json::Value),
    /// The operation's error.
    Err(ApiError),
}
