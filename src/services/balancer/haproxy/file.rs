//! haproxy's config file on disk: read it, replace it atomically (temp file beside it, fsync,
//! rename, fsync the directory, keeping its mode and owner), check it with `haproxy -c`, and run
//! the reload command. A change haproxy refuses is undone by writing the previous text back.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::services::balancer::BalancerError;

/// How long `haproxy -c` or the reload command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The config file's text.
pub async fn read(path: &Path) -> Result<String, BalancerError> {
    tokio::fs::read_to_string(path).await.map_err(|cause| BalancerError::Io {
        what: "read haproxy's config file (config_file)",
        path: path.to_path_buf(),
        cause,
    })
}

/// Replaces the file's text in one rename, so haproxy never reads half of it.
pub async fn write(path: &Path, text: &str) -> Result<(), BalancerError> {
    let (path, text) = (path.to_path_buf(), text.to_string());
    let task = tokio::task::spawn_blocking(move || write_atomic(&path, &text));
    task.await.map_err(|e| BalancerError::Invalid(format!("writing haproxy's config file failed: {e}")))?
}

fn write_atomic(path: &Path, text: &str) -> Result<(), BalancerError> {
    let io = |what, cause| BalancerError::Io { what, path: path.to_path_buf(), cause };
    let dir = parent(path);
    let meta = std::fs::metadata(path).map_err(|e| io("stat", e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".vr-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| io("create a temp file beside", e))?;
    tmp.write_all(text.as_bytes()).map_err(|e| io("write a temp file for", e))?;
    let file = tmp.as_file();
    file.set_permissions(meta.permissions()).map_err(|e| io("set the mode of a temp file for", e))?;
    std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid()))
        .map_err(|e| io("set the owner of a temp file for", e))?;
    file.sync_all().map_err(|e| io("fsync a temp file for", e))?;
    tmp.persist(path).map_err(|e| io("rename a temp file onto", e.error))?;
    std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(|cause| BalancerError::Io {
        what: "fsync the directory",
        path: dir,
        cause,
    })
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Runs `argv` to completion; a failure carries its output.
pub async fn run(argv: &[String], what: String) -> Result<(), BalancerError> {
    let failed = |output: String| BalancerError::Command { what: what.clone(), output };
    let (program, args) = argv.split_first().ok_or_else(|| failed("the command is empty".into()))?;
    let mut command = tokio::process::Command::new(program);
    command.args(args).stdin(std::process::Stdio::null()).kill_on_drop(true);
    let output = match tokio::time::timeout(COMMAND_TIMEOUT, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(failed(format!("cannot run {program}: {e}"))),
        Err(_) => return Err(failed(format!("it did not finish within {COMMAND_TIMEOUT:?}"))),
    };
    if output.status.success() {
        return Ok(());
    }
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Err(failed(format!("{} ({})", text.trim(), output.status)))
}

/// Asks haproxy whether the file is a valid configuration; the error quotes its alerts.
pub async fn check(balancer: &str, path: &Path) -> Result<(), BalancerError> {
    let argv = ["haproxy".to_string(), "-c".into(), "-f".into(), path.display().to_string()];
    let what = format!("balancer '{balancer}': checking {} with `haproxy -c`", path.display());
    match run(&argv, what).await {
        Err(BalancerError::Command { what, output }) => {
            Err(BalancerError::Command { what, output: without_notices(&output) })
        }
        other => other,
    }
}

/// haproxy's output without its `[NOTICE]` lines (its version and path), which bury the alerts.
fn without_notices(output: &str) -> String {
    let kept: Vec<&str> = output.lines().filter(|l| !l.trim_start().starts_with("[NOTICE]")).collect();
    kept.join("\n")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[tokio::test]
    async fn a_rewrite_keeps_the_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write(&path, "new").await.unwrap();
        assert_eq!(read(&path).await.unwrap(), "new");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "a temp file was left behind");
    }

    #[tokio::test]
    async fn a_failing_command_reports_its_output_and_status() {
        let argv = ["sh", "-c", "echo nope >&2; exit 3"].map(String::from);
        let err = run(&argv, "reloading".into()).await.unwrap_err().to_string();
        assert!(err.starts_with("reloading failed: nope") && err.contains("3"), "{err}");
        let err = run(&["/no/such/program".to_string()], "reloading".into()).await.unwrap_err().to_string();
        assert!(err.contains("cannot run /no/such/program"), "{err}");
    }
}
