//! Garbage collection of build artifacts and logs, by Velociraptor's rule: a build's slug and log
//! go when the build is older than the age limit AND is not among the newest successful builds of
//! its app; a store file no remaining build references goes too. The build records stay (marked
//! `collected`), so `vr builds list` still tells the history.

use std::collections::{HashMap, HashSet};
use std::fs;

use super::{io_err, BuildStore, BuildsError};
use crate::model::build_record::{BuildRecord, STARTED, SUCCEEDED};

/// VR's age limit: 30 days.
pub const DEFAULT_MAX_AGE_SECS: i64 = 30 * 24 * 3600;
/// VR's keep count: the newest 10 successful builds of each app.
pub const DEFAULT_KEEP: usize = 10;

/// The ids of the builds whose artifact and log should go: ended, not yet collected, started at
/// least `max_age_secs` before `now`, and not among the `keep` newest successful builds of their
/// app. Pure, so the rule is tested as a value.
pub fn doomed(builds: &[BuildRecord], now: i64, max_age_secs: i64, keep: usize) -> Vec<u64> {
    let mut kept_per_app: HashMap<&str, usize> = HashMap::new();
    let mut protected = HashSet::new();
    let mut newest_first: Vec<&BuildRecord> = builds.iter().collect();
    newest_first.sort_by_key(|b| std::cmp::Reverse(b.id));
    for b in &newest_first {
        if b.status == SUCCEEDED && b.collected.is_none() {
            let n = kept_per_app.entry(&b.app_name).or_default();
            if *n < keep {
                *n += 1;
                protected.insert(b.id);
            }
        }
    }
    let mut ids: Vec<u64> = builds
        .iter()
        .filter(|b| b.status != STARTED && b.collected.is_none())
        .filter(|b| now.saturating_sub(b.started) >= max_age_secs && !protected.contains(&b.id))
        .filter(|b| b.artifact.is_some() || b.log_path.is_some())
        .map(|b| b.id)
        .collect();
    ids.sort_unstable();
    ids
}

/// The store files no build outside `doomed` references (temp files of running builds excluded).
pub fn orphans(
    store: &BuildStore,
    builds: &[BuildRecord],
    doomed: &[u64],
) -> Result<Vec<String>, BuildsError> {
    let referenced: HashSet<&str> =
        builds.iter().filter(|b| !doomed.contains(&b.id)).filter_map(|b| b.artifact.as_deref()).collect();
    let dir = store.store_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", &dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let name = entry.map_err(io_err("list", &dir))?.file_name().to_string_lossy().into_owned();
        let is_address = name.len() == 64 && name.bytes().all(|c| c.is_ascii_hexdigit());
        if is_address && !referenced.contains(name.as_str()) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Removes the kept files of the doomed builds and the orphaned store files; returns a line per
/// removed thing. With `dry_run` nothing is removed and the lines say what would be.
pub fn sweep(
    store: &BuildStore,
    builds: &[BuildRecord],
    doomed: &[u64],
    orphans: &[String],
    dry_run: bool,
) -> Result<Vec<String>, BuildsError> {
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut lines = Vec::new();
    for b in builds.iter().filter(|b| doomed.contains(&b.id)) {
        let dir = store.build_dir(b.id);
        if dir.exists() {
            if !dry_run {
                fs::remove_dir_all(&dir).map_err(io_err("remove", &dir))?;
            }
            lines.push(format!("{verb} the log of build {} ({} {})", b.id, b.app_name, b.version));
        }
    }
    for name in orphans {
        let path = store.artifact_path(name);
        if !dry_run {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err("remove", &path)(e)),
                _ => {}
            }
        }
        lines.push(format!("{verb} artifact {}", path.display()));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(id: u64, app: &str, status: &str, started: i64) -> BuildRecord {
        BuildRecord {
            id,
            app_name: app.into(),
            version: "v1".into(),
            app_commit: None,
            buildpacks: vec![],
            status: status.into(),
            step: None,
            error: None,
            started,
            ended: Some(started),
            build_md5: None,
            artifact: Some(format!("{id:064x}")),
            log_path: Some("log".into()),
            collected: None,
            image_md5: None,
            env: Default::default(),
        }
    }

    #[test]
    fn old_builds_go_unless_among_the_newest_successful_of_their_app() {
        let day = 24 * 3600;
        let builds = [
            build(1, "a", SUCCEEDED, 0),
            build(2, "a", "failed", 0),
            build(3, "a", SUCCEEDED, 0),
            build(4, "b", SUCCEEDED, 0),
            build(5, "a", SUCCEEDED, 40 * day),
            build(6, "a", STARTED, 0),
        ];
        assert_eq!(doomed(&builds, 41 * day, DEFAULT_MAX_AGE_SECS, 1), vec![1, 2, 3]);
        assert_eq!(doomed(&builds, 41 * day, DEFAULT_MAX_AGE_SECS, 2), vec![1, 2]);
        assert_eq!(doomed(&builds, 41 * day, 0, 1), vec![1, 2, 3]);
        assert_eq!(doomed(&builds, 20 * day, DEFAULT_MAX_AGE_SECS, 0), Vec::<u64>::new());
    }
}
