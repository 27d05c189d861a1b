//! Velociraptor's builder end to end: `vr builder build|shell` against a real vrd, with buildpacks
//! (detect/compile/release in shell) and app repositories made here with real git and real hg.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{busybox_image, proc_yaml, text, TestDaemon};
use crate::require_root;

/// A daemon plus a place for repositories and build directories.
pub(crate) struct Fx {
    pub(crate) d: TestDaemon,
}

pub(crate) fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    run(Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args))
}

pub(crate) fn hg(dir: &Path, args: &[&str]) -> String {
    run(Command::new("hg")
        .arg("--cwd")
        .arg(dir)
        .args(["--config", "ui.username=t"])
        .args(args)
        .env("HGPLAIN", "1"))
}

/// Writes files (executable when the name is under bin/) into `dir`.
pub(crate) fn write_files(dir: &Path, files: &[(&str, &str)]) {
    use std::os::unix::fs::PermissionsExt;
    for (name, body) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
        if name.starts_with("bin/") {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

impl Fx {
    pub(crate) fn new() -> Fx {
        Fx { d: TestDaemon::start() }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.d.dir.path().join(name)
    }

    /// A git repository with these files, committed; returns its path.
    pub(crate) fn git_repo(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        git(&dir, &["init", "-q", "-b", "main"]);
        self.git_commit(&dir, files, "first");
        dir
    }

    /// Adds a commit; returns its hash.
    pub(crate) fn git_commit(&self, dir: &Path, files: &[(&str, &str)], message: &str) -> String {
        write_files(dir, files);
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", message]);
        git(dir, &["rev-parse", "HEAD"])
    }

    /// A buildpack repository with these scripts (a missing detect always detects, as "Test").
    pub(crate) fn buildpack(&self, name: &str, scripts: &[(&str, &str)]) -> String {
        let mut files: Vec<(&str, &str)> = vec![("bin/detect", "#!/bin/sh\necho Test\n")];
        files.extend_from_slice(scripts);
        self.git_repo(name, &files).display().to_string()
    }

    pub(crate) fn build_yaml(
        &self,
        name: &str,
        repo_type: &str,
        url: &Path,
        version: &str,
        buildpacks: &[&str],
    ) -> PathBuf {
        let list: String = buildpacks.iter().map(|b| format!("- {b}\n")).collect();
        self.build_yaml_on(
            busybox_image(),
            name,
            repo_type,
            url,
            version,
            &format!("buildpack_urls:\n{list}"),
        )
    }

    /// build.yaml on `image` (named after its file) with `rest` (buildpack keys and the like).
    pub(crate) fn build_yaml_on(
        &self,
        image: &Path,
        name: &str,
        repo_type: &str,
        url: &Path,
        version: &str,
        rest: &str,
    ) -> PathBuf {
        // busybox-<pid>.tar.gz is the stack "busybox", busybox-bash-<pid>.tar.gz "busybox-bash".
        let file = image.file_name().unwrap().to_str().unwrap().split('.').next().unwrap();
        let image_name = file.trim_end_matches(|c: char| c.is_ascii_digit()).trim_end_matches('-');
        let yaml = format!(
            "app_name: {name}\napp_repo_type: {repo_type}\napp_repo_url: {}\nversion: {version}\n\
             image_url: file://{}\nimage_name: {image_name}\n{rest}",
            url.display(),
            image.display()
        );
        self.d.write(&format!("{name}-{version}.yaml"), &yaml)
    }

    /// `vr builder build FILE` in a fresh directory `cwd` (created); returns the output.
    pub(crate) fn build_in(&self, file: &Path, cwd: &str) -> (Output, PathBuf) {
        let dir = self.path(cwd);
        std::fs::create_dir_all(&dir).unwrap();
        let out = self
            .d
            .vr()
            .args(["builder", "build"])
            .arg(file)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out, dir)
    }

    /// A build that must succeed.
    pub(crate) fn build_ok(&self, file: &Path, cwd: &str) -> (Output, PathBuf) {
        let (out, dir) = self.build_in(file, cwd);
        assert!(out.status.success(), "{:?}\ncompile.log: {}", text(&out), read(&dir.join("compile.log")));
        (out, dir)
    }
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub(crate) fn result(dir: &Path) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&read(&dir.join("build_result.yaml"))).unwrap()
}

/// Every entry of build.tar.gz: path → contents (or `-> target` for symlinks, `/` for dirs).
pub(crate) fn slug(dir: &Path) -> BTreeMap<String, String> {
    let file = std::fs::File::open(dir.join("build.tar.gz")).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut all = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let value = match entry.header().entry_type() {
            tar::EntryType::Symlink => format!("-> {}", entry.link_name().unwrap().unwrap().display()),
            tar::EntryType::Directory => "/".into(),
            _ => {
                let mut s = String::new();
                entry.read_to_string(&mut s).unwrap();
                s
            }
        };
        all.insert(path, value);
    }
    all
}

const RELEASE: &str = "#!/bin/sh\ncat <<EOF\n---\ndefault_process_types:\n  web: echo served by the default web\n  worker: never used\nconfig_vars:\n  GREETING: hello there\nEOF\n";

#[test]
fn a_git_app_builds_with_the_first_buildpack_that_detects_it() {
    require_root!("a_git_app_builds_with_the_first_buildpack_that_detects_it");
    let fx = Fx::new();
    let skip = fx.buildpack(
        "bp-skip",
        &[("bin/detect", "#!/bin/sh\nexit 1\n"), ("bin/compile", "#!/bin/sh\nexit 1\n")],
    );
    let compile = "#!/bin/sh\necho compile-out; echo compile-err >&2\n\
                   printf '%s\\n' \"$(id -u)\" \"$STACK\" \"$SOURCE_VERSION\" \"$(ls $3 | wc -l)\" \"$PWD\" \"$1\" > $1/info\n";
    let yes = fx.buildpack(
        "bp-yes",
        &[("bin/detect", "#!/bin/sh\necho Yes\n"), ("bin/compile", compile), ("bin/release", RELEASE)],
    );
    let app = fx.git_repo(
        "app",
        &[
            ("Procfile", "worker: mine\n"),
            (".slugignore", "*.psd\n/tmp\n"),
            ("art.psd", "x"),
            ("tmp/junk", "x"),
            ("keep.txt", "kept\n"),
        ],
    );
    git(&app, &["tag", "v1"]);
    let commit = git(&app, &["rev-parse", "v1"]);
    fx.git_commit(&app, &[("later.txt", "not in v1")], "after the tag");
    let file = fx.build_yaml("hello", "git", &app, "v1", &[&skip, &yes]);
    let (out, dir) = fx.build_ok(&file, "out");
    let (stdout, stderr) = text(&out);
    assert!(
        stdout.contains("compile-out") && stderr.contains("compile-err"),
        "live output: {stdout} {stderr}"
    );
    assert!(stdout.contains("-----> Yes app detected"), "{stdout}");
    let log = read(&dir.join("compile.log"));
    assert!(log.contains("compile-out") && log.contains("compile-err"), "{log}");
    let files = slug(&dir);
    let info: Vec<&str> = files["info"].lines().collect();
    assert_eq!(
        info,
        ["65534", "busybox", commit.as_str(), "0", "/build/hello", "/build/hello"],
        "user, STACK, SOURCE_VERSION, empty ENV_DIR, cwd, BUILD_DIR"
    );
    assert_eq!(
        files["Procfile"], "worker: mine\nweb: echo served by the default web\n",
        "defaults only for missing types"
    );
    assert_eq!(files["keep.txt"], "kept\n");
    for gone in ["art.psd", "tmp", "tmp/junk", ".git", "later.txt"] {
        assert!(!files.contains_key(gone), "{gone} must not be in the slug: {:?}", files.keys());
    }
    let r = result(&dir);
    assert_eq!(r["app_commit"].as_str(), Some(commit.as_str()));
    assert_eq!(r["version"].as_str(), Some("v1"));
    let yes_rev = git(Path::new(&yes), &["rev-parse", "HEAD"]);
    assert_eq!(r["buildpack_url"].as_str(), Some(format!("{yes}#{yes_rev}").as_str()));
    assert_eq!(r["buildpack_urls"][1].as_str(), Some(format!("{yes}#{yes_rev}").as_str()));
    assert_eq!(r["release_data"]["config_vars"]["GREETING"].as_str(), Some("hello there"));
    let md5 = r["build_md5"].as_str().unwrap().to_string();
    use md5::Digest;
    assert_eq!(md5, format!("{:x}", md5::Md5::digest(std::fs::read(dir.join("build.tar.gz")).unwrap())));
    the_runner_runs_the_default_web_of(&fx, &dir);
}

/// The runner takes the slug as it is; the default web command came from bin/release.
fn the_runner_runs_the_default_web_of(fx: &Fx, dir: &Path) {
    let proc = proc_yaml("hello", 0, &format!("build_url: file://{}/build.tar.gz", dir.display()));
    let proc = fx.d.write("hello-web.yaml", &proc);
    assert!(fx.d.run_vr(&["runner", "setup", proc.to_str().unwrap()]).status.success());
    let ran = fx.d.run_vr(&["runner", "run", proc.to_str().unwrap()]);
    assert_eq!(text(&ran).0, "served by the default web\n", "{:?}", text(&ran));
}

#[test]
fn the_cache_carries_over_and_build_result_rebuilds_the_same_revisions() {
    require_root!("the_cache_carries_over_and_build_result_rebuilds_the_same_revisions");
    let fx = Fx::new();
    let compile = |marker: &str| {
        format!("#!/bin/sh\necho x >> $2/count\nwc -l < $2/count | tr -d ' ' > $1/count\necho {marker} > $1/buildpack\n")
    };
    let bp = fx.buildpack("bp", &[("bin/compile", &compile("bp-one"))]);
    let app = fx.git_repo("app", &[("app.txt", "one\n")]);
    let first = git(&app, &["rev-parse", "HEAD"]);
    let file = fx.build_yaml("cached", "git", &app, "main", &[&bp]);
    let (_, one) = fx.build_ok(&file, "one");
    assert_eq!(slug(&one)["count"], "1\n");
    // New commits on the app's branch and in the buildpack; the result file still builds the old.
    fx.git_commit(&app, &[("app.txt", "two\n")], "two");
    fx.git_commit(Path::new(&bp), &[("bin/compile", &compile("bp-two"))], "two");
    let (_, again) = fx.build_ok(&one.join("build_result.yaml"), "again");
    let files = slug(&again);
    assert_eq!(files["count"], "2\n", "the second build sees what the first cached");
    assert_eq!((files["app.txt"].as_str(), files["buildpack"].as_str()), ("one\n", "bp-one\n"));
    let (r1, r2) = (result(&one), result(&again));
    assert_eq!(r2["app_commit"].as_str(), Some(first.as_str()));
    assert_eq!(r1["buildpack_url"], r2["buildpack_url"]);
    // build.yaml itself follows the branch and the buildpack's default branch.
    let (_, fresh) = fx.build_ok(&file, "fresh");
    let files = slug(&fresh);
    assert_eq!(
        (files["app.txt"].as_str(), files["buildpack"].as_str(), files["count"].as_str()),
        ("two\n", "bp-two\n", "3\n")
    );
    // A revision that is nowhere is a checkout error naming it and the repository.
    let missing = fx.build_yaml("cached", "git", &app, "v404", &[&bp]);
    let (out, dir) = fx.build_in(&missing, "missing");
    let err = text(&out).1;
    assert!(!out.status.success());
    assert!(
        err.contains("checkout failed") && err.contains("'v404'") && err.contains(app.to_str().unwrap()),
        "{err}"
    );
    assert!(dir.join("compile.log").exists() && !dir.join("build.tar.gz").exists());
}

#[test]
fn an_hg_app_runs_every_buildpack_of_its_buildpacks_file() {
    require_root!("an_hg_app_runs_every_buildpack_of_its_buildpacks_file");
    let fx = Fx::new();
    let one = fx.buildpack(
        "bp-one",
        &[
            ("bin/compile", "#!/bin/sh\necho one > $1/one\n"),
            ("bin/release", "#!/bin/sh\nprintf 'config_vars:\\n  A: one\\n  B: one\\n'\n"),
            ("export", "export FROM_ONE=exported-by-one\n"),
        ],
    );
    let two = fx.buildpack(
        "bp-two",
        &[
            ("bin/compile", "#!/bin/sh\necho \"$FROM_ONE\" > $1/two\n"),
            (
                "bin/release",
                "#!/bin/sh\nprintf 'config_vars:\\n  B: two\\ndefault_process_types:\\n  web: two-web\\n'\n",
            ),
        ],
    );
    let unused = fx.buildpack("bp-unused", &[("bin/compile", "#!/bin/sh\nexit 1\n")]);
    let app = fx.path("hgapp");
    std::fs::create_dir_all(&app).unwrap();
    hg(&app, &["init"]);
    write_files(
        &app,
        &[(".buildpacks", &format!("# both, in order\n{one}\n\n{two}\n")), ("app.txt", "hg\n")],
    );
    hg(&app, &["commit", "-q", "-A", "-m", "one"]);
    hg(&app, &["tag", "v1"]);
    let tagged = hg(&app, &["log", "-r", "v1", "--template", "{node}"]);
    let file = fx.build_yaml("hgapp", "hg", &app, "v1", &[&unused]);
    let (_, dir) = fx.build_ok(&file, "out");
    let files = slug(&dir);
    assert_eq!((files["one"].as_str(), files["two"].as_str()), ("one\n", "exported-by-one\n"));
    assert_eq!(files["Procfile"], "web: two-web\n");
    assert!(!files.contains_key(".hg") && !files.contains_key(".hg_archival.txt"), "{:?}", files.keys());
    let r = result(&dir);
    assert_eq!(r["app_commit"].as_str(), Some(tagged.as_str()));
    assert_eq!(r["release_data"]["config_vars"]["A"].as_str(), Some("one"));
    assert_eq!(r["release_data"]["config_vars"]["B"].as_str(), Some("two"), "later buildpacks win");
    let urls: Vec<&str> =
        r["buildpack_urls"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(
        urls.len() == 2 && urls[0].starts_with(&format!("{one}#")) && urls[1].starts_with(&format!("{two}#")),
        "{urls:?}"
    );
    assert!(r.get("buildpack_url").is_none());
    let missing = fx.build_yaml("hgapp", "hg", &app, "nosuchrev", &[&unused]);
    let (out, _) = fx.build_in(&missing, "missing");
    let err = text(&out).1;
    assert!(
        err.contains("checkout failed") && err.contains("'nosuchrev'") && err.contains(app.to_str().unwrap()),
        "{err}"
    );
}

#[test]
fn no_buildpack_that_detects_the_app_is_an_error_listing_each_tried() {
    require_root!("no_buildpack_that_detects_the_app_is_an_error_listing_each_tried");
    let fx = Fx::new();
    let never = "#!/bin/sh\nexit 1\n";
    let a = fx.buildpack("bp-a", &[("bin/detect", never)]);
    let b = fx.buildpack("bp-b", &[("bin/detect", never)]);
    let app = fx.git_repo("app", &[("app.txt", "x")]);
    let (out, dir) = fx.build_in(&fx.build_yaml("nodetect", "git", &app, "main", &[&a, &b]), "out");
    let err = text(&out).1;
    assert!(!out.status.success());
    assert!(
        err.contains("detect failed") && err.contains(&format!("{a}#")) && err.contains(&format!("{b}#")),
        "{err}"
    );
    assert!(read(&dir.join("compile.log")).contains("detect failed"));
    assert!(!dir.join("build.tar.gz").exists() && !dir.join("build_result.yaml").exists());
}

#[test]
fn a_failing_compile_fails_the_build_and_keeps_compile_log() {
    require_root!("a_failing_compile_fails_the_build_and_keeps_compile_log");
    let fx = Fx::new();
    let bp = fx.buildpack("bp", &[("bin/compile", "#!/bin/sh\necho about to fail\nexit 3\n")]);
    let app = fx.git_repo("app", &[("app.txt", "x")]);
    let (out, dir) = fx.build_in(&fx.build_yaml("failing", "git", &app, "main", &[&bp]), "out");
    let err = text(&out).1;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("compile failed") && err.contains("status 3") && err.contains("compile.log"),
        "{err}"
    );
    let log = read(&dir.join("compile.log"));
    assert!(log.contains("about to fail") && log.contains("compile failed"), "{log}");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, ["compile.log"], "no partial build.tar.gz or build_result.yaml");
}

#[test]
fn a_buildpack_cannot_write_outside_its_dirs_or_read_the_host_through_links() {
    require_root!("a_buildpack_cannot_write_outside_its_dirs_or_read_the_host_through_links");
    let fx = Fx::new();
    // The buildpack's own dir is writable (its `export` goes there), but it is this build's copy:
    // what it writes never reaches the cached repository.
    let compile = "#!/bin/sh\ntouch /buildpacks/1/vr-own-copy || exit 3\nfor f in /etc/vr-escape /env/vr-escape /vr-escape /build/vr-escape; do\n\
                   if touch $f 2>/dev/null; then echo \"wrote $f\"; else echo \"denied $f\"; fi; done > $1/attempts\n\
                   ln -s /etc/shadow $1/shadow; ln -s /etc/passwd $1/Procfile; mkfifo $1/fifo; echo ok > /cache/beside-the-cache\n";
    let bp = fx.buildpack("bp", &[("bin/compile", compile), ("bin/release", RELEASE)]);
    let app = fx.git_repo("app", &[("app.txt", "x")]);
    let (_, dir) = fx.build_ok(&fx.build_yaml("escape", "git", &app, "main", &[&bp]), "out");
    let files = slug(&dir);
    assert!(files["attempts"].lines().all(|l| l.starts_with("denied")), "{}", files["attempts"]);
    assert_eq!(files["shadow"], "-> /etc/shadow", "links are archived as links");
    assert!(!files.contains_key("fifo"));
    assert!(!files["Procfile"].contains("root:"), "the host's /etc/passwd leaked: {}", files["Procfile"]);
    assert!(!Path::new("/etc/vr-escape").exists() && !Path::new("/vr-escape").exists());
    let data = fx.d.data();
    let found = Command::new("find").arg(&data).args(["-name", "vr-escape"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&found.stdout), "", "no cache, image or buildpack was written");
    let cache = data.join("builder/buildpacks");
    let found = Command::new("find").arg(&cache).args(["-name", "vr-own-copy"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&found.stdout), "", "the buildpack cache was written");
}

#[test]
fn a_fork_bomb_in_compile_is_contained_by_the_pids_limit() {
    require_root!("a_fork_bomb_in_compile_is_contained_by_the_pids_limit");
    let fx = Fx::new();
    let compile = "#!/bin/sh\nsleep 4 &\ns=$!\nbomb() { bomb | bomb & }\nbomb 2>/dev/null\nwait $s\nexit 7\n";
    let bp = fx.buildpack("bp", &[("bin/compile", compile)]);
    let app = fx.git_repo("app", &[("app.txt", "x")]);
    let file = fx.build_yaml("bomb", "git", &app, "main", &[&bp]);
    let dir = fx.path("out");
    std::fs::create_dir_all(&dir).unwrap();
    let mut child =
        fx.d.vr()
            .args(["builder", "build"])
            .arg(&file)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let (mut peak, deadline) = (0u64, Instant::now() + Duration::from_secs(60));
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the build never ended");
        for cgroup in fx.d.cgroups_left() {
            let current = read(&cgroup.join("pids.current")).trim().parse().unwrap_or(0);
            peak = peak.max(current);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(!child.wait().unwrap().success());
    // The script's own `exit 7`, or status 2 when its shell could not fork under the bomb either.
    assert!(
        err.contains("compile failed") && (err.contains("status 7") || err.contains("status 2")),
        "{err}"
    );
    assert!(peak > 200 && peak <= 1024, "the bomb ran into the pids limit: peak {peak}");
    assert!(fx.d.cgroups_left().is_empty(), "every process of the build is gone");
}

#[test]
fn two_builds_of_one_app_wait_for_each_other() {
    require_root!("two_builds_of_one_app_wait_for_each_other");
    let fx = Fx::new();
    let compile = "#!/bin/sh\n[ -e $2/busy ] && { echo overlapped; exit 9; }\ntouch $2/busy\necho compiling\nsleep 2\nrm $2/busy\n";
    let bp = fx.buildpack("bp", &[("bin/compile", compile)]);
    let app = fx.git_repo("app", &[("app.txt", "x")]);
    let file = fx.build_yaml("serial", "git", &app, "main", &[&bp]);
    let start = |cwd: &str| {
        let dir = fx.path(cwd);
        std::fs::create_dir_all(&dir).unwrap();
        let child =
            fx.d.vr()
                .args(["builder", "build"])
                .arg(&file)
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
        (child, dir)
    };
    let (first, first_dir) = start("first");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !read(&first_dir.join("compile.log")).contains("compiling") {
        assert!(Instant::now() < deadline, "the first build never compiled");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (second, _) = start("second");
    let (a, b) = (first.wait_with_output().unwrap(), second.wait_with_output().unwrap());
    assert!(a.status.success(), "{:?}", text(&a));
    assert!(b.status.success(), "{:?}", text(&b));
    let err = text(&b).1;
    assert!(err.contains("waiting for another build") && err.contains("the cache of serial"), "{err}");
}

#[test]
fn the_build_shell_is_the_build_container_with_a_terminal() {
    require_root!("the_build_shell_is_the_build_container_with_a_terminal");
    let fx = Fx::new();
    let bp = fx.buildpack("bp", &[("bin/compile", "#!/bin/sh\ntrue\n")]);
    let app = fx.git_repo("app", &[("app.txt", "in the shell\n")]);
    let file = fx.build_yaml("shelly", "git", &app, "main", &[&bp]);
    let mut cmd = fx.d.vr();
    cmd.args(["builder", "shell"]).arg(&file);
    let input = b"echo \"uid=$(id -u) $STACK $(cat app.txt) $(ls /buildpacks)\"; exit 5\n";
    let (status, seen) = crate::harness::run_in_pty(cmd, input, "uid=65534 busybox in the shell 1\r\n");
    assert_eq!(status.code(), Some(5), "{seen}");
    assert!(seen.contains("uid=65534 busybox in the shell 1"), "{seen}");
}

#[test]
fn a_bad_build_yaml_is_refused_naming_the_key() {
    let d = TestDaemon::start();
    let file = d.write(
        "bad.yaml",
        "app_name: x\napp_repo_type: svn\napp_repo_url: /r\nversion: v1\nimage_url: file:///i.tar\n",
    );
    let dir = d.dir.path().join("bad-out");
    std::fs::create_dir_all(&dir).unwrap();
    let out = d.vr().args(["builder", "build"]).arg(&file).current_dir(&dir).output().unwrap();
    assert!(!out.status.success());
    let err = text(&out).1;
    assert!(err.contains("bad.yaml") && err.contains("'app_repo_type'") && err.contains("'svn'"), "{err}");
    let vbuild = d.dir.path().join("vbuild");
    std::os::unix::fs::symlink(crate::harness::vr_client(), &vbuild).unwrap();
    let alias = Command::new(&vbuild)
        .env("VR_SOCKET", d.socket())
        .args(["build"])
        .arg(&file)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        text(&alias).1.contains("'app_repo_type'"),
        "vbuild build is vr builder build: {:?}",
        text(&alias)
    );
}

/// `vr builds ... --json` parsed.
fn builds_json(fx: &Fx, args: &[&str]) -> serde_json::Value {
    let out = fx.d.run_vr(args);
    assert!(out.status.success(), "{args:?}: {:?}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn builds_are_recorded_with_kept_logs_and_stored_once_and_gc_keeps_the_newest() {
    require_root!("builds_are_recorded_with_kept_logs_and_stored_once_and_gc_keeps_the_newest");
    let fx = Fx::new();
    let bp = fx.buildpack("bp", &[("bin/compile", "#!/bin/sh\necho compiled > $1/out\n")]);
    let app = fx.git_repo("app", &[("app.txt", "x")]);
    let commit = git(&app, &["rev-parse", "HEAD"]);
    let file = fx.build_yaml("kept", "git", &app, "main", &[&bp]);
    let (_, first) = fx.build_ok(&file, "one");
    fx.build_ok(&file, "two");
    let failing = fx.buildpack("bad", &[("bin/compile", "#!/bin/sh\necho about to fail\nexit 3\n")]);
    let (out, _) = fx.build_in(&fx.build_yaml("broken", "git", &app, "main", &[&failing]), "three");
    assert!(!out.status.success());

    let list = builds_json(&fx, &["builds", "list", "--json"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3, "{list:?}");
    let md5 = result(&first)["build_md5"].as_str().unwrap().to_string();
    let (a, b, c) = (&list[0], &list[1], &list[2]);
    assert_eq!((a["status"].as_str(), a["build_md5"].as_str()), (Some("succeeded"), Some(md5.as_str())));
    assert_eq!(a["app_commit"].as_str(), Some(commit.as_str()));
    assert_eq!(a["artifact"], b["artifact"], "one commit rebuilt gives the same slug");
    let store = fx.d.data().join("store/sha256");
    let stored = std::fs::read(store.join(a["artifact"].as_str().unwrap())).unwrap();
    use md5::Digest;
    assert_eq!(format!("{:x}", md5::Md5::digest(&stored)), md5);
    assert_eq!(stored, std::fs::read(first.join("build.tar.gz")).unwrap());
    let files = || std::fs::read_dir(&store).unwrap().count();
    assert_eq!(files(), 1, "identical slugs are stored once");
    assert_eq!((c["status"].as_str(), c["step"].as_str()), (Some("failed"), Some("compile")));
    let id = c["id"].to_string();
    let log = fx.d.run_vr(&["builds", "log", &id]);
    assert!(text(&log).0.contains("about to fail"), "{:?}", text(&log));
    let shown = builds_json(&fx, &["builds", "show", &id, "--json"]);
    assert_eq!(shown["app_name"].as_str(), Some("broken"));
    let unknown = fx.d.run_vr(&["builds", "show", "999"]);
    assert!(!unknown.status.success() && text(&unknown).1.contains("vr builds list"), "{:?}", text(&unknown));

    // A newer commit, then gc: nothing is younger than a day, so the default age keeps all.
    fx.git_commit(&app, &[("app.txt", "y")], "second");
    let (_, newest) = fx.build_ok(&file, "four");
    let gc = fx.d.run_vr(&["builds", "gc", "--max-age-days", "1", "--keep", "1"]);
    assert!(text(&gc).0.contains("nothing to remove"), "{:?}", text(&gc));
    assert_eq!(files(), 2);
    let dry = fx.d.run_vr(&["builds", "gc", "--dry-run", "--max-age-days", "0", "--keep", "1"]);
    assert!(text(&dry).0.contains("would remove"), "{:?}", text(&dry));
    assert_eq!(files(), 2, "a dry run removes nothing");
    let gc = fx.d.run_vr(&["builds", "gc", "--max-age-days", "0", "--keep", "1"]);
    assert!(gc.status.success(), "{:?}", text(&gc));
    let list = builds_json(&fx, &["builds", "list", "--json"]);
    let list = list.as_array().unwrap();
    for old in &list[..3] {
        assert!(old["collected"].is_i64() && old["artifact"].is_null(), "{old}");
        assert!(!fx.d.data().join(format!("builds/{}", old["id"])).exists());
    }
    let kept = &list[3];
    assert!(kept["collected"].is_null(), "{kept}");
    let remaining: Vec<_> = std::fs::read_dir(&store).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(remaining, [kept["artifact"].as_str().unwrap()]);
    assert_eq!(
        std::fs::read(store.join(kept["artifact"].as_str().unwrap())).unwrap(),
        std::fs::read(newest.join("build.tar.gz")).unwrap()
    );
    let log = fx.d.run_vr(&["builds", "log", &kept["id"].to_string()]);
    assert!(log.status.success(), "{:?}", text(&log));
}

#[test]
fn a_build_interrupted_by_a_vrd_crash_or_a_hang_up_is_recorded_failed() {
    require_root!("a_build_interrupted_by_a_vrd_crash_or_a_hang_up_is_recorded_failed");
    let mut fx = Fx::new();
    let bp = fx.buildpack("bp", &[("bin/compile", "#!/bin/sh\necho compiling\nsleep 3\n")]);
    let app = fx.git_repo("app", &[("app.txt", "x")]);
    let file = fx.build_yaml("crashed", "git", &app, "main", &[&bp]);
    let dir = fx.path("out");
    std::fs::create_dir_all(&dir).unwrap();
    let mut client =
        fx.d.vr()
            .args(["builder", "build"])
            .arg(&file)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !read(&dir.join("compile.log")).contains("compiling") {
        assert!(Instant::now() < deadline, "the build never compiled");
        std::thread::sleep(Duration::from_millis(20));
    }
    let list = builds_json(&fx, &["builds", "list", "--json"]);
    assert_eq!(list[0]["status"].as_str(), Some("started"));
    fx.d.crash_and_restart();
    let _ = client.kill();
    let _ = client.wait();
    let list = builds_json(&fx, &["builds", "list", "--json"]);
    assert_eq!(list[0]["status"].as_str(), Some("failed"), "{list}");
    assert_eq!(list[0]["error"].as_str(), Some("vrd stopped during the build"));

    // A caller that hangs up mid-build: the build is stopped and its end recorded at once.
    let dir = fx.path("again");
    std::fs::create_dir_all(&dir).unwrap();
    let mut client =
        fx.d.vr()
            .args(["builder", "build"])
            .arg(&file)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    while !read(&dir.join("compile.log")).contains("compiling") {
        assert!(Instant::now() < deadline, "the second build never compiled");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = client.kill();
    let _ = client.wait();
    loop {
        let list = builds_json(&fx, &["builds", "list", "--json"]);
        if list[1]["status"].as_str() == Some("failed") {
            break;
        }
        assert!(Instant::now() < deadline, "the abandoned build was never recorded as ended: {list}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
