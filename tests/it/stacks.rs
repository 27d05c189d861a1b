//! Stack images built by vrd (`vr stacks build`), as a user drives them: a provisioning script
//! installs a file into the stack's image, an app on that stack is swarmed and serves the file,
//! a rebuild makes a new active image without touching the running proc, the next dispatch runs
//! on the new image, and gc keeps exactly what is active or in use.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{http_get, text, wait_for_port};
use crate::require_root;
use crate::swarm_fixture::{git, Fx};
use crate::swarms::routed;

/// A provisioning script that writes `$MARK` (the stack's env) to /etc/stack-marker.
const PROVISION: &str =
    "#!/bin/sh\nset -e\necho \"marking the stack with $MARK\"\necho \"$MARK\" > /etc/stack-marker\n";

/// The stack `marked`: busybox plus [`PROVISION`] with MARK=one; the script's path.
fn marked_stack(fx: &Fx) -> PathBuf {
    let script = fx.d.write("provision.sh", PROVISION);
    fx.ok(&[
        "stacks",
        "create",
        "marked",
        "--set",
        &format!("base_image_url={}", crate::harness::busybox_image().display()),
        "--set",
        &format!("provisioning_script={}", script.display()),
        "--set",
        "env.MARK=one",
    ]);
    script
}

/// The app with `public/marker` linked to the image's /etc/stack-marker (served by the app), as
/// tag `vm`, moved onto the `marked` stack, and a routed swarm of it.
fn app_serving_the_marker(fx: &Fx) {
    std::os::unix::fs::symlink("/etc/stack-marker", fx.app.join("public/marker")).unwrap();
    git(&fx.app, &["add", "-A"]);
    git(&fx.app, &["commit", "-q", "-m", "marker"]);
    git(&fx.app, &["tag", "vm"]);
    fx.ok(&["apps", "edit", "hello", "--set", "stack=marked"]);
    fx.create_swarm(&["app=hello", "version=vm", "pool=hello"]);
}

fn marker(router: u16) -> String {
    assert!(wait_for_port(router, std::time::Duration::from_secs(5)), "the router does not listen");
    let response = http_get(router, "/marker");
    response.rsplit("\r\n\r\n").next().unwrap_or_default().trim().to_string()
}

fn images(fx: &Fx) -> Vec<Value> {
    serde_json::from_str::<Vec<Value>>(&fx.ok(&["stacks", "images", "marked", "--json"])).unwrap()
}

fn image<'a>(all: &'a [Value], name: &str) -> &'a Value {
    all.iter().find(|i| i["name"] == name).unwrap_or_else(|| panic!("no image {name} in {all:?}"))
}

/// The image a proc was deployed with, from its proc.yaml in vrd's data dir.
fn image_of_proc(fx: &Fx, proc: &str) -> String {
    let yaml = std::fs::read_to_string(fx.d.data().join("procs").join(proc).join("proc.yaml")).unwrap();
    yaml.lines().find_map(|l| l.strip_prefix("image_name: ")).unwrap().trim().to_string()
}

fn store_file(image: &Value) -> PathBuf {
    PathBuf::from(image["url"].as_str().unwrap())
}

#[test]
fn a_stack_image_is_built_by_vrd_and_rebuilt_without_touching_running_procs() {
    require_root!("a_stack_image_is_built_by_vrd_and_rebuilt_without_touching_running_procs");
    let (fx, router) = routed();
    let script = marked_stack(&fx);
    app_serving_the_marker(&fx);
    let out = fx.vr(&["swarm", "hello-prod-web", "vm"]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "no image yet:\n{stdout}");
    assert!(stderr.contains("vr stacks build marked"), "{stdout}\n{stderr}");

    let out = fx.vr(&["stacks", "build", "marked"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("marking the stack with one"), "the script's output streams live:\n{stdout}");
    assert!(stderr.contains("marked-1") && stderr.contains("now the active image"), "{stderr}");
    let all = images(&fx);
    assert_eq!(image(&all, "marked-1")["active"], true);
    assert!(store_file(image(&all, "marked-1")).starts_with(fx.d.data().join("store/sha256")));

    let out = fx.ok(&["swarm", "hello-prod-web", "vm"]);
    assert!(out.contains("    | -----> Static site"), "the compile output streams under its step:\n{out}");
    assert_eq!(marker(router), "one", "the proc runs on the stack's image");
    let first = fx.procs();
    assert_eq!(first.len(), 1);
    assert_eq!(image_of_proc(&fx, &first[0]), "marked-1");

    std::fs::write(&script, PROVISION.replace("$MARK\" >", "$MARK-two\" >")).unwrap();
    let stdout = fx.ok(&["stacks", "build", "marked"]);
    assert!(stdout.contains("marking the stack"), "{stdout}");
    let all = images(&fx);
    assert_eq!(
        (image(&all, "marked-1")["active"].clone(), image(&all, "marked-2")["active"].clone()),
        (false.into(), true.into())
    );
    assert_eq!(fx.procs(), first, "a rebuild leaves the running proc alone");
    assert_eq!(image_of_proc(&fx, &first[0]), "marked-1");
    assert_eq!(marker(router), "one");

    let out = fx.ok(&["swarm", "hello-prod-web", "-"]);
    assert!(out.contains("Building hello vm on marked-2"), "a new image means a new build:\n{out}");
    let second = fx.procs();
    assert_eq!(second.len(), 1);
    assert_ne!(second, first, "a new release, so a new proc: {second:?}");
    assert_eq!(image_of_proc(&fx, &second[0]), "marked-2");
    assert_eq!(marker(router), "one-two");
    assert_eq!(fx.ok(&["swarms", "releases", "hello-prod-web"]).lines().count(), 3, "two releases");
    let log = fx.ok(&["builds", "log", "2", "-f"]);
    assert!(log.contains("-----> Static site"), "{log}");

    gc_keeps_what_is_active_or_in_use(&fx, router);
    a_failed_build_keeps_the_active_image(&fx, &script);
}

/// After the rebuild and redeploy: marked-1 is idle (its proc is gone), marked-2 is active and
/// in use. Build 1 belongs to no current release, but its slug is byte for byte build 2's (same
/// commit: slugs are reproducible), which the proc runs. gc with no age limit and no keep count
/// collects exactly marked-1.
fn gc_keeps_what_is_active_or_in_use(fx: &Fx, router: u16) {
    let before = images(fx);
    let (old, current) = (store_file(image(&before, "marked-1")), store_file(image(&before, "marked-2")));
    assert!(old.exists() && current.exists());
    let report = fx.ok(&["builds", "gc", "--max-age-days", "0", "--keep", "0"]);
    assert!(report.contains("the log of image marked-1"), "{report}");
    assert!(!report.contains("build ") && !report.contains("marked-2"), "{report}");
    assert!(!old.exists(), "marked-1's tarball is gone");
    assert!(current.exists(), "the active image in use stays");
    let after = images(fx);
    assert!(image(&after, "marked-1")["collected"].is_i64());
    assert!(fx.ok(&["stacks", "images", "marked"]).contains("succeeded (collected)"));
    let out = fx.vr(&["stacks", "activate", "marked", "1"]);
    assert!(!out.status.success() && text(&out).1.contains("gc removed its tarball"), "{:?}", text(&out));
    assert_eq!(marker(router), "one-two", "the proc keeps serving after gc");
}

/// A script that fails leaves a failed image with its log, and the active image as it was; a
/// stack builds one image at a time, and its log can be followed from another terminal.
fn a_failed_build_keeps_the_active_image(fx: &Fx, script: &Path) {
    std::fs::write(script, "#!/bin/sh\necho broken on purpose\nsleep 2\nexit 3\n").unwrap();
    let started = fx.ok(&["stacks", "build", "marked", "--detach"]);
    assert_eq!(started.trim(), "marked-3");
    let out = fx.vr(&["stacks", "build", "marked"]);
    assert!(!out.status.success() && text(&out).1.contains("being built already"), "{:?}", text(&out));
    let log = fx.ok(&["stacks", "log", "marked", "3"]);
    assert!(
        log.contains("broken on purpose") && log.contains("failed with code 3"),
        "followed to its end:\n{log}"
    );
    let all = images(fx);
    assert_eq!(image(&all, "marked-3")["status"], "failed");
    assert_eq!(image(&all, "marked-2")["active"], true);

    let out = fx.vr(&["stacks", "build", "marked"]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("broken on purpose"), "{stdout}");
    assert!(
        stderr.contains("failed with code 3") && stderr.contains("vr stacks log marked marked-4"),
        "{stderr}"
    );
    assert_eq!(image(&images(fx), "marked-2")["active"], true);
    let out = fx.vr(&["stacks", "build", "busybox"]);
    assert!(!out.status.success() && text(&out).1.contains("no provisioning_script"), "{:?}", text(&out));
}
