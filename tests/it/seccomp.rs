//! vr's default seccomp filter, checked call by call from inside a real container (issue 12 §4): a
//! static probe (tests/fixtures/seccomp/probe.c, built here with gcc) makes each refused call and
//! prints what it got back.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::harness::{proc_yaml, repo, tar_gz, text, TestDaemon};
use crate::require_root;

const EPERM: i64 = 1;
const ENOSYS: i64 = 38;

/// A build holding the probe at /app/probe, as a `build_url:` line.
fn probe_build(d: &TestDaemon) -> String {
    let app = d.make_dir("probe-app");
    let probe = app.join("probe");
    let source = repo().join("tests/fixtures/seccomp/probe.c");
    let gcc =
        Command::new("gcc").args(["-static", "-O1", "-pthread", "-o"]).arg(&probe).arg(&source).output();
    let gcc = gcc.expect("gcc is in tests/packages.txt");
    assert!(gcc.status.success(), "{}", String::from_utf8_lossy(&gcc.stderr));
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = d.dir.path().join("probe.tar.gz");
    tar_gz(&app, &out);
    format!("build_url: file://{}", out.display())
}

/// Runs the probe as root with `extra` proc.yaml lines; each call's (rc, errno) by name.
fn probe(d: &TestDaemon, app: &str, extra: &str) -> HashMap<String, (i64, i64)> {
    let yaml =
        proc_yaml(app, 0, &format!("user: root\ngroup: root\ncmd: /app/probe\n{}\n{extra}", probe_build(d)));
    let file = d.write(&format!("{app}.yaml"), &yaml);
    let setup = d.run_vr(&["runner", "setup", file.to_str().unwrap()]);
    assert!(setup.status.success(), "{:?}", text(&setup));
    let run = d.run_vr(&["runner", "run", file.to_str().unwrap()]);
    let (out, err) = text(&run);
    assert!(run.status.success(), "{out} {err}");
    out.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let name = parts.next()?.to_string();
            Some((name, (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?)))
        })
        .collect()
}

#[test]
fn every_refused_call_gets_eperm_in_a_root_container_and_ordinary_ones_work() {
    require_root!("every_refused_call_gets_eperm_in_a_root_container_and_ordinary_ones_work");
    let d = TestDaemon::start();
    let got = probe(&d, "filtered", "");
    let mut refused: Vec<&str> = vr::sys::seccomp::refused_names().collect();
    refused.extend(["clone_newuser", "personality"]);
    // The whole x32 ABI is refused by the filter itself (EPERM, not the kernel's ENOSYS where it
    // has no x32), so no x32 entry point gets round the list, harmless calls included.
    #[cfg(target_arch = "x86_64")]
    refused.extend(["getpid_x32", "unshare_x32", "keyctl_x32", "kexec_load_x32", "move_pages_x32"]);
    let wrong: Vec<String> = refused
        .iter()
        .filter(|name| got.get(**name).is_none_or(|(rc, errno)| *rc != -1 || *errno != EPERM))
        .map(|name| format!("{name}: {:?}", got.get(*name)))
        .collect();
    assert!(wrong.is_empty(), "not refused with EPERM: {wrong:?}");
    assert_eq!(got.get("clone3"), Some(&(-1, ENOSYS)), "clone3 says ENOSYS so libcs fall back to clone");
    for allowed in ["fork", "pthread_create", "personality_query", "getpid"] {
        let (rc, errno) = got.get(allowed).copied().unwrap_or_else(|| panic!("{allowed} missing: {got:?}"));
        assert!(rc >= 0 && errno == 0, "{allowed} failed: rc {rc} errno {errno}");
    }
}

#[test]
fn an_admin_may_run_a_proc_unconfined_and_then_the_calls_go_through() {
    require_root!("an_admin_may_run_a_proc_unconfined_and_then_the_calls_go_through");
    let d = TestDaemon::start();
    let got = probe(&d, "unconfined", "seccomp: unconfined");
    // What only the filter stops: a user namespace, the keyring, clone3.
    for call in ["unshare", "clone_newuser", "keyctl", "clone3"] {
        let (rc, errno) = got.get(call).copied().unwrap_or_else(|| panic!("{call} missing: {got:?}"));
        assert!(rc >= 0, "{call} failed without the filter: errno {errno}");
    }
    let bad = d.write("bad.yaml", &proc_yaml("badsec", 0, "cmd: sleep 1\nseccomp: off"));
    let out = d.run_vr(&["runner", "setup", bad.to_str().unwrap()]);
    assert!(
        !out.status.success() && text(&out).1.contains("default (vr's filter) or unconfined"),
        "{:?}",
        text(&out)
    );
}
