//! Garbage collection of the store, by Velociraptor's rule: a build's slug and log go when the
//! build is older than the age limit AND is not among the newest successful builds of its app AND
//! no proc or swarm uses it; a stack image's tarball and log go when it is not its stack's active
//! image, is older than the age limit, is not among the newest images of its stack and no proc
//! runs on it; a store file nothing remaining references goes too. The records stay (marked
//! `collected`), so `vr builds list` and `vr stacks images` still tell the history.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;

use super::{io_err, BuildStore, BuildsError};
use crate::model::build_record::{BuildRecord, STARTED, SUCCEEDED};
use crate::model::image_record::ImageRecord;

/// VR's age limit: 30 days.
pub const DEFAULT_MAX_AGE_SECS: i64 = 30 * 24 * 3600;
/// VR's keep count: the newest 10 successful builds of each app (and images of each stack).
pub const DEFAULT_KEEP: usize = 10;

/// What procs and swarms use now; none of it is collected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InUse {
    /// Builds of swarms' current releases and of their procs' releases.
    pub builds: HashSet<u64>,
    /// Store addresses (sha256) a proc's proc.yaml names as its build_url or image_url.
    pub artifacts: HashSet<String>,
    /// The image md5s procs run on.
    pub image_md5s: HashSet<String>,
}

impl InUse {
    /// From the proc.yaml of every proc the supervisor keeps, and the builds swarms use.
    pub fn gather(store: &BuildStore, proc_yamls: &[String], builds: impl IntoIterator<Item = u64>) -> InUse {
        let mut in_use = InUse { builds: builds.into_iter().collect(), ..InUse::default() };
        let store_dir = store.store_dir();
        for yaml in proc_yamls {
            let Ok(doc) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(yaml) else { continue };
            let text = |key: &str| doc.get(key).and_then(serde_yaml_ng::Value::as_str).map(str::to_string);
            for (sha_key, url_key) in [("build_sha256", "build_url"), ("image_sha256", "image_url")] {
                // Swarm procs name their artifacts by content; procs deployed before that (or by
                // hand) only by path, which is read back for them alone.
                let sha = text(sha_key).or_else(|| store_address(&store_dir, &text(url_key)?));
                in_use.artifacts.extend(sha);
            }
            if let Some(md5) = text("image_md5") {
                in_use.image_md5s.insert(md5.to_ascii_lowercase());
            }
        }
        in_use
    }
}

/// The sha256 of a url that names a file of the store (`/data/store/sha256/<hex>`, or file://):
/// only for proc.yaml files without `build_sha256`/`image_sha256`.
fn store_address(store_dir: &Path, url: &str) -> Option<String> {
    let path = Path::new(url.strip_prefix("file://").unwrap_or(url));
    let name = path.file_name()?.to_str()?;
    let is_address = crate::model::deploy::release::is_sha256(name);
    (is_address && path.parent() == Some(store_dir)).then(|| name.to_string())
}

/// The ids of `records` that are among the `keep` newest successful ones of their group.
fn newest_per_group<'a, T>(
    records: &'a [T],
    keep: usize,
    id: impl Fn(&T) -> u64,
    group: impl Fn(&'a T) -> &'a str,
    counts: impl Fn(&T) -> bool,
) -> HashSet<u64> {
    let mut kept_per_group: HashMap<&str, usize> = HashMap::new();
    let mut newest_first: Vec<&T> = records.iter().filter(|r| counts(r)).collect();
    newest_first.sort_by_key(|r| std::cmp::Reverse(id(r)));
    let mut protected = HashSet::new();
    for r in newest_first {
        let n = kept_per_group.entry(group(r)).or_default();
        if *n < keep {
            *n += 1;
            protected.insert(id(r));
        }
    }
    protected
}

/// The ids of the builds whose artifact and log should go: ended, not yet collected, started at
/// least `max_age_secs` before `now`, not among the `keep` newest successful builds of their
/// app, and not used by a swarm or a proc. Pure, so the rule is tested as a value.
pub fn doomed(builds: &[BuildRecord], now: i64, max_age_secs: i64, keep: usize, in_use: &InUse) -> Vec<u64> {
    let protected = newest_per_group(
        builds,
        keep,
        |b| b.id,
        |b| b.app_name.as_str(),
        |b| b.status == SUCCEEDED && b.collected.is_none(),
    );
    let used = |b: &BuildRecord| {
        in_use.builds.contains(&b.id) || b.artifact.as_ref().is_some_and(|a| in_use.artifacts.contains(a))
    };
    let mut ids: Vec<u64> = builds
        .iter()
        .filter(|b| b.status != STARTED && b.collected.is_none())
        .filter(|b| now.saturating_sub(b.started) >= max_age_secs && !protected.contains(&b.id))
        .filter(|b| !used(b))
        .filter(|b| b.artifact.is_some() || b.log_path.is_some())
        .map(|b| b.id)
        .collect();
    ids.sort_unstable();
    ids
}

/// The ids of the stack images whose tarball and log should go: ended, not collected, not
/// active, made at least `max_age_secs` before `now`, not among the `keep` newest successful
/// images of their stack, and no proc runs on them (by store address or md5). Pure.
pub fn doomed_images(
    images: &[ImageRecord],
    now: i64,
    max_age_secs: i64,
    keep: usize,
    in_use: &InUse,
) -> Vec<u64> {
    let protected = newest_per_group(
        images,
        keep,
        |i| i.id,
        |i| i.stack.as_str(),
        |i| i.status == SUCCEEDED && i.collected.is_none(),
    );
    let used = |i: &ImageRecord| {
        i.active
            || i.artifact.as_ref().is_some_and(|a| in_use.artifacts.contains(a))
            || i.md5.as_ref().is_some_and(|m| in_use.image_md5s.contains(&m.to_ascii_lowercase()))
    };
    let mut ids: Vec<u64> = images
        .iter()
        .filter(|i| i.status != STARTED && i.collected.is_none())
        .filter(|i| now.saturating_sub(i.created) >= max_age_secs && !protected.contains(&i.id))
        .filter(|i| !used(i))
        .filter(|i| i.artifact.is_some() || i.log_path.is_some())
        .map(|i| i.id)
        .collect();
    ids.sort_unstable();
    ids
}

/// What one gc run removes: the doomed builds and images, and the store files nothing else needs.
#[derive(Debug, Clone, Default)]
pub struct Doomed {
    /// Builds whose slug and log go.
    pub builds: Vec<u64>,
    /// Images whose tarball and log go.
    pub images: Vec<u64>,
}

/// The store files no build or image outside `doomed` references and no proc uses (temp files of
/// running builds excluded).
pub fn orphans(
    store: &BuildStore,
    builds: &[BuildRecord],
    images: &[ImageRecord],
    doomed: &Doomed,
    in_use: &InUse,
) -> Result<Vec<String>, BuildsError> {
    let mut referenced: HashSet<&str> = builds
        .iter()
        .filter(|b| !doomed.builds.contains(&b.id))
        .filter_map(|b| b.artifact.as_deref())
        .collect();
    referenced.extend(
        images.iter().filter(|i| !doomed.images.contains(&i.id)).filter_map(|i| i.artifact.as_deref()),
    );
    referenced.extend(in_use.artifacts.iter().map(String::as_str));
    let dir = store.store_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", &dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let name = entry.map_err(io_err("list", &dir))?.file_name().to_string_lossy().into_owned();
        let is_address = crate::model::deploy::release::is_sha256(&name);
        if is_address && !referenced.contains(name.as_str()) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Removes the kept logs of the doomed builds and images and the orphaned store files; returns a
/// line per removed thing. With `dry_run` nothing is removed and the lines say what would be.
pub fn sweep(
    store: &BuildStore,
    builds: &[BuildRecord],
    images: &[ImageRecord],
    doomed: &Doomed,
    orphans: &[String],
    dry_run: bool,
) -> Result<Vec<String>, BuildsError> {
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut lines = Vec::new();
    let logs = builds
        .iter()
        .filter(|b| doomed.builds.contains(&b.id))
        .map(|b| (store.build_dir(b.id), format!("build {} ({} {})", b.id, b.app_name, b.version)));
    let image_logs = images
        .iter()
        .filter(|i| doomed.images.contains(&i.id))
        .map(|i| (store.image_dir(i.id), format!("image {} of stack {}", i.name, i.stack)));
    for (dir, what) in logs.chain(image_logs) {
        if dir.exists() {
            if !dry_run {
                fs::remove_dir_all(&dir).map_err(io_err("remove", &dir))?;
            }
            lines.push(format!("{verb} the log of {what}"));
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

    const DAY: i64 = 24 * 3600;

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

    fn image(id: u64, stack: &str, status: &str, created: i64, active: bool) -> ImageRecord {
        ImageRecord {
            id,
            stack: stack.into(),
            name: format!("{stack}-{id}"),
            status: status.into(),
            error: None,
            md5: Some(format!("{id:032x}")),
            artifact: Some(format!("{:064x}", id + 1000)),
            url: None,
            log_path: Some("log".into()),
            active,
            created,
            ended: Some(created),
            collected: None,
        }
    }

    #[test]
    fn old_builds_go_unless_among_the_newest_successful_of_their_app() {
        let builds = [
            build(1, "a", SUCCEEDED, 0),
            build(2, "a", "failed", 0),
            build(3, "a", SUCCEEDED, 0),
            build(4, "b", SUCCEEDED, 0),
            build(5, "a", SUCCEEDED, 40 * DAY),
            build(6, "a", STARTED, 0),
        ];
        let none = InUse::default();
        assert_eq!(doomed(&builds, 41 * DAY, DEFAULT_MAX_AGE_SECS, 1, &none), vec![1, 2, 3]);
        assert_eq!(doomed(&builds, 41 * DAY, DEFAULT_MAX_AGE_SECS, 2, &none), vec![1, 2]);
        assert_eq!(doomed(&builds, 41 * DAY, 0, 1, &none), vec![1, 2, 3]);
        assert_eq!(doomed(&builds, 20 * DAY, DEFAULT_MAX_AGE_SECS, 0, &none), Vec::<u64>::new());
    }

    #[test]
    fn a_build_a_swarm_or_a_proc_uses_is_never_collected() {
        let builds = [build(1, "a", SUCCEEDED, 0), build(2, "a", SUCCEEDED, 0), build(3, "a", SUCCEEDED, 0)];
        let in_use = InUse {
            builds: HashSet::from([1]),
            artifacts: HashSet::from([format!("{:064x}", 2)]),
            ..InUse::default()
        };
        assert_eq!(doomed(&builds, 41 * DAY, DEFAULT_MAX_AGE_SECS, 0, &in_use), vec![3]);
    }

    #[test]
    fn old_images_go_unless_active_newest_or_run_by_a_proc() {
        let images = [
            image(1, "s", SUCCEEDED, 0, false),
            image(2, "s", "failed", 0, false),
            image(3, "s", SUCCEEDED, 0, false),
            image(4, "s", SUCCEEDED, 0, true),
            image(5, "t", SUCCEEDED, 0, false),
            image(6, "s", STARTED, 0, false),
            image(7, "s", SUCCEEDED, 40 * DAY, false),
        ];
        let none = InUse::default();
        // keep 0: everything old and idle goes, but never the active image or a running build.
        assert_eq!(doomed_images(&images, 41 * DAY, DEFAULT_MAX_AGE_SECS, 0, &none), vec![1, 2, 3, 5]);
        // keep 2: the two newest successful of each stack stay (7 and 4 of s, 5 of t).
        assert_eq!(doomed_images(&images, 41 * DAY, DEFAULT_MAX_AGE_SECS, 2, &none), vec![1, 2, 3]);
        // Young images stay whatever the count.
        assert_eq!(doomed_images(&images, 20 * DAY, DEFAULT_MAX_AGE_SECS, 0, &none), Vec::<u64>::new());
        let in_use = InUse {
            artifacts: HashSet::from([format!("{:064x}", 1001)]),
            image_md5s: HashSet::from([format!("{:032x}", 3)]),
            ..InUse::default()
        };
        assert_eq!(doomed_images(&images, 41 * DAY, DEFAULT_MAX_AGE_SECS, 0, &in_use), vec![2, 5]);
    }

    #[test]
    fn procs_keep_the_store_files_their_proc_yaml_names() {
        let store = BuildStore::new(Path::new("/var/lib/vrd"));
        let slug = "a".repeat(64);
        let tarball = "b".repeat(64);
        let yamls = [
            format!(
                "build_url: /var/lib/vrd/store/sha256/{slug}\nimage_url: file:///var/lib/vrd/store/sha256/{tarball}\n\
                 image_md5: ABCDEF0123456789ABCDEF0123456789\n"
            ),
            "build_url: https://builds.example.com/x.tar.gz\nimage_url: /srv/other/".to_string() + &"c".repeat(64),
            "not: [valid".to_string(),
            // A peer's proc.yaml: its own paths, the coordinator's addresses.
            format!("build_url: /elsewhere/slug\nbuild_sha256: {}\n", "d".repeat(64)),
        ];
        let in_use = InUse::gather(&store, &yamls, [7]);
        assert_eq!(in_use.artifacts, HashSet::from([slug, tarball, "d".repeat(64)]));
        assert_eq!(in_use.image_md5s, HashSet::from(["abcdef0123456789abcdef0123456789".to_string()]));
        assert_eq!(in_use.builds, HashSet::from([7]));
    }
}
