//! VR's runner contract over the API: setup, run and shell (with the caller's terminal), signal,
//! uptest, teardown. The work runs on blocking threads; the runner does file and process work.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use jsonrpsee::core::RpcResult;
use jsonrpsee::Extensions;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::attach::Handover;
use super::rpc::{error, parse, runner_error, RpcHandler};
use super::Daemon;
use crate::api::{codes, Attach, ExitStatus, ProcFile, SetupReport, UptestResult};
use crate::model::proc_data::ProcSpec;
use crate::services::runner::{LaunchWatch, RunnerError, Started};

/// Sends SIGTERM to a launcher still running when dropped; the launcher passes it on to the
/// container and SIGKILLs it after the grace period.
pub(super) struct StopOnDrop(pub(super) LaunchWatch);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        signal_launcher(&self.0, Signal::SIGTERM);
    }
}

fn signal_launcher(watch: &LaunchWatch, signal: Signal) -> bool {
    match watch.load(Ordering::SeqCst) {
        0 => false,
        pid => kill(Pid::from_raw(pid as i32), signal).is_ok(),
    }
}

impl RpcHandler {
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Daemon) -> Result<T, RunnerError> + Send + 'static,
    ) -> RpcResult<T> {
        let daemon = Arc::clone(&self.daemon);
        match tokio::task::spawn_blocking(move || f(&daemon)).await {
            Ok(result) => result.map_err(runner_error),
            Err(e) => {
                tracing::error!(error = %e, "a runner task failed");
                Err(error(codes::INTERNAL, format!("a daemon task failed: {e}")))
            }
        }
    }

    pub(super) async fn attached(
        &self,
        ext: &Extensions,
        file: ProcFile,
        attach: Attach,
        shell: bool,
    ) -> RpcResult<ExitStatus> {
        let (spec, _) = parse(&file)?;
        if !shell {
            self.unsupervised(&spec).await?;
        }
        let inline = attach.inline;
        let handover = Handover::new(attach, ext)?;
        let watch = LaunchWatch::default();
        // If the caller goes away mid-run (this future is dropped), the container is stopped.
        let _stop = StopOnDrop(Arc::clone(&watch));
        let name = spec.name.to_string();
        if !shell {
            self.daemon
                .foreground
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(name.clone(), Arc::clone(&watch));
        }
        // Taking inline fds and starting the launcher are short file work, done here; the
        // container's end is awaited on the runtime, so neither crosses to another thread.
        // Fds from an attach socket mean a connect to the client: that goes to a blocking thread.
        let start = move |d: &Daemon| {
            let stdio = handover.stdio().map_err(RunnerError::Launch)?;
            if shell {
                d.runner.start_shell(&spec, stdio)
            } else {
                d.runner.start_run(&spec, stdio)
            }
        };
        let started =
            if inline { start(&self.daemon).map_err(runner_error) } else { self.blocking(start).await };
        let result = match started {
            // Spawned apart, so a caller that goes away does not end the wait: the proc stays busy
            // until its container has stopped.
            Ok(Started::Spawned(foreground)) => match tokio::spawn(foreground.wait(Arc::clone(&watch))).await
            {
                Ok(outcome) => outcome.map_err(runner_error),
                Err(e) => Err(error(codes::INTERNAL, format!("a daemon task failed: {e}"))),
            },
            Ok(Started::Exec(launch)) => {
                let watch = Arc::clone(&watch);
                self.blocking(move |_| launch.wait(&watch)).await
            }
            Err(e) => Err(e),
        };
        if !shell {
            self.daemon.foreground.lock().unwrap_or_else(PoisonError::into_inner).remove(&name);
        }
        result
    }

    /// The runner's commands act on procs outside supervision; a supervised one is refused, so a
    /// teardown cannot pull the files from under a running supervised container.
    async fn unsupervised(&self, spec: &ProcSpec) -> RpcResult<()> {
        let name = spec.name.to_string();
        if self.daemon.supervisor.supervises(&name) {
            return Err(error(
                codes::BUSY,
                format!("{name} is supervised by vrd: use `vr procs stop|restart|destroy {name}` instead of the runner"),
            ));
        }
        Ok(())
    }

    pub(super) async fn setup(&self, file: ProcFile) -> RpcResult<SetupReport> {
        let (spec, warnings) = parse(&file)?;
        self.unsupervised(&spec).await?;
        let name = spec.name.to_string();
        let dir = self.blocking(move |d| d.runner.setup(&spec, &file.yaml)).await?;
        Ok(SetupReport { name, proc_dir: dir.display().to_string(), warnings })
    }

    pub(super) async fn signal(&self, file: ProcFile, signal: String) -> RpcResult<bool> {
        let (spec, _) = parse(&file)?;
        let name = signal.trim_start_matches("SIG").to_ascii_uppercase();
        let sig: Signal = format!("SIG{name}")
            .parse()
            .ok()
            .filter(|s| *s != Signal::SIGKILL && *s != Signal::SIGSTOP)
            .ok_or_else(|| error(codes::INVALID, format!("'{signal}' can't be sent: use a catchable signal such as TERM, INT or HUP (vr sends KILL itself when the stop grace period ends)")))?;
        let watch = self
            .daemon
            .foreground
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&spec.name.to_string())
            .cloned();
        Ok(watch.is_some_and(|w| signal_launcher(&w, sig)))
    }

    pub(super) async fn uptest(&self, file: ProcFile) -> RpcResult<Vec<UptestResult>> {
        let (spec, _) = parse(&file)?;
        self.blocking(move |d| d.runner.uptest(&spec)).await
    }

    pub(super) async fn teardown(&self, file: ProcFile) -> RpcResult<()> {
        let (spec, _) = parse(&file)?;
        self.unsupervised(&spec).await?;
        self.blocking(move |d| d.runner.teardown(&spec)).await
    }
}
