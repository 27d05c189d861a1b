//! Swarms end to end as a user drives them with `vr`: real builds (git, the example static
//! buildpack), real containers, real uptests, the builtin router and the dummy balancer.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use crate::harness::{busybox_image, free_port, http_get, repo, text, wait_for_port, TestDaemon};
use crate::require_root;

/// Each fixture gets its own port range, so daemons of tests running side by side never pick the
/// same port for a proc.
static NEXT_RANGE: AtomicU16 = AtomicU16::new(21000);

pub(crate) fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn copy_dir(from: &Path, to: &Path) {
    let out = Command::new("cp").arg("-a").arg(from).arg(to).output().unwrap();
    assert!(out.status.success(), "cp: {}", String::from_utf8_lossy(&out.stderr));
}

/// A daemon with the builtin router on one pool, the busybox stack, the example static
/// buildpack, and examples/hello as a git app tagged v1 (its Procfile removed, so `web` comes
/// from the buildpack's default process types). Shared with the stack tests.
pub(crate) struct Fx {
    pub(crate) d: TestDaemon,
    pub(crate) router: u16,
    pub(crate) app: PathBuf,
}

impl Fx {
    pub(crate) fn new() -> Fx {
        let router = free_port();
        let start = NEXT_RANGE.fetch_add(100, Ordering::SeqCst);
        let config = format!(
            "drain_secs = 1\nport_range_start = {start}\nport_range_end = {}\n\
             [balancers.builtin]\nkind = \"builtin\"\npools = {{ hello = \"127.0.0.1:{router}\" }}\n\
             [balancers.dummy]\nkind = \"dummy\"\n",
            start + 100
        );
        let d = TestDaemon::start_with_config(&config, &[]);
        let app = d.dir.path().join("hello");
        copy_dir(&repo().join("examples/hello"), &app);
        std::fs::remove_file(app.join("Procfile")).unwrap();
        git(&app, &["init", "-q", "-b", "main"]);
        git(&app, &["add", "-A"]);
        git(&app, &["commit", "-q", "-m", "v1"]);
        git(&app, &["tag", "v1"]);
        let bp = d.dir.path().join("static-bp");
        copy_dir(&repo().join("examples/buildpacks/static"), &bp);
        git(&bp, &["init", "-q", "-b", "main"]);
        git(&bp, &["add", "-A"]);
        git(&bp, &["commit", "-q", "-m", "bp"]);
        let fx = Fx { d, router, app };
        fx.ok(&[
            "stacks",
            "create",
            "busybox",
            "--set",
            &format!("base_image_url={}", busybox_image().display()),
        ]);
        fx.ok(&["buildpacks", "create", "static", "--set", &format!("repo_url={}", bp.display())]);
        fx.ok(&[
            "apps",
            "create",
            "hello",
            "--set",
            &format!("repo_url={}", fx.app.display()),
            "--set",
            "stack=busybox",
        ]);
        fx
    }

    pub(crate) fn vr(&self, args: &[&str]) -> Output {
        self.d.run_vr(args)
    }

    /// `vr ARGS`, which must succeed; its stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.vr(args);
        let (stdout, stderr) = text(&out);
        assert!(
            out.status.success(),
            "vr {args:?} failed:\n{stdout}\n{stderr}\nvrd log:\n{}",
            self.vrd_log()
        );
        stdout
    }

    fn vrd_log(&self) -> String {
        std::fs::read_to_string(self.d.dir.path().join("vrd.log")).unwrap_or_default()
    }

    /// A new commit of the app with `file` set to `body`, tagged `tag`.
    fn app_version(&self, tag: &str, file: &str, body: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.app.join(file);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        git(&self.app, &["add", "-A"]);
        git(&self.app, &["commit", "-q", "-m", tag]);
        git(&self.app, &["tag", tag]);
    }

    /// The names of the procs `vr procs list` shows, sorted.
    pub(crate) fn procs(&self) -> Vec<String> {
        let list = self.ok(&["procs", "list"]);
        let mut names: Vec<String> =
            list.lines().skip(1).filter_map(|l| l.split_whitespace().last().map(str::to_string)).collect();
        names.sort();
        names
    }

    pub(crate) fn page(&self) -> String {
        assert!(wait_for_port(self.router, Duration::from_secs(5)), "the router does not listen");
        http_get(self.router, "/")
    }
}

#[test]
fn a_swarm_is_built_deployed_uptested_and_served_through_the_builtin_router() {
    require_root!("a_swarm_is_built_deployed_uptested_and_served_through_the_builtin_router");
    let fx = Fx::new();
    fx.ok(&[
        "swarms",
        "create",
        "--set",
        "app=hello",
        "--set",
        "version=v1",
        "--set",
        "size=2",
        "--set",
        "pool=hello",
    ]);
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
    assert!(fx.page().contains("Hello from vr"));
    let nodes = fx.ok(&["balancers", "nodes", "builtin", "hello"]);
    assert_eq!(nodes.lines().count(), 2, "{nodes}");
    let listed = fx.ok(&["list-swarms"]);
    assert!(listed.contains("hello-prod-web") && listed.contains("hello@builtin"), "{listed}");
}

#[test]
fn a_config_change_makes_a_new_release_retires_the_old_procs_and_can_be_rolled_back() {
    require_root!("a_config_change_makes_a_new_release_retires_the_old_procs_and_can_be_rolled_back");
    let fx = Fx::new();
    fx.ok(&[
        "swarms",
        "create",
        "--set",
        "app=hello",
        "--set",
        "version=v1",
        "--set",
        "size=2",
        "--set",
        "pool=hello",
    ]);
    fx.ok(&["swarm", "hello-prod-web", "v1"]);
    let first = fx.procs();
    fx.ok(&["swarms", "edit", "hello-prod-web", "--set", "config.color=blue", "--set", "env.MODE=fast"]);
    let out = fx.ok(&["swarm", "hello-prod-web", "-"]);
    assert!(out.contains("Using build 1"), "the build must be reused:\n{out}");
    let second = fx.procs();
    assert_eq!(second.len(), 2);
    assert!(second.iter().all(|p| !first.contains(p)), "old procs must be gone: {first:?} {second:?}");
    assert!(fx.page().contains("Hello from vr"));
    let releases = fx.ok(&["swarms", "releases", "hello-prod-web"]);
    assert_eq!(releases.lines().count(), 3, "{releases}");
    let diff = fx.ok(&["compare-releases", "1", "2"]);
    assert!(diff.contains("config.color") && diff.contains("env.MODE"), "{diff}");
    fx.ok(&["rollback", "hello-prod-web"]);
    let unported = |names: Vec<String>| -> Vec<String> {
        names.iter().map(|n| n.rsplit_once('-').unwrap().0.to_string()).collect()
    };
    assert_eq!(unported(fx.procs()), unported(first), "a rollback brings back release 1 (its hash)");
}

#[test]
fn failed_uptests_route_nothing_and_keep_the_old_procs_serving() {
    require_root!("failed_uptests_route_nothing_and_keep_the_old_procs_serving");
    let fx = Fx::new();
    fx.ok(&[
        "swarms",
        "create",
        "--set",
        "app=hello",
        "--set",
        "version=v1",
        "--set",
        "size=1",
        "--set",
        "pool=hello",
    ]);
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
    assert!(fx.page().contains("Hello from vr"));
}

#[test]
fn shrinking_and_destroying_deroute_before_stopping() {
    require_root!("shrinking_and_destroying_deroute_before_stopping");
    let fx = Fx::new();
    fx.ok(&[
        "swarms",
        "create",
        "--set",
        "app=hello",
        "--set",
        "version=v1",
        "--set",
        "size=3",
        "--set",
        "pool=web",
        "--set",
        "balancer=dummy",
    ]);
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
    let fx = Fx::new();
    fx.ok(&[
        "swarms",
        "create",
        "--set",
        "name=site",
        "--set",
        "app=hello",
        "--set",
        "version=v1",
        "--set",
        "pool=hello",
    ]);
    fx.ok(&["swarm", "site", "v1"]);
    assert!(fx.procs()[0].contains("-prod-"));
    fx.ok(&["swarms", "edit", "site", "--set", "config_name=staging"]);
    fx.ok(&["swarm", "site", "-"]);
    let procs = fx.procs();
    assert_eq!(procs.len(), 1, "the prod proc must be gone: {procs:?}");
    assert!(procs[0].contains("-staging-"), "{procs:?}");
    assert!(fx.page().contains("Hello from vr"));
}

#[test]
fn a_failed_build_fails_every_swarm_that_waited_for_it() {
    require_root!("a_failed_build_fails_every_swarm_that_waited_for_it");
    let fx = Fx::new();
    // Without public/ the static buildpack does not detect the app: the build fails.
    git(&fx.app, &["rm", "-q", "-r", "public"]);
    git(&fx.app, &["commit", "-q", "-m", "no site"]);
    git(&fx.app, &["tag", "vbad"]);
    for name in ["bad_a", "bad_b"] {
        fx.ok(&[
            "swarms",
            "create",
            "--set",
            &format!("name={name}"),
            "--set",
            "app=hello",
            "--set",
            "version=vbad",
            "--set",
            &format!("proc_name={}", name.replace('_', "")),
        ]);
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
