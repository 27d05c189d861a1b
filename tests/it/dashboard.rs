//! The dashboard in a real browser (issue 14 §4): Debian's Chromium through chromium-driver,
//! driven by a WebDriver client (tests/browser/dashboard.py, selenium): log in, see a running
//! proc, read its live log, stop it from its panel and watch its box turn STOPPED live, start it
//! again, filter. A failure leaves a screenshot in target/.

use std::path::Path;
use std::process::Command;

use crate::harness::{free_port, proc_yaml, repo, text, wait_for_port, TestDaemon};
use crate::require_root;

#[test]
fn the_dashboard_shows_procs_live_and_acts_on_them_in_a_real_browser() {
    require_root!("the_dashboard_shows_procs_live_and_acts_on_them_in_a_real_browser");
    for needed in ["/usr/bin/chromium", "/usr/bin/chromedriver", "/usr/lib/python3/dist-packages/selenium"] {
        if !Path::new(needed).exists() {
            crate::harness::skip(
                "the_dashboard_shows_procs_live_and_acts_on_them_in_a_real_browser",
                &format!("{needed} is missing: apt-get install chromium chromium-driver python3-selenium (tests/packages.txt)"),
            );
            return;
        }
    }
    let port = free_port();
    let d = TestDaemon::start_with_config(&format!("http_listen = \"127.0.0.1:{port}\"\n"), &[]);
    assert!(wait_for_port(port, std::time::Duration::from_secs(5)));
    let args = ["users", "create", "ada", "--role", "deployer", "--password-stdin"];
    let created = d.run_vr_with_input(&args, "a long enough password\n");
    assert!(created.status.success(), "{:?}", text(&created));
    let cmd = "cmd: \"i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done\"";
    let file = d.write("tick.yaml", &proc_yaml("tick", 0, cmd));
    let out = d.run_vr(&["proc", "deploy", file.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    let proc = "tick-1.0-rc1-test-abcd1234-web-0";
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-failure.png");
    let out = Command::new("/usr/bin/python3")
        .arg(repo().join("tests/browser/dashboard.py"))
        .arg(format!("https://localhost:{port}/"))
        .args(["ada", "a long enough password", proc])
        .arg(&screenshot)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    eprintln!("{stdout}");
    let destroyed = d.run_vr(&["procs", "destroy", proc]);
    assert!(out.status.success(), "the browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("dashboard: all passed"), "{stdout}");
    assert!(destroyed.status.success(), "{:?}", text(&destroyed));
}
