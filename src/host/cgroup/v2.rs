//! What only v2 does differently: controllers must be enabled top-down in each ancestor's
//! `cgroup.subtree_control` before a child can use them, OOM kills are counted in `memory.events`,
//! and `cgroup.kill` (Linux 5.14+) kills a whole subtree in one write.
//!
//! cgroups-rs's own v2 creation reads the controller list from the hard-coded host root and
//! ignores write errors, so creating directories is done here against the injected root.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use cgroups_rs::fs::freezer::FreezerController;
use cgroups_rs::fs::Controller;
use nix::sys::signal::Signal;

use super::{files, CgroupError, ProcCgroup};

/// The controllers every container cgroup gets when the host offers them. Limits that need a
/// controller the host lacks fail when they are applied, naming the controller.
pub(super) const WANTED_CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

const FREEZE_WAIT: Duration = Duration::from_millis(500);
const POLL: Duration = Duration::from_millis(10);

/// Creates `root/name`, enabling the wanted controllers in the `cgroup.subtree_control` of the
/// root and of every intermediate cgroup first. Intermediate cgroups may already exist (the
/// shared `vrd` parent); the leaf must not, so a leftover is never silently reused.
pub(super) fn create_dirs(root: &Path, name: &str) -> Result<PathBuf, CgroupError> {
    let listed = root.join("cgroup.controllers");
    let available = files::read(&listed)?;
    let wanted: Vec<&str> =
        WANTED_CONTROLLERS.into_iter().filter(|c| available.split_whitespace().any(|a| a == *c)).collect();
    let parts: Vec<&str> = name.split('/').collect();
    let mut dir = root.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        enable_controllers(&dir, &wanted)?;
        dir.push(part);
        let is_leaf = i + 1 == parts.len();
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists && !is_leaf => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(CgroupError::AlreadyExists { name: name.to_string(), path: dir })
            }
            Err(source) => return Err(CgroupError::Io { action: "create", path: dir, source }),
        }
    }
    Ok(dir)
}

/// Enables `wanted` in `dir/cgroup.subtree_control`, writing only the ones not yet enabled, in one
/// write (`+cpu +memory +pids`), so an already delegated parent is left untouched.
fn enable_controllers(dir: &Path, wanted: &[&str]) -> Result<(), CgroupError> {
    let path = dir.join("cgroup.subtree_control");
    let enabled = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
        Err(source) => return Err(CgroupError::Io { action: "read", path, source }),
    };
    let missing: Vec<String> = wanted
        .iter()
        .filter(|w| !enabled.split_whitespace().any(|e| e == **w))
        .map(|w| format!("+{w}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    files::write(&path, &missing.join(" "))
}

/// The `oom_kill` count of `memory.events` (every v2 kernel reports it).
pub(super) fn oom_kills(dir: &Path) -> Result<u64, CgroupError> {
    let path = dir.join("memory.events");
    let text = files::read(&path)?;
    files::keyed_value(&path, &text, "oom_kill")?
        .ok_or_else(|| CgroupError::Parse { path, reason: "no oom_kill line".to_string() })
}

/// Kills every task in the cgroup and its descendants: `cgroup.kill` where the kernel has it,
/// otherwise freeze (`cgroup.freeze`, 5.2+), SIGKILL each pid, thaw.
pub(super) fn kill(pc: &ProcCgroup, deadline: Instant) -> Result<(), CgroupError> {
    let dir = pc.root.path().join(&pc.name);
    if dir.join("cgroup.kill").exists() {
        return pc.cg.kill().map_err(|source| CgroupError::Crate {
            action: "write",
            path: dir.join("cgroup.kill"),
            source,
        });
    }
    let freezer: Option<&FreezerController> = pc.cg.controller_of();
    let freezer = freezer.filter(|f| f.path().join("cgroup.freeze").exists());
    let freeze_err = |action, source| CgroupError::Crate { action, path: dir.join("cgroup.freeze"), source };
    if let Some(f) = freezer {
        f.freeze().map_err(|e| freeze_err("freeze", e))?;
        let until = deadline.min(Instant::now() + FREEZE_WAIT);
        while !frozen(&dir) && Instant::now() < until {
            sleep(POLL);
        }
    }
    let killed = pc.signal_all(Signal::SIGKILL);
    if let Some(f) = freezer {
        f.thaw().map_err(|e| freeze_err("thaw", e))?;
    }
    killed.map(|_| ())
}

/// Whether `cgroup.events` reports the cgroup fully frozen.
fn frozen(dir: &Path) -> bool {
    let path = dir.join("cgroup.events");
    fs::read_to_string(&path).ok().and_then(|text| files::keyed_value(&path, &text, "frozen").ok().flatten())
        == Some(1)
}

/// The memory files for usage and peak on v2 (`memory.peak` exists since Linux 5.19).
pub(super) fn memory_files(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("memory.current"), dir.join("memory.peak"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_enables_controllers_top_down_and_refuses_a_leftover_leaf() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::write(r.join("cgroup.controllers"), "cpuset cpu io memory hugetlb pids rdma\n").unwrap();
        // A systemd-managed root already delegates memory and pids.
        fs::write(r.join("cgroup.subtree_control"), "memory pids\n").unwrap();

        let leaf = create_dirs(r, "vrd/web-1").unwrap();
        assert_eq!(leaf, r.join("vrd/web-1"));
        // Only the missing controller is added at the root, all three in the parent, none in
        // the leaf (a leaf with processes may not hand controllers down).
        assert_eq!(fs::read_to_string(r.join("cgroup.subtree_control")).unwrap(), "+cpu");
        assert_eq!(fs::read_to_string(r.join("vrd/cgroup.subtree_control")).unwrap(), "+cpu +memory +pids");
        assert!(!leaf.join("cgroup.subtree_control").exists());

        // The shared parent may exist; the leaf may not.
        create_dirs(r, "vrd/web-2").unwrap();
        let err = create_dirs(r, "vrd/web-1").unwrap_err().to_string();
        assert!(err.contains("vrd/web-1") && err.contains("already exists"), "{err}");
    }

    #[test]
    fn controllers_the_host_lacks_are_not_requested() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("cgroup.controllers"), "memory\n").unwrap();
        create_dirs(root.path(), "vrd/x").unwrap();
        let written = fs::read_to_string(root.path().join("vrd/cgroup.subtree_control")).unwrap();
        assert_eq!(written, "+memory");
    }

    #[test]
    fn a_root_without_cgroup_controllers_is_an_error_naming_the_file() {
        let root = tempfile::tempdir().unwrap();
        let err = create_dirs(root.path(), "vrd/x").unwrap_err().to_string();
        assert!(err.contains("cgroup.controllers"), "{err}");
    }

    #[test]
    fn oom_kills_come_from_memory_events() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("memory.events"),
            "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n",
        )
        .unwrap();
        assert_eq!(oom_kills(dir.path()).unwrap(), 1);
    }
}
