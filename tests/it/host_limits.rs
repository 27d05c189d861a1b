//! What the host keeps back (issue 12 §9): no new work while the data dir's file system is short
//! of room (config `min_free_disk`), and a memory limit for procs that set none
//! (`default_mem_limit`).

use std::time::{Duration, Instant};

use crate::harness::{proc_yaml, text, TestDaemon};
use crate::require_root;
use crate::supervision::deploy;

fn memory_max(d: &TestDaemon, proc: &str) -> String {
    let file = std::path::Path::new("/sys/fs/cgroup").join(&d.cgroup_parent).join(proc).join("memory.max");
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
    if !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return crate::harness::skip(
            "a_proc_without_a_memory_limit_gets_the_configured_default",
            "needs cgroup v2",
        );
    }
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
