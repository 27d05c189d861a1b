//! Swarms end to end as a user drives them with `vr`: real builds (git, the example static
//! buildpack), real containers, real uptests, the builtin router and the dummy balancer.

use std::time::Duration;

use crate::harness::{free_port, http_get, text, wait_for_port};
use crate::require_root;
use crate::swarm_fixture::{git, Fx};

/// A fixture whose vrd has the builtin router on pool `hello` (its port returned) and the dummy
/// balancer, and drains stale procs for 1 s.
pub(crate) fn routed() -> (Fx, u16) {
    let router = free_port();
    let fx = Fx::with_config(&format!(
        "drain_secs = 1\n[balancers.builtin]\nkind = \"builtin\"\npools = {{ hello = \"127.0.0.1:{router}\" }}\n\
         [balancers.dummy]\nkind = \"dummy\"\n"
    ));
    (fx, router)
}

/// The page the router serves.
fn page(router: u16) -> String {
    assert!(wait_for_port(router, Duration::from_secs(5)), "the router does not listen");
    http_get(router, "/")
}

#[test]
fn a_swarm_is_built_deployed_uptested_and_served_through_the_builtin_router() {
    require_root!("a_swarm_is_built_deployed_uptested_and_served_through_the_builtin_router");
    let (fx, router) = routed();
    fx.create_swarm(&["app=hello", "version=v1", "size=2", "pool=hello"]);
    let out = fx.ok(&["swarm", "hello-prod-web", "v1"]);
    for step in [
        "Building hello v1",
        "deploy 2/2",
        "Uptests passed: 2 tests on 2 procs",
        "Routed swarm hello-prod-web",
        "finished",
    ] {
        assert!(out.contains(step), "no '{step}' in:\n{out}");
    }
    let procs = fx.procs();
    assert_eq!(procs.len(), 2, "{procs:?}");
    assert!(procs.iter().all(|p| p.starts_with("hello-v1-prod-") && p.contains("-web-")), "{procs:?}");
    assert!(page(router).contains("Hello from vr"));
    let nodes = fx.ok(&["balancers", "nodes", "builtin", "hello"]);
    assert_eq!(nodes.lines().count(), 2, "{nodes}");
    let listed = fx.ok(&["list-swarms"]);
    assert!(listed.contains("hello-prod-web") && listed.contains("hello@builtin"), "{listed}");
}

#[test]
fn a_config_change_makes_a_new_release_retires_the_old_procs_and_can_be_rolled_back() {
    require_root!("a_config_change_makes_a_new_release_retires_the_old_procs_and_can_be_rolled_back");
    let (fx, router) = routed();
    fx.create_swarm(&["app=hello", "version=v1", "size=2", "pool=hello"]);
    fx.ok(&["swarm", "hello-prod-web", "v1"]);
    let first = fx.procs();
    fx.ok(&["swarms", "edit", "hello-prod-web", "--set", "config.color=blue", "--set", "env.MODE=fast"]);
    let out = fx.ok(&["swarm", "hello-prod-web", "-"]);
    assert!(out.contains("Using build 1"), "the build must be reused:\n{out}");
    let second = fx.procs();
    assert_eq!(second.len(), 2);
    assert!(second.iter().all(|p| !first.contains(p)), "old procs must be gone: {first:?} {second:?}");
    assert!(page(router).contains("Hello from vr"));
    let releases = fx.ok(&["swarms", "releases", "hello-prod-web"]);
    assert_eq!(releases.lines().count(), 3, "{releases}");
    let diff = fx.ok(&["compare-releases", "1", "2"]);
    assert!(diff.contains("config.color") && diff.contains("env.MODE"), "{diff}");
    // VR's manual deploy: release 2 as one more proc under another config name, not routed.
    // The first row under the header.
    let hosts = fx.ok(&["hosts", "list"]);
    let host = hosts.lines().nth(1).and_then(|l| l.split_whitespace().next()).unwrap().to_string();
    let port = free_port().to_string();
    fx.ok(&["deploy", "2", &host, &port, "web", "-c", "manual"]);
    let manual: Vec<String> = fx.procs().into_iter().filter(|p| p.contains("-manual-")).collect();
    assert_eq!(manual.len(), 1, "{manual:?}");
    assert!(manual[0].ends_with(&format!("-web-{port}")));
    assert_eq!(
        fx.ok(&["balancers", "nodes", "builtin", "hello"]).lines().count(),
        2,
        "a manual deploy is not routed"
    );
    fx.ok(&["procs", "destroy", &manual[0]]);
    fx.ok(&["rollback", "hello-prod-web"]);
    let unported = |names: Vec<String>| -> Vec<String> {
        names.iter().map(|n| n.rsplit_once('-').unwrap().0.to_string()).collect()
    };
    assert_eq!(unported(fx.procs()), unported(first), "a rollback brings back release 1 (its hash)");
}

#[test]
fn failed_uptests_route_nothing_and_keep_the_old_procs_serving() {
    require_root!("failed_uptests_route_nothing_and_keep_the_old_procs_serving");
    let (fx, router) = routed();
    fx.create_swarm(&["app=hello", "version=v1", "size=1", "pool=hello"]);
    fx.ok(&["swarm", "hello-prod-web", "v1"]);
    let before = fx.ok(&["balancers", "nodes", "builtin", "hello"]);
    fx.app_version("v2", "uptests/web/02_broken", "#!/bin/sh\necho database unreachable\nexit 1\n", 0o755);
    let out = fx.vr(&["swarm", "hello-prod-web", "v2"]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "a failed uptest must fail the swarm:\n{stdout}");
    assert!(stdout.contains("02_broken failed:") && stdout.contains("database unreachable"), "{stdout}");
    assert!(stderr.contains("aborted") && stderr.contains("old procs keep serving"), "{stderr}");
    let procs = fx.procs();
    assert!(
        procs.iter().any(|p| p.starts_with("hello-v1-")) && procs.iter().any(|p| p.starts_with("hello-v2-")),
        "{procs:?}"
    );
    assert_eq!(fx.ok(&["balancers", "nodes", "builtin", "hello"]), before, "nothing may be routed");
    assert!(page(router).contains("Hello from vr"));
    // The scheduled uptest run (here on demand) reports the new proc's failure, and only it.
    let out = fx.vr(&["uptests", "--run"]);
    let (report, _) = text(&out);
    assert!(!out.status.success(), "{report}");
    assert!(report.contains("2 procs tested, 1 failed") && report.contains("hello-v2-"), "{report}");
    let (latest, _) = text(&fx.vr(&["uptests"]));
    assert!(latest.contains("02_broken failed"), "the latest run is kept: {latest}");
}

#[test]
fn shrinking_and_destroying_deroute_before_stopping() {
    require_root!("shrinking_and_destroying_deroute_before_stopping");
    let (fx, _) = routed();
    fx.create_swarm(&["app=hello", "version=v1", "size=3", "pool=web", "balancer=dummy"]);
    fx.ok(&["swarm", "hello-prod-web", "v1"]);
    assert_eq!(fx.ok(&["balancers", "nodes", "dummy", "web"]).lines().count(), 3);
    fx.ok(&["swarms", "edit", "hello-prod-web", "--set", "size=2"]);
    let out = fx.ok(&["swarm", "hello-prod-web", "-"]);
    assert!(out.contains("Removing 1 procs"), "{out}");
    let procs = fx.procs();
    assert_eq!(procs.len(), 2);
    let nodes: Vec<String> =
        fx.ok(&["balancers", "nodes", "dummy", "web"]).lines().map(str::to_string).collect();
    let ports: Vec<String> = procs.iter().map(|p| p.rsplit('-').next().unwrap().to_string()).collect();
    assert_eq!(nodes.len(), 2);
    assert!(
        nodes.iter().all(|n| ports.iter().any(|p| n.ends_with(&format!(":{p}")))),
        "{nodes:?} vs {procs:?}"
    );
    fx.ok(&["procs", "destroy", &procs[0]]);
    let left: Vec<String> =
        fx.ok(&["balancers", "nodes", "dummy", "web"]).lines().map(str::to_string).collect();
    let gone_port = procs[0].rsplit('-').next().unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(!left[0].ends_with(&format!(":{gone_port}")), "a destroyed proc must leave its pool: {left:?}");
}

#[test]
fn changing_a_swarms_identity_retires_the_procs_of_the_old_one() {
    require_root!("changing_a_swarms_identity_retires_the_procs_of_the_old_one");
    let (fx, router) = routed();
    fx.create_swarm(&["name=site", "app=hello", "version=v1", "pool=hello"]);
    fx.ok(&["swarm", "site", "v1"]);
    assert!(fx.procs()[0].contains("-prod-"));
    fx.ok(&["swarms", "edit", "site", "--set", "config_name=staging"]);
    fx.ok(&["swarm", "site", "-"]);
    let procs = fx.procs();
    assert_eq!(procs.len(), 1, "the prod proc must be gone: {procs:?}");
    assert!(procs[0].contains("-staging-"), "{procs:?}");
    assert!(page(router).contains("Hello from vr"));
}

#[test]
fn a_failed_build_fails_every_swarm_that_waited_for_it() {
    require_root!("a_failed_build_fails_every_swarm_that_waited_for_it");
    let (fx, _) = routed();
    // Without public/ the static buildpack does not detect the app: the build fails.
    git(&fx.app, &["rm", "-q", "-r", "public"]);
    git(&fx.app, &["commit", "-q", "-m", "no site"]);
    git(&fx.app, &["tag", "vbad"]);
    for name in ["bad_a", "bad_b"] {
        let (named, proc_name) = (format!("name={name}"), format!("proc_name={}", name.replace('_', "")));
        fx.create_swarm(&[&named, "app=hello", "version=vbad", &proc_name]);
    }
    let out = fx.vr(&["swarm", "bad_.", "vbad"]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert_eq!(
        stderr.matches("aborted").count(),
        2,
        "both swarms must hear of the failure:\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains("no buildpack detected"), "{stderr}");
    let builds = fx.ok(&["builds", "list"]);
    assert_eq!(builds.lines().filter(|l| l.contains("failed")).count(), 1, "one build, shared: {builds}");
}

#[test]
fn an_apps_pinned_buildpack_and_build_env_reach_its_builds() {
    require_root!("an_apps_pinned_buildpack_and_build_env_reach_its_builds");
    let (fx, _) = routed();
    fx.ok(&["apps", "edit", "hello", "--set", "buildpack=static", "--set", "build_env.NODE_ENV=production"]);
    let shown = fx.ok(&["apps", "show", "hello"]);
    assert!(shown.contains("NODE_ENV: production"), "{shown}");
    fx.create_swarm(&["app=hello", "version=v1", "size=1"]);
    let out = fx.ok(&["swarm", "hello-prod-web", "v1"]);
    assert!(out.contains("Using the pinned buildpack"), "{out}");
    assert!(out.contains("Build env in ENV_DIR: NODE_ENV"), "{out}");
    let out = fx.vr(&["apps", "edit", "hello", "--set", "build_env.9LIVES=x"]);
    assert!(text(&out).1.contains("'9LIVES' is not a valid variable name"), "{:?}", text(&out));
}
