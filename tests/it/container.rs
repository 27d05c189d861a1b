//! Real containers, checked from inside by tests/fixtures/probe/probe.sh and from the host.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::harness::{busybox_image, proc_yaml, tar_gz, text, TestDaemon};
use crate::require_root;

/// The probe build as a tarball in the daemon's temp dir.
fn probe_build(d: &TestDaemon) -> PathBuf {
    let out = d.dir.path().join("probe.tar.gz");
    tar_gz(&crate::harness::repo().join("tests/fixtures/probe"), &out);
    out
}

/// Sets up and runs a proc; returns (exit code, key=value lines of stdout, stderr).
fn run_probe(d: &TestDaemon, yaml: &str) -> (i32, HashMap<String, String>, String) {
    let file = d.write("proc.yaml", yaml);
    let setup = d.run_vr(&["runner", "setup", file.to_str().unwrap()]);
    assert!(setup.status.success(), "setup failed: {:?}", text(&setup));
    let run = d.run_vr(&["runner", "run", file.to_str().unwrap()]);
    let (out, err) = text(&run);
    let kv =
        out.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    (run.status.code().unwrap_or(-1), kv, err)
}

fn probe_yaml(d: &TestDaemon, user: &str, extra: &str) -> String {
    let build = probe_build(d);
    proc_yaml(
        "probe",
        5999,
        &format!(
            "user: {user}\ngroup: {user}\nbuild_url: file://{}\nenv: {{GREETING: from-proc-yaml, PORT: \"2\"}}\nsettings: {{db: {{host: dbhost}}}}\n{extra}",
            build.display()
        ),
    )
}

#[test]
fn root_in_the_container_is_fenced_in() {
    require_root!("root_in_the_container_is_fenced_in");
    let d = TestDaemon::start();
    let (rw, ro) = (d.dir.path().join("rw"), d.dir.path().join("ro"));
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::write(ro.join("existing.txt"), "from-host").unwrap();
    let volumes = format!("volumes: [[{}, /data], [{}, /conf, ro]]", rw.display(), ro.display());
    let (code, kv, err) = run_probe(&d, &probe_yaml(&d, "root", &volumes));
    assert_eq!(code, 0, "probe failed: {err}");
    let get = |k: &str| {
        kv.get(k).map(String::as_str).unwrap_or_else(|| panic!("probe printed no {k}: {kv:?} {err}"))
    };
    assert_eq!(get("pid"), "1", "the app is pid 1 of its own pid namespace");
    assert_eq!(get("hostname"), "probe-1.0-rc1-test-abcd1234-web-5999");
    assert_eq!(get("rootfs"), "overlay", "the root is an overlay");
    assert_eq!(get("sys"), "ro");
    assert_eq!(get("procsys"), "ro");
    for masked in ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"] {
        // Only what this kernel has can be masked; it must then read as empty.
        let expected = if std::path::Path::new(masked).exists() { "0" } else { "absent" };
        assert_eq!(get(&format!("masked_{masked}")), expected, "{masked} is masked");
    }
    assert_eq!(get("CapBnd"), "00000000a00405fb", "Docker's default set without NET_RAW and MKNOD");
    assert_eq!(get("CapEff"), "00000000a00405fb");
    assert_eq!(get("CapAmb"), "0000000000000000");
    assert_eq!(get("NoNewPrivs"), "1");
    assert_eq!(get("Groups"), "", "supplementary groups are cleared");
    assert_eq!(get("mount"), "denied", "mount(2) needs CAP_SYS_ADMIN, which is dropped");
    assert_eq!(get("vol_rw"), "writable");
    assert_eq!(
        std::fs::read_to_string(rw.join("rw.txt")).unwrap(),
        "written\n",
        "the write reached the host"
    );
    assert_eq!(get("vol_ro"), "readonly");
    assert_eq!(get("vol_ro_content"), "from-host");
    assert!(!ro.join("ro.txt").exists());
    assert_eq!(get("devnull_mode"), "666");
    assert_eq!(get("cgroup_paths"), "/ ", "a cgroup namespace rooted at the container's own cgroup");
    for node in ["null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx", "fd"] {
        assert!(get("dev").split(' ').any(|n| n == node), "/dev/{node} missing: {}", get("dev"));
    }
}

#[test]
fn the_app_runs_as_the_images_user_with_velociraptors_environment() {
    require_root!("the_app_runs_as_the_images_user_with_velociraptors_environment");
    let d = TestDaemon::start();
    let (code, kv, err) = run_probe(&d, &probe_yaml(&d, "app", ""));
    assert_eq!(code, 0, "probe failed: {err}");
    let get = |k: &str| {
        kv.get(k).map(String::as_str).unwrap_or_else(|| panic!("probe printed no {k}: {kv:?} {err}"))
    };
    assert_eq!(
        (get("uid"), get("gid")),
        ("1000", "1000"),
        "the image's app user (the host has no such user)"
    );
    assert_eq!(get("CapEff"), "0000000000000000");
    assert_eq!(get("CapPrm"), "0000000000000000");
    // Root's set without NET_BIND_SERVICE (bit 10): nothing in it may bind a low host port.
    assert_eq!(get("CapBnd"), "00000000a00401fb", "the bounding set of a non-root app");
    assert_eq!(get("NoNewPrivs"), "1");
    // vrd's processes ask for short scheduler slices; the app must not inherit them.
    assert_ne!(get("slice"), vr::sys::SHORT_SLICE_NS.to_string(), "the app runs with the default slice");
    assert_eq!(get("PORT"), "5999", "PORT is set last: neither .profile.d nor proc.yaml env can override it");
    assert_eq!(get("GREETING"), "from-profile", ".profile.d comes after proc.yaml env (Heroku's order)");
    assert_eq!(get("FROM_PROFILE"), "yes", ".profile.d scripts are sourced");
    assert_eq!(get("HOME"), "/app");
    assert_eq!(get("TMPDIR"), "/tmp");
    assert_eq!(get("APP_SETTINGS_YAML"), "/settings.yaml");
    assert!(get("settings").contains("host: dbhost"), "{}", get("settings"));
}

#[test]
fn a_memory_hog_is_oom_killed_and_reported_as_such() {
    require_root!("a_memory_hog_is_oom_killed_and_reported_as_such");
    let d = TestDaemon::start();
    let yaml = proc_yaml(
        "hog",
        0,
        "user: root\nmem_limit: 32M\ncmd: x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived=${#x}",
    );
    let (code, kv, err) = run_probe(&d, &yaml);
    assert!(!kv.contains_key("survived"), "{kv:?}");
    assert_ne!(code, 0, "the hog must not survive a 32M limit: {err}");
    assert!(err.contains("OOM kill"), "the exit is reported as an OOM kill: {err}");
    assert!(d.cgroups_left().is_empty(), "cgroup left behind: {:?}", d.cgroups_left());
}

#[test]
fn a_fork_bomb_stops_at_the_pids_limit() {
    require_root!("a_fork_bomb_stops_at_the_pids_limit");
    let d = TestDaemon::start();
    // The bomb runs in a child shell, which dies at its first failed fork; pid 1 then counts the
    // tasks with a glob, since no fork is left to run `ls`.
    let cmd = "sh -c 'i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i+1)); done'; set -- /proc/[0-9]*; echo tasks=$#";
    let yaml = proc_yaml("bomb", 0, &format!("user: root\npids_max: 20\ncmd: \"{cmd}\""));
    assert!(yaml.contains("pids_max: 20"));
    let (_, kv, err) = run_probe(&d, &yaml);
    let tasks: u32 = kv.get("tasks").unwrap_or_else(|| panic!("no count: {err}")).parse().unwrap();
    assert!(tasks <= 20, "{tasks} tasks ran under pids_max 20");
    assert!(err.contains("can't fork") || err.contains("Resource temporarily unavailable"), "{err}");
}

#[test]
fn a_missing_volume_source_is_a_clear_error_before_anything_is_mounted() {
    require_root!("a_missing_volume_source_is_a_clear_error_before_anything_is_mounted");
    let d = TestDaemon::start();
    let yaml = proc_yaml("vol", 0, "cmd: echo never\nvolumes: [[/nonexistent/vr-test, /data]]");
    let (code, kv, err) = run_probe(&d, &yaml);
    assert_eq!(code, 125);
    assert!(kv.is_empty());
    assert!(err.contains("/nonexistent/vr-test does not exist"), "{err}");
    assert!(d.mounts_left().is_empty());
}

#[test]
fn a_procs_root_keeps_its_writes_between_runs_and_a_new_setup_is_seen() {
    require_root!("a_procs_root_keeps_its_writes_between_runs_and_a_new_setup_is_seen");
    let d = TestDaemon::start();
    // Each run also removes /dev/zero: /dev is the run's own, so the next run has it again.
    let cmd = "cmd: \"sh -c 'echo before=$(cat /kept 2>/dev/null); cat /settings.yaml > /kept; echo now=$(cat /settings.yaml); echo zero=$(test -c /dev/zero && echo yes); rm /dev/zero'\"";
    let first = proc_yaml("kept", 0, &format!("user: root\nsettings: {{v: first}}\n{cmd}"));
    let (code, kv, err) = run_probe(&d, &first);
    assert_eq!(code, 0, "{err}");
    assert_eq!((kv["before"].as_str(), kv["now"].as_str()), ("", "v: first"));
    // The root is mounted once and kept: the next run sees what the last one wrote.
    let again = d.run_vr(&["runner", "run", d.dir.path().join("proc.yaml").to_str().unwrap()]);
    assert!(again.status.success(), "{:?}", text(&again));
    assert!(text(&again).0.contains("before=v: first"), "{:?}", text(&again));
    assert!(text(&again).0.contains("zero=yes"), "{:?}", text(&again));
    // A new setup rewrites the proc's own layer (settings.yaml): the next run must see it, on
    // the same upper dir.
    let second = first.replace("v: first", "v: second");
    let (code, kv, err) = run_probe(&d, &second);
    assert_eq!(code, 0, "{err}");
    assert_eq!((kv["before"].as_str(), kv["now"].as_str()), ("v: first", "v: second"));
    assert_eq!(kv["zero"], "yes");
}

#[test]
fn teardown_leaves_no_mount_and_no_cgroup_behind() {
    require_root!("teardown_leaves_no_mount_and_no_cgroup_behind");
    let d = TestDaemon::start();
    let yaml = proc_yaml("clean", 0, "cmd: echo done");
    let (code, _, err) = run_probe(&d, &yaml);
    assert_eq!(code, 0, "{err}");
    let file = d.dir.path().join("proc.yaml");
    let out = d.run_vr(&["runner", "teardown", file.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(!d.data().join("procs/clean-1.0-rc1-test-abcd1234-web-0").exists(), "the proc dir is gone");
    let md5 = vr::host::image::md5_file(busybox_image()).unwrap();
    let contents = d.data().join(format!("images/busybox/{md5}/contents/bin/busybox"));
    assert!(contents.exists(), "the image cache stays, keyed by content");
    assert!(d.mounts_left().is_empty(), "{:?}", d.mounts_left());
    assert!(d.cgroups_left().is_empty(), "{:?}", d.cgroups_left());
}

#[test]
fn the_launcher_runs_from_a_sealed_copy_the_container_cannot_write() {
    require_root!("the_launcher_runs_from_a_sealed_copy_the_container_cannot_write");
    let d = TestDaemon::start();
    let yaml = proc_yaml("sealed", 0, "cmd: sleep 30");
    let file = d.write("proc.yaml", &yaml);
    assert!(d.run_vr(&["runner", "setup", file.to_str().unwrap()]).status.success());
    let mut run = d.vr().args(["runner", "run", file.to_str().unwrap()]).spawn().unwrap();
    let launcher = wait_for_launcher(&d);
    let exe = std::fs::read_link(format!("/proc/{launcher}/exe")).unwrap();
    assert!(exe.to_string_lossy().starts_with("/memfd:vrd"), "launcher runs from {}", exe.display());
    let write = std::fs::OpenOptions::new().write(true).open(format!("/proc/{launcher}/exe"));
    assert!(write.is_err(), "the launcher's executable must not be writable");
    // The daemon re-executed itself from the same copy: one copy of vrd's code in memory.
    use std::os::unix::fs::MetadataExt;
    let daemon = d.pid();
    let daemon_exe = std::fs::read_link(format!("/proc/{daemon}/exe")).unwrap();
    assert!(daemon_exe.to_string_lossy().starts_with("/memfd:vrd"), "vrd runs from {}", daemon_exe.display());
    let inode = |pid: u32| std::fs::metadata(format!("/proc/{pid}/exe")).unwrap().ino();
    assert_eq!(inode(daemon), inode(launcher), "vrd and its launcher run from one sealed copy");
    assert_eq!(std::fs::read_to_string(format!("/proc/{daemon}/comm")).unwrap().trim(), "vrd");
    assert!(std::fs::metadata(env!("CARGO_BIN_EXE_vrd")).is_ok());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(run.id() as i32), nix::sys::signal::Signal::SIGINT)
        .unwrap();
    let status = run.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(137),
        "sleep ignores SIGINT as pid 1, so the grace period ends in SIGKILL"
    );
}

/// The pid of this daemon's launcher (`vrd init`, or forked by its spawner: named vrd-init either
/// way).
pub fn wait_for_launcher(d: &TestDaemon) -> u32 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(pid) = d.launchers().first() {
            return *pid as u32;
        }
        assert!(std::time::Instant::now() < deadline, "no launcher appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_stop_signal_reaches_an_app_that_handles_it() {
    require_root!("a_stop_signal_reaches_an_app_that_handles_it");
    let d = TestDaemon::start();
    let cmd = "trap 'echo stopping cleanly; exit 0' TERM; echo started; while true; do sleep 1; done";
    let file = d.write("proc.yaml", &proc_yaml("trap", 0, &format!("cmd: \"{cmd}\"")));
    assert!(d.run_vr(&["runner", "setup", file.to_str().unwrap()]).status.success());
    let run = d
        .vr()
        .args(["runner", "run", file.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_launcher(&d);
    std::thread::sleep(std::time::Duration::from_millis(500));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(run.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "the app's own handler decided the exit code");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "started\nstopping cleanly\n");
}
