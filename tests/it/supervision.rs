//! Supervised procs through a real vrd: restart policy, stop escalation, and nothing lost when
//! vrd goes away.

use std::time::{Duration, Instant};

use crate::harness::{proc_yaml, text, TestDaemon};
use crate::require_root;

fn procs(d: &TestDaemon) -> Vec<serde_json::Value> {
    let out = d.run_vr(&["procs", "list", "--json"]);
    assert!(out.status.success(), "{:?}", text(&out));
    serde_json::from_str::<Vec<serde_json::Value>>(&text(&out).0).unwrap()
}

fn wait_for_state(d: &TestDaemon, name: &str, state: &str, timeout: Duration) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let found = procs(d).into_iter().find(|p| p["name"] == name);
        if let Some(p) = &found {
            if p["statename"] == state {
                return p.clone();
            }
        }
        assert!(Instant::now() < deadline, "{name} never became {state}: {found:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Deploys `yaml` (written to `file`) as a supervised proc; its name.
pub fn deploy(d: &TestDaemon, file: &str, yaml: &str) -> String {
    let path = d.write(file, yaml);
    let out = d.run_vr(&["proc", "deploy", "--json", path.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    let info: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    info["name"].as_str().unwrap().to_string()
}

fn events(d: &TestDaemon) -> Vec<serde_json::Value> {
    let out = d.run_vr(&["events", "--json"]);
    text(&out).0.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn states_of(d: &TestDaemon, name: &str) -> Vec<String> {
    events(d)
        .iter()
        .filter(|e| e["event"]["name"] == name)
        .map(|e| e["event"]["statename"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_crashing_proc_backs_off_then_goes_fatal() {
    require_root!("a_crashing_proc_backs_off_then_goes_fatal");
    let d = TestDaemon::start();
    let name = deploy(&d, "crash.yaml", &proc_yaml("crash", 0, "cmd: exit 3"));
    let fatal = wait_for_state(&d, &name, "FATAL", Duration::from_secs(30));
    assert_eq!(fatal["exitstatus"], 3);
    let states = states_of(&d, &name);
    assert_eq!(
        states,
        ["STARTING", "BACKOFF", "STARTING", "BACKOFF", "STARTING", "BACKOFF", "STARTING", "FATAL"],
        "supervisord's startretries=3 with backoff, then FATAL"
    );
    // FATAL is left alone until someone starts it again.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(states_of(&d, &name).len(), 8);
}

#[test]
fn stop_escalates_to_sigkill_after_the_grace_period() {
    require_root!("stop_escalates_to_sigkill_after_the_grace_period");
    let d = TestDaemon::start_with(&["--stop-grace-secs", "2"]);
    let cmd = "cmd: \"trap 'echo ignoring TERM' TERM; while true; do sleep 1; done\"";
    let name = deploy(&d, "stubborn.yaml", &proc_yaml("stubborn", 0, cmd));
    wait_for_state(&d, &name, "RUNNING", Duration::from_secs(10));
    let started = Instant::now();
    let out = d.run_vr(&["procs", "stop", &name]);
    assert!(out.status.success(), "{:?}", text(&out));
    let took = started.elapsed();
    let stopped = wait_for_state(&d, &name, "STOPPED", Duration::from_secs(1));
    assert!(took >= Duration::from_secs(2), "SIGKILL came before the grace period ended ({took:?})");
    assert_eq!(stopped["exitstatus"], 137, "killed by SIGKILL");
    let log = d.run_vr(&["logs", &name]);
    assert!(text(&log).0.contains("ignoring TERM"), "the app saw the SIGTERM first: {:?}", text(&log));
    assert!(d.cgroups_left().is_empty(), "{:?}", d.cgroups_left());
}

/// Numbers of `n=<i>` log lines, in order.
fn numbers(log: &str) -> Vec<u64> {
    log.lines().filter_map(|l| l.rsplit("n=").next()?.parse().ok()).collect()
}

#[test]
fn procs_outlive_a_crash_of_vrd_with_the_same_pids_and_no_lost_log_line() {
    require_root!("procs_outlive_a_crash_of_vrd_with_the_same_pids_and_no_lost_log_line");
    let mut d = TestDaemon::start();
    let cmd = "cmd: \"i=0; while true; do echo n=$i; i=$((i+1)); usleep 10000; done\"";
    let name = deploy(&d, "counter.yaml", &proc_yaml("counter", 0, cmd));
    let before = wait_for_state(&d, &name, "RUNNING", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    d.crash_and_restart();
    std::thread::sleep(Duration::from_millis(500));
    let after = wait_for_state(&d, &name, "RUNNING", Duration::from_secs(10));
    assert_eq!(after["pid"], before["pid"], "the same app process, re-adopted");
    let out = d.run_vr(&["procs", "stop", &name]);
    assert!(out.status.success(), "{:?}", text(&out));
    let log = text(&d.run_vr(&["logs", &name])).0;
    let n = numbers(&log);
    assert!(n.len() > 50, "the proc logged through the crash: {} lines", n.len());
    assert_eq!(n, (0..n.len() as u64).collect::<Vec<_>>(), "no gap and no duplicate");
}

#[test]
fn an_exit_while_vrd_is_down_is_recorded_and_the_proc_restarted() {
    require_root!("an_exit_while_vrd_is_down_is_recorded_and_the_proc_restarted");
    let mut d = TestDaemon::start();
    let name = deploy(&d, "short.yaml", &proc_yaml("short", 0, "cmd: sleep 2"));
    let first = wait_for_state(&d, &name, "RUNNING", Duration::from_secs(10));
    // vrd dies; the proc exits on its own while it is away; vrd comes back.
    d.crash_and_restart_after(Duration::from_secs(3));
    let events = events(&d);
    let exited = events.iter().find(|e| e["event"]["name"] == name && e["event"]["statename"] == "EXITED");
    let exited = exited.unwrap_or_else(|| panic!("no EXITED event: {events:?}"));
    assert_eq!(exited["event"]["exitstatus"], 0);
    let again = wait_for_state(&d, &name, "RUNNING", Duration::from_secs(10));
    assert_ne!(again["pid"], first["pid"], "it was started again");
}

#[test]
fn a_destroyed_proc_never_comes_back() {
    require_root!("a_destroyed_proc_never_comes_back");
    let mut d = TestDaemon::start();
    let name =
        deploy(&d, "gone.yaml", &proc_yaml("gone", 0, "cmd: echo said-before-destroy; exec sleep 600"));
    wait_for_state(&d, &name, "RUNNING", Duration::from_secs(10));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !text(&d.run_vr(&["logs", &name])).0.contains("said-before-destroy") {
        assert!(std::time::Instant::now() < deadline, "the proc's line never reached its log");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = d.run_vr(&["procs", "destroy", &name]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(procs(&d).is_empty());
    d.crash_and_restart();
    std::thread::sleep(Duration::from_millis(500));
    assert!(procs(&d).is_empty(), "VR gh #194: destroyed procs came back");
    assert!(d.launchers().is_empty());
    assert!(!d.data().join(format!("procs/{name}")).exists());
    let unknown = d.run_vr(&["procs", "start", &name]);
    assert!(text(&unknown).1.contains("no proc named"), "{:?}", text(&unknown));
    // Its log stays readable for the retention period (VR lost it with the proc).
    let kept = d.run_vr(&["logs", &name]);
    assert!(text(&kept).0.contains("said-before-destroy"), "{:?}", text(&kept));
    // A reader that has gone (`vr logs NAME | head`) ends vr quietly, as it ends `cat`.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let gone = d.vr().args(["logs", &name]).stdout(writer).output().unwrap();
    assert_eq!(gone.status.code(), Some(141), "{:?}", text(&gone));
    assert_eq!(text(&gone).1, "", "no panic, no message");
}

#[test]
fn an_unknown_proc_name_gets_a_suggestion() {
    require_root!("an_unknown_proc_name_gets_a_suggestion");
    let d = TestDaemon::start();
    let name = deploy(&d, "s.yaml", &proc_yaml("sugg", 0, "cmd: sleep 600"));
    let file = d.dir.path().join("s.yaml");
    let teardown = d.run_vr(&["runner", "teardown", file.to_str().unwrap()]);
    assert!(
        text(&teardown).1.contains("is supervised by vrd"),
        "the runner keeps its hands off: {:?}",
        text(&teardown)
    );
    let typo = name.replace("sugg", "sug");
    let out = d.run_vr(&["procs", "stop", &typo]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains(&format!("did you mean {name}?")), "{:?}", text(&out));
}

#[test]
fn a_subscriber_sees_events_in_order_and_the_audit_log_names_the_caller() {
    require_root!("a_subscriber_sees_events_in_order_and_the_audit_log_names_the_caller");
    use std::io::BufRead;
    let d = TestDaemon::start();
    let mut follow =
        d.vr().args(["events", "--follow", "--json"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let name = deploy(&d, "ev.yaml", &proc_yaml("ev", 0, "cmd: sleep 600"));
    let mut lines = std::io::BufReader::new(follow.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while let Some(Ok(line)) = lines.next() {
        let item: serde_json::Value = serde_json::from_str(&line).unwrap();
        seen.push((item["id"].as_u64().unwrap(), item["event"]["statename"].as_str().unwrap().to_string()));
        if seen.last().unwrap().1 == "RUNNING" {
            break;
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(seen.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(), ["STARTING", "RUNNING"]);
    assert!(seen[0].0 < seen[1].0);
    let audit = text(&d.run_vr(&["audit", "--json"])).0;
    let audit: Vec<serde_json::Value> = serde_json::from_str(&audit).unwrap();
    let entry = audit.iter().find(|a| a["method"] == "proc.deploy").unwrap();
    assert_eq!(entry["uid"], 0);
    assert_eq!(entry["outcome"], "ok");
    assert!(entry["params"].as_str().unwrap().contains("ev.yaml"), "{entry}");
    let _ = name;
}

#[test]
fn a_uid_outside_the_sockets_group_is_refused() {
    require_root!("a_uid_outside_the_sockets_group_is_refused");
    use std::os::unix::process::CommandExt;
    let d = TestDaemon::start_with(&["--socket-gid", "4242"]);
    let meta = std::fs::metadata(d.socket()).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), 4242);
    // Let nobody reach the socket's directory, so only the socket's own mode decides.
    for dir in [d.dir.path().to_path_buf(), d.dir.path().join("run")] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    let out = std::process::Command::new(crate::harness::vr_client())
        .args(["version"])
        .env("VR_SOCKET", d.socket())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("permission denied") && text(&out).1.contains("join the group"),
        "{:?}",
        text(&out)
    );
}

#[test]
fn sigterm_stops_vrd_but_leaves_every_proc_running() {
    require_root!("sigterm_stops_vrd_but_leaves_every_proc_running");
    let mut d = TestDaemon::start();
    let name = deploy(&d, "calm.yaml", &proc_yaml("calm", 0, "cmd: sleep 600"));
    let before = wait_for_state(&d, &name, "RUNNING", Duration::from_secs(10));
    let took = d.terminate();
    assert!(took < Duration::from_secs(10), "vrd took {took:?} to stop");
    assert!(std::os::unix::net::UnixStream::connect(d.socket()).is_err(), "no longer accepting");
    let pid = before["pid"].as_i64().unwrap() as i32;
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok(), "the app still runs");
    assert_eq!(d.launchers().len(), 1, "its launcher too");
    d.start_again();
    let after = wait_for_state(&d, &name, "RUNNING", Duration::from_secs(10));
    assert_eq!(after["pid"], before["pid"]);
}

#[test]
fn an_upgrade_replaces_the_binary_and_the_new_vrd_adopts_every_proc() {
    require_root!("an_upgrade_replaces_the_binary_and_the_new_vrd_adopts_every_proc");
    let mut d = TestDaemon::start();
    let installed = d.dir.path().join("vrd");
    std::fs::copy(env!("CARGO_BIN_EXE_vrd"), &installed).unwrap();
    d.terminate();
    d.exe = installed.clone();
    d.start_again();
    let name = deploy(&d, "up.yaml", &proc_yaml("upgrade", 0, "cmd: sleep 600"));
    let before = wait_for_state(&d, &name, "RUNNING", Duration::from_secs(10));
    // Install a new binary the way a package manager does (write aside, rename over), then restart.
    let staged = d.dir.path().join("vrd.new");
    std::fs::copy(env!("CARGO_BIN_EXE_vrd"), &staged).unwrap();
    std::fs::rename(&staged, &installed).unwrap();
    d.terminate();
    d.start_again();
    let after = wait_for_state(&d, &name, "RUNNING", Duration::from_secs(10));
    assert_eq!(after["pid"], before["pid"], "the app kept running through the upgrade");
    assert_eq!(d.launchers().len(), 1, "the old launcher (from its sealed copy) was adopted, not duplicated");
}

#[test]
fn the_scooper_removes_only_containers_and_proc_dirs_nothing_owns() {
    require_root!("the_scooper_removes_only_containers_and_proc_dirs_nothing_owns");
    let d = TestDaemon::start();
    let kept = deploy(&d, "kept.yaml", &proc_yaml("kept", crate::harness::free_port(), "cmd: sleep 1000"));
    wait_for_state(&d, &kept, "RUNNING", Duration::from_secs(20));
    // A container nothing owns: a cgroup under vrd's parent with a process in it, an hour old.
    let ghost = std::path::Path::new("/sys/fs/cgroup/memory")
        .join(&d.cgroup_parent)
        .join("ghost-1-prod-abcd1234-web-6000");
    std::fs::create_dir_all(&ghost).unwrap();
    let mut sleeper = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
    std::fs::write(ghost.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
    let aged = |path: &std::path::Path, ago: &str| {
        let out = std::process::Command::new("touch").arg("-d").arg(ago).arg(path).output().unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    aged(&ghost, "1 hour ago");
    // Proc dirs nothing owns: one unknown for 10 days, one set up a moment ago.
    let procs_dir = d.data().join("procs");
    for (name, ago) in [
        ("ghost-1-prod-abcd1234-web-6001", "10 days ago"),
        ("fresh-1-prod-abcd1234-web-6002", "1 minute ago"),
    ] {
        std::fs::create_dir_all(procs_dir.join(name)).unwrap();
        std::fs::write(procs_dir.join(name).join("proc.yaml"), "app_name: x\n").unwrap();
        aged(&procs_dir.join(name).join("proc.yaml"), ago);
    }
    let out = d.run_vr(&["scoop", "--dry-run"]);
    let (listed, _) = text(&out);
    assert!(
        listed.contains("ghost-1-prod-abcd1234-web-6000")
            && listed.contains("ghost-1-prod-abcd1234-web-6001"),
        "{listed}"
    );
    assert!(!listed.contains(&kept) && !listed.contains("fresh-"), "{listed}");
    assert!(ghost.exists(), "a dry run removes nothing");
    let out = d.run_vr(&["scoop"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(sleeper.wait().is_ok() && !ghost.exists(), "the unowned container must be killed and removed");
    assert!(!procs_dir.join("ghost-1-prod-abcd1234-web-6001").exists());
    assert!(procs_dir.join("fresh-1-prod-abcd1234-web-6002").exists());
    wait_for_state(&d, &kept, "RUNNING", Duration::from_secs(5));
}

#[test]
fn a_proc_killed_by_the_oom_killer_says_so_in_listings_events_and_its_log() {
    require_root!("a_proc_killed_by_the_oom_killer_says_so_in_listings_events_and_its_log");
    let d = TestDaemon::start();
    // dd fills a 200 MiB buffer from /dev/zero: every page is touched, so the 32 MiB limit bites.
    let hog = "mem_limit: 32M\ncmd: dd if=/dev/zero of=/dev/null bs=200M count=1";
    let name = deploy(&d, "hog.yaml", &proc_yaml("hog", 0, hog));
    let fatal = wait_for_state(&d, &name, "FATAL", Duration::from_secs(60));
    assert_eq!(
        (fatal["exitstatus"].as_i64(), fatal["oom_killed"].as_bool()),
        (Some(137), Some(true)),
        "{fatal}"
    );
    let listing = d.run_vr(&["procs", "list"]);
    let (table, note) = text(&listing);
    let row = table.lines().find(|l| l.ends_with(&name)).unwrap_or_default();
    assert!(row.contains("137(OOM)"), "{table}");
    assert!(note.contains("OOM killer") && note.contains(&name), "{note}");
    let oom_events: Vec<serde_json::Value> = events(&d)
        .into_iter()
        .filter(|e| e["event"]["name"] == name && e["event"]["oom_killed"] == true)
        .collect();
    assert!(!oom_events.is_empty(), "no event says oom_killed");
    let log = text(&d.run_vr(&["logs", &name])).0;
    assert!(log.contains("vr the kernel's OOM killer killed a process of this proc"), "{log}");
    // A proc that exits on its own is not flagged.
    let calm = deploy(&d, "calm.yaml", &proc_yaml("calm", 0, "cmd: exit 3"));
    let ended = wait_for_state(&d, &calm, "FATAL", Duration::from_secs(30));
    assert_eq!(ended["oom_killed"], false, "{ended}");
}
