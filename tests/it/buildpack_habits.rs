//! Real buildpacks' and real Velociraptor users' habits, each in the shape it was found on
//! third-party material (heroku-buildpack-apt's `export`, VR's `build.tar.gz`, Heroku-era
//! `.buildpacks` files, repositories owned by another user, ENV_DIR, mode-644 scripts). The
//! buildpacks and apps are written here; nothing is fetched from the network.

use std::path::Path;

use crate::builder::{git, read, slug, write_files, Fx};
use crate::harness::{bash_image, busybox_image, proc_yaml, tar_gz, text, TestDaemon};
use crate::require_root;

/// A buildpack's `bin/compile` that finds its own dir as Heroku buildpacks do and writes its
/// `export` there in bash's own syntax (`export -p` prints `declare -x`), refusing to run when an
/// export is already there: each build must get a fresh copy.
const WRITES_EXPORT: &str = r#"#!/bin/sh
BP_DIR=$(cd "$(dirname "$0")/.." && pwd)
if [ -e "$BP_DIR/export" ]; then echo "a stale export from another build" >&2; exit 9; fi
echo 'declare -x FROM_APT="hello"' > "$BP_DIR/export"
echo 'export PATH="/build/.apt/usr/bin:$PATH"' >> "$BP_DIR/export"
"#;

/// A `bin/compile` that records what the previous buildpack exported.
const READS_EXPORT: &str = "#!/bin/sh\necho \"$FROM_APT|$PATH\" > \"$1/seen\"\n";

fn two_buildpack_app(fx: &Fx) -> std::path::PathBuf {
    let apt = fx.buildpack("bp-apt", &[("bin/compile", WRITES_EXPORT)]);
    let reader = fx.buildpack("bp-reader", &[("bin/compile", READS_EXPORT)]);
    fx.git_repo("app", &[(".buildpacks", &format!("{apt}\n{reader}\n")), ("a.txt", "a\n")])
}

#[test]
fn a_buildpack_writes_its_export_in_bash_syntax_and_the_next_one_sees_it() {
    require_root!("a_buildpack_writes_its_export_in_bash_syntax_and_the_next_one_sees_it");
    let fx = Fx::new();
    let app = two_buildpack_app(&fx);
    let file = fx.build_yaml_on(bash_image(), "app", "git", &app, "main", "");
    let (out, dir) = fx.build_ok(&file, "first");
    assert!(text(&out).1.contains("Using the app's .buildpacks file"), "{:?}", text(&out));
    let seen = slug(&dir)["seen"].clone();
    assert!(seen.starts_with("hello|/build/.apt/usr/bin:"), "{seen}");
    // A second build gets its own fresh copy of the buildpack: no export left from the first.
    let (_, again) = fx.build_ok(&file, "second");
    assert_eq!(slug(&again)["seen"], seen);
}

#[test]
fn an_export_in_bash_syntax_on_a_stack_without_bash_fails_the_build_saying_why() {
    require_root!("an_export_in_bash_syntax_on_a_stack_without_bash_fails_the_build_saying_why");
    let fx = Fx::new();
    let app = two_buildpack_app(&fx);
    let file = fx.build_yaml_on(busybox_image(), "app", "git", &app, "main", "");
    let (out, dir) = fx.build_in(&file, "out");
    let err = text(&out).1;
    assert!(!out.status.success(), "a failed source must not pass: {err}");
    assert!(
        err.contains("buildpack 1")
            && err.contains("export file that failed to load")
            && err.contains("no /bin/bash"),
        "{err}"
    );
    assert!(read(&dir.join("compile.log")).contains("declare"), "the shell's own words are in compile.log");
}

#[test]
fn a_pinned_buildpack_wins_over_the_apps_buildpacks_file() {
    require_root!("a_pinned_buildpack_wins_over_the_apps_buildpacks_file");
    let fx = Fx::new();
    let pinned = fx.buildpack("in-house", &[("bin/compile", "#!/bin/sh\necho in-house > $1/by\n")]);
    // A Heroku-era file naming public buildpacks: never fetched when a buildpack is pinned.
    let public = "https://github.com/heroku/heroku-buildpack-python.git\nhttps://github.com/heroku/heroku-buildpack-nodejs.git\n";
    let app = fx.git_repo("app", &[(".buildpacks", public), ("a.txt", "a\n")]);
    let file =
        fx.build_yaml_on(busybox_image(), "app", "git", &app, "main", &format!("buildpack_url: {pinned}\n"));
    let (out, dir) = fx.build_ok(&file, "out");
    let said = text(&out).1;
    assert!(
        said.contains("Using the pinned buildpack") && said.contains(".buildpacks file is ignored"),
        "{said}"
    );
    assert_eq!(slug(&dir)["by"], "in-house\n");
}

#[test]
fn a_repository_owned_by_another_user_builds_and_vcs_failures_say_why() {
    require_root!("a_repository_owned_by_another_user_builds_and_vcs_failures_say_why");
    let fx = Fx::new();
    let bp = fx.buildpack("bp", &[("bin/compile", "#!/bin/sh\ntrue\n")]);
    let app = fx.git_repo("theirs", &[("a.txt", "theirs\n")]);
    chown_tree(&app, 65534);
    let file =
        fx.build_yaml_on(busybox_image(), "theirs", "git", &app, "main", &format!("buildpack_url: {bp}\n"));
    let (_, dir) = fx.build_ok(&file, "out");
    assert_eq!(slug(&dir)["a.txt"], "theirs\n");
    // A new commit by its owner is fetched into the cache (git fetch, not the first clone).
    chown_tree(&app, 0);
    write_files(&app, &[("b.txt", "b\n")]);
    git(&app, &["add", "-A"]);
    git(&app, &["commit", "-q", "-m", "second"]);
    chown_tree(&app, 65534);
    let (_, again) = fx.build_ok(&file, "again");
    assert_eq!(slug(&again)["b.txt"], "b\n");
    // Another user's dir that is no repository: the message carries git's own reason.
    let nothing = fx.path("not-a-repo");
    std::fs::create_dir_all(&nothing).unwrap();
    chown_tree(&nothing, 65534);
    let bad = fx.build_yaml_on(
        busybox_image(),
        "nothing",
        "git",
        &nothing,
        "main",
        &format!("buildpack_url: {bp}\n"),
    );
    let (out, _) = fx.build_in(&bad, "bad");
    let err = text(&out).1;
    assert!(err.contains("fatal: repository") && err.contains("does not exist"), "{err}");
    assert!(!err.contains("dubious ownership"), "{err}");
}

fn chown_tree(dir: &Path, uid: u32) {
    let out =
        std::process::Command::new("chown").arg("-R").arg(format!("{uid}:{uid}")).arg(dir).output().unwrap();
    assert!(out.status.success());
}

#[test]
fn build_env_reaches_buildpacks_through_env_dir() {
    require_root!("build_env_reaches_buildpacks_through_env_dir");
    let fx = Fx::new();
    let compile = "#!/bin/sh\nfor f in \"$3\"/*; do printf '%s=%s\\n' \"${f##*/}\" \"$(cat \"$f\")\"; done > \"$1/env\"\n";
    let bp = fx.buildpack("bp", &[("bin/compile", compile)]);
    let app = fx.git_repo("app", &[("a.txt", "a\n")]);
    let rest = format!("buildpack_url: {bp}\nbuild_env:\n  NODE_ENV: production\n  APP_BASE: services/web\n");
    let file = fx.build_yaml_on(busybox_image(), "app", "git", &app, "main", &rest);
    let (out, dir) = fx.build_ok(&file, "out");
    assert_eq!(slug(&dir)["env"], "APP_BASE=services/web\nNODE_ENV=production\n");
    assert!(text(&out).1.contains("Build env in ENV_DIR: APP_BASE, NODE_ENV"), "{:?}", text(&out));
    let result: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read(&dir.join("build_result.yaml"))).unwrap();
    assert_eq!(result["build_env"]["NODE_ENV"].as_str(), Some("production"), "rebuilds get the same env");
    let bad = fx.build_yaml_on(
        busybox_image(),
        "app",
        "git",
        &app,
        "main",
        &format!("buildpack_url: {bp}\nbuild_env: {{1X: y}}\n"),
    );
    let (out, _) = fx.build_in(&bad, "bad");
    assert!(text(&out).1.contains("'1X' is not a valid variable name"), "{:?}", text(&out));
}

#[test]
fn a_non_executable_detect_or_compile_is_named_with_the_fix() {
    require_root!("a_non_executable_detect_or_compile_is_named_with_the_fix");
    let fx = Fx::new();
    let bp = fx.buildpack("bp-644", &[("bin/compile", "#!/bin/sh\ntrue\n")]);
    let bp_dir = Path::new(&bp);
    git(bp_dir, &["update-index", "--chmod=-x", "bin/detect"]);
    git(bp_dir, &["commit", "-q", "-m", "as third-party buildpacks ship it"]);
    let app = fx.git_repo("app", &[("a.txt", "a\n")]);
    let file = fx.build_yaml("app", "git", &app, "main", &[&bp]);
    let (out, _) = fx.build_in(&file, "detect");
    let err = text(&out).1;
    assert!(
        err.contains("bin/detect is not executable (mode 644)")
            && err.contains("git update-index --chmod=+x"),
        "{err}"
    );
    git(bp_dir, &["update-index", "--chmod=+x", "bin/detect"]);
    git(bp_dir, &["update-index", "--chmod=-x", "bin/compile"]);
    git(bp_dir, &["commit", "-q", "-m", "compile 644"]);
    let (out, _) = fx.build_in(&file, "compile");
    let err = text(&out).1;
    assert!(
        err.contains("compile failed") && err.contains("bin/compile is not executable (mode 644)"),
        "{err}"
    );
}

/// A build archive of a dir holding `files`, written to `path` (replacing what was there);
/// returns its md5.
fn build_archive(d: &TestDaemon, path: &Path, files: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir_in(d.dir.path()).unwrap();
    write_files(dir.path(), files);
    tar_gz(dir.path(), path);
    vr::host::image::md5_file(path).unwrap()
}

#[test]
fn a_rebuilt_build_tar_gz_under_the_same_name_runs_the_new_build() {
    require_root!("a_rebuilt_build_tar_gz_under_the_same_name_runs_the_new_build");
    let d = TestDaemon::start();
    // vbuild always writes build.tar.gz; VR's docs point proc.yaml's build_url at it.
    let archive = d.dir.path().join("build.tar.gz");
    let file = d.dir.path().join("proc.yaml");
    let f = file.to_str().unwrap();
    for version in ["v1", "v2"] {
        let md5 = build_archive(&d, &archive, &[("version", version)]);
        let extra =
            format!("cmd: cat /app/version\nbuild_url: file://{}\nbuild_md5: {md5}", archive.display());
        d.write("proc.yaml", &proc_yaml("rebuilt", 6125, &extra));
        let setup = d.run_vr(&["runner", "setup", f]);
        assert!(setup.status.success(), "{:?}", text(&setup));
        let run = d.run_vr(&["runner", "run", f]);
        assert_eq!(text(&run).0, version, "{version}: {:?} {:?}", text(&run), run.status);
        assert!(d.run_vr(&["runner", "teardown", f]).status.success());
    }
    let trees = std::fs::read_dir(d.data().join("builds/build.tar.gz.layers")).unwrap().count();
    assert_eq!(trees, 2, "one unpacked tree per content");
}

#[test]
fn profile_d_scripts_build_on_the_release_env_as_on_heroku() {
    require_root!("profile_d_scripts_build_on_the_release_env_as_on_heroku");
    let d = TestDaemon::start();
    // heroku-buildpack-apt's .profile.d script, and VR's python buildpack's PATH config var.
    let archive = d.dir.path().join("build.tar.gz");
    let apt = "export PATH=\"$HOME/.apt/usr/bin:$PATH\"\n";
    build_archive(&d, &archive, &[(".profile.d/000_apt.sh", apt)]);
    let extra = format!(
        "cmd: echo $PATH $PORT\nbuild_url: file://{}\nenv:\n  PATH: /app/.heroku/python/bin:/usr/local/bin:/usr/bin:/bin\n  PORT: '1'",
        archive.display()
    );
    let file = d.write("proc.yaml", &proc_yaml("profiled", 6124, &extra));
    let f = file.to_str().unwrap();
    assert!(d.run_vr(&["runner", "setup", f]).status.success());
    let run = d.run_vr(&["runner", "run", f]);
    assert_eq!(
        text(&run).0.trim(),
        "/app/.apt/usr/bin:/app/.heroku/python/bin:/usr/local/bin:/usr/bin:/bin 6124"
    );
}
