//! `uptest`: runs the proc's uptests in a sibling container (same image, build, env and settings)
//! and reports VR's JSON: `[{"Name": ..., "Output": ..., "Passed": ...}]`, `[]` when there are none.

use std::fs;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;

use super::layout::ProcDir;
use super::scripts::uptest_sh;
use super::{CallerStdio, LaunchWatch, Mode, Runner, RunnerError, Sibling};
use crate::model::proc_data::ProcSpec;
pub use crate::model::uptest::UptestResult;
use crate::sys::beneath;

fn null_stdio() -> Result<CallerStdio, RunnerError> {
    let open = || -> Result<OwnedFd, RunnerError> {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| RunnerError::Io(format!("failed to open /dev/null: {e}")))
    };
    Ok(CallerStdio { stdin: open()?, stdout: open()?, stderr: open()? })
}

/// The most of one uptest's output vrd keeps; longer output is cut, with a note.
const OUTPUT_LIMIT: u64 = 256 << 10;
/// The most of all uptests' outputs together, so many tests cannot make vrd hold more.
const TOTAL_LIMIT: u64 = 1 << 20;
/// The most uptests one run reports.
const MAX_TESTS: usize = 1000;

/// One result file the tests wrote, read without following it out of the results dir (a symlink,
/// FIFO or `..` there is refused, not read as root) and bounded by `limit`. `Ok(None)`: no such file.
fn read_result(dir: &fs::File, name: &str, limit: u64) -> Result<Option<String>, String> {
    match beneath::read_regular(dir, std::path::Path::new(name), limit) {
        Ok(read) => {
            let mut text = String::from_utf8_lossy(&read.bytes).into_owned();
            if read.cut {
                text.push_str(&format!("\n[vr: output cut at {} KiB]", limit >> 10));
            }
            Ok(Some(text))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("vr refused to read the uptest's {name}: {e} (results must be plain files)")),
    }
}

fn read_results(results: &std::path::Path) -> Vec<UptestResult> {
    let dir = match beneath::open_dir_at(results) {
        Ok(dir) => dir,
        Err(e) => {
            let output = format!("cannot open the uptest results {}: {e}", results.display());
            return vec![UptestResult { name: "uptester".into(), output, passed: false }];
        }
    };
    let mut budget = TOTAL_LIMIT;
    let mut found = Vec::new();
    for n in 1..=MAX_TESTS {
        let name = match read_result(&dir, &format!("{n}.name"), 1024) {
            Ok(Some(name)) => name,
            Ok(None) => break,
            Err(refused) => format!("uptest {n} ({refused})"),
        };
        let output = read_result(&dir, &format!("{n}.out"), OUTPUT_LIMIT.min(budget));
        let rc = read_result(&dir, &format!("{n}.rc"), 64);
        // No exit code means the test was still running when the container ended.
        let passed = matches!(&rc, Ok(Some(rc)) if rc.trim() == "0") && output.is_ok();
        let mut output = output.unwrap_or_else(Some).unwrap_or_default();
        if let Err(refused) = rc {
            output.push_str(&format!("\n{refused}"));
        }
        budget = budget.saturating_sub(output.len() as u64);
        found.push(UptestResult { name, output, passed });
    }
    found
}

/// A watchdog that asks the launcher in `watch` to stop the container after `limit`.
struct Watchdog {
    done: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<bool>,
}

fn stop_after(limit: Duration, watch: LaunchWatch) -> Watchdog {
    let (done, finished) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || match finished.recv_timeout(limit) {
        Err(mpsc::RecvTimeoutError::Timeout) => {
            let pid = watch.load(Ordering::SeqCst);
            if pid != 0 {
                // The launcher stops the container as for any stop (SIGKILL after the grace).
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
            true
        }
        _ => false,
    });
    Watchdog { done, thread }
}

impl Watchdog {
    /// Ends the watch; returns whether the limit was hit.
    fn finish(self) -> bool {
        drop(self.done);
        self.thread.join().unwrap_or(false)
    }
}

impl Runner {
    /// Runs the uptests of a set-up proc.
    pub fn uptest(&self, spec: &ProcSpec) -> Result<Vec<UptestResult>, RunnerError> {
        let dir = ProcDir(self.layout.proc_dir(&spec.name));
        if !dir.join("meta/proc.sh").exists() {
            return Err(RunnerError::NotSetUp(spec.name.to_string()));
        }
        let sibling = Sibling::new(&dir, "uptest")?;
        let results = sibling.path().join("results");
        fs::create_dir(&results)
            .map_err(|e| RunnerError::Io(format!("failed to create {}: {e}", results.display())))?;
        // The tests run as the proc's user; the dir's parent is root-only, so 0777 exposes nothing.
        fs::set_permissions(&results, fs::Permissions::from_mode(0o777))
            .map_err(|e| RunnerError::Io(e.to_string()))?;
        let script = results.join("run.sh");
        fs::write(&script, uptest_sh(&spec.name.proc, &spec.host, spec.name.port))
            .map_err(|e| RunnerError::Io(e.to_string()))?;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755))
            .map_err(|e| RunnerError::Io(e.to_string()))?;
        let plan = self.plan(spec, &dir, sibling.path(), Mode::Uptest { results: results.clone() })?;
        let watch = LaunchWatch::default();
        let timer = stop_after(self.uptest_timeout, watch.clone());
        let status = self.launch(&plan, sibling.path(), null_stdio()?, &watch);
        let timed_out = timer.finish();
        let status = status?;
        let mut found = read_results(&results);
        if timed_out {
            found.push(UptestResult {
                name: "uptester".into(),
                output: format!(
                    "the uptests were stopped after {} s (uptest_timeout_secs): a test never ended",
                    self.uptest_timeout.as_secs()
                ),
                passed: false,
            });
        } else if status.setup_failed || status.code != 0 {
            found.push(UptestResult {
                name: "uptester".into(),
                output: match &status.error {
                    Some(error) => format!("the uptest container could not start: {error}"),
                    None => format!(
                        "the uptest container ended with code {} (oom killed: {})",
                        status.code, status.oom_killed
                    ),
                },
                passed: false,
            });
        }
        Ok(found)
    }
}
