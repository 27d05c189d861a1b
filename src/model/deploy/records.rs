//! The records dispatch keeps, as the state stores them and the API shows them: releases, each
//! swarm's numbered releases, the procs each swarm owns, and the deployment log.

use serde::{Deserialize, Serialize};

/// A stored release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// Its id.
    pub id: u64,
    /// The build.
    pub build: u64,
    /// VR's 8-character hash.
    pub hash: String,
    /// The frozen `ReleaseSpec` as JSON.
    pub spec: serde_json::Value,
    /// When it was made (unix seconds).
    pub created: i64,
}

/// A swarm's release with its number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumberedRelease {
    /// 1, 2, ... per swarm.
    pub number: u64,
    /// When the swarm first used it.
    pub created: i64,
    /// The release.
    pub release: ReleaseRecord,
}

/// A proc a swarm deployed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmProcRecord {
    /// Its host.
    pub host: String,
    /// Its proc name.
    pub proc: String,
    /// The owning swarm.
    pub swarm: String,
    /// Its release.
    pub release: u64,
    /// Its port.
    pub port: u16,
    /// The balancer and pool it was routed to, once it was.
    pub routed: Option<(String, String)>,
}

/// One entry of the deployment log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployLogEntry {
    /// Increasing id.
    pub id: u64,
    /// Unix seconds.
    pub time: i64,
    /// The dispatch's trace id.
    pub trace: String,
    /// The swarm, when there is one.
    pub swarm: Option<String>,
    /// VR's event tags (deploy, uptest, route, failed, done, ...).
    pub tags: Vec<String>,
    /// The message.
    pub message: String,
    /// The build this step started: its compile output can be followed (`builds.follow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<u64>,
}

impl DeployLogEntry {
    /// Whether this entry ends its dispatch (finished or failed).
    pub fn is_last(&self) -> bool {
        self.tags.iter().any(|t| t == "done" || t == "aborted")
    }

    /// Whether it reports a failure.
    pub fn is_failure(&self) -> bool {
        self.tags.iter().any(|t| t == "failed")
    }
}
