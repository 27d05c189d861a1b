//! The proof of zero-downtime deploys (issue 5 §6): a 2-proc swarm behind each real balancer
//! (the builtin router, nginx, haproxy, varnish) is redeployed again and again (a config change
//! each time, so each is a new release) while a bounded load generator (`load`) sends requests
//! through the balancer. Not one request may fail.
//!
//! The app says which release answers: a CGI script (busybox httpd runs `public/cgi-bin/*`)
//! prints the swarm's `config.n` from the settings file vr writes into each proc. That gives the
//! swap time: from vrd's "Uptests passed" log line (its own microsecond timestamp, in vrd.log) to
//! the first answer from the new release through the balancer (the load generator's clock; same
//! host). The ignored `benchmark` test runs every balancer and writes the table that
//! docs/benchmarks.md shows (`bash benches/zero_downtime.sh`).

use std::time::{Duration, SystemTime};

use crate::balancer_concurrency::fifty_concurrent_updates;
use crate::load::{self, Load, Plan};
use crate::proxies::{Frontend, Kind};
use crate::require_root;
use crate::swarm_fixture::Fx;

const SWARM: &str = "hello-prod-web";

/// Answers with the release's `config.n` (VR's settings.yaml holds `n: <value>`).
const RELEASE_CGI: &str = "#!/bin/sh\n\
    # Which release answers: config.n from the settings vr writes for the proc.\n\
    printf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
    sed -n 's/^n: *//p' \"$APP_SETTINGS_YAML\"\n";

/// What one balancer did under load.
struct Run {
    kind: Kind,
    redeploys: usize,
    report: load::Report,
    /// Per redeploy: uptests passed → first answer from the new release.
    swaps: Vec<Duration>,
    /// Per redeploy: uptests passed → last answer from an older release.
    old_until: Vec<Duration>,
    /// How long the redeploys took, all told.
    deploying: Duration,
}

/// The release an answer came from, when the body names one.
fn release_of(body: &str) -> Option<usize> {
    body.trim().trim_matches(|c| c == '\'' || c == '"').parse().ok()
}

/// When vrd logged "Uptests passed" for each dispatch so far, in order.
fn uptests_passed(vrd_log: &str) -> Vec<SystemTime> {
    vrd_log
        .lines()
        .filter(|l| l.contains("Uptests passed"))
        .map(|l| {
            let stamp = l.split_whitespace().next().unwrap_or_default();
            humantime::parse_rfc3339(stamp)
                .unwrap_or_else(|e| panic!("no timestamp in vrd.log line {l:?}: {e}"))
        })
        .collect()
}

fn wait_for_release(port: u16, wanted: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = Err(String::new());
    while std::time::Instant::now() < deadline {
        last = load::get(port, "/cgi-bin/release", Duration::from_secs(5));
        if last.as_deref().ok().and_then(release_of) == Some(wanted) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("port {port} never answered release {wanted}; last: {last:?}");
}

/// Deploys the swarm behind `kind`, then redeploys it `redeploys` times under load. `None` when
/// the balancer's program is not installed (the test is skipped).
fn redeploy_under_load(kind: Kind, redeploys: usize, test: &str) -> Option<Run> {
    let frontend = Frontend::start(kind, test)?;
    let fx = Fx::with_config(&frontend.vrd_toml());
    fx.app_version("zdt", "public/cgi-bin/release", RELEASE_CGI, 0o755);
    let (pool, balancer) = (format!("pool={}", frontend.pool), format!("balancer={}", frontend.name()));
    fx.create_swarm(&["app=hello", "version=zdt", "size=2", &pool, &balancer, "config.n=0"]);
    fx.ok(&["swarm", SWARM, "zdt"]);
    wait_for_release(frontend.port, 0);

    let plan = Plan {
        ip: std::net::Ipv4Addr::LOCALHOST.into(),
        port: frontend.port,
        netns: None,
        path: "/cgi-bin/release".into(),
        workers: 4,
        timeout: Duration::from_secs(5),
        pause: Duration::from_millis(5),
        limit: Duration::from_secs(600),
    };
    let load = Load::start(&plan);
    let started = std::time::Instant::now();
    for n in 1..=redeploys {
        fx.ok(&["swarms", "edit", SWARM, "--set", &format!("config.n={n}")]);
        let out = fx.ok(&["swarm", SWARM, "-"]);
        assert!(out.contains("old procs removed"), "redeploy {n} of {}:\n{out}", kind.name());
    }
    let deploying = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let report = load.stop();

    let passed = uptests_passed(&fx.vrd_log());
    assert_eq!(passed.len(), redeploys + 1, "one 'Uptests passed' per dispatch in vrd.log");
    let (swaps, old_until) = swap_times(&report, &passed[1..]);
    let run = Run { kind, redeploys, report, swaps, old_until, deploying };
    check(&run, &fx, &frontend);
    Some(run)
}

/// For redeploy i (release i, uptests passed at `passed[i - 1]`): the time to the first answer
/// of release i, and to the last answer of an older release.
fn swap_times(report: &load::Report, passed: &[SystemTime]) -> (Vec<Duration>, Vec<Duration>) {
    let since = |at: SystemTime, from: SystemTime, what: &str| {
        at.duration_since(from).unwrap_or_else(|_| panic!("{what} before its uptests passed"))
    };
    let mut swaps = Vec::new();
    let mut old_until = Vec::new();
    for (i, &uptests) in passed.iter().enumerate() {
        let release = i + 1;
        let of = |r: usize| report.answers.iter().filter(move |a| release_of(&a.body) == Some(r));
        let first = of(release).map(|a| a.at).min();
        let first = first.unwrap_or_else(|| panic!("release {release} never answered through the balancer"));
        swaps.push(since(first, uptests, &format!("release {release} answered")));
        let older = report.answers.iter().filter(|a| release_of(&a.body).is_some_and(|r| r < release));
        let last_old = older.map(|a| a.at).max().unwrap_or(uptests).max(uptests);
        old_until.push(since(last_old, uptests, "an old release"));
    }
    (swaps, old_until)
}

/// Zero failed requests, enough requests to mean something, and the last release serving.
fn check(run: &Run, fx: &Fx, frontend: &Frontend) {
    let start = run.report.answers.iter().map(|a| a.at).chain(run.report.failures.iter().map(|f| f.at)).min();
    let at = |t: SystemTime| start.and_then(|s| t.duration_since(s).ok()).unwrap_or_default();
    let failures: Vec<String> =
        run.report.failures.iter().take(20).map(|f| format!("  at {:?}: {}", at(f.at), f.reason)).collect();
    let strays: Vec<&str> = run
        .report
        .answers
        .iter()
        .filter(|a| release_of(&a.body).is_none())
        .map(|a| a.body.as_str())
        .collect();
    assert!(
        failures.is_empty() && strays.is_empty(),
        "{}: {} of {} requests failed, {} answered no release ({:?}), during {} redeploys:\n{}\n\
         proxy log:\n{}\nvrd log:\n{}",
        run.kind.name(),
        run.report.failures.len(),
        run.report.failures.len() + run.report.answers.len(),
        strays.len(),
        strays.iter().take(3).collect::<Vec<_>>(),
        run.redeploys,
        failures.join("\n"),
        frontend.log(),
        fx.vrd_log()
    );
    let minimum = 20 * run.redeploys;
    assert!(
        run.report.answers.len() >= minimum,
        "only {} answers; wanted {minimum}",
        run.report.answers.len()
    );
    let last = run.report.answers.iter().max_by_key(|a| a.at).and_then(|a| release_of(&a.body));
    assert_eq!(last, Some(run.redeploys), "the last answer must come from the last release");
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

/// The target for `kind`'s swap time (issue 5 §6).
fn target(kind: Kind) -> Duration {
    match kind {
        Kind::Builtin | Kind::Haproxy => Duration::from_millis(100),
        Kind::Nginx | Kind::Varnish => Duration::from_secs(1),
    }
}

/// One markdown table row for `run`.
fn row(run: &Run) -> String {
    let max = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
    let slowest = run.report.answers.iter().map(|a| a.took).max().unwrap_or_default();
    let swap_max = max(&run.swaps);
    format!(
        "| {} | {} | {} | {} | **{}** / {} | {} | {} / {} | {} | {} |",
        run.kind.name(),
        run.redeploys,
        run.report.answers.len(),
        run.report.failures.len(),
        ms(median(&run.swaps)),
        ms(swap_max),
        ms(target(run.kind)),
        ms(median(&run.old_until)),
        ms(max(&run.old_until)),
        ms(slowest),
        if swap_max <= target(run.kind) && run.report.failures.is_empty() { "yes" } else { "**no**" },
    )
}

const HEADER: &str = "| balancer | redeploys | requests answered | failed | swap median / max (ms) | \
    target (ms) | old release last answered, median / max (ms) | slowest request (ms) | met |\n\
    |---|---|---|---|---|---|---|---|---|";

fn run_and_report(kind: Kind, redeploys: usize, test: &str) {
    require_root!(test);
    if let Some(run) = redeploy_under_load(kind, redeploys, test) {
        let swaps: Vec<String> = run.swaps.iter().map(|d| ms(*d)).collect();
        eprintln!(
            "{test}: swaps (ms) {swaps:?}; redeploys took {:?}\n{HEADER}\n{}",
            run.deploying,
            row(&run)
        );
    }
}

/// Redeploys per balancer in the plain tests (the benchmark takes `ZDT_REDEPLOYS`, default 10).
const REDEPLOYS: usize = 10;

#[test]
fn builtin_router_redeploys_under_load_without_a_failed_request() {
    run_and_report(Kind::Builtin, REDEPLOYS, "builtin_router_redeploys_under_load_without_a_failed_request");
}

#[test]
fn nginx_redeploys_under_load_without_a_failed_request() {
    run_and_report(Kind::Nginx, REDEPLOYS, "nginx_redeploys_under_load_without_a_failed_request");
}

#[test]
fn haproxy_redeploys_under_load_without_a_failed_request() {
    run_and_report(Kind::Haproxy, REDEPLOYS, "haproxy_redeploys_under_load_without_a_failed_request");
}

#[test]
fn varnish_redeploys_under_load_without_a_failed_request() {
    run_and_report(Kind::Varnish, REDEPLOYS, "varnish_redeploys_under_load_without_a_failed_request");
}

/// The benchmark: every balancer in turn under load, then the fifty concurrent pool changes of
/// `balancer_concurrency` on each; two tables. `ZDT_REDEPLOYS` (default 10) redeploys each; the
/// tables go to the file `ZDT_REPORT` names, or to stderr.
#[test]
#[ignore = "a benchmark: run by benches/zero_downtime.sh"]
fn benchmark() {
    require_root!("zero_downtime::benchmark");
    let test = "zero_downtime::benchmark";
    let redeploys = std::env::var("ZDT_REDEPLOYS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let mut report = format!("{HEADER}\n");
    for kind in Kind::ALL {
        if let Some(run) = redeploy_under_load(kind, redeploys, test) {
            report += &format!("{}\n", row(&run));
        }
    }
    report += "\n| balancer | 50 concurrent changes of one pool (40 adds, 10 removes) took (ms) | ended exact |\n|---|---|---|\n";
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for kind in Kind::ALL {
        if let Some(took) = runtime.block_on(fifty_concurrent_updates(kind, test)) {
            report += &format!("| {} | {} | yes |\n", kind.name(), ms(took));
        }
    }
    match std::env::var_os("ZDT_REPORT") {
        Some(path) => std::fs::write(path, report).unwrap(),
        None => eprintln!("{report}"),
    }
}
