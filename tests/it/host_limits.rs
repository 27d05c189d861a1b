//! What the host keeps back (issue 12 §9): no new work while the data dir's file system is short
//! of room (config `min_free_disk`), and a memory limit for procs that set none
//! (`default_mem_limit`).

use std::time::{Duration, Instant};

use crate::harness::{proc_yaml, text, TestDaemon};
use crate::require_root;
use crate::supervision::deploy;

/// The memory limit the kernel holds for `proc`: v2 `memory.max`, or v1 `memory.limit_in_bytes`.
fn memory_max(d: &TestDaemon, proc: &str) -> String {
    let root = std::path::Path::new("/sys/fs/cgroup");
    let file = if root.join("cgroup.controllers").exists() {
        root.join(&d.cgroup_parent).join(proc).join("memory.max")
    } else {
        root.join("memory").join(&d.cgroup_parent).join(proc).join("memory.limit_in_bytes")
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            return text.trim().to_string();
        }
        assert!(Instant::now() < deadline, "{} never appeared", file.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_proc_without_a_memory_limit_gets_the_configured_default() {
    require_root!("a_proc_without_a_memory_limit_gets_the_configured_default");
    let d = TestDaemon::start_with_config("default_mem_limit = \"256M\"\n", &[]);
    let plain = deploy(&d, "plain.yaml", &proc_yaml("plain", 0, "cmd: sleep 600"));
    assert_eq!(memory_max(&d, &plain), (256u64 << 20).to_string());
    let own = deploy(&d, "own.yaml", &proc_yaml("own", 0, "cmd: sleep 600\nmem_limit: 64M"));
    assert_eq!(memory_max(&d, &own), (64u64 << 20).to_string());
    for name in [plain, own] {
        assert!(d.run_vr(&["procs", "destroy", &name]).status.success());
    }
}

#[test]
fn new_work_is_refused_while_the_data_dir_is_short_of_room() {
    require_root!("new_work_is_refused_while_the_data_dir_is_short_of_room");
    // More than any test machine's disk: the data dir is always "short".
    let d = TestDaemon::start_with_config("min_free_disk = \"900T\"\n", &[]);
    let file = d.write("p.yaml", &proc_yaml("p", 0, "cmd: sleep 600"));
    for args in [["runner", "setup", file.to_str().unwrap()], ["proc", "deploy", file.to_str().unwrap()]] {
        let out = d.run_vr(&args);
        let (_, err) = text(&out);
        assert!(!out.status.success(), "{args:?} went through");
        assert!(err.contains("MiB free, less than the") && err.contains("min_free_disk"), "{err}");
    }
    assert!(
        !d.data().join("procs").exists() || std::fs::read_dir(d.data().join("procs")).unwrap().count() == 0
    );
    // Reading goes on, and the refusals are in the audit log.
    let audit = d.run_vr(&["audit", "--json"]);
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&audit.stdout).unwrap();
    assert!(
        entries.iter().filter(|e| e["outcome"].as_str().unwrap_or("").contains("min_free_disk")).count() >= 2
    );
}

#[test]
fn a_procs_writes_to_its_root_stop_at_the_root_disk_limit_not_at_the_hosts_disk() {
    require_root!("a_procs_writes_to_its_root_stop_at_the_root_disk_limit_not_at_the_hosts_disk");
    let d = TestDaemon::start_with_config("root_disk_limit = \"16M\"\n", &[]);
    let fill = "user: root\ncmd: \"sh -c 'dd if=/dev/zero of=/big bs=1M count=64 2>&1; echo rc=$?; df -k / | tail -1'\"";
    let file = d.write("fill.yaml", &proc_yaml("fill", 0, fill));
    let file = file.to_str().unwrap();
    assert!(d.run_vr(&["runner", "setup", file]).status.success());
    let out = d.run_vr(&["runner", "run", file]);
    let (stdout, stderr) = text(&out);
    assert!(stdout.contains("No space left on device"), "{stdout} {stderr}");
    assert!(!stdout.contains("rc=0"), "64M went into a 16M root: {stdout}");
    let size_kb: u64 = stdout
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(size_kb > 0 && size_kb <= 16 * 1024, "the root's size as df sees it: {stdout}");
    // The proc dir on the host holds none of it, and teardown leaves no mount.
    let proc_dir = d.data().join("procs/fill-1.0-rc1-test-abcd1234-web-0");
    let on_disk = std::process::Command::new("du").args(["-sk", "-x"]).arg(&proc_dir).output().unwrap();
    let kb: u64 = text(&on_disk).0.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
    assert!(kb < 4096, "{kb} kB of the proc dir is on the host's disk");
    assert!(d.run_vr(&["runner", "teardown", file]).status.success());
    assert!(d.mounts_left().is_empty(), "{:?}", d.mounts_left());
}
