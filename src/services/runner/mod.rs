//! The runner: Velociraptor's `vrun` contract (setup, run, shell, uptest, teardown of one proc.yaml),
//! done by the daemon with vr's own containers.

pub mod caches;
pub mod foreground;
pub mod job;
mod launch;
pub mod layout;
pub mod locks;
pub mod retained;
pub mod room;
pub mod scripts;
pub mod setup;
pub mod supervised;
pub mod uptest;

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use launch::Held;
pub use launch::{ExecLaunch, Foreground, Started};
use layout::{Layout, ProcDir};
use locks::Locks;

use crate::host::container::passwd::PasswdError;
use crate::host::container::plan::{
    Bind, CgroupPlan, LaunchPlan, Overlay, RwLayer, StdioPlan, DEFAULT_CAPABILITIES,
};
use crate::host::network::PrivatePlan;
use crate::model::network::{Network, PrivateNetwork};
use crate::model::proc_data::{ProcData, ProcSpec};

/// The capabilities a proc's container keeps in its bounding set: Docker's default set (see
/// `DEFAULT_CAPABILITIES`), and for a non-root run-as user not even CAP_NET_BIND_SERVICE, so
/// nothing in it can come to bind a port below 1024 on the host's network.
fn capabilities_for(uid: u32) -> Vec<String> {
    DEFAULT_CAPABILITIES
        .iter()
        .filter(|c| uid == 0 || **c != "CAP_NET_BIND_SERVICE")
        .map(|c| c.to_string())
        .collect()
}

/// What can go wrong in a runner call; every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The proc.yaml (or something it names) is wrong.
    #[error("{0}")]
    Invalid(String),
    /// Another setup, run or teardown of the same proc is in progress.
    #[error("{0} is locked by another process: a setup, run or teardown of it is in progress; wait for it to finish")]
    Busy(String),
    /// The proc has not been set up.
    #[error("{0} is not set up: run `vr runner setup FILE` first")]
    NotSetUp(String),
    /// Fetching or unpacking an image or build failed.
    #[error("{0}")]
    Artifact(String),
    /// The run-as user or group is not in the image.
    #[error(transparent)]
    User(PasswdError),
    /// A file system operation failed.
    #[error("{0}")]
    Io(String),
    /// The launcher could not be started or did not report.
    #[error("{0}")]
    Launch(String),
    /// The data dir's file system is short of room for new work.
    #[error("{0}")]
    NoRoom(String),
}

/// The terminal and output of a foreground `run` or `shell`: the caller's stdin, stdout, stderr.
pub struct CallerStdio {
    /// The caller's stdin.
    pub stdin: OwnedFd,
    /// The caller's stdout.
    pub stdout: OwnedFd,
    /// The caller's stderr.
    pub stderr: OwnedFd,
}

/// The launcher pid of a container while it runs (0 before and after), shared with whoever may
/// have to stop it: a caller that went away, or `runner.signal`.
pub type LaunchWatch = std::sync::Arc<std::sync::atomic::AtomicU32>;

/// Seconds between a stop signal and SIGKILL for foreground containers.
pub const STOP_GRACE_SECS: u64 = 10;

/// One daemon's runner.
pub struct Runner {
    /// Where things live.
    pub layout: Layout,
    /// The program started as the launcher and unpacker (a sealed copy of vrd).
    pub exe: PathBuf,
    /// The cgroup file system root.
    pub cgroup_root: PathBuf,
    /// The cgroup every container of this daemon is created under.
    pub cgroup_parent: String,
    /// Busy procs and artifact locks.
    pub locks: std::sync::Arc<Locks>,
    /// How long one `uptest` run (all tests of a proc) may take before it is stopped.
    pub uptest_timeout: std::time::Duration,
    /// The spawner's socket, which forks supervised launchers (else each is exec'd).
    pub spawner: Option<PathBuf>,
    /// Room kept free on the data dir, and the memory limit of procs that set none.
    pub limits: room::HostLimits,
    /// The bridge and subnet of procs with `network: private`.
    pub network: PrivateNetwork,
}

/// Parses and validates proc.yaml text; unknown keys come back as warnings.
pub fn parse(yaml: &str) -> Result<(ProcSpec, Vec<String>), RunnerError> {
    let data = ProcData::from_yaml(yaml).map_err(|e| RunnerError::Invalid(e.to_string()))?;
    let spec = data.spec().map_err(|e| RunnerError::Invalid(e.to_string()))?;
    let warnings = data
        .unknown_keys
        .iter()
        .map(|k| format!("proc.yaml key '{k}' is not known to vr and was ignored"))
        .collect();
    Ok((spec, warnings))
}

/// How a container of a proc is launched.
enum Mode {
    Run,
    Shell,
    Uptest { results: PathBuf },
}

impl Runner {
    fn busy(&self, spec: &ProcSpec) -> Result<locks::BusyGuard, RunnerError> {
        self.locks.try_busy(&spec.name.to_string()).ok_or_else(|| RunnerError::Busy(spec.name.to_string()))
    }

    /// `setup`: caches, user, proc dir. Returns the proc dir.
    pub fn setup(&self, spec: &ProcSpec, yaml: &str) -> Result<PathBuf, RunnerError> {
        let _busy = self.busy(spec)?;
        setup::setup(self, spec, yaml).map(|d| d.0)
    }

    /// `run`: starts the proc's container in the foreground; the proc stays busy until the
    /// container has ended (see [`Started`]).
    pub fn start_run(&self, spec: &ProcSpec, stdio: CallerStdio) -> Result<Started, RunnerError> {
        let busy = self.busy(spec)?;
        let dir = self.set_up_dir(spec)?;
        let plan = self.plan(spec, &dir, dir.path(), Mode::Run)?;
        self.start(&plan, dir.path(), stdio, Held { _busy: Some(busy), _sibling: None })
    }

    /// `shell`: starts an interactive shell in a sibling container with the proc's image, build
    /// and env.
    pub fn start_shell(&self, spec: &ProcSpec, stdio: CallerStdio) -> Result<Started, RunnerError> {
        let dir = self.set_up_dir(spec)?;
        let sibling = Sibling::new(&dir, "shell")?;
        let plan = self.plan(spec, &dir, sibling.path(), Mode::Shell)?;
        let cdir = sibling.path().to_path_buf();
        self.start(&plan, &cdir, stdio, Held { _busy: None, _sibling: Some(sibling) })
    }

    /// `teardown`: removes the proc dir; caches stay.
    pub fn teardown(&self, spec: &ProcSpec) -> Result<(), RunnerError> {
        let _busy = self.busy(spec)?;
        ProcDir(self.layout.proc_dir(&spec.name)).remove()
    }

    fn set_up_dir(&self, spec: &ProcSpec) -> Result<ProcDir, RunnerError> {
        let dir = ProcDir(self.layout.proc_dir(&spec.name));
        if !dir.join("meta/proc.sh").exists() {
            return Err(RunnerError::NotSetUp(spec.name.to_string()));
        }
        Ok(dir)
    }

    /// Computes the launch plan of one container of `spec` whose writable dirs live in `cdir`.
    fn plan(
        &self,
        spec: &ProcSpec,
        dir: &ProcDir,
        cdir: &Path,
        mode: Mode,
    ) -> Result<LaunchPlan, RunnerError> {
        let layers = caches::Layers::of(&self.layout, dir, spec)?;
        let user = setup::resolve_user(&layers.image, spec)?;
        let mut lowers = vec![dir.join("meta")];
        lowers.extend(layers.build);
        lowers.push(layers.image);
        let mut volumes: Vec<Bind> = spec
            .volumes
            .iter()
            .map(|v| Bind {
                outside: PathBuf::from(&v.outside),
                inside: v.inside.clone(),
                read_only: v.read_only,
            })
            .collect();
        let suffix = cdir
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|_| cdir != dir.path())
            .map(|n| format!(".{n}"))
            .unwrap_or_default();
        let mut env = Vec::new();
        let (argv, stdio): (Vec<String>, StdioPlan) = match &mode {
            Mode::Run => {
                let log = StdioPlan::Pipes { log: Some(dir.join("log")) };
                match self.direct_launch(spec, &lowers)? {
                    Some(direct) => {
                        env = direct.env;
                        (direct.argv, log)
                    }
                    None => (strings(&["/bin/sh", "/proc.sh", "run"]), log),
                }
            }
            Mode::Shell => (strings(&["/bin/sh", "/proc.sh", "/bin/sh", "-l"]), StdioPlan::Tty),
            Mode::Uptest { results } => {
                volumes.push(Bind {
                    outside: results.clone(),
                    inside: scripts::UPTEST_DIR.into(),
                    read_only: false,
                });
                (
                    strings(&["/bin/sh", "/proc.sh", "/bin/sh", "/.vr-uptest/run.sh"]),
                    StdioPlan::Pipes { log: None },
                )
            }
        };
        // The writable layer on a tmpfs of the host's root_disk_limit, else on the data dir.
        let rw = self.limits.root_disk.map(|bytes| RwLayer { dir: cdir.join("rw"), bytes });
        let rw_base = rw.as_ref().map_or_else(|| cdir.to_path_buf(), |r| r.dir.clone());
        // The proc's own runs enter its network; uptests and shells stay on the host's, and reach
        // the app through its published port as balancers do.
        let own_run = matches!(mode, Mode::Run) && cdir == dir.path();
        let network = (own_run && spec.network == Network::Private).then(|| PrivatePlan {
            netns: dir.join("netns"),
            bridge: self.network.bridge.clone(),
            subnet: self.network.subnet,
            leases: self.layout.network_leases_dir(),
            publish: Some(spec.name.port).filter(|p| *p != 0),
        });
        Ok(LaunchPlan {
            name: spec.name.to_string(),
            hostname: spec.name.hostname(),
            rootfs: Overlay {
                lowers,
                upper: rw_base.join("upper"),
                work: rw_base.join("work"),
                target: cdir.join("rootfs"),
                // The proc's own root, not a sibling's: mounted once, reused by every run.
                keep_mounted: own_run,
                rw,
            },
            volumes,
            host_files: host_files(),
            cgroup: CgroupPlan {
                root: self.cgroup_root.clone(),
                name: format!("{}/{}{suffix}", self.cgroup_parent, spec.name),
                limits: self.limits.applied_to(&spec.limits),
            },
            user,
            capabilities: capabilities_for(user.uid),
            network,
            seccomp: spec.seccomp,
            argv,
            env,
            cwd: "/app".into(),
            stdio,
            log_rotation: Default::default(),
            stop_grace_secs: STOP_GRACE_SECS,
            status_path: cdir.join("status.json"),
        })
    }

    /// When proc.sh would only set variables and exec a plain program (no shell syntax, no `$`, no
    /// .profile.d scripts in any layer), the launcher can exec the app itself with the same
    /// environment and skip two shell starts. Returns the argv and environment, or `None`.
    fn direct_launch(
        &self,
        spec: &ProcSpec,
        lowers: &[PathBuf],
    ) -> Result<Option<DirectLaunch>, RunnerError> {
        // symlink_metadata: a .profile.d that is a symlink still counts as present (proc.sh path).
        if lowers.iter().any(|l| fs::symlink_metadata(l.join("app/.profile.d")).is_ok()) {
            return Ok(None);
        }
        let layer = spec.build.as_ref().and_then(|_| lowers.get(1).map(PathBuf::as_path));
        let command = setup::command(spec, layer)?;
        let Some(argv) = scripts::direct_argv(&command) else { return Ok(None) };
        // Shell builtins (`exit`, `cd`) and missing programs go through proc.sh, where the shell
        // handles them (and reports "not found" with its usual 127).
        if !argv.first().is_some_and(|program| is_executable_in(lowers, program)) {
            return Ok(None);
        }
        Ok(Some(DirectLaunch { argv, env: scripts::direct_env(&spec.env, spec.name.port) }))
    }
}

/// A command the launcher execs itself, with the environment proc.sh would have built.
struct DirectLaunch {
    argv: Vec<String>,
    env: Vec<(String, String)>,
}

/// Whether `program` names an executable file in one of the root's layers, looked up as the
/// launcher will: a path relative to /app, or a name on the default PATH.
fn is_executable_in(lowers: &[PathBuf], program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let candidates: Vec<String> = if program.contains('/') {
        vec![if program.starts_with('/') { program.to_string() } else { format!("/app/{program}") }]
    } else {
        scripts::DEFAULT_PATH.split(':').map(|dir| format!("{dir}/{program}")).collect()
    };
    lowers.iter().any(|lower| {
        candidates.iter().any(|c| {
            crate::sys::open_in_root(lower, Path::new(c))
                .and_then(|f| f.metadata())
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The host's resolver files, bound read-only as LXC did for VR (the container shares the host
/// network, so it resolves names as the host does).
pub(crate) fn host_files() -> Vec<Bind> {
    ["/etc/resolv.conf", "/etc/hosts"]
        .iter()
        .filter(|p| Path::new(p).exists())
        .map(|p| Bind { outside: PathBuf::from(p), inside: p.to_string(), read_only: true })
        .collect()
}

/// A sibling container's private dirs under the proc dir, removed when dropped.
pub struct Sibling(tempfile::TempDir);

impl Sibling {
    fn new(dir: &ProcDir, kind: &str) -> Result<Sibling, RunnerError> {
        let tmp =
            tempfile::Builder::new().prefix(&format!("{kind}-")).tempdir_in(dir.path()).map_err(|e| {
                RunnerError::Io(format!("failed to create a {kind} dir in {}: {e}", dir.path().display()))
            })?;
        setup::make_container_dirs(tmp.path())?;
        Ok(Sibling(tmp))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}
