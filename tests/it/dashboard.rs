//! The dashboard in a real browser (issue 14 §4): Debian's Chromium through chromium-driver,
//! driven by a WebDriver client (tests/browser/dashboard.py, selenium): log in, see a running
//! proc, read its live log, stop it from its panel and watch its box turn STOPPED live, start it
//! again, filter; and a swarm driven from its page (tests/browser/swarms.py): a failed uptest's
//! output, a new version's build output and boxes changing live, a rollback, a form's YAML
//! error. A failure leaves a screenshot in target/.

use std::path::Path;
use std::process::Command;

use crate::harness::{free_port, proc_yaml, repo, text, wait_for_port, TestDaemon};
use crate::require_root;
use crate::swarm_fixture::Fx;

/// Whether Chromium, chromium-driver and selenium are here; a skip (counted) says what is missing.
fn browser_ready(test: &str) -> bool {
    for needed in ["/usr/bin/chromium", "/usr/bin/chromedriver", "/usr/lib/python3/dist-packages/selenium"] {
        if !Path::new(needed).exists() {
            crate::harness::skip(
                test,
                &format!("{needed} is missing: apt-get install chromium chromium-driver python3-selenium (tests/packages.txt)"),
            );
            return false;
        }
    }
    true
}

/// The user the browser logs in as: ada, a deployer, with the password the scripts are given.
fn make_deployer(d: &TestDaemon) {
    let args = ["users", "create", "ada", "--role", "deployer", "--password-stdin"];
    let created = d.run_vr_with_input(&args, "a long enough password\n");
    assert!(created.status.success(), "{:?}", text(&created));
}

/// Runs tests/browser/SCRIPT with ARGS after the URL; its stdout, after it passed.
fn browse(script: &str, port: u16, args: &[&str]) -> String {
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{script}-failure.png"));
    let out = Command::new("/usr/bin/python3")
        .arg(repo().join("tests/browser").join(script))
        .arg(format!("https://localhost:{port}/"))
        .args(args)
        .arg(&screenshot)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    eprintln!("{stdout}");
    assert!(out.status.success(), "the browser test {script} failed:\n{stdout}\n{stderr}");
    stdout
}

#[test]
fn the_dashboard_shows_procs_live_and_acts_on_them_in_a_real_browser() {
    let test = "the_dashboard_shows_procs_live_and_acts_on_them_in_a_real_browser";
    require_root!(test);
    if !browser_ready(test) {
        return;
    }
    let port = free_port();
    let d = TestDaemon::start_with_config(&format!("http_listen = \"127.0.0.1:{port}\"\n"), &[]);
    assert!(wait_for_port(port, std::time::Duration::from_secs(5)));
    make_deployer(&d);
    let cmd = "cmd: \"i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done\"";
    let file = d.write("tick.yaml", &proc_yaml("tick", 0, cmd));
    let out = d.run_vr(&["proc", "deploy", file.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    let proc = "tick-1.0-rc1-test-abcd1234-web-0";
    let browsed = std::panic::catch_unwind(|| {
        // The benchmark's browser half on one proc, so benches/fleet.sh's never rots unseen.
        let timed = browse("bench.py", port, &["ada", "a long enough password", "1", "2"]);
        let report: serde_json::Value = serde_json::from_str(timed.trim()).unwrap();
        let changes: usize =
            report["latencies"].as_object().unwrap().values().map(|v| v.as_array().unwrap().len()).sum();
        assert_eq!(changes, 4, "{report}");
        browse("dashboard.py", port, &["ada", "a long enough password", proc])
    });
    let destroyed = d.run_vr(&["procs", "destroy", proc]);
    let stdout = browsed.unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert!(stdout.contains("dashboard: all passed"), "{stdout}");
    assert!(destroyed.status.success(), "{:?}", text(&destroyed));
}

#[test]
fn a_swarm_is_dispatched_watched_and_rolled_back_from_its_page_in_a_real_browser() {
    let test = "a_swarm_is_dispatched_watched_and_rolled_back_from_its_page_in_a_real_browser";
    require_root!(test);
    if !browser_ready(test) {
        return;
    }
    let (port, router) = (free_port(), free_port());
    let fx = Fx::with_config(&format!(
        "http_listen = \"127.0.0.1:{port}\"\ndrain_secs = 1\n\
         [balancers.builtin]\nkind = \"builtin\"\npools = {{ hello = \"127.0.0.1:{router}\" }}\n"
    ));
    assert!(wait_for_port(port, std::time::Duration::from_secs(5)));
    make_deployer(&fx.d);
    fx.create_swarm(&["app=hello", "version=v1", "size=2", "pool=hello"]);
    fx.ok(&["swarm", "hello-prod-web", "v1"]);
    fx.app_version("v2", "uptests/web/02_broken", "#!/bin/sh\necho database unreachable\nexit 1\n", 0o755);
    // v3 mends v2: its broken uptest goes, a page comes.
    std::fs::remove_file(fx.app.join("uptests/web/02_broken")).unwrap();
    fx.app_version("v3", "public/about.txt", "about v3\n", 0o644);
    let stdout = browse("swarms.py", port, &["ada", "a long enough password", "hello-prod-web"]);
    assert!(stdout.contains("swarms: all passed"), "{stdout}");
    // What the browser did is what vrd did: release 1 runs again, and the form changed nothing.
    let procs = fx.procs();
    assert!(procs.len() == 2 && procs.iter().all(|p| p.starts_with("hello-v1-")), "{procs:?}");
    let shown = fx.ok(&["swarms", "show", "hello-prod-web"]);
    assert!(!shown.contains("colour"), "{shown}");
    fx.ok(&["swarms", "delete", "hello-prod-web"]);
}
