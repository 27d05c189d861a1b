//! One proc's supervision task: feeds the machine with commands, the launcher's exit (pidfd) and
//! timers, and carries out its actions (launch, signal, persist, publish).

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant};

use super::machine::{Action, Input, Machine};
use super::{event_for, now, spec_of, Command, Shared, SupervisorError};
use crate::model::proc_data::ProcSpec;
use crate::model::supervision::{Desired, ProcState};
use crate::services::runner::supervised::{is_alive, Launched};
use crate::services::state::ProcRecord;

/// Which timer is armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Start,
    Backoff,
    Stop,
}

struct ProcTask {
    shared: Arc<Shared>,
    spec: ProcSpec,
    record: ProcRecord,
    machine: Machine,
    launched: Option<Launched>,
    exit: Option<AsyncFd<OwnedFd>>,
    timer: Option<(Instant, Timer)>,
    stop_waiters: Vec<oneshot::Sender<()>>,
    restart_pending: bool,
    destroy_waiter: Option<oneshot::Sender<Result<(), SupervisorError>>>,
}

/// Starts the task of a stored proc: re-adopts its launcher if it still runs, records an exit
/// that happened while vrd was away, and starts what should run.
pub(super) fn spawn(shared: Arc<Shared>, record: ProcRecord) -> Result<(), SupervisorError> {
    let spec = spec_of(&record)?;
    let (tx, rx) = mpsc::channel(16);
    shared.tasks.lock().unwrap_or_else(PoisonError::into_inner).insert(record.name.clone(), tx);
    let machine = Machine { state: record.state, retries: record.retries };
    let mut task = ProcTask {
        shared,
        spec,
        record,
        machine,
        launched: None,
        exit: None,
        timer: None,
        stop_waiters: Vec::new(),
        restart_pending: false,
        destroy_waiter: None,
    };
    tokio::spawn(async move { task.run(rx).await });
    Ok(())
}

async fn exited(exit: &Option<AsyncFd<OwnedFd>>) {
    match exit {
        Some(fd) => {
            let _ = fd.readable().await;
        }
        None => std::future::pending().await,
    }
}

async fn timer(timer: Option<(Instant, Timer)>) -> Timer {
    match timer {
        Some((at, which)) => {
            sleep_until(at).await;
            which
        }
        None => std::future::pending().await,
    }
}

impl ProcTask {
    /// The first inputs after (re)start of vrd, from what is stored and what still runs.
    fn recover(&mut self) -> Vec<Input> {
        use ProcState as S;
        let stored = Launched {
            pid: self.record.launcher_pid.unwrap_or(0),
            start_ticks: self.record.launcher_start.unwrap_or(0),
        };
        let alive = self.record.launcher_pid.is_some() && is_alive(stored);
        if alive {
            self.watch(stored);
        }
        match (self.record.desired, self.machine.state, alive) {
            (Desired::Destroyed, _, _) => vec![Input::Stop],
            (_, S::Starting, true) => {
                self.timer = Some((Instant::now() + self.shared.policy.start_secs, Timer::Start));
                vec![]
            }
            (_, S::Stopping, true) => vec![Input::StopTimer],
            (_, _, true) => vec![],
            // Its launcher ended while vrd was away (or the host rebooted).
            (_, S::Starting | S::Running | S::Stopping, false) => {
                self.note_exit();
                vec![Input::Exited]
            }
            (Desired::Running, S::Stopped | S::Exited | S::Backoff, false) => {
                self.machine.state = S::Stopped;
                vec![Input::Start]
            }
            _ => vec![],
        }
    }

    async fn run(&mut self, mut rx: mpsc::Receiver<Command>) {
        let mut inputs: VecDeque<Input> = self.recover().into();
        if self.record.desired == Desired::Destroyed && self.machine.state != ProcState::Stopping {
            self.finish_destroy().await;
            return;
        }
        loop {
            while let Some(input) = inputs.pop_front() {
                let automatic = matches!(
                    (self.machine.state, input),
                    (ProcState::Running, Input::Exited) | (ProcState::Backoff, Input::BackoffTimer)
                );
                let actions = self.machine.on(input, &self.shared.policy);
                if automatic && actions.contains(&Action::Launch) {
                    crate::services::metrics::metrics().restarted(&self.record.name);
                }
                for action in actions {
                    if let Some(next) = self.perform(action).await {
                        inputs.push_back(next);
                    }
                }
            }
            if self.machine.state == ProcState::Stopped && self.record.desired == Desired::Destroyed {
                self.finish_destroy().await;
                return;
            }
            if self.machine.state == ProcState::Stopped && std::mem::take(&mut self.restart_pending) {
                inputs.push_back(Input::Start);
                continue;
            }
            let input = tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => return,
                    Some(cmd) => self.command(cmd).await,
                },
                _ = exited(&self.exit) => {
                    self.note_exit();
                    Some(Input::Exited)
                }
                which = timer(self.timer) => {
                    self.timer = None;
                    Some(match which { Timer::Start => Input::StartTimer, Timer::Backoff => Input::BackoffTimer, Timer::Stop => Input::StopTimer })
                }
            };
            inputs.extend(input);
        }
    }

    async fn command(&mut self, cmd: Command) -> Option<Input> {
        match cmd {
            Command::Start(done) => {
                self.set_desired(Desired::Running).await;
                let _ = done.send(());
                Some(Input::Start)
            }
            Command::Stop(done) => {
                self.set_desired(Desired::Stopped).await;
                if self.is_down() {
                    let _ = done.send(());
                } else {
                    self.stop_waiters.push(done);
                }
                Some(Input::Stop)
            }
            Command::Restart(done) => {
                self.set_desired(Desired::Running).await;
                let _ = done.send(());
                if self.is_down() {
                    return Some(Input::Start);
                }
                self.restart_pending = true;
                Some(Input::Stop)
            }
            Command::Destroy(done) => {
                self.set_desired(Desired::Destroyed).await;
                self.destroy_waiter = Some(done);
                Some(Input::Stop)
            }
        }
    }

    fn is_down(&self) -> bool {
        matches!(
            self.machine.state,
            ProcState::Stopped | ProcState::Fatal | ProcState::Exited | ProcState::Backoff
        )
    }

    async fn set_desired(&mut self, desired: Desired) {
        self.record.desired = desired;
        let _ = self.shared.state.update_proc(&self.record.name, move |r| r.desired = desired).await;
    }

    /// Carries out one action; returns a follow-up input (a failed launch).
    async fn perform(&mut self, action: Action) -> Option<Input> {
        match action {
            Action::Enter(state) => self.enter(state).await,
            Action::Launch => return self.launch().await,
            Action::ArmStartTimer(d) => self.arm(d, Timer::Start),
            Action::ArmBackoffTimer(d) => self.arm(d, Timer::Backoff),
            Action::RequestStop(d) => {
                self.signal_launcher(Signal::SIGTERM);
                self.arm(d, Timer::Stop);
            }
            Action::Kill => self.signal_launcher(Signal::SIGKILL),
        }
        None
    }

    fn arm(&mut self, after: Duration, which: Timer) {
        self.timer = Some((Instant::now() + after, which));
    }

    fn signal_launcher(&self, signal: Signal) {
        if let Some(l) = self.launched.filter(|l| is_alive(*l)) {
            let _ = kill(Pid::from_raw(l.pid), signal);
        }
    }

    fn watch(&mut self, launched: Launched) {
        self.launched = Some(launched);
        self.exit = crate::sys::pidfd_open(launched.pid).ok().and_then(|fd| crate::sys::async_fd(fd).ok());
        if self.exit.is_none() {
            // The launcher is already gone: poll-free fallback, treat as exited right away.
            self.launched = None;
        }
    }

    async fn launch(&mut self) -> Option<Input> {
        let runner = Arc::clone(&self.shared.runner);
        let spec = self.spec.clone();
        let grace = self.shared.policy.stop_grace;
        match tokio::task::spawn_blocking(move || runner.launch_detached(&spec, grace)).await {
            Ok(Ok(launched)) => {
                self.watch(launched);
                self.record.spawn_err = None;
                self.record.start_time = Some(now());
                self.record.launcher_pid = Some(launched.pid);
                self.record.launcher_start = Some(launched.start_ticks);
                if self.exit.is_none() {
                    return Some(Input::Exited);
                }
                None
            }
            Ok(Err(e)) => {
                self.record.spawn_err = Some(e.to_string());
                Some(Input::LaunchFailed)
            }
            Err(e) => {
                self.record.spawn_err = Some(format!("launch task failed: {e}"));
                Some(Input::LaunchFailed)
            }
        }
    }

    /// Records how the container ended (from the launcher's status file) and forgets the launcher.
    fn note_exit(&mut self) {
        self.exit = None;
        self.launched = None;
        if self.timer.is_some_and(|(_, t)| t != Timer::Backoff) {
            self.timer = None;
        }
        self.record.stop_time = Some(now());
        self.record.app_pid = None;
        self.record.launcher_pid = None;
        self.record.launcher_start = None;
        match self.shared.runner.last_exit(&self.spec) {
            Some(status) => {
                self.record.exit_status = Some(status.code);
                self.record.oom_killed = status.oom_killed;
                if status.oom_killed {
                    crate::services::metrics::metrics().oom_killed(&self.record.name);
                    tracing::warn!(proc = %self.record.name, code = status.code, "the kernel's OOM killer killed a process of the proc (its memory limit)");
                }
                if let Some(error) = status.error {
                    self.record.spawn_err = Some(error);
                }
            }
            None => {
                // The launcher died without a word (SIGKILL): clean up what it would have.
                self.record.exit_status = None;
                self.record.oom_killed = false;
                let _ = self.shared.runner.remove_cgroup(&self.spec);
            }
        }
    }

    /// Persists the new state and publishes its event.
    async fn enter(&mut self, state: ProcState) {
        if state == ProcState::Running {
            self.record.app_pid = self.shared.runner.app_pid(&self.spec);
        }
        self.record.state = state;
        self.record.retries = self.machine.retries;
        self.record.updated = now();
        let snapshot = self.record.clone();
        let stored = self.shared.state.update_proc(&self.record.name, move |r| {
            let (created, desired) = (r.created, r.desired);
            *r = ProcRecord { created, desired, ..snapshot };
        });
        if let Err(e) = stored.await {
            tracing::error!(proc = %self.record.name, error = %e, "failed to store a state change");
        }
        // Why a start failed (the launcher's setup error, or the spawn's) belongs with the state
        // it led to, so the journal alone says why a proc is in BACKOFF or FATAL.
        let failed = matches!(state, ProcState::Backoff | ProcState::Fatal | ProcState::Exited);
        let error = self.record.spawn_err.as_deref().filter(|_| failed);
        tracing::info!(
            proc = %self.record.name, state = state.as_str(), pid = self.record.app_pid,
            exit = self.record.exit_status, error, "proc state"
        );
        let event = event_for(&self.record, state, &self.shared.host);
        if let Ok(id) = self.shared.state.append_event(event.clone()).await {
            let _ = self.shared.events.send(Arc::new((id, event)));
        }
        if state == ProcState::Stopped {
            self.stop_waiters.drain(..).for_each(|w| {
                let _ = w.send(());
            });
        }
    }

    /// Tears the stopped proc down and forgets it.
    async fn finish_destroy(&mut self) {
        let runner = Arc::clone(&self.shared.runner);
        let spec = self.spec.clone();
        let result = tokio::task::spawn_blocking(move || runner.teardown(&spec)).await;
        let result = match result {
            Ok(Ok(())) => self
                .shared
                .state
                .delete_proc(&self.record.name)
                .await
                .map(|_| ())
                .map_err(SupervisorError::from),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(SupervisorError::Gone(format!("{} (teardown task failed: {e})", self.record.name))),
        };
        if result.is_ok() {
            self.shared.tasks.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.record.name);
        }
        if let Some(waiter) = self.destroy_waiter.take() {
            let _ = waiter.send(result);
        }
    }
}
