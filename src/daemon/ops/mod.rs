//! The operations layer: every API operation, implemented once and transport-neutral. A transport
//! (the Unix socket's JSON-RPC in `rpc.rs` today; the HTTP API next) turns its request into a
//! [`Principal`] and the operation's typed arguments, calls the one method of [`Ops`] named after
//! the operation (`calls.rs`), and turns the [`ApiError`] or [`feed::Feed`] it gets back into its own
//! wire form. Authorisation ([`access`]) and the audit log happen here, in [`Ops::audited`] and
//! [`Ops::read`], so no transport can skip them.
//!
//! The operations' bodies live by subject: `runner.rs` (VR's runner contract), `procs.rs`
//! (supervision, logs, events), `imager.rs`, `builder.rs`, `builds.rs`, `deploy.rs`
//! (definitions, swarms, releases, the deployment log), `stacks.rs`, `fleet.rs` (hosts).

pub mod access;
mod attach;
mod builder;
mod builds;
mod calls;
mod deploy;
pub mod error;
pub mod feed;
mod fleet;
mod follow;
mod forward;
mod imager;
mod privilege;
mod procs;
mod runner;
mod stacks;
mod users;

use std::sync::Arc;

pub use access::{Principal, Role, Via};
pub use attach::ReceivedFds;
pub use error::OpResult;

use super::Daemon;
use crate::api::ApiError;
use crate::services::state::AuditEntry;

/// The operations, over the daemon's services.
#[derive(Clone)]
pub struct Ops {
    daemon: Arc<Daemon>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Ops {
    /// The operations of `daemon`.
    pub fn new(daemon: Arc<Daemon>) -> Ops {
        Ops { daemon }
    }

    /// Runs a reading operation if `who` may.
    async fn read<T>(
        &self,
        who: &Principal,
        method: &str,
        call: impl std::future::Future<Output = OpResult<T>>,
    ) -> OpResult<T> {
        access::authorize(who, method)?;
        let result = call.await;
        if let Err(e) = &result {
            log_failure(method, e);
        }
        result
    }

    /// Runs a mutating operation if `who` may, and writes who did it, with what, and how it ended
    /// (with the error's causes) to the audit log; a refusal is audited too.
    async fn audited<T>(
        &self,
        who: &Principal,
        method: &str,
        params: serde_json::Value,
        call: impl std::future::Future<Output = OpResult<T>>,
    ) -> OpResult<T> {
        let result = match access::authorize(who, method).and_then(|()| self.room_for(method)) {
            Ok(()) => call.await,
            Err(refused) => Err(refused),
        };
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => {
                log_failure(method, e);
                e.full()
            }
        };
        let params = match (&who.through, params) {
            (Some(through), serde_json::Value::Object(mut fields)) => {
                fields.insert("forwarded_by".into(), through.as_str().into());
                serde_json::Value::Object(fields)
            }
            (_, params) => params,
        };
        log_call(who, method, &params, &outcome);
        let entry = AuditEntry {
            id: 0,
            time: now_ms(),
            uid: who.uid,
            gid: who.gid,
            pid: who.pid,
            user: who.user.clone(),
            method: method.to_string(),
            params: params.to_string(),
            outcome,
        };
        // Queued, not awaited: the answer need not wait for the disk, and the next call sees it.
        if let Err(e) = self.daemon.supervisor.state().queue_audit(entry).await {
            tracing::error!(error = %ApiError::caused(crate::api::codes::STATE, &e).full(), method, "failed to write the audit log");
        }
        result
    }
}

/// The operations that start new work on this host's disk (a proc set up, a build, an image, a
/// deploy): refused while the data dir's file system is short of room.
const NEEDS_ROOM: &[&str] = &[
    "runner.setup",
    "runner.run",
    "proc.deploy",
    "imager.build",
    "builder.build",
    "swarms.dispatch",
    "releases.deploy",
    "apps.build",
    "stacks.build",
];

impl Ops {
    fn room_for(&self, method: &str) -> Result<(), ApiError> {
        if !NEEDS_ROOM.contains(&method) {
            return Ok(());
        }
        self.daemon.runner.room_for(method).map_err(error::runner_error)
    }
}

/// Failures of the daemon's own (not the caller's) making go to the log with their causes.
/// One line per audited call in vrd's log (the journal's fields PROC or SWARM, and UID, when
/// systemd runs vrd): who changed what, beside the audit log in the database.
fn log_call(who: &Principal, method: &str, params: &serde_json::Value, outcome: &str) {
    let text = |key: &str| params.get(key).and_then(|v| v.as_str());
    match method.split('.').next().unwrap_or_default() {
        "proc" | "procs" if text("name").is_some() => {
            let proc = text("name");
            tracing::info!(uid = who.uid, pid = who.pid, method, proc, outcome, "call")
        }
        "swarms" if text("swarm").or(text("filter")).is_some() => {
            let swarm = text("swarm").or(text("filter"));
            tracing::info!(uid = who.uid, pid = who.pid, method, swarm, outcome, "call")
        }
        _ => tracing::info!(uid = who.uid, pid = who.pid, method, outcome, "call"),
    }
}

fn log_failure(method: &str, e: &ApiError) {
    use crate::api::codes;
    if matches!(e.code, codes::STATE | codes::IO | codes::INTERNAL | codes::HOST) {
        tracing::warn!(method, code = e.code, error = %e.full(), "an operation failed");
    }
}
