//! The SELinux module (issue 13 §4). This machine cannot enforce SELinux (no policy loaded, and
//! container-selinux is not packaged for Debian), so what is checked here is what can be: the
//! module compiles with the reference policy's devel Makefile (Debian's selinux-policy-dev), and
//! its file contexts name exactly the places the packages install and vrd writes.

use std::path::Path;
use std::process::Command;

use crate::harness::{repo, skip};

const MAKEFILE: &str = "/usr/share/selinux/devel/Makefile";

#[test]
fn the_policy_module_compiles_without_warnings() {
    if !Path::new(MAKEFILE).exists() {
        return skip(
            "the_policy_module_compiles_without_warnings",
            "selinux-policy-dev is not installed (tests/packages.txt has it)",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    for file in ["vrd.te", "vrd.fc", "vrd.if"] {
        std::fs::copy(repo().join("selinux").join(file), dir.path().join(file)).unwrap();
    }
    let out = Command::new("make").args(["-f", MAKEFILE, "vrd.pp"]).current_dir(dir.path()).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(dir.path().join("vrd.pp").exists());
    assert!(!stderr.contains("Warning") && !stdout.contains("Warning"), "{stdout}\n{stderr}");
}

/// The literal path each line of vrd.fc labels (its regular expression up to the first special
/// character), with the type it gives.
fn file_contexts() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("selinux/vrd.fc")).unwrap();
    text.lines()
        .filter(|l| l.starts_with('/'))
        .map(|l| {
            let regex = l.split_whitespace().next().unwrap();
            let literal = regex.split(['(', '[']).next().unwrap().trim_end_matches('/').to_string();
            let context = l.split("object_r:").nth(1).unwrap().split([':', ',']).next().unwrap().to_string();
            (literal, context)
        })
        .collect()
}

#[test]
fn the_file_contexts_name_what_the_packages_install_and_vrd_writes() {
    let contexts = file_contexts();
    let labelled = |path: &str| contexts.iter().find(|(p, _)| p == path).map(|(_, t)| t.as_str());
    // What the vrd package installs (Cargo.toml's asset destinations, systemd/vrd.tmpfile).
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let tmpfiles = std::fs::read_to_string(repo().join("systemd/vrd.tmpfile")).unwrap();
    assert!(manifest.contains("\"usr/bin/\"") && manifest.contains("\"etc/vrd/vrd.toml\""));
    assert!(tmpfiles.contains("/var/lib/vrd ") && tmpfiles.contains("/run/vrd "));
    assert_eq!(labelled("/usr/bin/vrd"), Some("vrd_exec_t"));
    assert_eq!(labelled("/etc/vrd"), Some("vrd_conf_t"));
    assert_eq!(labelled("/var/lib/vrd"), Some("vrd_var_lib_t"));
    assert_eq!(labelled("/run/vrd"), Some("vrd_runtime_t"));
    // The data dir's parts as vrd names them (services/runner/layout.rs and retained.rs).
    let layout = std::fs::read_to_string(repo().join("src/services/runner/layout.rs")).unwrap()
        + &std::fs::read_to_string(repo().join("src/services/runner/retained.rs")).unwrap();
    for (dir, context) in [
        ("procs", "container_file_t"),
        ("images", "container_ro_file_t"),
        ("builds", "container_ro_file_t"),
        ("logs", "vrd_log_t"),
    ] {
        assert!(layout.contains(&format!("join(\"{dir}\")")), "vrd no longer writes {dir}/: update vrd.fc");
        assert_eq!(labelled(&format!("/var/lib/vrd/{dir}")), Some(context), "{dir}");
    }
    // Nothing labelled that neither the packages nor vrd make.
    for (path, _) in &contexts {
        assert!(
            ["/usr/bin/vrd", "/etc/vrd", "/var/lib/vrd", "/run/vrd"].iter().any(|p| path.starts_with(p)),
            "{path} is neither installed nor written by vrd"
        );
    }
}
