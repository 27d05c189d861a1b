//! The container side of a launch: runs in the launcher's forked child, which is pid 1 of a new pid
//! namespace, and ends in execve of the app (or in `_exit` after reporting why it could not).
//!
//! Order matters and follows runc/youki: private mounts → overlay → pivot_root → kernel file
//! systems and binds (all inside the new root) → hostname → terminal → ids → capabilities →
//! no_new_privs → exec.

use std::ffi::CString;

use crate::model::proc_data::Seccomp;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::Mode;
use nix::unistd::{
    chdir, dup2_stderr, dup2_stdin, dup2_stdout, pivot_root, setgroups, setresgid, setresuid, setsid,
};
use nix::unistd::{Gid, Uid};

use super::mounts::{apply, lasting_steps, per_run_steps, standard_steps, BindSource};
use super::plan::{LaunchPlan, StdioPlan, SETUP_FAILED_CODE};
use crate::sys;

/// The fds the child inherits from the launcher.
pub struct ChildIo {
    /// Readable once the launcher has put us in the cgroup.
    pub go: OwnedFd,
    /// Close-on-exec: an error message written here tells the launcher setup failed; EOF without
    /// data means exec succeeded.
    pub errors: OwnedFd,
    /// The write ends of the stdout and stderr pipes (pipe mode).
    pub output: Option<(OwnedFd, OwnedFd)>,
    /// A socket to hand the pty master to the launcher (tty mode).
    pub console: Option<OwnedFd>,
    /// The proc's kept mount namespace, to start from (a proc's own run; see `kept_ns`).
    pub kept_ns: Option<OwnedFd>,
    /// The proc's own network namespace (`network: private`; see `host::network`).
    pub net_ns: Option<OwnedFd>,
}

/// Sets the container up and execs the app; never returns.
pub fn run(plan: &LaunchPlan, io: ChildIo) -> ! {
    let message = match setup_and_exec(plan, &io) {
        Ok(never) => match never {},
        Err(message) => message,
    };
    let mut errors = File::from(io.errors);
    let _ = errors.write_all(message.as_bytes());
    sys::exit_now(SETUP_FAILED_CODE)
}

fn step<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> Result<T, String> {
    r.map_err(|e| format!("failed to {what}: {e}"))
}

fn setup_and_exec(plan: &LaunchPlan, io: &ChildIo) -> Result<std::convert::Infallible, String> {
    // A container must not outlive its launcher: the launcher is what records how it ended.
    step("set the parent-death signal", nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL))?;
    // First: sysfs, mounted below, shows the interfaces of the namespace it is mounted from.
    if let Some(ns) = &io.net_ns {
        step("enter the proc's network namespace", setns(ns, CloneFlags::CLONE_NEWNET))?;
    }
    match &io.kept_ns {
        Some(ns) => enter_kept_namespace(plan, ns)?,
        None => build_namespace(plan)?,
    }
    step("set the hostname", nix::unistd::sethostname(&plan.hostname))?;
    // The mounts above overlap with the launcher putting us in the cgroup; nothing forks before
    // this point, so every task of the container is accounted for.
    wait_for_cgroup(io)?;
    // The cgroup namespace is rooted where the process is when it is created: only now.
    step("create the cgroup namespace", unshare(CloneFlags::CLONE_NEWCGROUP))?;
    wire_stdio(plan, io)?;
    become_user(plan)?;
    exec(plan)
}

/// The whole mount namespace, from a copy of vrd's: overlay root, pivot, every mount.
fn build_namespace(plan: &LaunchPlan) -> Result<(), String> {
    step("create namespaces", unshare(NAMESPACES))?;
    // systemd makes / shared; without this our mounts would propagate to the host.
    step(
        "make mounts private",
        mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>),
    )?;
    let sources = open_bind_sources(plan)?;
    super::overlay::mount_root(&plan.rootfs)?;
    pivot_into(&plan.rootfs.target)?;
    for s in standard_steps(&binds_of(plan)) {
        step("mount", apply(&s, &sources))?;
    }
    Ok(())
}

/// A private copy of the proc's kept namespace (root, /sys and /dev made once; see `kept_ns`),
/// then what each run mounts afresh. The host paths to bind are cloned first, while they resolve.
fn enter_kept_namespace(plan: &LaunchPlan, ns: &OwnedFd) -> Result<(), String> {
    let sources = open_bind_sources(plan)?;
    step("enter the proc's mount namespace", setns(ns, CloneFlags::CLONE_NEWNS))?;
    // The copy: nothing this run mounts reaches the kept namespace or another run.
    step("create namespaces", unshare(NAMESPACES))?;
    step("chdir to /", chdir("/"))?;
    // The kept /sys was mounted from the host's network namespace: a proc with its own gets a
    // /sys of that one (and its masks again) each run.
    if plan.network.is_some() {
        for s in lasting_steps() {
            step("mount", apply(&s, &sources))?;
        }
    }
    for s in per_run_steps(&binds_of(plan)) {
        step("mount", apply(&s, &sources))?;
    }
    Ok(())
}

/// The namespaces a container unshares (pid before the fork, cgroup once in its cgroup).
const NAMESPACES: CloneFlags =
    CloneFlags::CLONE_NEWNS.union(CloneFlags::CLONE_NEWUTS).union(CloneFlags::CLONE_NEWIPC);

/// Volumes, then the host's resolver files: (inside path, read-only), in the order of the sources.
fn binds_of(plan: &LaunchPlan) -> Vec<(String, bool)> {
    plan.volumes.iter().chain(&plan.host_files).map(|b| (b.inside.clone(), b.read_only)).collect()
}

fn wait_for_cgroup(io: &ChildIo) -> Result<(), String> {
    let mut go = [0u8; 1];
    let n = step("wait for the launcher", File::from(step("dup", io.go.try_clone())?).read(&mut go))?;
    if n == 0 {
        return Err("the launcher went away before the container started".into());
    }
    Ok(())
}

fn open_bind_sources(plan: &LaunchPlan) -> Result<Vec<BindSource>, String> {
    let volumes = plan.volumes.iter().map(|b| BindSource::clone_volume(&b.outside));
    let host_files = plan.host_files.iter().map(|b| BindSource::clone_host_path(&b.outside));
    volumes.chain(host_files).map(|source| source.map_err(|e| e.to_string())).collect()
}

/// pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only the new root
/// (runc's trick: no put_old directory needed inside the image).
fn pivot_into(root: &Path) -> Result<(), String> {
    step("enter the new root", chdir(root))?;
    step("pivot_root", pivot_root(".", "."))?;
    step("detach the old root", umount2(".", MntFlags::MNT_DETACH))?;
    step("chdir to /", chdir("/"))
}

fn wire_stdio(plan: &LaunchPlan, io: &ChildIo) -> Result<(), String> {
    step("start a session", setsid())?;
    match &plan.stdio {
        StdioPlan::Pipes { .. } => {
            let (out, err) = io.output.as_ref().ok_or("pipe mode without pipes")?;
            let null = step("open /dev/null", File::open("/dev/null"))?;
            step("wire stdin", dup2_stdin(null.as_fd()))?;
            step("wire stdout", dup2_stdout(out))?;
            step("wire stderr", dup2_stderr(err))
        }
        StdioPlan::Tty => {
            let console = io.console.as_ref().ok_or("tty mode without a console socket")?;
            let master = step(
                "open /dev/pts/ptmx",
                open("/dev/pts/ptmx", OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC, Mode::empty()),
            )?;
            let peer = step("open the pty", sys::open_pty_peer(master.as_fd()))?;
            step("hand the pty to the launcher", sys::send_fds(console, &[master.as_fd()]))?;
            drop(master);
            step("take the pty as controlling terminal", sys::set_controlling_tty(peer.as_fd()))?;
            step("wire stdin", dup2_stdin(&peer))?;
            step("wire stdout", dup2_stdout(&peer))?;
            step("wire stderr", dup2_stderr(&peer))
        }
    }
}

fn parse_caps(names: &[String]) -> Result<caps::CapsHashSet, String> {
    names
        .iter()
        .map(|n| n.parse::<caps::Capability>().map_err(|e| format!("unknown capability {n}: {e}")))
        .collect()
}

fn become_user(plan: &LaunchPlan) -> Result<(), String> {
    use caps::CapSet;
    let keep = parse_caps(&plan.capabilities)?;
    for cap in step("read the bounding set", caps::read(None, CapSet::Bounding))? {
        if !keep.contains(&cap) {
            step("drop a capability from the bounding set", caps::drop(None, CapSet::Bounding, cap))?;
        }
    }
    step("clear supplementary groups", setgroups(&[]))?;
    let (uid, gid) = (Uid::from_raw(plan.user.uid), Gid::from_raw(plan.user.gid));
    step("set the group id", setresgid(gid, gid, gid))?;
    step("set the user id", setresuid(uid, uid, uid))?;
    // A non-root uid has lost effective and permitted capabilities with setresuid; root keeps only
    // the chosen set. Inheritable and ambient are emptied so nothing survives exec by that route.
    let current = step("read capabilities", caps::read(None, CapSet::Permitted))?;
    let kept: caps::CapsHashSet = current.intersection(&keep).copied().collect();
    step("clear ambient capabilities", caps::clear(None, CapSet::Ambient))?;
    step("clear inheritable capabilities", caps::clear(None, CapSet::Inheritable))?;
    step("set effective capabilities", caps::set(None, CapSet::Effective, &kept))?;
    step("set permitted capabilities", caps::set(None, CapSet::Permitted, &kept))?;
    step("set no_new_privs", nix::sys::prctl::set_no_new_privs())
}

/// The program to exec: `argv[0]` if it holds a `/`, else the first executable match on the plan's
/// PATH (looked up inside the container, after the pivot), as a shell would.
fn resolve_program(plan: &LaunchPlan) -> Result<CString, String> {
    use std::os::unix::fs::PermissionsExt;
    let name = plan.argv.first().ok_or("the plan has no command")?;
    let found = if name.contains('/') {
        Some(name.clone())
    } else {
        let path = plan
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or("/usr/bin:/bin");
        path.split(':').map(|dir| format!("{dir}/{name}")).find(|candidate| {
            std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    };
    let found = found.ok_or_else(|| {
        format!("{name}: command not found in the image (PATH is searched inside the container)")
    })?;
    CString::new(found).map_err(|_| format!("{name:?} contains a NUL byte"))
}

fn exec(plan: &LaunchPlan) -> Result<std::convert::Infallible, String> {
    if chdir(plan.cwd.as_str()).is_err() {
        step("chdir to /", chdir("/"))?;
    }
    let cstr = |s: &str| CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"));
    let argv = plan.argv.iter().map(|a| cstr(a)).collect::<Result<Vec<_>, _>>()?;
    let env = plan.env.iter().map(|(k, v)| cstr(&format!("{k}={v}"))).collect::<Result<Vec<_>, _>>()?;
    let program = resolve_program(plan)?;
    let filters = match plan.seccomp {
        Seccomp::Default => std::slice::from_ref(sys::seccomp::default_filter()?),
        Seccomp::Unconfined => &[][..],
    };
    step("reset signal handling", sys::reset_signals())?;
    step("close inherited fds", sys::cloexec_from(3))?;
    // Last: from here on every call the app makes passes the filter, execve included.
    sys::seccomp::install(filters)?;
    match nix::unistd::execve(&program, &argv, &env) {
        Err(e) => Err(format!("failed to execute {}: {e}", plan.argv[0])),
        Ok(never) => match never {},
    }
}
