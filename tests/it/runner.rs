//! Velociraptor's runner contract end to end, through the `vr` client and a real vrd.

use std::time::Duration;

use crate::harness::{free_port, http_get, proc_yaml, repo, tar_gz, text, wait_for_port, TestDaemon};
use crate::require_root;

fn build_of(d: &TestDaemon, fixture: &str) -> String {
    let out = d.dir.path().join(format!("{}.tar.gz", fixture.replace('/', "_")));
    tar_gz(&repo().join(fixture), &out);
    format!("build_url: file://{}", out.display())
}

#[test]
fn the_example_app_serves_passes_its_uptests_and_tears_down() {
    require_root!("the_example_app_serves_passes_its_uptests_and_tears_down");
    let d = TestDaemon::start();
    let port = free_port();
    let yaml = proc_yaml("hello", port, &format!("user: app\n{}", build_of(&d, "examples/hello")));
    let file = d.write("hello.yaml", &yaml);
    let f = file.to_str().unwrap();
    let setup = d.run_vr(&["runner", "setup", f]);
    assert!(setup.status.success(), "{:?}", text(&setup));
    let mut run = d.vr().args(["runner", "run", f]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    assert!(wait_for_port(port, Duration::from_secs(20)), "the app never listened on {port}");
    assert!(http_get(port, "/").contains("Hello from vr"));
    let up = d.run_vr(&["runner", "uptest", f]);
    let (out, err) = text(&up);
    assert!(up.status.success(), "{err}");
    let results: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not only JSON ({e}): {out}"));
    assert_eq!(results[0]["Name"], "01_its_alive");
    assert_eq!(results[0]["Passed"], true, "{out}");
    // A second setup of the same file while it runs fails at once, as VR's flock did.
    let second = d.run_vr(&["runner", "setup", f]);
    assert!(!second.status.success());
    assert!(text(&second).1.contains("is locked by another process"), "{:?}", text(&second));
    // The same proc through another file is refused by the daemon's own lock.
    let other = d.write("hello-copy.yaml", &yaml);
    let third = d.run_vr(&["runner", "teardown", other.to_str().unwrap()]);
    assert!(text(&third).1.contains("is locked by another process"), "{:?}", text(&third));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(run.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    let status = run.wait().unwrap();
    assert!(!status.success());
    let log =
        std::fs::read_to_string(d.data().join(format!("procs/hello-1.0-rc1-test-abcd1234-web-{port}/log")))
            .unwrap();
    assert!(
        log.lines().any(|l| l.contains(" err ") && l.contains("response:200")),
        "httpd's log lines are kept: {log}"
    );
    let down = d.run_vr(&["runner", "teardown", f]);
    assert!(down.status.success(), "{:?}", text(&down));
    assert!(d.cgroups_left().is_empty() && d.mounts_left().is_empty());
}

#[test]
fn uptests_run_sorted_skip_dotfiles_and_report_failures() {
    require_root!("uptests_run_sorted_skip_dotfiles_and_report_failures");
    let d = TestDaemon::start();
    let yaml = proc_yaml("up", 7007, &build_of(&d, "tests/fixtures/uptests"));
    let file = d.write("up.yaml", &yaml);
    let f = file.to_str().unwrap();
    assert!(d.run_vr(&["runner", "setup", f]).status.success());
    let up = d.run_vr(&["runner", "uptest", f]);
    let (out, err) = text(&up);
    let results: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    let names: Vec<&str> = results.as_array().unwrap().iter().map(|r| r["Name"].as_str().unwrap()).collect();
    assert_eq!(names, ["01_pass", "02_fail"], "sorted, dotfiles and non-executables skipped");
    assert_eq!(results[0]["Passed"], true);
    assert_eq!(results[0]["Output"], "checked 127.0.0.1:7007\n", "called as <test> <host> <port>");
    assert_eq!(results[1]["Passed"], false);
    assert_eq!(results[1]["Output"], "no answer from 127.0.0.1:7007\n", "stderr is captured too");
    // A proc type without uptests gets [].
    let worker = yaml.replace("proc_name: web", "proc_name: worker\ncmd: sleep 1");
    let wfile = d.write("worker.yaml", &worker);
    assert!(d.run_vr(&["runner", "setup", wfile.to_str().unwrap()]).status.success());
    let none = d.run_vr(&["runner", "uptest", wfile.to_str().unwrap()]);
    assert_eq!(text(&none).0.trim(), "[]");
}

#[test]
fn vrun_is_vr_runner() {
    require_root!("vrun_is_vr_runner");
    let d = TestDaemon::start();
    let vrun = d.dir.path().join("vrun");
    std::os::unix::fs::symlink(crate::harness::vr_client(), &vrun).unwrap();
    let file = d.write("p.yaml", &proc_yaml("alias", 0, "cmd: echo from-vrun"));
    let run = |action: &str| {
        std::process::Command::new(&vrun)
            .args([action, file.to_str().unwrap()])
            .env("VR_SOCKET", d.socket())
            .output()
            .unwrap()
    };
    assert!(run("setup").status.success());
    let out = run("run");
    assert_eq!(text(&out).0, "from-vrun\n", "{:?}", text(&out));
    assert!(run("teardown").status.success());
}

#[test]
fn the_exit_code_is_the_apps() {
    require_root!("the_exit_code_is_the_apps");
    let d = TestDaemon::start();
    let file = d.write("p.yaml", &proc_yaml("code", 0, "cmd: echo out; echo err >&2; exit 42"));
    assert!(d.run_vr(&["runner", "setup", file.to_str().unwrap()]).status.success());
    let out = d.run_vr(&["runner", "run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(42));
    assert_eq!(text(&out), ("out\n".to_string(), "err\n".to_string()));
}

/// Waits until this daemon has exactly one spare launcher; returns its pid.
fn the_spare(d: &TestDaemon) -> i32 {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let [pid] = d.spares()[..] {
            return pid;
        }
        assert!(std::time::Instant::now() < deadline, "no single spare launcher: {:?}", d.spares());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_foreground_launcher_is_reused_and_starts_each_container_clean() {
    require_root!("a_foreground_launcher_is_reused_and_starts_each_container_clean");
    let d = TestDaemon::start();
    // Its own pid (a new pid namespace each time) and open fds (nothing of the last run).
    let file = d.write("p.yaml", &proc_yaml("again", 0, "cmd: echo pid $$; ls /proc/self/fd | wc -l"));
    let file = file.to_str().unwrap();
    assert!(d.run_vr(&["runner", "setup", file]).status.success());
    let first = d.run_vr(&["runner", "run", file]);
    assert!(first.status.success(), "{:?}", text(&first));
    let spare = the_spare(&d);
    // output() returned, so the spare let go of the first caller's pipes; the second caller's
    // output reaches the second caller.
    let second = d.run_vr(&["runner", "run", file]);
    assert!(second.status.success(), "{:?}", text(&second));
    let (one, two) = (text(&first).0, text(&second).0);
    assert!(one.starts_with("pid 1\n"), "{one:?}");
    assert_eq!(one, two, "the second container saw another pid or other fds");
    assert_eq!(the_spare(&d), spare, "the spare ran the second start and waits again");
    // A stop signal to a waiting spare ends it; the next start forks a launcher.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(spare), nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(format!("/proc/{spare}/comm")).is_ok_and(|c| c.trim() == "vrd-spare") {
        assert!(std::time::Instant::now() < deadline, "the spare ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let third = d.run_vr(&["runner", "run", file]);
    assert!(third.status.success() && text(&third).0 == one, "{:?}", text(&third));
    assert_ne!(the_spare(&d), spare);
}

#[test]
fn a_client_killed_mid_run_stops_its_container_and_frees_the_proc() {
    require_root!("a_client_killed_mid_run_stops_its_container_and_frees_the_proc");
    let d = TestDaemon::start();
    let file = d.write("p.yaml", &proc_yaml("gone", 0, "cmd: sleep 300"));
    let file = file.to_str().unwrap();
    assert!(d.run_vr(&["runner", "setup", file]).status.success());
    let mut client = d.vr().args(["runner", "run", file]).spawn().unwrap();
    crate::container::wait_for_launcher(&d);
    // No goodbye: the connection just closes, as when a terminal is closed or ssh drops.
    client.kill().unwrap();
    client.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !d.launchers().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the container outlived its caller");
        std::thread::sleep(Duration::from_millis(50));
    }
    // vrd lets go of the proc a moment after the launcher is gone.
    loop {
        let teardown = d.run_vr(&["runner", "teardown", file]);
        if teardown.status.success() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the proc stayed busy: {:?}", text(&teardown));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn shell_gives_an_interactive_terminal_in_a_sibling_container() {
    require_root!("shell_gives_an_interactive_terminal_in_a_sibling_container");
    let d = TestDaemon::start();
    let file = d.write("p.yaml", &proc_yaml("sh", 0, "cmd: sleep 1"));
    assert!(d.run_vr(&["runner", "setup", file.to_str().unwrap()]).status.success());
    let mut cmd = d.vr();
    cmd.args(["runner", "shell", file.to_str().unwrap()]);
    let (status, seen) =
        crate::harness::run_in_pty(cmd, b"tty; hostname; exit 7\n", "sh-1.0-rc1-test-abcd1234-web-0\r\n");
    assert_eq!(status.code(), Some(7), "{seen}");
    assert!(seen.contains("/dev/pts/0"), "the shell has a terminal of its own: {seen}");
    assert!(seen.contains("sh-1.0-rc1-test-abcd1234-web-0"), "{seen}");
}

#[test]
fn bad_input_gets_an_error_that_says_what_to_do() {
    let d = TestDaemon::start();
    let cases = [
        ("app_name: a\n", "proc_name"),
        (
            "app_name: my-app\nversion: 1\nconfig_name: c\nproc_name: web\nimage_url: /x.tar\n",
            "'-' separates the parts",
        ),
        ("app_name: a\nversion: 1\nconfig_name: c\nproc_name: web\n", "image_url"),
        (
            "app_name: a\nversion: 1\nconfig_name: c\nproc_name: web\nimage_url: /x.tar\nmem_limit: lots\n",
            "mem_limit",
        ),
        ("- not\n- a mapping\n", "mapping"),
    ];
    for (yaml, needle) in cases {
        let file = d.write("bad.yaml", yaml);
        let out = d.run_vr(&["runner", "setup", file.to_str().unwrap()]);
        assert!(!out.status.success());
        assert!(text(&out).1.contains(needle), "{yaml}: {:?}", text(&out));
        assert!(text(&out).1.contains("bad.yaml"), "the message names the file: {:?}", text(&out));
    }
    let missing = d.run_vr(&["runner", "setup", "/nonexistent/proc.yaml"]);
    assert!(text(&missing).1.contains("failed to open /nonexistent/proc.yaml"));
}

#[test]
fn without_a_daemon_the_client_says_how_to_start_one() {
    let out = std::process::Command::new(crate::harness::vr_client())
        .args(["--socket", "/nonexistent/vrd.sock", "version"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out).1;
    assert!(
        err.contains("vrd is not running at /nonexistent/vrd.sock") && err.contains("vrd daemon"),
        "{err}"
    );
}

#[test]
fn vrd_is_one_static_binary() {
    let out = std::process::Command::new("ldd").arg(env!("CARGO_BIN_EXE_vrd")).output().unwrap();
    let said = format!("{}{}", text(&out).0, text(&out).1);
    assert!(said.contains("statically linked"), "ldd says: {said}");
}

#[test]
fn a_plain_command_skips_the_shell_but_gets_the_same_environment() {
    require_root!("a_plain_command_skips_the_shell_but_gets_the_same_environment");
    let d = TestDaemon::start();
    let extra = "cmd: env\nenv: {GREETING: hi, PORT: \"1\"}\nsettings: {a: 1}";
    let file = d.write("p.yaml", &proc_yaml("envy", 6123, extra));
    assert!(d.run_vr(&["runner", "setup", file.to_str().unwrap()]).status.success());
    let out = d.run_vr(&["runner", "run", file.to_str().unwrap()]);
    let mut env: Vec<String> = text(&out).0.lines().map(str::to_string).collect();
    env.sort();
    let expected = [
        "APP_SETTINGS_YAML=/settings.yaml",
        "GREETING=hi",
        "HOME=/app",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PORT=6123",
        "TMPDIR=/tmp",
    ];
    assert_eq!(env, expected, "{:?}", text(&out));
    let plan =
        std::fs::read_to_string(d.data().join("procs/envy-1.0-rc1-test-abcd1234-web-6123/launch.json"))
            .unwrap();
    assert!(plan.contains("\"argv\": [\n    \"env\"\n  ]"), "env ran without /bin/sh: {plan}");
}

#[test]
fn a_hanging_uptest_is_stopped_and_reported() {
    require_root!("a_hanging_uptest_is_stopped_and_reported");
    let d = TestDaemon::start_with(&["--uptest-timeout-secs", "2"]);
    let file = d.write("slow.yaml", &proc_yaml("slow", 7008, &build_of(&d, "tests/fixtures/slow-uptest")));
    let f = file.to_str().unwrap();
    assert!(d.run_vr(&["runner", "setup", f]).status.success());
    let started = std::time::Instant::now();
    let out = d.run_vr(&["runner", "uptest", f]);
    // The test would hang for 600 s; a loaded CI machine may take a while to stop it, not that long.
    assert!(started.elapsed() < Duration::from_secs(120), "the hanging test was not stopped");
    let results: serde_json::Value = serde_json::from_str(text(&out).0.trim()).unwrap();
    let names: Vec<&str> = results.as_array().unwrap().iter().map(|r| r["Name"].as_str().unwrap()).collect();
    assert_eq!(names, ["01_quick", "02_hangs", "uptester"]);
    assert_eq!(results[0]["Passed"], true);
    assert_eq!(results[1]["Passed"], false);
    // What the test printed before it was stopped; its own shell may add "Terminated".
    assert!(results[1]["Output"].as_str().unwrap().starts_with("hanging\n"), "{results}");
    assert!(results[2]["Output"].as_str().unwrap().contains("stopped after 2 s"), "{results}");
}
