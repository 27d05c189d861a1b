//! The API's implementation: each method parses its input, runs the service on a blocking thread
//! (the runner does file and process work), and maps errors to stable codes.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use jsonrpsee::core::{async_trait, RpcResult};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::Extensions;

use super::attach::receive_stdio;
use super::server::Caller;
use super::Daemon;
use crate::api::{codes, Attach, ExitStatus, ProcFile, SetupReport, UptestResult, VrdServer};
use crate::model::proc_data::ProcSpec;
use crate::services::runner::{self, LaunchWatch, RunnerError};

/// Sends SIGTERM to a launcher still running when dropped; the launcher passes it on to the
/// container and SIGKILLs it after the grace period.
struct StopOnDrop(LaunchWatch);

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

/// Answers API calls with the daemon's services.
pub struct RpcHandler {
    /// The daemon.
    pub daemon: Arc<Daemon>,
}

/// Maps every runner error to its stable code: no wildcard, so a new variant must be mapped.
fn runner_error(e: RunnerError) -> ErrorObjectOwned {
    let code = match &e {
        RunnerError::Invalid(_) => codes::INVALID,
        RunnerError::Busy(_) => codes::BUSY,
        RunnerError::NotSetUp(_) => codes::NOT_SET_UP,
        RunnerError::Artifact(_) => codes::ARTIFACT,
        RunnerError::User(_) => codes::USER,
        RunnerError::Io(_) => codes::IO,
        RunnerError::Launch(_) => codes::LAUNCH,
    };
    ErrorObjectOwned::owned(code, e.to_string(), None::<()>)
}

fn error(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), None::<()>)
}

fn parse(file: &ProcFile) -> RpcResult<(ProcSpec, Vec<String>)> {
    runner::parse(&file.yaml).map_err(|e| error(codes::INVALID, format!("{}: {e}", file.path)))
}

fn caller(ext: &Extensions) -> RpcResult<Caller> {
    ext.get::<Caller>().copied().ok_or_else(|| error(codes::INTERNAL, "the caller's identity is unknown"))
}

impl RpcHandler {
    async fn blocking<T: Send + 'static>(
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

    async fn attached(
        &self,
        ext: &Extensions,
        file: ProcFile,
        attach: Attach,
        shell: bool,
    ) -> RpcResult<ExitStatus> {
        let (spec, _) = parse(&file)?;
        let caller = caller(ext)?;
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
        let result = self
            .blocking(move |d| {
                let stdio = receive_stdio(&attach.socket, caller).map_err(RunnerError::Launch)?;
                if shell {
                    d.runner.shell(&spec, stdio, &watch)
                } else {
                    d.runner.run(&spec, stdio, &watch)
                }
            })
            .await;
        if !shell {
            self.daemon.foreground.lock().unwrap_or_else(PoisonError::into_inner).remove(&name);
        }
        result
    }
}

#[async_trait]
impl VrdServer for RpcHandler {
    async fn version(&self) -> RpcResult<String> {
        Ok(env!("CARGO_PKG_VERSION").to_string())
    }

    async fn runner_setup(&self, file: ProcFile) -> RpcResult<SetupReport> {
        let (spec, warnings) = parse(&file)?;
        let name = spec.name.to_string();
        let dir = self.blocking(move |d| d.runner.setup(&spec, &file.yaml)).await?;
        Ok(SetupReport { name, proc_dir: dir.display().to_string(), warnings })
    }

    async fn runner_run(&self, ext: &Extensions, file: ProcFile, attach: Attach) -> RpcResult<ExitStatus> {
        self.attached(ext, file, attach, false).await
    }

    async fn runner_shell(&self, ext: &Extensions, file: ProcFile, attach: Attach) -> RpcResult<ExitStatus> {
        self.attached(ext, file, attach, true).await
    }

    async fn runner_signal(&self, file: ProcFile, signal: String) -> RpcResult<bool> {
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

    async fn runner_uptest(&self, file: ProcFile) -> RpcResult<Vec<UptestResult>> {
        let (spec, _) = parse(&file)?;
        self.blocking(move |d| d.runner.uptest(&spec)).await
    }

    async fn runner_teardown(&self, file: ProcFile) -> RpcResult<()> {
        let (spec, _) = parse(&file)?;
        self.blocking(move |d| d.runner.teardown(&spec)).await
    }
}
