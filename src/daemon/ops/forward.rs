//! A leader's duties asked of a standby (issue 15): the standby forwards the call to the leader
//! over their peer ports, as the caller who made it, and answers with the leader's answer; the
//! leader checks the caller's role again and audits the call, naming the coordinator it came
//! through. A caller never has to know which coordinator leads.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::access::{self, Principal};
use super::error::{error, OpResult};
use super::Ops;
use crate::api::forward::{ForwardedAnswer, ForwardedCall};
use crate::api::{codes, ApiError, SwarmChanges};

/// The operations that are a leader's duty, forwarded by a standby. Their audit parameters are
/// their whole arguments, which the leader reads back (`run_forwarded`).
pub(super) const FORWARDED: &[&str] =
    &["swarms.dispatch", "swarms.rollback", "apps.build", "stacks.build", "hosts.drain"];

impl Ops {
    /// Runs `work` here when this coordinator leads (or is the only one); on a standby, forwards
    /// `method` with `params` to the leader as `who`. A caller refused here is refused (and
    /// audited) here; one the leader runs is audited there.
    pub(super) async fn leader_duty<T: DeserializeOwned>(
        &self,
        who: &Principal,
        method: &str,
        params: Value,
        work: impl std::future::Future<Output = OpResult<T>>,
    ) -> OpResult<T> {
        debug_assert!(FORWARDED.contains(&method), "{method} is not in FORWARDED");
        let forwardable = self.daemon.fleet.coordinator.is_some() && who.through.is_none();
        if self.daemon.leadership.leads() || !forwardable || access::authorize(who, method).is_err() {
            return self.audited(who, method, params, work).await;
        }
        match self.forward(who, method, params.clone()).await {
            Ok(ForwardedAnswer::Ok(value)) => serde_json::from_value(value).map_err(|e| {
                error(codes::INTERNAL, format!("the leader's answer to {method} is not one vr reads: {e}"))
            }),
            Ok(ForwardedAnswer::Err(e)) => Err(e),
            // The leader was not reached: nothing ran there, so the refusal is audited here.
            Err(e) => self.audited(who, method, params, async { Err(e) }).await,
        }
    }

    /// Sends `method` to the coordinator the lease names.
    async fn forward(
        &self,
        who: &Principal,
        method: &str,
        params: Value,
    ) -> Result<ForwardedAnswer, ApiError> {
        let Some(coordinator) = &self.daemon.fleet.coordinator else {
            return Err(error(
                codes::NOT_LEADER,
                "this coordinator is a standby and has no peer port to reach the leader",
            ));
        };
        let state = self.daemon.supervisor.state();
        let held = state.lease_holder().await.map_err(super::error::state_error)?;
        let Some(leader) = held.filter(|h| h.expires_in_ms > 0 && h.holder != self.daemon.host) else {
            return Err(error(
                codes::NOT_LEADER,
                "this coordinator is a standby and no coordinator leads right now (the last leader's lease ran out): try again in a few seconds",
            ));
        };
        let Some(address) = leader.address else {
            return Err(error(
                codes::NOT_LEADER,
                format!(
                    "this coordinator is a standby, and the leader {} gave no peer address to forward {method} to: set its peer_advertise, or call it there",
                    leader.holder
                ),
            ));
        };
        let call = ForwardedCall { caller: who.caller(), method: method.to_string(), params };
        coordinator.client.forward(&address, &call).await.map_err(|e| {
            error(
                codes::NOT_LEADER,
                format!("this coordinator is a standby and could not reach the leader {} at {address} to run {method}: {e}", leader.holder),
            )
        })
    }

    /// On a standby, what a follower of the leader's `what` (a log the leader writes) is told
    /// when the file is not on this machine: where it is and how to read it there.
    pub(super) fn log_elsewhere(&self, what: &str, command: &str) -> Option<String> {
        (!self.daemon.leadership.leads()).then(|| {
            format!("vr: {what} is kept on the coordinator that leads (see `vr hosts leader`); this one is a standby. Run `{command}` there to read it; this stream ends when the work does.")
        })
    }

    /// On the leader: runs a call a standby forwarded, as its caller.
    pub async fn forwarded(&self, from: String, call: ForwardedCall) -> ForwardedAnswer {
        let who = Principal::forwarded(call.caller, from);
        match self.run_forwarded(&who, &call.method, call.params).await {
            Ok(value) => ForwardedAnswer::Ok(value),
            Err(e) => ForwardedAnswer::Err(e),
        }
    }

    async fn run_forwarded(&self, who: &Principal, method: &str, params: Value) -> OpResult<Value> {
        fn read<P: DeserializeOwned>(method: &str, params: Value) -> OpResult<P> {
            serde_json::from_value(params).map_err(|e| {
                error(codes::INVALID, format!("forwarded {method}: its parameters are not right: {e}"))
            })
        }
        fn answer<T: serde::Serialize>(result: OpResult<T>) -> OpResult<Value> {
            result.and_then(|v| {
                serde_json::to_value(v)
                    .map_err(|e| error(codes::INTERNAL, format!("an answer vr cannot send: {e}")))
            })
        }
        match method {
            "swarms.dispatch" => {
                let p: Dispatch = read(method, params)?;
                answer(self.swarms_dispatch(who, p.filter, p.changes, p.exclude, p.rebuild).await)
            }
            "swarms.rollback" => {
                let p: Rollback = read(method, params)?;
                answer(self.swarms_rollback(who, p.swarm, p.number).await)
            }
            "apps.build" => {
                let p: AppBuild = read(method, params)?;
                answer(self.apps_build(who, p.app, p.version).await)
            }
            "stacks.build" => {
                let p: StackBuild = read(method, params)?;
                answer(self.stacks_build(who, p.stack).await)
            }
            "hosts.drain" => {
                let p: Drain = read(method, params)?;
                answer(self.hosts_drain(who, p.name).await)
            }
            other => Err(error(
                codes::INVALID,
                format!("{other} is not forwarded between coordinators: call it on any coordinator"),
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Dispatch {
    filter: String,
    changes: SwarmChanges,
    exclude: Option<String>,
    rebuild: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rollback {
    swarm: String,
    number: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppBuild {
    app: String,
    version: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StackBuild {
    stack: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Drain {
    name: String,
}
