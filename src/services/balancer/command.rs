//! Running the programs balancers drive (`nginx -t`, a reload, `varnishadm`, an exec plug-in): an
//! argv list, never a shell line, with optional stdin, a deadline after which the program is
//! killed, and its output captured for the error message.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::BalancerError;

/// How long a test, reload or admin command may take: nginx -t and vcl.load take well under a
/// second, so a minute means the program is stuck, not slow.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);

/// What a program printed.
#[derive(Debug, Clone, Default)]
pub struct Printed {
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl Printed {
    /// Both streams, trimmed, for a message (nginx -t says everything on stderr, varnishadm on
    /// stdout).
    pub fn both(&self) -> String {
        let parts = [self.stdout.trim(), self.stderr.trim()];
        parts.iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join("\n")
    }
}

/// Runs `argv` with `input` on stdin. `what` names the step for errors (e.g. "balancer 'web':
/// `nginx -t`"). A non-zero exit, a failure to start and a timeout are all
/// [`BalancerError::Command`]; the output of a failed program is in the error.
pub async fn run(
    what: &str,
    argv: &[String],
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<Printed, BalancerError> {
    let fail = |output: String| BalancerError::Command { what: what.to_string(), output };
    let Some((program, args)) = argv.split_first() else {
        return Err(fail("the command is empty; give the program and its arguments as a list".into()));
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true) // a timed-out wait drops the child, which kills it
        .spawn()
        .map_err(|e| fail(format!("could not start {program}: {e}; check the path in vrd's config")))?;
    let stdin = child.stdin.take();
    let feed = async {
        if let (Some(mut pipe), Some(bytes)) = (stdin, input) {
            // A program that answers without reading its stdin closes the pipe: that is its call.
            let _ = pipe.write_all(bytes).await;
        }
    };
    let finished = async { tokio::join!(feed, child.wait_with_output()).1 };
    let out = match tokio::time::timeout(timeout, finished).await {
        Ok(out) => out.map_err(|e| fail(format!("could not wait for {program}: {e}")))?,
        Err(_) => {
            return Err(fail(format!(
                "{program} did not finish within {} s and was killed; find out why it hangs",
                timeout.as_secs()
            )))
        }
    };
    let printed = Printed {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    if !out.status.success() {
        let said = printed.both();
        let said = if said.is_empty() { "(it printed nothing)".to_string() } else { said };
        return Err(fail(format!("{program} exited with {}: {said}", out.status)));
    }
    Ok(printed)
}

/// An argv list as a user would type it, for messages.
pub fn shown(argv: &[String]) -> String {
    argv.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[tokio::test]
    async fn stdin_goes_in_and_output_comes_back() {
        let out = run("cat", &sh("cat; echo err >&2"), Some(b"hello"), CONTROL_TIMEOUT).await.unwrap();
        assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("hello", "err\n"));
    }

    #[tokio::test]
    async fn a_failure_quotes_the_program_and_what_it_said() {
        let err = run("balancer 'x': test", &sh("echo broken >&2; exit 3"), None, CONTROL_TIMEOUT)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("balancer 'x': test failed"), "{err}");
        assert!(err.contains("broken") && err.contains("3"), "{err}");
        let err = run("x", &["/nonexistent/prog".to_string()], None, CONTROL_TIMEOUT).await.unwrap_err();
        assert!(err.to_string().contains("/nonexistent/prog"), "{err}");
    }

    #[tokio::test]
    async fn a_program_past_its_deadline_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let script = format!("sleep 2; touch {}", marker.display());
        let started = std::time::Instant::now();
        let err = run("slow", &sh(&script), None, Duration::from_millis(200)).await.unwrap_err();
        assert!(err.to_string().contains("killed"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "the program kept running after its timeout");
    }
}
