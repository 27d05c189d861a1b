//! A leader's duties asked of a standby (issue 15): the standby forwards the call to the leader
//! over their peer ports, as the caller who made it, and answers with the leader's answer; the
//! leader checks the caller's role again and audits the call, naming the coordinator it came
//! through. A caller never has to know which coordinator leads.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::access::{self, Principal};
use super::error::{error, OpResult};
use super::Ops;
use crate::api::forward::{ForwardedAnswer, ForwardedCall};
use crate::api::{codes, ApiError, SwarmChanges};

/// A call of a leader's duty, with its arguments: what a standby forwards. Serialized as the API
/// names it (`{"method": "swarms.dispatch", "params": {...}}`), which is also what the audit log
/// records of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", content = "params", deny_unknown_fields)]
pub(super) enum Duty {
    /// `swarms.dispatch`.
    #[serde(rename = "swarms.dispatch")]
    Dispatch { filter: String, changes: SwarmChanges, exclude: Option<String>, rebuild: bool },
    /// `swarms.rollback`.
    #[serde(rename = "swarms.rollback")]
    Rollback { swarm: String, number: Option<u64> },
    /// `apps.build`.
    #[serde(rename = "apps.build")]
    AppBuild { app: String, version: String },
    /// `stacks.build`.
    #[serde(rename = "stacks.build")]
    StackBuild { stack: String },
    /// `hosts.drain`.
    #[serde(rename = "hosts.drain")]
    Drain { name: String },
}

impl Duty {
    /// The API method and its parameters.
    fn call(&self) -> (String, Value) {
        let mut whole = serde_json::to_value(self).unwrap_or_default();
        let method = whole["method"].as_str().unwrap_or_default().to_string();
        (method, whole["params"].take())
    }
}

impl Ops {
    /// Runs `work` here when this coordinator leads (or is the only one); on a standby, forwards
    /// `duty` to the leader as `who`. A caller refused here is refused (and audited) here; one the
    /// leader runs is audited there.
    pub(super) async fn leader_duty<T: DeserializeOwned>(
        &self,
        who: &Principal,
        duty: Duty,
        work: impl std::future::Future<Output = OpResult<T>>,
    ) -> OpResult<T> {
        let (method, params) = duty.call();
        let forwardable = self.daemon.fleet.coordinator.is_some() && who.through.is_none();
        if self.daemon.leadership.leads() || !forwardable || access::authorize(who, &method).is_err() {
            return self.audited(who, &method, params, work).await;
        }
        match self.forward(who, &method, params.clone()).await {
            Ok(ForwardedAnswer::Ok(value)) => serde_json::from_value(value).map_err(|e| {
                error(codes::INTERNAL, format!("the leader's answer to {method} is not one vr reads: {e}"))
            }),
            Ok(ForwardedAnswer::Err(e)) => Err(e),
            // The leader was not reached: nothing ran there, so the refusal is audited here.
            Err(e) => self.audited(who, &method, params, async { Err(e) }).await,
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
        let call = serde_json::json!({ "method": method, "params": params });
        let duty: Duty = serde_json::from_value(call).map_err(|e| {
            error(codes::INVALID, format!("a forwarded {method} is not a leader's duty vr reads: {e}"))
        })?;
        fn answer<T: serde::Serialize>(result: OpResult<T>) -> OpResult<Value> {
            result.and_then(|v| {
                serde_json::to_value(v)
                    .map_err(|e| error(codes::INTERNAL, format!("an answer vr cannot send: {e}")))
            })
        }
        match duty {
            Duty::Dispatch { filter, changes, exclude, rebuild } => {
                answer(self.swarms_dispatch(who, filter, changes, exclude, rebuild).await)
            }
            Duty::Rollback { swarm, number } => answer(self.swarms_rollback(who, swarm, number).await),
            Duty::AppBuild { app, version } => answer(self.apps_build(who, app, version).await),
            Duty::StackBuild { stack } => answer(self.stacks_build(who, stack).await),
            Duty::Drain { name } => answer(self.hosts_drain(who, name).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duty_travels_as_the_api_names_it_and_nothing_else_is_read_as_one() {
        let duty = Duty::Rollback { swarm: "s".into(), number: Some(3) };
        let (method, params) = duty.call();
        assert_eq!(
            (method.as_str(), params.clone()),
            ("swarms.rollback", serde_json::json!({"swarm": "s", "number": 3}))
        );
        let back: Duty =
            serde_json::from_value(serde_json::json!({ "method": method, "params": params })).unwrap();
        assert_eq!(back, duty);
        for refused in [
            serde_json::json!({ "method": "users.create", "params": { "name": "x" } }),
            serde_json::json!({ "method": "hosts.drain", "params": { "name": "h", "extra": 1 } }),
            serde_json::json!({ "method": "apps.build", "params": { "app": "a" } }),
        ] {
            assert!(serde_json::from_value::<Duty>(refused.clone()).is_err(), "{refused}");
        }
    }
}
