//! What an app or a proc.yaml must not do to the host (issue 12 §1, §2, §7, §8): each test is one
//! attack from the hardening battery, run for real against a real vrd and real containers.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::harness::{proc_yaml, tar_gz, text, TestDaemon};
use crate::require_root;

/// A build whose one web uptest is `script`, as a `build_url:` line.
fn build_with_uptest(d: &TestDaemon, script: &str) -> String {
    let app = d.dir.path().join("app");
    std::fs::create_dir_all(app.join("uptests/web")).unwrap();
    std::fs::write(app.join("Procfile"), "web: sleep 600\n").unwrap();
    let test = app.join("uptests/web/01_plant");
    std::fs::write(&test, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&test, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = d.dir.path().join("app.tar.gz");
    tar_gz(&app, &out);
    format!("build_url: file://{}", out.display())
}

/// Runs `cmd` to its end (its output read as it comes), or kills it after `limit` and fails.
fn output_within(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output().unwrap()));
    finished.recv_timeout(limit).unwrap_or_else(|_| {
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        panic!("{cmd:?} still running after {limit:?}")
    })
}

#[test]
fn uptest_results_are_never_read_through_links_fifos_or_past_a_bound() {
    require_root!("uptest_results_are_never_read_through_links_fifos_or_past_a_bound");
    let d = TestDaemon::start();
    let secret = d.dir.path().join("secret");
    std::fs::write(&secret, "root-only-host-secret").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The uptest (as nobody) plants results 2-4 beside its own: a link to a root-only host file,
    // a FIFO nobody writes, and 2 MiB of output.
    let plant = format!(
        "cd /.vr-uptest\n\
         printf steal > 2.name; ln -s {secret} 2.out; echo 0 > 2.rc\n\
         printf fifo > 3.name; mkfifo 3.out; echo 0 > 3.rc\n\
         printf big > 4.name; dd if=/dev/zero bs=1024 count=2048 2>/dev/null | tr '\\0' x > 4.out; echo 0 > 4.rc\n\
         echo planted",
        secret = secret.display()
    );
    let yaml = proc_yaml("plant", 0, &format!("user: nobody\n{}", build_with_uptest(&d, &plant)));
    let file = d.write("plant.yaml", &yaml);
    let f = file.to_str().unwrap();
    assert!(d.run_vr(&["runner", "setup", f]).status.success());
    let mut cmd = d.vr();
    cmd.args(["runner", "uptest", f]);
    let up = output_within(cmd, Duration::from_secs(60));
    let (out, err) = text(&up);
    assert!(!out.contains("root-only-host-secret"), "a host file came back: {out}");
    let results: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    let by_name = |name: &str| {
        results
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["Name"] == name)
            .unwrap_or_else(|| panic!("{name}: {out}"))
    };
    assert_eq!(by_name("01_plant")["Passed"], true, "{out}");
    for (name, why) in [("steal", "symbolic links"), ("fifo", "FIFO")] {
        let result = by_name(name);
        assert_eq!(result["Passed"], false, "{result}");
        let output = result["Output"].as_str().unwrap();
        assert!(output.contains("vr refused to read") && output.contains(why), "{output}");
    }
    let big = by_name("big")["Output"].as_str().unwrap().to_string();
    assert!(big.len() < 300 << 10 && big.ends_with("[vr: output cut at 256 KiB]"), "{} bytes", big.len());
}

#[test]
fn an_image_name_that_is_a_path_is_refused_and_nothing_is_written() {
    require_root!("an_image_name_that_is_a_path_is_refused_and_nothing_is_written");
    let d = TestDaemon::start();
    let target = d.dir.path().join("planted");
    let escapes = [format!("../../../../../..{}", target.display()), target.display().to_string()];
    for name in escapes {
        let yaml = proc_yaml("escape", 0, "cmd: sleep 1")
            .replace("image_name: busybox", &format!("image_name: {name}"));
        let file = d.write("escape.yaml", &yaml);
        for action in ["setup", "run"] {
            let out = d.run_vr(&["runner", action, file.to_str().unwrap()]);
            let (_, err) = text(&out);
            assert!(!out.status.success(), "{name}: {action} went through");
            assert!(err.contains("image_name") && err.contains("image name"), "{err}");
        }
        let deploy = d.run_vr(&["proc", "deploy", file.to_str().unwrap()]);
        assert!(!deploy.status.success() && text(&deploy).1.contains("image_name"), "{:?}", text(&deploy));
        assert!(!target.exists(), "{name} wrote {}", target.display());
    }
    // What vrd fetched is root's alone (images, builds, logs live under the data dir).
    let mode = std::fs::metadata(d.data()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "the data dir is {mode:o}");
    // The same rule for a build's stack image (build.yaml) and a build url's file name.
    let build = d.write(
        "build.yaml",
        "app_name: a\napp_repo_url: https://example.com/a.git\nversion: v1\nimage_url: file:///x.tar.gz\nimage_name: ../x\n",
    );
    let out = d
        .vr()
        .current_dir(d.dir.path())
        .args(["builder", "build", build.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success() && text(&out).1.contains("image_name"), "{:?}", text(&out));
    let dotted = proc_yaml("dots", 0, "cmd: sleep 1\nbuild_url: file:///tmp/..");
    let file = d.write("dots.yaml", &dotted);
    let out = d.run_vr(&["runner", "setup", file.to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).1.contains("build"), "{:?}", text(&out));
}

#[test]
fn uid_and_gid_minus_one_are_refused_not_run_as_root() {
    require_root!("uid_and_gid_minus_one_are_refused_not_run_as_root");
    let d = TestDaemon::start();
    for ids in ["user: 4294967295", "user: app\ngroup: 4294967295"] {
        let file = d.write("minus.yaml", &proc_yaml("minus", 0, &format!("{ids}\ncmd: id")));
        let setup = d.run_vr(&["runner", "setup", file.to_str().unwrap()]);
        let run = d.run_vr(&["runner", "run", file.to_str().unwrap()]);
        assert!(text(&setup).1.contains("not a real id"), "{:?}", text(&setup));
        for out in [&setup, &run] {
            let (stdout, err) = text(out);
            assert!(!out.status.success(), "{ids}: ran: {stdout}");
            assert!(err.contains("not a real id") || err.contains("not set up"), "{ids}: {err}");
            assert!(!stdout.contains("uid=0"), "{stdout}");
        }
    }
}

/// Runs `cmd` once in a root container of `app` with `volumes`; (exit ok, stdout, stderr).
fn run_once(d: &TestDaemon, app: &str, cmd: &str, volumes: &str) -> (bool, String, String) {
    let yaml = proc_yaml(app, 0, &format!("user: root\ngroup: root\ncmd: \"{cmd}\"\nvolumes: {volumes}"));
    let file = d.write(&format!("{app}.yaml"), &yaml);
    let setup = d.run_vr(&["runner", "setup", file.to_str().unwrap()]);
    assert!(setup.status.success(), "{:?}", text(&setup));
    let out = d.run_vr(&["runner", "run", file.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    (out.status.success(), stdout, stderr)
}

#[test]
fn a_link_planted_in_a_volume_cannot_hand_another_volume_a_host_dir() {
    require_root!("a_link_planted_in_a_volume_cannot_hand_another_volume_a_host_dir");
    let d = TestDaemon::start();
    let shared = d.dir.path().join("shared");
    let secret = d.dir.path().join("host-only");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("secret.txt"), "host-only-data").unwrap();
    // App one (root in its container) plants a link to a host dir in its volume.
    let plant = format!("ln -s {} /data/link && echo planted", secret.display());
    let (ok, out, err) = run_once(&d, "planter", &plant, &format!("[[{}, /data]]", shared.display()));
    assert!(ok && out.contains("planted"), "{out} {err}");
    assert!(std::fs::symlink_metadata(shared.join("link")).unwrap().file_type().is_symlink());
    // App two names a path under it as its volume source: refused, not the host dir.
    let volume = format!("[[{}, /mnt]]", shared.join("link").display());
    let (ok, out, err) = run_once(&d, "victim", "cat /mnt/secret.txt", &volume);
    assert!(!out.contains("host-only-data"), "a host dir came through a planted link: {out}");
    assert!(!ok, "{out} {err}");
    assert!(
        err.contains("passes through a symbolic link") && err.contains(&secret.display().to_string()),
        "{err}"
    );
}

#[test]
fn volumes_are_nosuid_and_nodev() {
    require_root!("volumes_are_nosuid_and_nodev");
    let d = TestDaemon::start();
    let rw = d.make_dir("rw");
    let cmd = "cp /bin/busybox /data/suid && chmod 4755 /data/suid && grep ' /data ' /proc/mounts";
    let (ok, out, err) = run_once(&d, "suid", cmd, &format!("[[{}, /data]]", rw.display()));
    assert!(ok, "{out} {err}");
    let options = out.split_whitespace().nth(3).unwrap_or_else(|| panic!("no mount line: {out}"));
    let options: Vec<&str> = options.split(',').collect();
    for want in ["rw", "nosuid", "nodev"] {
        assert!(options.contains(&want), "{want} missing from the volume's {options:?}");
    }
}

#[test]
fn deep_or_huge_yaml_in_a_request_is_refused_at_once_and_others_are_served() {
    require_root!("deep_or_huge_yaml_in_a_request_is_refused_at_once_and_others_are_served");
    let d = TestDaemon::start();
    let deep_yaml = format!("{}settings: {}", proc_yaml("deep", 0, "cmd: sleep 1"), "[".repeat(100_000));
    let deep = d.write("deep.yaml", &deep_yaml);
    let deeper = d.write("deep2.yaml", &deep_yaml);
    let huge_yaml = format!("{}settings: '{}'\n", proc_yaml("huge", 0, "cmd: sleep 1"), "x".repeat(2 << 20));
    let huge = d.write("huge.yaml", &huge_yaml);
    // Two of them at once (the battery's attack), and an ordinary call beside them.
    let attacks: Vec<_> = [&deep, &deeper, &huge]
        .into_iter()
        .map(|file| {
            let mut cmd = d.vr();
            cmd.args(["runner", "setup", file.to_str().unwrap()]);
            std::thread::spawn(move || output_within(cmd, Duration::from_secs(20)))
        })
        .collect();
    let mut list = d.vr();
    list.args(["procs", "list"]);
    assert!(output_within(list, Duration::from_secs(20)).status.success());
    let answers: Vec<(String, String)> = attacks.into_iter().map(|a| text(&a.join().unwrap())).collect();
    for (_, err) in &answers[..2] {
        assert!(err.contains("deep") && err.contains("more than 64 levels"), "{err}");
    }
    let (_, err) = &answers[2];
    assert!(err.contains("huge.yaml") && err.contains("at most 1048576 bytes"), "{err}");
}
