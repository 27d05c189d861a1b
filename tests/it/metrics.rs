//! `/metrics` (issue 13 §5) scraped from a real vrd while a user works: a swarm built, deployed
//! and routed, a release whose uptests fail, a proc the OOM killer ends. Each family moves with
//! what happened.

use std::time::{Duration, Instant};

use crate::harness::{free_port, http_get, proc_yaml, text, wait_for_port};
use crate::require_root;
use crate::swarm_fixture::Fx;

/// The value of the first series whose line starts with `name{` and holds every label in
/// `labels` (`key="value"`); `None` when there is none.
fn value(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn scrape(port: u16) -> String {
    http_get(port, "/metrics")
}

/// Scrapes until `name{labels}` is at least `min` (at most 60 s); the last text.
fn until_at_least(port: u16, name: &str, labels: &[&str], min: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = scrape(port);
        if value(&text, name, labels).is_some_and(|v| v >= min) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn metrics_follow_swarms_builds_balancers_uptests_and_procs() {
    require_root!("metrics_follow_swarms_builds_balancers_uptests_and_procs");
    let (router, port) = (free_port(), free_port());
    let fx = Fx::with_config(&format!(
        "drain_secs = 1\nmetrics_listen = \"127.0.0.1:{port}\"\n\
         [balancers.builtin]\nkind = \"builtin\"\npools = {{ hello = \"127.0.0.1:{router}\" }}\n"
    ));
    assert!(wait_for_port(port, Duration::from_secs(5)), "vrd does not serve metrics on {port}");
    let before = scrape(port);
    assert!(before.ends_with("# EOF\n"), "OpenMetrics text: {before}");
    assert_eq!(value(&before, "vr_dispatch_duration_seconds_count", &[]), None, "{before}");
    assert_eq!(value(&before, "vr_store_bytes", &["kind=\"artifacts\""]), Some(0.0), "{before}");

    // A swarm: one build, one dispatch, the builtin router changed, one RUNNING proc.
    fx.create_swarm(&["app=hello", "version=v1", "size=1", "pool=hello"]);
    fx.ok(&["swarm", "hello-prod-web", "v1"]);
    let after = scrape(port);
    let ok = ["outcome=\"ok\""];
    assert_eq!(value(&after, "vr_dispatch_duration_seconds_count", &ok), Some(1.0), "{after}");
    assert!(value(&after, "vr_dispatch_duration_seconds_sum", &ok).is_some_and(|s| s > 0.0), "{after}");
    assert_eq!(value(&after, "vr_build_duration_seconds_count", &ok), Some(1.0), "{after}");
    let builtin = ["backend=\"builtin\""];
    assert!(value(&after, "vr_balancer_change_duration_seconds_count", &builtin).is_some_and(|n| n >= 1.0));
    assert_eq!(value(&after, "vr_procs", &["state=\"RUNNING\""]), Some(1.0), "{after}");
    assert!(value(&after, "vr_store_bytes", &["kind=\"artifacts\""]).is_some_and(|b| b > 0.0), "{after}");

    // A release whose uptests fail: a failed dispatch, one proc counted against the swarm.
    fx.app_version("v2", "uptests/web/02_broken", "#!/bin/sh\nexit 1\n", 0o755);
    assert!(!fx.vr(&["swarm", "hello-prod-web", "v2"]).status.success());
    let failed = scrape(port);
    assert_eq!(value(&failed, "vr_dispatch_duration_seconds_count", &["outcome=\"failed\""]), Some(1.0));
    assert_eq!(value(&failed, "vr_uptest_failures_total", &["swarm=\"hello-prod-web\""]), Some(1.0));
    assert_eq!(value(&failed, "vr_procs", &["state=\"RUNNING\""]), Some(2.0), "{failed}");

    // A proc the OOM killer ends, again and again until the supervisor gives up.
    let hog = "mem_limit: 32M\ncmd: dd if=/dev/zero of=/dev/null bs=200M count=1";
    let file = fx.d.write("hog.yaml", &proc_yaml("hog", 0, hog));
    let out = fx.vr(&["proc", "deploy", file.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    let proc = ["proc=\"hog-1.0-rc1-test-abcd1234-web-0\""];
    let oom = until_at_least(port, "vr_proc_oom_kills_total", &proc, 2.0);
    assert!(value(&oom, "vr_proc_oom_kills_total", &proc).is_some_and(|n| n >= 2.0), "{oom}");
    assert!(value(&oom, "vr_proc_restarts_total", &proc).is_some_and(|n| n >= 1.0), "{oom}");

    // Anything but GET /metrics is not found.
    let other = std::process::Command::new("busybox")
        .args(["wget", "-q", "-O", "-", &format!("http://127.0.0.1:{port}/")])
        .output()
        .unwrap();
    assert!(!other.status.success(), "only /metrics is served");
}
