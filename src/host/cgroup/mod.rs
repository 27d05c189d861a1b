//! One container's cgroup, on cgroup v1, hybrid and v2 hosts.
//!
//! The launcher creates a [`ProcCgroup`] named `vrd/<proc>` with the proc's [`Limits`] before the
//! container's first process runs, puts that process in it, and later reads OOM kills from it and
//! destroys it. After a daemon restart the same cgroup is re-adopted with [`ProcCgroup::load`];
//! [`stray_cgroups`] lists what is left under `vrd` so a scooper can destroy what the database does
//! not know.
//!
//! The cgroup root is injected ([`CgroupRoot`]); [`DEFAULT_CGROUP_ROOT`] is only the usual value.
//! Real reads and writes go through cgroups-rs controllers over an injected hierarchy
//! (`hierarchy.rs`); direct file I/O (`files.rs`) covers what the crate lacks: OOM counters,
//! `cgroup.kill`, subtree pid lists and v2 controller delegation.
//!
//! Everything here is blocking file I/O on cgroupfs (and `kill_all_and_wait` sleeps); async
//! callers use `spawn_blocking`.

mod detect;
mod error;
mod files;
mod hierarchy;
mod limits;
mod v1;
mod v2;

#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod privileged_tests;

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use cgroups_rs::fs::Cgroup;
use cgroups_rs::CgroupPid;
pub use detect::CgroupVersion;
pub use error::CgroupError;
use hierarchy::InjectedHierarchy;
pub use limits::shares_to_weight;
use limits::LimitPlan;
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::model::limits::Limits;

/// Where cgroupfs is mounted on a standard Linux host. Only a default: every API here takes the
/// root as a [`CgroupRoot`], so tests and side-by-side daemons can use other trees.
pub const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How long [`ProcCgroup::destroy`] waits for killed tasks to leave before giving up.
pub const DESTROY_KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the kill loop re-checks (and re-signals) a cgroup that is not yet empty.
const KILL_POLL: Duration = Duration::from_millis(10);

/// The injected cgroup root and the interface it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupRoot {
    path: PathBuf,
    version: CgroupVersion,
}

impl CgroupRoot {
    /// A root at `path`, its version detected with `statfs(2)` (hybrid hosts count as v1).
    pub fn detect(path: impl Into<PathBuf>) -> Result<CgroupRoot, CgroupError> {
        let path = path.into();
        let version = CgroupVersion::detect(&path)?;
        Ok(CgroupRoot { path, version })
    }

    /// A root at `path` read as `version`, without looking: for fixture trees in tests, or when the
    /// configuration pins the version.
    pub fn with_version(path: impl Into<PathBuf>, version: CgroupVersion) -> CgroupRoot {
        CgroupRoot { path: path.into(), version }
    }

    /// Where the cgroup filesystem is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this root is v1 (one tree per hierarchy) or v2 (one unified tree).
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    fn hierarchy(&self) -> InjectedHierarchy {
        InjectedHierarchy::new(&self.path, self.version)
    }

    /// The top of every tree a cgroup lives in: each v1 hierarchy, or the v2 root.
    pub fn tree_roots(&self) -> Vec<PathBuf> {
        hierarchy::tree_roots(&self.path, self.version)
    }
}

/// What a cgroup's memory use is now and at its highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Bytes charged now (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub current: u64,
    /// The highest charge seen (v1 `memory.max_usage_in_bytes`, v2 `memory.peak`); `None` on v2
    /// kernels before 5.19.
    pub peak: Option<u64>,
}

/// The cgroup of one container (one proc): created with limits, joined by the container's first
/// process, read for OOM kills, destroyed when the proc ends.
///
/// Dropping the handle leaves the cgroup in place, on purpose: containers outlive daemon restarts.
#[derive(Debug)]
pub struct ProcCgroup {
    root: CgroupRoot,
    name: String,
    cg: Cgroup,
}

impl ProcCgroup {
    /// Creates cgroup `name` (relative to the root, e.g. `vrd/app-web-1`) in every hierarchy and
    /// applies `limits`. The limits are validated before anything is created; if applying them
    /// fails (or creation stops halfway), the half-made cgroup is removed again. A leftover
    /// cgroup of the same name is an error, never reused.
    pub fn create(root: &CgroupRoot, name: &str, limits: &Limits) -> Result<ProcCgroup, CgroupError> {
        validate_name(name)?;
        let plan = LimitPlan::new(limits, root.version(), name)?;
        let pc = ProcCgroup::handle(root, name);
        let made = match pc.make_dirs() {
            // Someone else's leftover: not ours to remove.
            Err(e @ CgroupError::AlreadyExists { .. }) => return Err(e),
            made => made,
        };
        match made.and_then(|()| plan.apply(&pc.cg, name)) {
            Ok(()) => Ok(pc),
            Err(error) => match pc.destroy() {
                Ok(()) => Err(error),
                Err(rollback) => {
                    Err(CgroupError::RollbackFailed { error: Box::new(error), rollback: Box::new(rollback) })
                }
            },
        }
    }

    /// Re-adopts an existing cgroup by name, e.g. after a daemon restart. It counts as existing if
    /// any hierarchy has it, so half-removed strays can still be destroyed.
    pub fn load(root: &CgroupRoot, name: &str) -> Result<ProcCgroup, CgroupError> {
        validate_name(name)?;
        let pc = ProcCgroup::handle(root, name);
        if pc.paths().is_empty() {
            return Err(CgroupError::NotFound { name: name.to_string(), root: root.path().to_path_buf() });
        }
        Ok(pc)
    }

    /// The cgroup's name relative to the root.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The root this cgroup lives under.
    pub fn root(&self) -> &CgroupRoot {
        &self.root
    }

    /// The cgroup's directory in every tree where it exists (one per v1 hierarchy, one on v2).
    pub fn paths(&self) -> Vec<PathBuf> {
        self.root.tree_roots().into_iter().map(|t| t.join(&self.name)).filter(|p| p.is_dir()).collect()
    }

    /// Moves the whole process `pid` (all its threads) into the cgroup, via `cgroup.procs` in every
    /// hierarchy. Its later children start inside.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        let tgid = u64::try_from(pid)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| CgroupError::InvalidPid { pid, name: self.name.clone() })?;
        self.cg.add_task_by_tgid(CgroupPid::from(tgid)).map_err(|source| CgroupError::AddPid {
            pid,
            name: self.name.clone(),
            source,
        })
    }

    /// The processes directly in this cgroup (the union over hierarchies), sorted. Processes the
    /// caller's pid namespace cannot see are left out.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut pids = Vec::new();
        for dir in self.paths() {
            pids.extend(files::procs(&dir)?);
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// The processes in this cgroup and in any cgroups the container made below it, sorted.
    fn subtree_pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut pids = Vec::new();
        for dir in self.paths() {
            for sub in files::subtree(&dir)? {
                pids.extend(files::procs(&sub)?);
            }
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// How many tasks the kernel's OOM killer has killed in this cgroup (v1 `oom_kill` in
    /// `memory.oom_control`, v2 `oom_kill` in `memory.events`). A proc that died of SIGKILL while
    /// this grew was OOM-killed, and is reported as such.
    pub fn oom_kills(&self) -> Result<u64, CgroupError> {
        match self.root.version() {
            CgroupVersion::V1 => v1::oom_kills(&self.cg, &self.name),
            CgroupVersion::V2 => v2::oom_kills(&self.root.path().join(&self.name)),
        }
    }

    /// Current and peak memory use.
    pub fn memory_usage(&self) -> Result<MemoryUsage, CgroupError> {
        let (current, peak) = match self.root.version() {
            CgroupVersion::V1 => v1::memory_files(&self.cg).ok_or_else(|| {
                CgroupError::ControllerMissing { controller: "memory", name: self.name.clone() }
            })?,
            CgroupVersion::V2 => v2::memory_files(&self.root.path().join(&self.name)),
        };
        Ok(MemoryUsage {
            current: files::read_u64(&current)?,
            peak: if peak.exists() { Some(files::read_u64(&peak)?) } else { None },
        })
    }

    /// Sends `sig` to every process in the cgroup and its sub-cgroups; returns how many were
    /// signalled. Processes that exit meanwhile are skipped. Pids are read from `cgroup.procs`
    /// just before signalling, so use [`ProcCgroup::kill_all_and_wait`] to stop forks racing a
    /// kill.
    pub fn signal_all(&self, sig: Signal) -> Result<usize, CgroupError> {
        let mut signalled = 0;
        for pid in self.subtree_pids()? {
            match kill(Pid::from_raw(pid), sig) {
                Ok(()) => signalled += 1,
                Err(Errno::ESRCH) => {}
                Err(source) => return Err(CgroupError::Signal { pid, name: self.name.clone(), source }),
            }
        }
        Ok(signalled)
    }

    /// Kills every process in the cgroup (and its sub-cgroups) and waits until none is left.
    /// v2 writes `cgroup.kill` where the kernel has it; otherwise (and always on v1) the cgroup is
    /// frozen, every task SIGKILLed, then thawed so the kills land. Stragglers are re-killed until
    /// the cgroup is empty or `timeout` passes.
    pub fn kill_all_and_wait(&self, timeout: Duration) -> Result<(), CgroupError> {
        let deadline = Instant::now() + timeout;
        if self.subtree_pids()?.is_empty() {
            return Ok(());
        }
        match self.root.version() {
            CgroupVersion::V1 => v1::freeze_and_kill(self, deadline)?,
            CgroupVersion::V2 => v2::kill(self, deadline)?,
        }
        loop {
            let remaining = self.subtree_pids()?;
            if remaining.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(CgroupError::KillTimeout { name: self.name.clone(), timeout, remaining });
            }
            self.signal_all(Signal::SIGKILL)?;
            sleep(KILL_POLL);
        }
    }

    /// Kills what remains, then removes the cgroup's directory, and any below it, in every
    /// hierarchy, children before parents. Idempotent: directories already gone are fine. The
    /// shared parent (`vrd`) is left; see [`remove_empty_parent`].
    pub fn destroy(&self) -> Result<(), CgroupError> {
        self.kill_all_and_wait(DESTROY_KILL_TIMEOUT)?;
        // cgroups-rs removes the cgroup from the hierarchies it knows, retrying while the kernel
        // still reports it busy; the sweep below then covers hierarchies it does not know (v1
        // `misc`) and sub-cgroups on v2, and its errors are the ones reported.
        if let Err(e) = self.cg.delete() {
            tracing::debug!(name = %self.name, error = %e, "cgroups-rs delete incomplete");
        }
        for tree in self.root.tree_roots() {
            files::remove_tree(&tree.join(&self.name))?;
        }
        Ok(())
    }

    /// Removes the cgroup if it is already empty: one `rmdir` per tree, no scan for tasks. This is
    /// the usual end of a container, whose tasks all died with its pid 1 (they could not leave its
    /// pid namespace, nor make sub-cgroups without cgroupfs). Returns `false`, having removed
    /// what it could, when something is left; [`ProcCgroup::destroy`] then kills and sweeps.
    pub fn remove_if_empty(&self) -> bool {
        let mut all_gone = true;
        for tree in self.root.tree_roots() {
            match std::fs::remove_dir(tree.join(&self.name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => all_gone = false,
            }
        }
        all_gone
    }

    fn handle(root: &CgroupRoot, name: &str) -> ProcCgroup {
        ProcCgroup { root: root.clone(), name: name.to_string(), cg: root.hierarchy().load(name) }
    }

    /// Creates the directories, refusing a leftover. On v1 cgroups-rs creates the cgroup in every
    /// hierarchy (copying `cpuset.cpus`/`mems` down so tasks can join); on v2 controllers are
    /// delegated down the path first.
    fn make_dirs(&self) -> Result<(), CgroupError> {
        match self.root.version() {
            CgroupVersion::V1 => {
                let trees = self.root.tree_roots();
                if trees.is_empty() {
                    return Err(CgroupError::NoHierarchies { root: self.root.path().to_path_buf() });
                }
                if let Some(path) = trees.iter().map(|t| t.join(&self.name)).find(|p| p.exists()) {
                    return Err(CgroupError::AlreadyExists { name: self.name.clone(), path });
                }
                self.cg.create().map_err(|source| CgroupError::Create { name: self.name.clone(), source })
            }
            CgroupVersion::V2 => v2::create_dirs(self.root.path(), &self.name).map(|_| ()),
        }
    }
}

/// The child cgroups of `parent` (e.g. `vrd`) in any hierarchy, as names ready for
/// [`ProcCgroup::load`] (`vrd/app-web-1`), sorted. A missing parent has none. A scooper destroys
/// the ones the database does not know.
pub fn stray_cgroups(root: &CgroupRoot, parent: &str) -> Result<Vec<String>, CgroupError> {
    validate_name(parent)?;
    let mut names = Vec::new();
    for tree in root.tree_roots() {
        for child in files::child_names(&tree.join(parent))? {
            names.push(format!("{parent}/{child}"));
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Removes the shared parent cgroup (e.g. `vrd`) from every hierarchy if it has no child cgroups
/// left. Returns whether it is gone; `false` means some child still exists (possibly created
/// concurrently), which is not an error.
pub fn remove_empty_parent(root: &CgroupRoot, parent: &str) -> Result<bool, CgroupError> {
    if !stray_cgroups(root, parent)?.is_empty() {
        return Ok(false);
    }
    for tree in root.tree_roots() {
        match files::rmdir_retrying(&tree.join(parent)) {
            Ok(()) => {}
            Err(CgroupError::Remove { source, .. })
                if source.kind() == std::io::ErrorKind::DirectoryNotEmpty
                    || source.kind() == std::io::ErrorKind::ResourceBusy =>
            {
                return Ok(false)
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Refuses names that are empty, absolute, or step outside the root (`.`, `..`, empty parts).
fn validate_name(name: &str) -> Result<(), CgroupError> {
    let reason = if name.is_empty() {
        Some("it is empty; use a relative path such as vrd/app-web-1")
    } else if name.starts_with('/') {
        Some("it is absolute; use a path relative to the cgroup root such as vrd/app-web-1")
    } else if name.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
        Some("it has an empty, '.' or '..' component; use plain names separated by single '/'")
    } else if name.chars().any(|c| c.is_control()) {
        Some("it contains control characters; use printable names")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CgroupError::InvalidName { name: name.to_string(), reason }),
        None => Ok(()),
    }
}
