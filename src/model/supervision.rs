//! The supervisor's vocabulary: a proc's desired state, its supervisord process state, and the
//! proc event Velociraptor published on every state change (VR `proc_publisher`).
//!
//! States keep supervisord's names and numeric codes (supervisord `states.ProcessStates`) because
//! VR clients and dashboards already read them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a stored or sent state name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SupervisionError {
    /// The text names no known state.
    #[error("failed to parse {what} '{value}': expected one of {expected}")]
    Unknown {
        /// Which kind of state.
        what: &'static str,
        /// The refused text.
        value: String,
        /// The accepted names.
        expected: &'static str,
    },
}

/// What the operator wants for a proc; the supervisor works to make [`ProcState`] match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Desired {
    /// Keep it running, restarting it when it exits.
    Running,
    /// Keep it set up but not running.
    Stopped,
    /// Tear it down and forget it.
    Destroyed,
}

const DESIRED_NAMES: &str = "running, stopped, destroyed";

impl Desired {
    /// The stored and wire name: `running`, `stopped` or `destroyed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Desired::Running => "running",
            Desired::Stopped => "stopped",
            Desired::Destroyed => "destroyed",
        }
    }
}

impl FromStr for Desired {
    type Err = SupervisionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => Ok(Desired::Running),
            "stopped" => Ok(Desired::Stopped),
            "destroyed" => Ok(Desired::Destroyed),
            _ => Err(unknown("desired state", s, DESIRED_NAMES)),
        }
    }
}

impl fmt::Display for Desired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A proc's process state, with supervisord's names and meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ProcState {
    /// Not running, on purpose (never started, or stopped by request).
    Stopped,
    /// Started; not yet up long enough to count as running.
    Starting,
    /// Up and past the start window.
    Running,
    /// Exited too quickly; waiting before the next try.
    Backoff,
    /// Asked to stop; waiting for it to go.
    Stopping,
    /// Exited on its own after running.
    Exited,
    /// Failed to start too many times in a row; given up on until told otherwise.
    Fatal,
    /// The state could not be determined.
    Unknown,
}

const STATE_NAMES: &str = "STOPPED, STARTING, RUNNING, BACKOFF, STOPPING, EXITED, FATAL, UNKNOWN";

impl ProcState {
    /// Every state, in code order.
    pub const ALL: [ProcState; 8] = [
        ProcState::Stopped,
        ProcState::Starting,
        ProcState::Running,
        ProcState::Backoff,
        ProcState::Stopping,
        ProcState::Exited,
        ProcState::Fatal,
        ProcState::Unknown,
    ];

    /// supervisord's name, e.g. `RUNNING`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcState::Stopped => "STOPPED",
            ProcState::Starting => "STARTING",
            ProcState::Running => "RUNNING",
            ProcState::Backoff => "BACKOFF",
            ProcState::Stopping => "STOPPING",
            ProcState::Exited => "EXITED",
            ProcState::Fatal => "FATAL",
            ProcState::Unknown => "UNKNOWN",
        }
    }

    /// supervisord's numeric code (`ProcessStates`), e.g. 20 for RUNNING.
    pub fn code(self) -> i32 {
        match self {
            ProcState::Stopped => 0,
            ProcState::Starting => 10,
            ProcState::Running => 20,
            ProcState::Backoff => 30,
            ProcState::Stopping => 40,
            ProcState::Exited => 100,
            ProcState::Fatal => 200,
            ProcState::Unknown => 1000,
        }
    }

    /// The supervisord event announcing this state, e.g. `PROCESS_STATE_RUNNING`.
    pub fn event(self) -> &'static str {
        match self {
            ProcState::Stopped => "PROCESS_STATE_STOPPED",
            ProcState::Starting => "PROCESS_STATE_STARTING",
            ProcState::Running => "PROCESS_STATE_RUNNING",
            ProcState::Backoff => "PROCESS_STATE_BACKOFF",
            ProcState::Stopping => "PROCESS_STATE_STOPPING",
            ProcState::Exited => "PROCESS_STATE_EXITED",
            ProcState::Fatal => "PROCESS_STATE_FATAL",
            ProcState::Unknown => "PROCESS_STATE_UNKNOWN",
        }
    }
}

impl FromStr for ProcState {
    type Err = SupervisionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProcState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| unknown("proc state", s, STATE_NAMES))
    }
}

impl fmt::Display for ProcState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn unknown(what: &'static str, value: &str, expected: &'static str) -> SupervisionError {
    SupervisionError::Unknown { what, value: value.to_string(), expected }
}

/// One proc state change, with the fields of VR's `proc_events` messages so VR consumers can read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcEvent {
    /// The six-part proc name (the supervisord program name).
    pub name: String,
    /// The host the proc runs on.
    pub host: String,
    /// The new state's numeric code ([`ProcState::code`]).
    pub state: i32,
    /// The new state's name ([`ProcState::as_str`]).
    pub statename: String,
    /// The app's pid, while it has one.
    pub pid: Option<i32>,
    /// The exit status, once it has exited.
    pub exitstatus: Option<i32>,
    /// Whether the kernel's OOM killer killed a process of its last run (its memory limit).
    #[serde(default)]
    pub oom_killed: bool,
    /// When it last started, in unix seconds.
    pub start_time: Option<i64>,
    /// When it last stopped, in unix seconds.
    pub stop_time: Option<i64>,
    /// The app part of the name.
    pub app_name: String,
    /// The version part of the name.
    pub version: String,
    /// The config part of the name.
    pub config_name: String,
    /// The hash part of the name.
    pub hash: String,
    /// The proc part of the name (e.g. `web`).
    pub proc_name: String,
    /// The port part of the name.
    pub port: u16,
    /// When the change happened, in unix seconds with a fraction (VR sends `time.time()`).
    pub time: f64,
    /// The supervisord event name ([`ProcState::event`]), e.g. `PROCESS_STATE_RUNNING`.
    pub event: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for state in ProcState::ALL {
            assert_eq!(state.as_str().parse::<ProcState>(), Ok(state));
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            assert_eq!(state.event(), format!("PROCESS_STATE_{}", state.as_str()));
        }
        assert_eq!(ProcState::Fatal.code(), 200);
        assert_eq!(ProcState::Unknown.code(), 1000);
        for desired in [Desired::Running, Desired::Stopped, Desired::Destroyed] {
            assert_eq!(desired.as_str().parse::<Desired>(), Ok(desired));
        }
    }

    #[test]
    fn unknown_names_are_refused_with_the_choices() {
        let err = "running".parse::<ProcState>().unwrap_err().to_string();
        assert!(err.contains("'running'") && err.contains("RUNNING"), "{err}");
        assert!("Running".parse::<Desired>().is_err());
    }
}
