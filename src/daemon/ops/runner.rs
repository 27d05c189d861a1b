//! VR's runner contract over the API: setup, run and shell (with the caller's terminal), signal,
//! uptest, teardown. The work runs on blocking threads; the runner does file and process work.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::sys::signal::Signal;

use super::access::Principal;
use super::attach::{Handover, ReceivedFds};
use super::error::{error, parse_request, runner_error, task_failed, OpResult};
use super::{Daemon, Ops};
use crate::api::{codes, Attach, ExitStatus, ProcFile, SetupReport, UptestResult};
use crate::model::proc_data::ProcSpec;
use crate::services::runner::foreground::signal_launcher;
use crate::services::runner::{LaunchWatch, RunnerError, Started};

/// Parses a proc.yaml (off the runtime when long); errors name the file.
pub(super) async fn parse(file: &ProcFile) -> OpResult<(ProcSpec, Vec<String>)> {
    let owned = file.clone();
    parse_request(&file.yaml, move || {
        crate::services::runner::parse(&owned.yaml)
            .map_err(|e| error(codes::INVALID, format!("{}: {e}", owned.path)))
    })
    .await
}

/// Sends SIGTERM to a launcher still running when dropped (its caller went away); the launcher
/// passes it on to the container and SIGKILLs it after the grace period. A launcher whose pid is
/// not known yet is stopped by whoever learns it ([`Foreground::wait`] reads `abandoned`).
pub(super) struct StopOnDrop {
    watch: LaunchWatch,
    abandoned: Arc<AtomicBool>,
}

impl StopOnDrop {
    pub(super) fn new(watch: &LaunchWatch) -> StopOnDrop {
        StopOnDrop { watch: Arc::clone(watch), abandoned: Arc::default() }
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.abandoned.store(true, Ordering::SeqCst);
        signal_launcher(&self.watch, Signal::SIGTERM);
    }
}

/// Runs `f` on a blocking thread.
async fn on_blocking_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RunnerError> + Send + 'static,
) -> Result<T, RunnerError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "a runner task failed");
        Err(RunnerError::Launch(format!("a daemon task failed: {e}")))
    })
}

/// Starts a foreground container and waits for its end. Taking inline fds and starting the
/// launcher are short file work, done on this worker, and the end is awaited on the runtime, so
/// neither crosses to another thread; fds from an attach socket mean a connect to the client, and
/// an exec'd launcher (no spawner) a blocking wait: those go to a blocking thread.
async fn run_attached(
    daemon: Arc<Daemon>,
    handover: Handover,
    spec: ProcSpec,
    shell: bool,
    stop: (LaunchWatch, Arc<AtomicBool>),
) -> Result<ExitStatus, RunnerError> {
    let inline = handover.inline();
    let start = move || {
        let stdio = handover.stdio().map_err(RunnerError::Launch)?;
        if shell {
            daemon.runner.start_shell(&spec, stdio)
        } else {
            daemon.runner.start_run(&spec, stdio)
        }
    };
    let started = if inline { start()? } else { on_blocking_thread(start).await? };
    let (watch, abandoned) = stop;
    match started {
        Started::Spawned(foreground) => foreground.wait(watch, abandoned).await,
        Started::Exec(launch) => on_blocking_thread(move || launch.wait(&watch, &abandoned)).await,
    }
}

impl Ops {
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Daemon) -> Result<T, RunnerError> + Send + 'static,
    ) -> OpResult<T> {
        let daemon = Arc::clone(&self.daemon);
        on_blocking_thread(move || f(&daemon)).await.map_err(runner_error)
    }

    pub(super) async fn attached(
        &self,
        who: &Principal,
        passed: ReceivedFds,
        file: ProcFile,
        attach: Attach,
        shell: bool,
    ) -> OpResult<ExitStatus> {
        let (spec, _) = parse(&file).await?;
        let spec = self.permit(who, spec, |p, spec| p.proc(spec)).await?;
        if !shell {
            self.unsupervised(&spec).await?;
        }
        let handover = Handover::new(attach, passed, who);
        let watch = LaunchWatch::default();
        // If the caller goes away mid-run (this future is dropped), the container is stopped.
        let stop = StopOnDrop::new(&watch);
        let name = spec.name.to_string();
        if !shell {
            self.daemon.foreground.begin(&name, &watch);
        }
        let daemon = Arc::clone(&self.daemon);
        let abandoned = Arc::clone(&stop.abandoned);
        // One task from start to end, apart from this call: a caller that goes away cannot cut it
        // short, so the proc stays busy (and a shell's dirs stay) until its container has ended.
        let task = tokio::spawn(async move {
            let outcome = run_attached(Arc::clone(&daemon), handover, spec, shell, (watch, abandoned)).await;
            if !shell {
                daemon.foreground.end(&name);
            }
            outcome
        });
        match task.await {
            Ok(outcome) => outcome.map_err(runner_error),
            Err(e) => Err(task_failed(e)),
        }
    }

    /// The runner's commands act on procs outside supervision; a supervised one is refused, so a
    /// teardown cannot pull the files from under a running supervised container.
    async fn unsupervised(&self, spec: &ProcSpec) -> OpResult<()> {
        let name = spec.name.to_string();
        if self.daemon.supervisor.supervises(&name) {
            return Err(error(
                codes::BUSY,
                format!("{name} is supervised by vrd: use `vr procs stop|restart|destroy {name}` instead of the runner"),
            ));
        }
        Ok(())
    }

    pub(super) async fn setup(&self, who: &Principal, file: ProcFile) -> OpResult<SetupReport> {
        let (spec, warnings) = parse(&file).await?;
        let spec = self.permit(who, spec, |p, spec| p.proc(spec)).await?;
        self.unsupervised(&spec).await?;
        let name = spec.name.to_string();
        let dir = self.blocking(move |d| d.runner.setup(&spec, &file.yaml)).await?;
        Ok(SetupReport { name, proc_dir: dir.display().to_string(), warnings })
    }

    pub(super) async fn signal(&self, file: ProcFile, signal: String) -> OpResult<bool> {
        let (spec, _) = parse(&file).await?;
        let name = signal.trim_start_matches("SIG").to_ascii_uppercase();
        let sig: Signal = format!("SIG{name}")
            .parse()
            .ok()
            .filter(|s| *s != Signal::SIGKILL && *s != Signal::SIGSTOP)
            .ok_or_else(|| error(codes::INVALID, format!("'{signal}' can't be sent: use a catchable signal such as TERM, INT or HUP (vr sends KILL itself when the stop grace period ends)")))?;
        Ok(self.daemon.foreground.signal(&spec.name.to_string(), sig))
    }

    pub(super) async fn uptest(&self, who: &Principal, file: ProcFile) -> OpResult<Vec<UptestResult>> {
        let (spec, _) = parse(&file).await?;
        let spec = self.permit(who, spec, |p, spec| p.proc(spec)).await?;
        self.blocking(move |d| d.runner.uptest(&spec)).await
    }

    pub(super) async fn teardown(&self, file: ProcFile) -> OpResult<()> {
        let (spec, _) = parse(&file).await?;
        self.unsupervised(&spec).await?;
        self.blocking(move |d| d.runner.teardown(&spec)).await
    }
}
