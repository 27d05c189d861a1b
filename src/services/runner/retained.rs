//! The logs of procs that are gone: when a proc dir is removed (destroy, teardown, the scooper),
//! its log is kept at `logs/retained/<proc>.<unix secs>.log` under the data dir, so `vr logs` still
//! reads it after a redeploy retires the proc (VR lost them). The scooper removes retained logs
//! older than the retention period (`log_retention_days`, default 7).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long a gone proc's log is kept by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where retained logs live under `data_dir`.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("logs").join("retained")
}

/// Moves the log of the proc dir `proc_dir` (`<data>/procs/<name>`) to the retained logs; a
/// proc that never wrote one keeps nothing. Failures are logged, never in the way of a removal.
pub fn retain(proc_dir: &Path) {
    let log = proc_dir.join("log");
    let (Some(name), Some(data_dir)) = (proc_dir.file_name(), proc_dir.parent().and_then(Path::parent))
    else {
        return;
    };
    if !std::fs::metadata(&log).is_ok_and(|m| m.len() > 0) {
        return;
    }
    let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let dir = dir(data_dir);
    let kept = dir.join(format!("{}.{secs}.log", name.to_string_lossy()));
    // `procs/` is a mount of its own (see ARCHITECTURE, kept roots), so a rename out of it fails
    // with EXDEV even on one file system: then the log is copied.
    let moved = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::rename(&log, &kept).or_else(|_| std::fs::copy(&log, &kept).map(drop)));
    if let Err(e) = moved {
        tracing::warn!(log = %log.display(), error = %e, "failed to keep a gone proc's log");
    }
}

/// The newest retained log of proc `name`, if any.
pub fn find(data_dir: &Path, name: &str) -> Option<PathBuf> {
    let prefix = format!("{name}.");
    let entries = std::fs::read_dir(dir(data_dir)).ok()?;
    entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let secs: u64 = file.strip_prefix(&prefix)?.strip_suffix(".log")?.parse().ok()?;
            Some((secs, e.path()))
        })
        .max()
        .map(|(_, path)| path)
}

/// Removes retained logs older than `retention` (by when they were retained); returns what it
/// removed (or would, with `dry_run`).
pub fn collect(data_dir: &Path, retention: Duration, dry_run: bool) -> Vec<String> {
    let now = SystemTime::now();
    let Ok(entries) = std::fs::read_dir(dir(data_dir)) else { return Vec::new() };
    let mut done = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(secs) = file.strip_suffix(".log").and_then(|f| f.rsplit('.').next()?.parse::<u64>().ok())
        else {
            continue;
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        if now.duration_since(at).unwrap_or_default() <= retention {
            continue;
        }
        if !dry_run {
            if let Err(e) = std::fs::remove_file(entry.path()) {
                tracing::warn!(log = %entry.path().display(), error = %e, "failed to remove a retained log");
                continue;
            }
        }
        done.push(format!("retained log {file}: older than {} days", retention.as_secs() / 86400));
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gone_procs_log_is_kept_found_and_collected_after_the_retention() {
        let data = tempfile::tempdir().unwrap();
        let proc_dir = data.path().join("procs").join("hello-v1-prod-abcdef12-web-1");
        std::fs::create_dir_all(&proc_dir).unwrap();
        std::fs::write(proc_dir.join("log"), "2026-12-03T07:00:00Z hello\n").unwrap();
        retain(&proc_dir);
        let kept = find(data.path(), "hello-v1-prod-abcdef12-web-1").expect("the log is kept");
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "2026-12-03T07:00:00Z hello\n");
        assert!(find(data.path(), "hello-v1-prod-abcdef12-web").is_none(), "names match whole");
        // An old one goes; the fresh one stays.
        let old = dir(data.path()).join("hello-v1-prod-abcdef12-web-2.1000.log");
        std::fs::write(&old, "x\n").unwrap();
        let gone = collect(data.path(), DEFAULT_RETENTION, false);
        assert_eq!(gone.len(), 1, "{gone:?}");
        assert!(!old.exists() && kept.exists());
        // A proc that wrote nothing leaves nothing.
        let quiet = data.path().join("procs").join("quiet-v1-prod-abcdef12-web-1");
        std::fs::create_dir_all(&quiet).unwrap();
        retain(&quiet);
        assert!(find(data.path(), "quiet-v1-prod-abcdef12-web-1").is_none());
    }
}
