//! A vrd ready for swarms, as a user sets one up with `vr`: the busybox stack, the example static
//! buildpack and examples/hello as git repositories, the app created, and the balancers the test
//! asks for in vrd's config. Shared by the swarm tests and the zero-downtime test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU16, Ordering};

use crate::harness::{busybox_image, repo, text, TestDaemon};

/// Each fixture gets its own port range, so daemons of tests running side by side never pick the
/// same port for a proc.
static NEXT_RANGE: AtomicU16 = AtomicU16::new(21000);

pub fn git(dir: &Path, args: &[&str]) {
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

/// A daemon with the given config, the busybox stack, the example static buildpack, and
/// examples/hello as a git app tagged v1 (its Procfile removed, so `web` comes from the
/// buildpack's default process types).
pub struct Fx {
    pub d: TestDaemon,
    pub app: PathBuf,
}

impl Fx {
    /// `config` is the rest of vrd's config file (top-level settings first, then tables such as
    /// `[balancers.NAME]`); the fixture puts its own port range before it.
    pub fn with_config(config: &str) -> Fx {
        Fx::with_daemon(TestDaemon::start_with_config(&Fx::port_range(config), &[]))
    }

    /// `config` with a port range of its own in front.
    pub fn port_range(config: &str) -> String {
        Fx::ports(100, config)
    }

    /// `config` with a range of `width` ports of its own in front.
    pub fn ports(width: u16, config: &str) -> String {
        let start = NEXT_RANGE.fetch_add(width, Ordering::SeqCst);
        format!("port_range_start = {start}\nport_range_end = {}\n{config}", start + width)
    }

    /// The fixture on a daemon already started.
    pub fn with_daemon(d: TestDaemon) -> Fx {
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
        let fx = Fx { d, app };
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

    pub fn vr(&self, args: &[&str]) -> Output {
        self.d.run_vr(args)
    }

    /// `vr ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.vr(args);
        let (stdout, stderr) = text(&out);
        assert!(
            out.status.success(),
            "vr {args:?} failed:\n{stdout}\n{stderr}\nvrd log:\n{}",
            self.vrd_log()
        );
        stdout
    }

    /// `vr swarms create --set F1 --set F2 ...`, which must succeed.
    pub fn create_swarm(&self, fields: &[&str]) -> String {
        let mut args = vec!["swarms", "create"];
        for field in fields {
            args.extend(["--set", field]);
        }
        self.ok(&args)
    }

    pub fn vrd_log(&self) -> String {
        std::fs::read_to_string(self.d.dir.path().join("vrd.log")).unwrap_or_default()
    }

    /// A new commit of the app with `file` (made with its directories) set to `body`, tagged `tag`.
    pub fn app_version(&self, tag: &str, file: &str, body: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.app.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        git(&self.app, &["add", "-A"]);
        git(&self.app, &["commit", "-q", "-m", tag]);
        git(&self.app, &["tag", tag]);
    }

    /// The names of the procs `vr procs list` shows, sorted.
    pub fn procs(&self) -> Vec<String> {
        let list = self.ok(&["procs", "list"]);
        let mut names: Vec<String> =
            list.lines().skip(1).filter_map(|l| l.split_whitespace().last().map(str::to_string)).collect();
        names.sort();
        names
    }
}
