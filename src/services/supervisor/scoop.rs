//! The scooper (VR's `procs_scooper` and `filesystem_scooper`): finds what nothing owns and removes
//! it. A container (cgroup) is owned when a known proc (supervised, or busy in the runner) or a
//! set-up proc dir claims it, or it is a job's; an unowned one older than a minute (so one being
//! set up is never touched) is killed and removed. A proc dir is owned when a known proc claims it;
//! an unowned one whose proc.yaml is older than a week (VR's rule) and whose container is gone is
//! removed. The decisions are a pure function ([`verdicts`]); [`Supervisor::scoop`] applies them.
//! It also collects the unpacked images and builds no proc uses ([`caches`]).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{Supervisor, SupervisorError};
use crate::host::cgroup::{self, CgroupRoot, ProcCgroup};
use crate::services::runner::layout::ProcDir;
use crate::services::runner::RunnerError;
use crate::services::runner::{caches, retained};

/// A container younger than this may still be starting.
const CGROUP_MIN_AGE: Duration = Duration::from_secs(60);
/// VR removed unowned proc dirs after a week.
const PROC_DIR_MIN_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// What the scooper sees.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Supervised procs and procs busy in the runner.
    pub known: BTreeSet<String>,
    /// Proc dirs, with the age of their proc.yaml (None: no proc.yaml).
    pub dirs: Vec<(String, Option<Duration>)>,
    /// Cgroup children of vrd's parent, with their age.
    pub cgroups: Vec<(String, Duration)>,
}

/// What to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdicts {
    /// Cgroup children to kill and remove.
    pub cgroups: Vec<String>,
    /// Proc dirs to remove.
    pub dirs: Vec<String>,
}

/// Whether `child` (a cgroup child or dir name) belongs to `name`: itself or a sibling of it
/// (`<name>.<sibling>`, the uptest and shell containers).
fn claims(name: &str, child: &str) -> bool {
    child == name || child.strip_prefix(name).is_some_and(|rest| rest.starts_with('.'))
}

/// The scooper's decisions.
pub fn verdicts(seen: &Seen) -> Verdicts {
    let owned_dir = |d: &(String, Option<Duration>)| {
        seen.known.iter().any(|k| claims(k, &d.0)) || d.1.is_none_or(|age| age < PROC_DIR_MIN_AGE)
    };
    let doomed_dirs: Vec<String> = seen.dirs.iter().filter(|d| !owned_dir(d)).map(|d| d.0.clone()).collect();
    let kept_dirs: Vec<&String> = seen.dirs.iter().filter(|d| owned_dir(d)).map(|d| &d.0).collect();
    let cgroups = seen
        .cgroups
        .iter()
        .filter(|(child, age)| {
            !child.starts_with("job-")
                && *age >= CGROUP_MIN_AGE
                && !seen.known.iter().any(|k| claims(k, child))
                && !kept_dirs.iter().any(|d| claims(d, child))
        })
        .map(|(child, _)| child.clone())
        .collect();
    Verdicts { cgroups, dirs: doomed_dirs }
}

fn age_of(path: &Path) -> Option<Duration> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    Some(SystemTime::now().duration_since(modified).unwrap_or_default())
}

impl Supervisor {
    /// Removes the containers and proc dirs nothing owns (or, with `dry_run`, says which it
    /// would); returns one line per thing.
    pub async fn scoop(&self, dry_run: bool) -> Result<Vec<String>, SupervisorError> {
        let mut known: BTreeSet<String> = self.list().await?.into_iter().map(|r| r.name).collect();
        known.extend(self.runner().locks.busy_names());
        let runner = std::sync::Arc::clone(self.runner());
        let retention = self.shared.policy.log_retention;
        let work = move || -> Result<Vec<String>, RunnerError> {
            let root = CgroupRoot::detect(&runner.cgroup_root).map_err(|e| RunnerError::Io(e.to_string()))?;
            let seen = look(&runner.layout.data_dir.join("procs"), &root, &runner.cgroup_parent, known)?;
            let v = verdicts(&seen);
            let mut done = Vec::new();
            for child in &v.cgroups {
                let name = format!("{}/{child}", runner.cgroup_parent);
                if !dry_run {
                    let cg = ProcCgroup::load(&root, &name).map_err(|e| RunnerError::Io(e.to_string()))?;
                    let _ = cg.kill_all_and_wait(Duration::from_secs(5));
                    cg.destroy().map_err(|e| RunnerError::Io(e.to_string()))?;
                }
                done.push(format!("container {child} (cgroup {name}): no proc owns it"));
            }
            for dir in &v.dirs {
                let path = runner.layout.data_dir.join("procs").join(dir);
                if !dry_run {
                    ProcDir(path.clone()).remove()?;
                }
                done.push(format!("proc dir {}: unknown to vrd for over 7 days", path.display()));
            }
            done.extend(caches::collect(&runner.layout, dry_run)?);
            done.extend(retained::collect(&runner.layout.data_dir, retention, dry_run));
            Ok(done)
        };
        let mut done = tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| RunnerError::Io(format!("the scooper task failed: {e}")))??;
        done.extend(self.prune_audit(dry_run).await?);
        for line in &done {
            tracing::warn!(dry_run, "scooper: {line}");
        }
        Ok(done)
    }
}

impl Supervisor {
    /// Audit entries older than the retention go (the log stays bounded); one line saying how many.
    async fn prune_audit(&self, dry_run: bool) -> Result<Option<String>, SupervisorError> {
        let retention = self.shared.policy.audit_retention;
        if dry_run || retention.is_zero() {
            return Ok(None);
        }
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let before = now.saturating_sub(retention).as_millis() as i64;
        let removed = self.state().prune_audit(before).await?;
        Ok((removed > 0)
            .then(|| format!("audit log: {removed} entries older than {} days", retention.as_secs() / 86400)))
    }
}

/// Reads the proc dirs and the cgroup children.
fn look(procs: &Path, root: &CgroupRoot, parent: &str, known: BTreeSet<String>) -> Result<Seen, RunnerError> {
    let mut dirs = Vec::new();
    if let Ok(entries) = std::fs::read_dir(procs) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            dirs.push((name, age_of(&entry.path().join("proc.yaml"))));
        }
    }
    let mut cgroups = Vec::new();
    let trees = root.tree_roots();
    for name in cgroup::stray_cgroups(root, parent).map_err(|e| RunnerError::Io(e.to_string()))? {
        let child = name.strip_prefix(&format!("{parent}/")).unwrap_or(&name).to_string();
        let age = trees.iter().filter_map(|t| age_of(&t.join(&name))).min().unwrap_or_default();
        cgroups.push((child, age));
    }
    Ok(Seen { known, dirs, cgroups })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: Duration = Duration::from_secs(8 * 24 * 3600);
    const NEW: Duration = Duration::from_secs(5);

    #[test]
    fn only_what_nothing_owns_and_is_old_enough_goes() {
        let seen = Seen {
            known: BTreeSet::from(["app-1-prod-h-web-5000".to_string()]),
            dirs: vec![
                ("app-1-prod-h-web-5000".into(), Some(OLD)),
                ("app-1-prod-h-web-5001".into(), Some(OLD)),
                ("app-1-prod-h-web-5002".into(), Some(NEW)),
                ("app-1-prod-h-web-5003".into(), None),
            ],
            cgroups: vec![
                ("app-1-prod-h-web-5000".into(), OLD),
                ("app-1-prod-h-web-5000.uptest-x".into(), OLD),
                ("app-1-prod-h-web-5002".into(), OLD),
                ("app-1-prod-h-web-5001".into(), OLD),
                ("ghost-1-prod-h-web-6000".into(), OLD),
                ("ghost-1-prod-h-web-6001".into(), NEW),
                ("job-abc".into(), OLD),
            ],
        };
        let v = verdicts(&seen);
        assert_eq!(v.dirs, ["app-1-prod-h-web-5001"]);
        assert_eq!(v.cgroups, ["app-1-prod-h-web-5001", "ghost-1-prod-h-web-6000"]);
    }

    #[test]
    fn a_name_claims_its_siblings_but_not_longer_names() {
        assert!(claims("a-1-p-h-web-500", "a-1-p-h-web-500.shell-1"));
        assert!(!claims("a-1-p-h-web-500", "a-1-p-h-web-5001"));
    }
}
