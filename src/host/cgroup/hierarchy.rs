//! A cgroups-rs `Hierarchy` rooted at an injected path instead of `/sys/fs/cgroup`.
//!
//! cgroups-rs finds v1 hierarchies through `/proc/self/mountinfo` and hard-codes the v2 root, so
//! its own `hierarchies::auto()` cannot be pointed at a fixture tree or at a second cgroup root.
//! Its `Hierarchy` trait and controller constructors are public, though, so this module supplies
//! the hierarchy and lets the crate's controllers do the real reads and writes.
//!
//! On v1 the contract is the layout every systemd distribution uses: each hierarchy is mounted at
//! `<root>/<controllers>`, named by its comma-separated controllers (`cpu,cpuacct`), with
//! `name=systemd` at `<root>/systemd`. Symlinks such as `cpu -> cpu,cpuacct` are skipped so each
//! hierarchy appears once; `unified` (the cgroup2 mount of a hybrid host) is not a v1 hierarchy.

use std::fs;
use std::path::{Path, PathBuf};

use cgroups_rs::fs::blkio::BlkIoController;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::cpuacct::CpuAcctController;
use cgroups_rs::fs::cpuset::CpuSetController;
use cgroups_rs::fs::devices::DevicesController;
use cgroups_rs::fs::freezer::FreezerController;
use cgroups_rs::fs::hugetlb::HugeTlbController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::net_cls::NetClsController;
use cgroups_rs::fs::net_prio::NetPrioController;
use cgroups_rs::fs::perf_event::PerfEventController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::rdma::RdmaController;
use cgroups_rs::fs::systemd::SystemdController;
use cgroups_rs::fs::{Cgroup, Hierarchy, Subsystem};

use super::CgroupVersion;

/// The directory name of the cgroup2 mount on hybrid hosts; never a v1 hierarchy.
const HYBRID_UNIFIED_DIR: &str = "unified";

/// The hierarchy (or, on v2, the single tree) below one injected cgroup root.
#[derive(Debug, Clone)]
pub(super) struct InjectedHierarchy {
    root: PathBuf,
    version: CgroupVersion,
}

impl InjectedHierarchy {
    /// A hierarchy for `root`, read as `version`.
    pub(super) fn new(root: &Path, version: CgroupVersion) -> Self {
        InjectedHierarchy { root: root.to_path_buf(), version }
    }

    /// A cgroups-rs handle for the cgroup `name` (relative to the root); nothing is created.
    pub(super) fn load(&self, name: &str) -> Cgroup {
        Cgroup::load(Box::new(self.clone()), name)
    }

    fn v1_subsystems(&self) -> Vec<Subsystem> {
        let mut subs = Vec::new();
        for dir in v1_hierarchy_dirs(&self.root) {
            let Some(dir_name) = dir.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            // A container's cgroup lives only where vr sets or reads something: every further
            // hierarchy costs a mkdir, an attach and an rmdir per start (~0.3 ms for 9 vs 5).
            if !dir_name.split(',').any(|c| V1_USED.contains(&c)) {
                continue;
            }
            for controller in dir_name.split(',') {
                if let Some(sub) = v1_subsystem(controller, &dir) {
                    subs.push(sub);
                }
            }
        }
        // cgroups-rs attaches blkio before memory so cgroup writeback sees both; keep that order.
        subs.sort_by_key(|s| !matches!(s, Subsystem::BlkIo(_)));
        subs
    }

    fn v2_subsystems(&self) -> Vec<Subsystem> {
        let controllers = fs::read_to_string(self.root.join("cgroup.controllers")).unwrap_or_default();
        let point = || self.root.clone();
        let mut subs = Vec::new();
        for controller in controllers.split_whitespace() {
            match controller {
                "cpu" => subs.push(Subsystem::Cpu(CpuController::new(point(), point(), true))),
                "memory" => subs.push(Subsystem::Mem(MemController::new(point(), point(), true))),
                "pids" => subs.push(Subsystem::Pid(PidController::new(point(), point(), true))),
                _ => {}
            }
        }
        // Freezing is core v2 functionality (`cgroup.freeze`), not a controller; cgroups-rs models
        // it as one, and it doubles as the "always present" subsystem that `cgroup.procs` goes
        // through.
        subs.push(Subsystem::Freezer(FreezerController::new(point(), point(), true)));
        subs
    }
}

impl Hierarchy for InjectedHierarchy {
    fn subsystems(&self) -> Vec<Subsystem> {
        match self.version {
            CgroupVersion::V1 => self.v1_subsystems(),
            CgroupVersion::V2 => self.v2_subsystems(),
        }
    }

    fn root(&self) -> PathBuf {
        self.root.clone()
    }

    fn root_control_group(&self) -> Cgroup {
        self.load("")
    }

    fn parent_control_group(&self, path: &str) -> Cgroup {
        let parent = Path::new(path).parent().and_then(Path::to_str).unwrap_or("");
        self.load(parent)
    }

    fn v2(&self) -> bool {
        self.version == CgroupVersion::V2
    }
}

/// Every v1 hierarchy directory under `root`: real directories only (symlinked aliases skipped),
/// without the hybrid `unified` mount, sorted for a stable order. Unknown controllers (`misc`) are
/// included, so sweeps reach them even though cgroups-rs has no controller for them.
pub(super) fn v1_hierarchy_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| e.file_name() != HYBRID_UNIFIED_DIR)
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

/// The directories a cgroup tree lives in: each v1 hierarchy, or the v2 root.
pub(super) fn tree_roots(root: &Path, version: CgroupVersion) -> Vec<PathBuf> {
    match version {
        CgroupVersion::V1 => v1_hierarchy_dirs(root),
        CgroupVersion::V2 => vec![root.to_path_buf()],
    }
}

/// The v1 controllers vr uses: limits (memory, pids, cpu), accounting (cpuacct), and the freezer
/// that makes killing a container race-free.
pub(super) const V1_USED: &[&str] = &["memory", "pids", "cpu", "cpuacct", "freezer"];

fn v1_subsystem(controller: &str, dir: &Path) -> Option<Subsystem> {
    let (p, b) = (dir.to_path_buf(), dir.to_path_buf());
    Some(match controller {
        "blkio" => Subsystem::BlkIo(BlkIoController::new(p, b, false)),
        "memory" => Subsystem::Mem(MemController::new(p, b, false)),
        "pids" => Subsystem::Pid(PidController::new(p, b, false)),
        "cpuset" => Subsystem::CpuSet(CpuSetController::new(p, b, false)),
        "cpuacct" => Subsystem::CpuAcct(CpuAcctController::new(p, b)),
        "cpu" => Subsystem::Cpu(CpuController::new(p, b, false)),
        "devices" => Subsystem::Devices(DevicesController::new(p, b)),
        "freezer" => Subsystem::Freezer(FreezerController::new(p, b, false)),
        "net_cls" => Subsystem::NetCls(NetClsController::new(p, b)),
        "perf_event" => Subsystem::PerfEvent(PerfEventController::new(p, b)),
        "net_prio" => Subsystem::NetPrio(NetPrioController::new(p, b)),
        "hugetlb" => Subsystem::HugeTlb(HugeTlbController::new(p, b, false)),
        "rdma" => Subsystem::Rdma(RdmaController::new(p, b)),
        "systemd" => Subsystem::Systemd(SystemdController::new(p, b, false)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use cgroups_rs::fs::Controller;

    use super::*;

    fn names(subs: &[Subsystem]) -> Vec<String> {
        subs.iter().map(Subsystem::controller_name).collect()
    }

    #[test]
    fn v1_hierarchies_come_from_directory_names_and_skip_aliases_and_unified() {
        let root = tempfile::tempdir().unwrap();
        for dir in ["cpu,cpuacct", "memory", "pids", "freezer", "systemd", "unified", "misc"] {
            fs::create_dir(root.path().join(dir)).unwrap();
        }
        std::os::unix::fs::symlink("cpu,cpuacct", root.path().join("cpu")).unwrap();
        std::os::unix::fs::symlink("cpu,cpuacct", root.path().join("cpuacct")).unwrap();

        let dirs = v1_hierarchy_dirs(root.path());
        let dir_names: Vec<_> = dirs.iter().map(|d| d.file_name().unwrap()).collect();
        assert_eq!(dir_names, ["cpu,cpuacct", "freezer", "memory", "misc", "pids", "systemd"]);

        let hier = InjectedHierarchy::new(root.path(), CgroupVersion::V1);
        let subs = hier.subsystems();
        assert_eq!(
            names(&subs),
            ["cpu", "cpuacct", "freezer", "memory", "pids"],
            "only the controllers vr uses"
        );
        let cg = hier.load("vrd/web-1");
        let mem: &MemController = cg.controller_of().unwrap();
        assert_eq!(mem.path(), root.path().join("memory/vrd/web-1"));
        let cpu: &CpuController = cg.controller_of().unwrap();
        assert_eq!(cpu.path(), root.path().join("cpu,cpuacct/vrd/web-1"));
    }

    #[test]
    fn v2_subsystems_follow_the_injected_cgroup_controllers() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
        let hier = InjectedHierarchy::new(root.path(), CgroupVersion::V2);
        assert_eq!(names(&hier.subsystems()), ["cpu", "memory", "pids", "freezer"]);
        let cg = hier.load("vrd/web-1");
        let pids: &PidController = cg.controller_of().unwrap();
        assert_eq!(pids.path(), root.path().join("vrd/web-1"));
        assert_eq!(tree_roots(root.path(), CgroupVersion::V2), [root.path()]);
    }
}
