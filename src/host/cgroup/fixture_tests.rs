//! Unprivileged tests of whole `ProcCgroup` flows against fake cgroup trees in temp directories.
//!
//! A fixture cannot create control files on `mkdir` the way cgroupfs does, so tests that need them
//! split creation: `make_dirs`, then `fake_kernel` writes the defaults a kernel would show, then
//! the limit plan is applied and the written files are asserted. No test here signals a pid:
//! fixture pids are made up.

use std::fs;
use std::path::Path;

use super::*;

const V1_HIERARCHIES: [&str; 6] = ["cpu,cpuacct", "memory", "pids", "freezer", "systemd", "misc"];

/// A hybrid-style v1 root: combined cpu,cpuacct with alias symlinks, a `unified` cgroup2 dir and
/// a `misc` hierarchy cgroups-rs has no controller for.
fn v1_root(hierarchies: &[&str]) -> (tempfile::TempDir, CgroupRoot) {
    let dir = tempfile::tempdir().unwrap();
    for h in hierarchies {
        fs::create_dir(dir.path().join(h)).unwrap();
    }
    fs::create_dir(dir.path().join("unified")).unwrap();
    std::os::unix::fs::symlink("cpu,cpuacct", dir.path().join("cpu")).unwrap();
    std::os::unix::fs::symlink("cpu,cpuacct", dir.path().join("cpuacct")).unwrap();
    let root = CgroupRoot::with_version(dir.path(), CgroupVersion::V1);
    (dir, root)
}

fn v2_root() -> (tempfile::TempDir, CgroupRoot) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("cgroup.controllers"), "cpuset cpu io memory hugetlb pids\n").unwrap();
    fs::write(dir.path().join("cgroup.subtree_control"), "").unwrap();
    let root = CgroupRoot::with_version(dir.path(), CgroupVersion::V2);
    (dir, root)
}

/// Writes the control files a kernel would have created with the cgroup directory.
fn fake_kernel(dir: &Path, files: &[(&str, &str)]) {
    for (name, content) in files {
        fs::write(dir.join(name), content).unwrap();
    }
}

fn fake_v1_kernel(root: &Path, name: &str, swap_accounting: bool) {
    let mem = root.join("memory").join(name);
    fake_kernel(
        &mem,
        &[
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"),
            ("memory.usage_in_bytes", "0\n"),
            ("memory.max_usage_in_bytes", "0\n"),
        ],
    );
    if swap_accounting {
        fake_kernel(&mem, &[("memory.memsw.limit_in_bytes", "9223372036854771712\n")]);
    }
    let cpu = root.join("cpu,cpuacct").join(name);
    fake_kernel(
        &cpu,
        &[("cpu.shares", "1024\n"), ("cpu.cfs_quota_us", "-1\n"), ("cpu.cfs_period_us", "100000\n")],
    );
    fake_kernel(&root.join("pids").join(name), &[("pids.max", "max\n")]);
}

fn fake_v2_kernel(root: &Path, name: &str, swap_accounting: bool) {
    let dir = root.join(name);
    fake_kernel(
        &dir,
        &[
            ("memory.max", "max\n"),
            ("cpu.weight", "100\n"),
            ("cpu.max", "max 100000\n"),
            ("pids.max", "max\n"),
            ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"),
        ],
    );
    if swap_accounting {
        fake_kernel(&dir, &[("memory.swap.max", "max\n")]);
    }
}

fn all_limits() -> Limits {
    Limits {
        memory: Some(256 << 20),
        memsw: Some(512 << 20),
        cpu_shares: Some(512),
        cpu_quota_us: Some(50_000),
        pids_max: Some(64),
    }
}

fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path).unwrap().trim().to_string()
}

/// `ProcCgroup::create` with a fake kernel standing in between creating and applying.
fn create_with_fake_kernel(
    root: &CgroupRoot,
    name: &str,
    limits: &Limits,
    swap: bool,
) -> Result<ProcCgroup, CgroupError> {
    let plan = LimitPlan::new(limits, root.version(), name)?;
    let pc = ProcCgroup::handle(root, name);
    pc.make_dirs()?;
    match root.version() {
        CgroupVersion::V1 => fake_v1_kernel(root.path(), name, swap),
        CgroupVersion::V2 => fake_v2_kernel(root.path(), name, swap),
    }
    plan.apply(&pc.cg, name)?;
    Ok(pc)
}

#[test]
fn v2_create_delegates_controllers_and_writes_every_limit() {
    let (dir, root) = v2_root();
    let r = dir.path();
    let pc = create_with_fake_kernel(&root, "vrd/web-1", &all_limits(), true).unwrap();
    assert_eq!(pc.paths(), [r.join("vrd/web-1")]);
    assert_eq!(read(r.join("cgroup.subtree_control")), "+cpu +memory +pids");
    assert_eq!(read(r.join("vrd/cgroup.subtree_control")), "+cpu +memory +pids");
    let leaf = r.join("vrd/web-1");
    assert_eq!(read(leaf.join("memory.max")), (256u64 << 20).to_string());
    // v2 limits swap alone: memsw 512M - memory 256M.
    assert_eq!(read(leaf.join("memory.swap.max")), (256u64 << 20).to_string());
    assert_eq!(read(leaf.join("cpu.weight")), "20");
    assert_eq!(read(leaf.join("cpu.max")), "50000 100000");
    assert_eq!(read(leaf.join("pids.max")), "64");
}

#[test]
fn v1_create_makes_the_cgroup_in_every_used_hierarchy_and_writes_limits() {
    let (dir, root) = v1_root(&V1_HIERARCHIES);
    let r = dir.path();
    let pc = create_with_fake_kernel(&root, "vrd/web-1", &all_limits(), true).unwrap();
    // Every hierarchy vr uses, once each (aliases skipped); not name=systemd, never the cgroup2 dir.
    for h in ["cpu,cpuacct", "memory", "pids", "freezer"] {
        assert!(r.join(h).join("vrd/web-1").is_dir(), "missing in {h}");
    }
    assert!(!r.join("systemd/vrd").exists());
    assert!(!r.join("unified/vrd").exists());
    assert_eq!(pc.paths().len(), 4);
    let mem = r.join("memory/vrd/web-1");
    assert_eq!(read(mem.join("memory.limit_in_bytes")), (256u64 << 20).to_string());
    assert_eq!(read(mem.join("memory.memsw.limit_in_bytes")), (512u64 << 20).to_string());
    let cpu = r.join("cpu,cpuacct/vrd/web-1");
    assert_eq!(read(cpu.join("cpu.shares")), "512");
    assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(cpu.join("cpu.cfs_period_us")), "100000");
    assert_eq!(read(r.join("pids/vrd/web-1/pids.max")), "64");
}

#[test]
fn memsw_without_swap_accounting_says_how_to_get_it() {
    for version in [CgroupVersion::V1, CgroupVersion::V2] {
        let (_dir, root) = match version {
            CgroupVersion::V1 => v1_root(&V1_HIERARCHIES),
            CgroupVersion::V2 => v2_root(),
        };
        let err = create_with_fake_kernel(&root, "vrd/web-1", &all_limits(), false).unwrap_err();
        assert!(matches!(err, CgroupError::NoSwapAccounting { .. }), "{version:?}: {err}");
        assert!(err.to_string().contains("swapaccount=1"), "{err}");
    }
}

#[test]
fn bad_names_and_limits_are_refused_before_anything_is_created() {
    let (dir, root) = v2_root();
    for name in ["", "/vrd/x", "vrd/../etc", "vrd//x", "vrd/./x", "vrd/x\n"] {
        let err = ProcCgroup::create(&root, name, &Limits::default()).unwrap_err();
        assert!(matches!(err, CgroupError::InvalidName { .. }), "{name:?}: {err}");
    }
    let bad = Limits { memory: Some(512 << 20), memsw: Some(1 << 20), ..Limits::default() };
    let err = ProcCgroup::create(&root, "vrd/x", &bad).unwrap_err();
    assert!(matches!(err, CgroupError::InvalidLimits { .. }), "{err}");
    assert!(!dir.path().join("vrd").exists());
}

#[test]
fn a_failed_apply_removes_the_half_made_cgroup() {
    // No pids hierarchy, but a pids limit: the cgroup is made, the limit fails, the dirs go.
    let (dir, root) = v1_root(&["memory", "freezer"]);
    let limits = Limits { pids_max: Some(10), ..Limits::default() };
    let err = ProcCgroup::create(&root, "vrd/web-1", &limits).unwrap_err();
    assert!(matches!(err, CgroupError::ControllerMissing { controller: "pids", .. }), "{err}");
    assert!(!dir.path().join("memory/vrd/web-1").exists());
    assert!(!dir.path().join("freezer/vrd/web-1").exists());
}

#[test]
fn a_leftover_is_refused_by_create_untouched_and_readopted_by_load() {
    for version in [CgroupVersion::V1, CgroupVersion::V2] {
        let (_dir, root) = match version {
            CgroupVersion::V1 => v1_root(&V1_HIERARCHIES),
            CgroupVersion::V2 => v2_root(),
        };
        let first = ProcCgroup::create(&root, "vrd/web-1", &Limits::default()).unwrap();
        let err = ProcCgroup::create(&root, "vrd/web-1", &Limits::default()).unwrap_err();
        assert!(matches!(err, CgroupError::AlreadyExists { .. }), "{version:?}: {err}");
        assert_eq!(first.paths().len(), if version == CgroupVersion::V1 { 4 } else { 1 });
        let again = ProcCgroup::load(&root, "vrd/web-1").unwrap();
        assert_eq!(again.paths(), first.paths());
        let err = ProcCgroup::load(&root, "vrd/web-2").unwrap_err();
        assert!(matches!(err, CgroupError::NotFound { .. }), "{err}");
    }
}

#[test]
fn add_pid_writes_cgroup_procs_and_pids_reads_them_back() {
    let (dir, root) = v1_root(&V1_HIERARCHIES);
    let pc = ProcCgroup::create(&root, "vrd/web-1", &Limits::default()).unwrap();
    pc.add_pid(4242).unwrap();
    assert_eq!(read(dir.path().join("memory/vrd/web-1/cgroup.procs")), "4242");
    assert_eq!(read(dir.path().join("freezer/vrd/web-1/cgroup.procs")), "4242");
    assert!(!dir.path().join("systemd/vrd").exists(), "only the hierarchies vr uses");
    assert_eq!(pc.pids().unwrap(), [4242]);
    assert!(matches!(pc.add_pid(0), Err(CgroupError::InvalidPid { .. })));
    assert!(matches!(pc.add_pid(-1), Err(CgroupError::InvalidPid { .. })));

    let (dir, root) = v2_root();
    let pc = ProcCgroup::create(&root, "vrd/web-1", &Limits::default()).unwrap();
    pc.add_pid(4243).unwrap();
    assert_eq!(read(dir.path().join("vrd/web-1/cgroup.procs")), "4243");
    assert_eq!(pc.pids().unwrap(), [4243]);
}

#[test]
fn oom_kills_and_memory_usage_read_each_versions_files() {
    let (dir, root) = v1_root(&V1_HIERARCHIES);
    let pc = create_with_fake_kernel(&root, "vrd/web-1", &Limits::default(), true).unwrap();
    assert_eq!(pc.oom_kills().unwrap(), 0);
    let mem = dir.path().join("memory/vrd/web-1");
    fake_kernel(
        &mem,
        &[
            ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            ("memory.usage_in_bytes", "4096\n"),
            ("memory.max_usage_in_bytes", "8192\n"),
        ],
    );
    assert_eq!(pc.oom_kills().unwrap(), 2);
    let usage = pc.memory_usage().unwrap();
    assert_eq!((usage.current, usage.peak), (4096, Some(8192)));

    let (dir, root) = v2_root();
    let pc = create_with_fake_kernel(&root, "vrd/web-1", &Limits::default(), true).unwrap();
    let leaf = dir.path().join("vrd/web-1");
    fake_kernel(
        &leaf,
        &[
            ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n"),
            ("memory.current", "100\n"),
        ],
    );
    assert_eq!(pc.oom_kills().unwrap(), 1);
    // No memory.peak: a v2 kernel before 5.19.
    let usage = pc.memory_usage().unwrap();
    assert_eq!((usage.current, usage.peak), (100, None));
}

#[test]
fn destroy_sweeps_every_hierarchy_and_is_idempotent() {
    let (dir, root) = v1_root(&V1_HIERARCHIES);
    let pc = ProcCgroup::create(&root, "vrd/web-1", &Limits::default()).unwrap();
    // Hierarchies cgroups-rs does not know (misc) and nested cgroups are swept too.
    fs::create_dir_all(dir.path().join("misc/vrd/web-1")).unwrap();
    fs::create_dir_all(dir.path().join("memory/vrd/web-1/inner")).unwrap();
    pc.destroy().unwrap();
    for h in V1_HIERARCHIES {
        assert!(!dir.path().join(h).join("vrd/web-1").exists(), "left in {h}");
    }
    pc.destroy().unwrap();

    let (dir, root) = v2_root();
    let pc = ProcCgroup::create(&root, "vrd/web-1", &Limits::default()).unwrap();
    fs::create_dir(dir.path().join("vrd/web-1/inner")).unwrap();
    pc.destroy().unwrap();
    assert!(!dir.path().join("vrd/web-1").exists());
    pc.destroy().unwrap();
}

#[test]
fn strays_are_listed_across_hierarchies_and_empty_parents_removed() {
    let (dir, root) = v1_root(&["memory", "pids"]);
    assert_eq!(stray_cgroups(&root, "vrd").unwrap(), Vec::<String>::new());
    // A stray may survive in only some hierarchies after a crash.
    fs::create_dir_all(dir.path().join("memory/vrd/a")).unwrap();
    fs::create_dir_all(dir.path().join("pids/vrd/a")).unwrap();
    fs::create_dir_all(dir.path().join("pids/vrd/b")).unwrap();
    assert_eq!(stray_cgroups(&root, "vrd").unwrap(), ["vrd/a", "vrd/b"]);
    assert!(!remove_empty_parent(&root, "vrd").unwrap());

    for name in stray_cgroups(&root, "vrd").unwrap() {
        ProcCgroup::load(&root, &name).unwrap().destroy().unwrap();
    }
    assert!(remove_empty_parent(&root, "vrd").unwrap());
    assert!(!dir.path().join("memory/vrd").exists() && !dir.path().join("pids/vrd").exists());
    // Already gone is fine.
    assert!(remove_empty_parent(&root, "vrd").unwrap());
}
