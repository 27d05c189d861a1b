//! The supervision state machine, pure: inputs in, state changes and actions out. The driver
//! (`task.rs`) owns the timers, the launcher and the persistence; this file owns the rules, so
//! they are tested without processes or clocks.
//!
//! States and their meaning follow supervisord (which VR's dashboard shows): a proc that exits
//! within `start_secs` of starting failed to start and is retried after an exponential backoff;
//! after `start_retries` such failures in a row it is FATAL. A proc that ran longer and exits is
//! restarted at once. A stop signals the container and escalates to SIGKILL after the grace.

use std::time::Duration;

use crate::model::supervision::ProcState;

/// The rules' knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long a proc must run to count as started.
    pub start_secs: Duration,
    /// Quick failures in a row tolerated before FATAL.
    pub start_retries: u32,
    /// The first backoff; each further one doubles, up to `backoff_max`.
    pub backoff_base: Duration,
    /// The longest backoff.
    pub backoff_max: Duration,
    /// From SIGTERM to SIGKILL (the launcher enforces it; the daemon kills the launcher if the
    /// launcher itself has not ended `stop_margin` after that).
    pub stop_grace: Duration,
    /// See `stop_grace`.
    pub stop_margin: Duration,
    /// How long a gone proc's log is kept (the scooper removes older ones).
    pub log_retention: Duration,
    /// How long audit entries are kept (the scooper removes older ones).
    pub audit_retention: Duration,
}

/// A year of audit entries, unless the config says otherwise.
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(365 * 86400);

impl Policy {
    /// supervisord's defaults (startsecs=1, startretries=3) and Heroku's 30 s stop grace.
    pub fn standard() -> Policy {
        Policy {
            start_secs: Duration::from_secs(1),
            start_retries: 3,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            stop_grace: Duration::from_secs(30),
            stop_margin: Duration::from_secs(5),
            log_retention: crate::services::runner::retained::DEFAULT_RETENTION,
            audit_retention: DEFAULT_AUDIT_RETENTION,
        }
    }

    fn backoff(&self, retries: u32) -> Duration {
        let factor = 1u32.checked_shl(retries.saturating_sub(1)).unwrap_or(u32::MAX);
        self.backoff_base.saturating_mul(factor).min(self.backoff_max)
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The user (or boot) wants it running.
    Start,
    /// The user wants it stopped.
    Stop,
    /// The launcher could not be started at all.
    LaunchFailed,
    /// The container ended (its launcher exited).
    Exited,
    /// The start timer fired while the proc was still up.
    StartTimer,
    /// The backoff timer fired.
    BackoffTimer,
    /// The stop timer fired and the launcher is still there.
    StopTimer,
}

/// What the driver must do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The proc is now in this state: persist it and publish an event.
    Enter(ProcState),
    /// Start the launcher.
    Launch,
    /// Arm the start timer.
    ArmStartTimer(Duration),
    /// Arm the backoff timer.
    ArmBackoffTimer(Duration),
    /// Ask the container to stop (SIGTERM to its launcher) and arm the stop timer.
    RequestStop(Duration),
    /// Kill the launcher (and so the container) now.
    Kill,
}

/// One proc's supervision state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    /// The current state.
    pub state: ProcState,
    /// Quick failures in a row.
    pub retries: u32,
}

impl Machine {
    /// A proc that is not running.
    pub fn stopped() -> Machine {
        Machine { state: ProcState::Stopped, retries: 0 }
    }

    fn launch(&mut self, policy: &Policy) -> Vec<Action> {
        self.state = ProcState::Starting;
        vec![Action::Enter(ProcState::Starting), Action::Launch, Action::ArmStartTimer(policy.start_secs)]
    }

    fn failed_to_start(&mut self, policy: &Policy) -> Vec<Action> {
        self.retries += 1;
        if self.retries > policy.start_retries {
            self.state = ProcState::Fatal;
            return vec![Action::Enter(ProcState::Fatal)];
        }
        self.state = ProcState::Backoff;
        vec![Action::Enter(ProcState::Backoff), Action::ArmBackoffTimer(policy.backoff(self.retries))]
    }

    /// Applies one input; returns what to do.
    pub fn on(&mut self, input: Input, policy: &Policy) -> Vec<Action> {
        use ProcState as S;
        match (self.state, input) {
            (S::Stopped | S::Exited | S::Fatal, Input::Start) => {
                self.retries = 0;
                self.launch(policy)
            }
            (S::Backoff, Input::BackoffTimer) => self.launch(policy),
            (S::Starting, Input::StartTimer) => {
                self.state = S::Running;
                self.retries = 0;
                vec![Action::Enter(S::Running)]
            }
            (S::Starting, Input::Exited | Input::LaunchFailed) => self.failed_to_start(policy),
            (S::Running, Input::Exited) => {
                let mut actions = vec![Action::Enter(S::Exited)];
                actions.extend(self.launch(policy));
                actions
            }
            (S::Starting | S::Running, Input::Stop) => {
                self.state = S::Stopping;
                vec![Action::Enter(S::Stopping), Action::RequestStop(policy.stop_grace + policy.stop_margin)]
            }
            (S::Backoff | S::Exited | S::Fatal, Input::Stop) => {
                self.state = S::Stopped;
                vec![Action::Enter(S::Stopped)]
            }
            (S::Stopping, Input::Exited | Input::LaunchFailed) => {
                self.state = S::Stopped;
                vec![Action::Enter(S::Stopped)]
            }
            (S::Stopping, Input::StopTimer) => vec![Action::Kill],
            // Everything else is a no-op: a start of a running proc, a stale timer, and so on.
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProcState as S;

    fn states(actions: &[Action]) -> Vec<ProcState> {
        actions.iter().filter_map(|a| if let Action::Enter(s) = a { Some(*s) } else { None }).collect()
    }

    #[test]
    fn a_proc_that_keeps_running_becomes_running() {
        let p = Policy::standard();
        let mut m = Machine::stopped();
        assert_eq!(
            m.on(Input::Start, &p),
            vec![Action::Enter(S::Starting), Action::Launch, Action::ArmStartTimer(p.start_secs)]
        );
        assert_eq!(states(&m.on(Input::StartTimer, &p)), [S::Running]);
    }

    #[test]
    fn quick_failures_back_off_exponentially_then_go_fatal() {
        let p = Policy::standard();
        let mut m = Machine::stopped();
        m.on(Input::Start, &p);
        let mut backoffs = Vec::new();
        for _ in 0..3 {
            let actions = m.on(Input::Exited, &p);
            assert_eq!(m.state, S::Backoff);
            backoffs.extend(actions.iter().filter_map(|a| {
                if let Action::ArmBackoffTimer(d) = a {
                    Some(d.as_secs())
                } else {
                    None
                }
            }));
            m.on(Input::BackoffTimer, &p);
            assert_eq!(m.state, S::Starting);
        }
        assert_eq!(backoffs, [1, 2, 4]);
        assert_eq!(states(&m.on(Input::Exited, &p)), [S::Fatal]);
        assert!(m.on(Input::BackoffTimer, &p).is_empty(), "a stale timer does nothing");
    }

    #[test]
    fn a_crash_after_running_restarts_at_once_and_resets_the_count() {
        let p = Policy::standard();
        let mut m = Machine { state: S::Running, retries: 0 };
        let actions = m.on(Input::Exited, &p);
        assert_eq!(states(&actions), [S::Exited, S::Starting]);
        assert!(actions.contains(&Action::Launch));
    }

    #[test]
    fn stop_escalates_only_through_the_timer() {
        let p = Policy::standard();
        let mut m = Machine { state: S::Running, retries: 0 };
        assert_eq!(
            m.on(Input::Stop, &p),
            vec![Action::Enter(S::Stopping), Action::RequestStop(Duration::from_secs(35))]
        );
        assert_eq!(m.on(Input::StopTimer, &p), vec![Action::Kill]);
        assert_eq!(states(&m.on(Input::Exited, &p)), [S::Stopped]);
        assert_eq!(states(&m.on(Input::Start, &p)), [S::Starting], "a stopped proc starts again");
    }

    #[test]
    fn fatal_and_backoff_stop_without_signals() {
        let p = Policy::standard();
        for state in [S::Fatal, S::Backoff, S::Exited] {
            let mut m = Machine { state, retries: 2 };
            assert_eq!(m.on(Input::Stop, &p), vec![Action::Enter(S::Stopped)]);
        }
    }

    #[test]
    fn starting_a_running_proc_does_nothing() {
        let p = Policy::standard();
        let mut m = Machine { state: S::Running, retries: 0 };
        assert!(m.on(Input::Start, &p).is_empty());
    }
}
