//! haproxy's config file on disk: read it, replace it atomically (temp file beside it, fsync,
//! rename, fsync the directory, keeping its mode and owner), check it with `haproxy -c`, and run
//! the reload command. A change haproxy refuses is undone by writing the previous text back.

use std::path::Path;

use crate::services::balancer::{command, files, BalancerError};

/// The config file's text.
pub async fn read(path: &Path) -> Result<String, BalancerError> {
    tokio::fs::read_to_string(path).await.map_err(|cause| BalancerError::Io {
        what: "read haproxy's config file (config_file)",
        path: path.to_path_buf(),
        cause,
    })
}

/// Replaces the file's text in one rename, so haproxy never reads half of it (mode and owner kept).
pub async fn write(path: &Path, text: &str) -> Result<(), BalancerError> {
    files::put(path, Some(text)).await
}

/// Runs `argv` to completion; a failure carries its output.
pub async fn run(argv: &[String], what: String) -> Result<(), BalancerError> {
    command::run(&what, argv, None, command::CONTROL_TIMEOUT).await.map(|_| ())
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
}
