//! Foreground runs in progress (`vr runner run`), by proc name: `runner.signal` finds a run's
//! launcher here, and a caller that goes away stops its run through the same watch.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::LaunchWatch;

/// The registry of foreground runs.
#[derive(Default)]
pub struct ForegroundRuns(Mutex<HashMap<String, LaunchWatch>>);

impl ForegroundRuns {
    /// Records that `name` runs in the foreground, its launcher known by `watch` once started.
    pub fn begin(&self, name: &str, watch: &LaunchWatch) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_string(), Arc::clone(watch));
    }

    /// Forgets `name`'s run (it has ended).
    pub fn end(&self, name: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(name);
    }

    /// Sends `signal` to `name`'s launcher (which passes it on to the container); false when no
    /// foreground run of that name has a launcher.
    pub fn signal(&self, name: &str, signal: Signal) -> bool {
        let watch = self.0.lock().unwrap_or_else(PoisonError::into_inner).get(name).cloned();
        watch.is_some_and(|w| signal_launcher(&w, signal))
    }
}

/// Sends `signal` to the launcher `watch` knows; false when it is not started or is gone.
pub fn signal_launcher(watch: &LaunchWatch, signal: Signal) -> bool {
    match watch.load(Ordering::SeqCst) {
        0 => false,
        pid => kill(Pid::from_raw(pid as i32), signal).is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_started_registered_run_is_signalled() {
        let runs = ForegroundRuns::default();
        let watch = LaunchWatch::default();
        assert!(!runs.signal("web-1", Signal::SIGCONT), "nothing registered");
        runs.begin("web-1", &watch);
        assert!(!runs.signal("web-1", Signal::SIGCONT), "registered, launcher not started");
        watch.store(std::process::id(), Ordering::SeqCst);
        assert!(runs.signal("web-1", Signal::SIGCONT), "SIGCONT to ourselves is harmless");
        runs.end("web-1");
        assert!(!runs.signal("web-1", Signal::SIGCONT));
    }
}
