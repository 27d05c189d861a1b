//! Shared test plumbing: a real vrd on temp dirs with its own cgroup parent, the busybox image made
//! by `examples/busybox-image.sh` (the same image the README demo uses), and the `vr` client.
//!
//! Root tests call [`require_root!`] first: without root they print `SKIPPED <test>: <reason>`
//! and return, unless `VRD_TEST_STRICT=1` (CI), where a skip is a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Skips (or, under `VRD_TEST_STRICT=1`, fails) a test that needs root.
#[macro_export]
macro_rules! require_root {
    ($name:expr) => {
        if !nix::unistd::geteuid().is_root() {
            $crate::harness::skip($name, "needs root (real namespaces, mounts and cgroups)");
            return;
        }
    };
}

/// Reports a skipped test, or fails it in strict mode.
pub fn skip(name: &str, reason: &str) {
    if std::env::var("VRD_TEST_STRICT").is_ok_and(|v| v == "1") {
        panic!("{name} cannot run: {reason} (VRD_TEST_STRICT=1 turns skips into failures)");
    }
    eprintln!("SKIPPED {name}: {reason}");
}

/// The repository root.
/// The `vr` client the tests run: this build's, or the one `$VR_TEST_CLIENT` names (tests/run.sh
/// points it at the musl release build that ships, and reruns the client-heavy tests with it).
pub fn vr_client() -> PathBuf {
    std::env::var_os("VR_TEST_CLIENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_vr")))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The busybox image tarball, made once per test run.
pub fn busybox_image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let out =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("busybox-{}.tar.gz", std::process::id()));
        let status =
            Command::new("sh").arg(repo().join("examples/busybox-image.sh")).arg(&out).status().unwrap();
        assert!(status.success(), "examples/busybox-image.sh failed: is busybox-static installed?");
        out
    })
}

/// The busybox image with Debian's bash-static as /bin/bash (a stack with bash).
pub fn bash_image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("busybox-bash-{}.tar.gz", std::process::id()));
        let status = Command::new("sh")
            .arg(repo().join("examples/busybox-image.sh"))
            .arg(&out)
            .env("WITH_BASH", "/bin/bash-static")
            .status()
            .unwrap();
        assert!(status.success(), "examples/busybox-image.sh failed: is bash-static installed?");
        out
    })
}

/// A tar.gz of a directory, as a build.
pub fn tar_gz(dir: &Path, out: &Path) {
    let status = Command::new("tar").arg("-C").arg(dir).arg("-czf").arg(out).arg(".").status().unwrap();
    assert!(status.success());
}

/// A running vrd on temp dirs; killed and cleaned up on drop.
pub struct TestDaemon {
    pub dir: tempfile::TempDir,
    pub cgroup_parent: String,
    extra_args: Vec<String>,
    /// The vrd binary this daemon runs (a copy, for upgrade tests).
    pub exe: PathBuf,
    /// The network namespace it runs in (a test host of `netns::TestFleet`), if any.
    pub netns: Option<String>,
    /// Environment variables vrd gets besides the test's own.
    envs: Vec<(String, String)>,
    child: Child,
}

fn spawn_vrd(d: &VrdSpawn<'_>) -> Child {
    let VrdSpawn { exe, dir, cgroup_parent, extra, netns, envs } = *d;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("vrd.log")).unwrap();
    // In a test host's network namespace: nsenter enters only that (and execs vrd, so the child is
    // vrd itself); `ip netns exec` would also hide /sys/fs/cgroup.
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}")).arg("--").arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.envs(envs.iter().map(|(k, v)| (k, v)));
    cmd.env("NO_COLOR", "1") // plain text in vrd.log, which tests read (and print on failure)
        .arg("daemon")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--run-dir")
        .arg(dir.join("run"))
        .arg("--cgroup-parent")
        .arg(cgroup_parent)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// How to start one vrd.
#[derive(Clone, Copy)]
struct VrdSpawn<'a> {
    exe: &'a Path,
    dir: &'a Path,
    cgroup_parent: &'a str,
    extra: &'a [String],
    netns: Option<&'a str>,
    envs: &'a [(String, String)],
}

impl TestDaemon {
    /// The daemon's pid (vrd itself, also in a test host's namespace: nsenter execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts a daemon and waits for its socket.
    pub fn start() -> TestDaemon {
        TestDaemon::start_with(&[])
    }

    /// Starts a daemon with extra `vrd daemon` flags.
    pub fn start_with(extra: &[&str]) -> TestDaemon {
        let dir = tempfile::Builder::new().prefix("vrd-test-").tempdir().unwrap();
        TestDaemon::start_in(dir, extra)
    }

    /// Starts a daemon whose config file (`--config`) holds `toml`, plus extra flags.
    pub fn start_with_config(toml: &str, extra: &[&str]) -> TestDaemon {
        TestDaemon::start_with_config_prepared(toml, extra, |_| {})
    }

    /// [`TestDaemon::start_with_config`], with `before` given the data dir first (to put files
    /// there).
    pub fn start_with_config_prepared(toml: &str, extra: &[&str], before: impl FnOnce(&Path)) -> TestDaemon {
        let dir = tempfile::Builder::new().prefix("vrd-test-").tempdir().unwrap();
        before(&dir.path().join("data"));
        let config = dir.path().join("vrd.toml");
        std::fs::write(&config, toml).unwrap();
        let mut args = vec!["--config", config.to_str().unwrap()];
        args.extend_from_slice(extra);
        TestDaemon::start_in(dir, &args)
    }

    fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> TestDaemon {
        TestDaemon::start_in_netns(dir, extra, None)
    }

    /// Starts a daemon in network namespace `netns` whose config file holds `toml`; `before` gets
    /// the config file's path first (to `vrd join` with it, say).
    pub fn start_in_namespace(netns: &str, toml: &str, before: impl FnOnce(&Path)) -> TestDaemon {
        let (dir, config) = TestDaemon::namespace_config(toml);
        before(&config);
        TestDaemon::start_in_netns(dir, &["--config", config.to_str().unwrap()], Some(netns.to_string()))
    }

    /// A temp dir for a daemon with its config file holding `toml` (and the dirs in it).
    fn namespace_config(toml: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::Builder::new().prefix("vrd-test-").tempdir().unwrap();
        let config = dir.path().join("vrd.toml");
        let toml = format!(
            "data_dir = \"{}\"\nrun_dir = \"{}\"\n{toml}",
            dir.path().join("data").display(),
            dir.path().join("run").display()
        );
        std::fs::write(&config, toml).unwrap();
        (dir, config)
    }

    /// Starts a daemon in `netns` with `toml` that should refuse to start, and waits (30 s at
    /// most) for it to exit: its exit status (`None` when it kept running, and was stopped) and
    /// its log.
    pub fn start_refused_in_namespace(netns: &str, toml: &str) -> (Option<std::process::ExitStatus>, String) {
        let (dir, config) = TestDaemon::namespace_config(toml);
        let cgroup_parent =
            format!("vrd-test-{}", dir.path().file_name().unwrap().to_string_lossy().replace('.', "_"));
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_vrd"));
        let extra = vec!["--config".to_string(), config.to_str().unwrap().to_string()];
        let spawn = VrdSpawn {
            exe: &exe,
            dir: dir.path(),
            cgroup_parent: &cgroup_parent,
            extra: &extra,
            netns: Some(netns),
            envs: &[],
        };
        let child = spawn_vrd(&spawn);
        let netns = Some(netns.to_string());
        let mut daemon =
            TestDaemon { dir, cgroup_parent, extra_args: extra, exe, netns, envs: Vec::new(), child };
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            match daemon.child.try_wait().unwrap() {
                Some(status) => break Some(status),
                None if Instant::now() > deadline => break None,
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let log = std::fs::read_to_string(daemon.dir.path().join("vrd.log")).unwrap_or_default();
        (status, log)
    }

    fn start_in_netns(dir: tempfile::TempDir, extra: &[&str], netns: Option<String>) -> TestDaemon {
        TestDaemon::start_full(dir, extra, netns, Vec::new())
    }

    /// Starts a daemon with `envs` in its environment (as systemd would set NOTIFY_SOCKET).
    pub fn start_with_env(envs: &[(&str, &str)]) -> TestDaemon {
        let dir = tempfile::Builder::new().prefix("vrd-test-").tempdir().unwrap();
        let envs = envs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TestDaemon::start_full(dir, &[], None, envs)
    }

    fn start_full(
        dir: tempfile::TempDir,
        extra: &[&str],
        netns: Option<String>,
        envs: Vec<(String, String)>,
    ) -> TestDaemon {
        let cgroup_parent =
            format!("vrd-test-{}", dir.path().file_name().unwrap().to_string_lossy().replace('.', "_"));
        let extra_args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_vrd"));
        let spawn = VrdSpawn {
            exe: &exe,
            dir: dir.path(),
            cgroup_parent: &cgroup_parent,
            extra: &extra_args,
            netns: netns.as_deref(),
            envs: &envs,
        };
        let child = spawn_vrd(&spawn);
        let daemon = TestDaemon { dir, cgroup_parent, extra_args, exe, netns, envs, child };
        daemon.wait_for_socket();
        daemon
    }

    fn wait_for_socket(&self) {
        let socket = self.socket();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "vrd did not start listening on {}", socket.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run/vrd.sock")
    }

    /// The data dir.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A `vr` command aimed at this daemon.
    pub fn vr(&self) -> Command {
        let mut cmd = Command::new(vr_client());
        cmd.env("VR_SOCKET", self.socket());
        cmd
    }

    /// Runs `vr ARGS...` to completion with `input` on its stdin (a password, say).
    pub fn run_vr_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .vr()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs `vr ARGS...` to completion.
    pub fn run_vr(&self, args: &[&str]) -> Output {
        self.vr().args(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Writes a file into the daemon's temp dir and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Makes a directory (and its parents) in the daemon's temp dir and returns its path.
    pub fn make_dir(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    /// Every cgroup directory under this daemon's parent, in any hierarchy.
    pub fn cgroups_left(&self) -> Vec<PathBuf> {
        let mut left = Vec::new();
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let parent = hierarchy.path().join(&self.cgroup_parent);
            if let Ok(entries) = std::fs::read_dir(&parent) {
                left.extend(entries.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()));
            }
        }
        left
    }

    /// The pids of this daemon's launchers (exec'd as `vrd init`, or forked by its spawner).
    pub fn launchers(&self) -> Vec<i32> {
        self.helpers_named("vrd-init")
    }

    /// The pids of this daemon's spare launchers (foreground launchers waiting for the next
    /// start; `spare` in the spawner).
    pub fn spares(&self) -> Vec<i32> {
        self.helpers_named("vrd-spare")
    }

    /// This daemon's processes called `comm` (their command line names its dir).
    fn helpers_named(&self, name: &str) -> Vec<i32> {
        let dir = self.dir.path().to_string_lossy().to_string();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if comm.trim() == name && cmdline.contains(&dir) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Starts vrd on this daemon's dirs, settings and namespace, and waits for its socket.
    fn respawn(&mut self) {
        let netns = self.netns.as_deref();
        self.child = spawn_vrd(&VrdSpawn {
            exe: &self.exe,
            dir: self.dir.path(),
            cgroup_parent: &self.cgroup_parent,
            extra: &self.extra_args,
            netns,
            envs: &self.envs,
        });
        self.wait_for_socket();
    }

    /// Kills vrd with SIGKILL (as a crash would) and starts a new one on the same dirs.
    pub fn crash_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.respawn();
    }

    /// Kills vrd with SIGKILL (as a crash would); its procs keep running. `start_again` brings it back.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends vrd SIGTERM and waits for it to exit; returns how long that took.
    pub fn terminate(&mut self) -> Duration {
        let started = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let _ = self.child.wait();
        started.elapsed()
    }

    /// Starts vrd again on the same dirs (after [`TestDaemon::terminate`]).
    pub fn start_again(&mut self) {
        self.respawn();
    }

    /// Kills vrd, waits `away`, and starts a new one on the same dirs.
    pub fn crash_and_restart_after(&mut self, away: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(away);
        self.respawn();
    }

    /// Mounts whose mount point is under this daemon's dirs, as the host sees them; all but the
    /// private mount vrd makes of its procs dir once (it holds no proc's files of its own).
    pub fn mounts_left(&self) -> Vec<String> {
        self.mounts_under_dir()
            .into_iter()
            .filter(|l| l.split(' ').nth(4) != self.procs_dir().to_str())
            .collect()
    }

    /// Every mount under this daemon's dirs, the procs dir's own included.
    fn mounts_under_dir(&self) -> Vec<String> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = self.dir.path().to_string_lossy().to_string();
        info.lines().filter(|l| l.contains(&root)).map(str::to_string).collect()
    }

    fn procs_dir(&self) -> PathBuf {
        self.data().join("procs")
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Supervised launchers outlive vrd by design; this daemon's are ended here, and their
        // containers die with them (parent-death signal).
        for pid in self.launchers().into_iter().chain(self.spares()) {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        for cgroup in self.cgroups_left() {
            if let Ok(procs) = std::fs::read_to_string(cgroup.join("cgroup.procs")) {
                for pid in procs.lines().filter_map(|l| l.parse().ok()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            for _ in 0..100 {
                if std::fs::remove_dir(&cgroup).is_ok() || !cgroup.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Procs' roots stay mounted between runs until teardown; a test that ends without one
        // leaves them, and the temp dir could not go while they are mounted.
        let mut kept: Vec<String> =
            self.mounts_under_dir().iter().filter_map(|l| l.split(' ').nth(4).map(str::to_string)).collect();
        kept.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for target in kept {
            let _ = nix::mount::umount2(target.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        // Containers die with their launchers; give the kernel a moment, then remove the parents.
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            let parent = hierarchy.path().join(&self.cgroup_parent);
            if parent.exists() {
                for _ in 0..50 {
                    if std::fs::remove_dir(&parent).is_ok() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

/// A proc.yaml for the busybox image, with `extra` YAML lines appended.
pub fn proc_yaml(app: &str, port: u16, extra: &str) -> String {
    format!(
        "app_name: {app}\nversion: 1.0-rc1\nconfig_name: test\nrelease_hash: abcd1234\nproc_name: web\nport: {port}\nhost: 127.0.0.1\n\
         image_url: file://{}\nimage_name: busybox\n{extra}\n",
        busybox_image().display()
    )
}

/// Text of a command's stdout and stderr, for assertion messages.
pub fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something accepts on 127.0.0.1:port.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A plain HTTP GET on loopback; returns the body.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    // One write: a request in pieces waits for a proxy's delayed ACK (Nagle), 40 ms each time.
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// Runs `cmd` on a fresh pty as a user at a terminal would: types `input`, collects what the
/// terminal shows until `until` appears (or the pty closes), and returns the exit status and the
/// screen text.
pub fn run_in_pty(mut cmd: Command, input: &[u8], until: &str) -> (std::process::ExitStatus, String) {
    use std::io::{Read, Write};
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut child = cmd
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    master.write_all(input).unwrap();
    let until = until.to_string();
    let reader = std::thread::spawn(move || {
        let (mut seen, mut buf) = (Vec::new(), [0u8; 4096]);
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&seen).contains(&until) {
                break;
            }
        }
        seen
    });
    let status = child.wait().unwrap();
    let seen = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    (status, seen)
}
