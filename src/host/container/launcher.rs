//! The launcher (`vrd init --plan FILE`): a fresh, single-threaded process that creates one
//! container from a [`LaunchPlan`], stays beside it as its shim, and records how it ended.
//!
//! The daemon is multi-threaded and must never fork, so all namespace work starts here. The
//! launcher enters a new pid namespace for its children, forks the container's pid 1, makes the
//! cgroup while that child mounts its root, and puts the child in it (the child waits for that
//! before it can fork or exec, so every descendant is accounted for); then it copies the
//! container's output to the log and its own stdout/stderr, forwards signals, waits, reads the OOM
//! counter, removes the cgroup and writes the [`ExitStatus`].

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::SocketAddrV4;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{pipe2, ForkResult, Pid};

use super::child::{self, ChildIo};
use super::log::{LogWriter, Rotation};
use super::plan::{ExitStatus, LaunchPlan, StdioPlan, SETUP_FAILED_CODE};
use crate::host::cgroup::{CgroupRoot, ProcCgroup};
use crate::host::network;
use crate::sys;

/// Bytes read from the container's output at a time.
const PUMP_BUFFER: usize = 8 * 1024;

/// Signals the launcher passes on to the container's pid 1.
const FORWARDED: &[Signal] =
    &[Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2];

/// Blocks the signals the launcher forwards, so one sent as soon as its pid is known (a Ctrl-C
/// during the container's setup) waits, pending, for the signalfd that forwards it, instead of
/// killing the launcher before it can report. Called before the pid is told to anyone; the
/// container's process unblocks every signal before its exec (`sys::reset_signals`).
pub fn hold_forwarded_signals() -> Result<SigSet, String> {
    let mut blocked = SigSet::empty();
    FORWARDED.iter().for_each(|s| blocked.add(*s));
    blocked.thread_block().map_err(|e| format!("failed to block signals: {e}"))?;
    Ok(blocked)
}

/// Entry point of `vrd init --plan FILE [--detach]`; returns the process exit code.
///
/// With `detach`, the launcher forks once, prints the launcher's pid and returns at once; the
/// launcher itself starts a new session with stdio on /dev/null. Its parent is then init, not vrd,
/// so it outlives vrd (a restart, a crash, an upgrade) and vrd tracks it by pidfd alone.
pub fn main(plan_path: &Path, detach: bool) -> i32 {
    // Started from /proc/self/fd/N of the sealed copy, the process would show in ps as "N".
    let _ = nix::sys::prctl::set_name(c"vrd-init");
    if detach {
        match detach_from_caller() {
            Ok(true) => {}
            Ok(false) => return 0,
            Err(e) => {
                eprintln!("vrd init: failed to detach: {e}");
                return SETUP_FAILED_CODE;
            }
        }
    }
    run_plan(plan_path)
}

/// Launches the container of the plan at `plan_path`, waits for it and records how it ended;
/// returns the exit code. The launcher proper, whether exec'd (`vrd init`) or forked by the spawner.
pub fn run_plan(plan_path: &Path) -> i32 {
    run_plan_with(plan_path, None)
}

/// [`run_plan`], telling the caller waiting on `report` how the container ended (a JSON line)
/// as soon as its cgroup is gone (and writes status.json only if that line could not be sent).
pub fn run_plan_reporting(plan_path: &Path, report: &mut UnixStream) -> i32 {
    run_plan_with(plan_path, Some(report))
}

fn run_plan_with(plan_path: &Path, report: Option<&mut UnixStream>) -> i32 {
    if let Err(e) = hold_forwarded_signals() {
        eprintln!("vrd init: {e}");
        return SETUP_FAILED_CODE;
    }
    let _ = nix::sys::prctl::set_name(c"vrd-init");
    let _ = sys::request_slice(sys::SHORT_SLICE_NS);
    let reporting = report.is_some();
    // A launcher forked by the spawner inherits its ignored SIGCHLD, under which the container's
    // exit status would be lost to the kernel's reaping.
    if let Err(e) = sys::reap_children_automatically(false) {
        eprintln!("vrd init: failed to restore SIGCHLD: {e}");
        return SETUP_FAILED_CODE;
    }
    let plan: LaunchPlan = match fs::read(plan_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("vrd init: failed to read the launch plan {}: {e}", plan_path.display());
            return SETUP_FAILED_CODE;
        }
    };
    // Only supervision reads app.pid; a caller that waits on the report has no use for it.
    let mut mount_ns = None;
    let status = match launch(&plan, report.is_none(), &mut mount_ns) {
        Ok(status) => status,
        // The caller reads the reason from the status file and shows it; no second copy here.
        Err(message) => ExitStatus {
            code: SETUP_FAILED_CODE,
            signal: None,
            oom_killed: false,
            setup_failed: true,
            error: Some(message),
        },
    };
    // A caller that heard the outcome has it; status.json is for one that went away, and for
    // the launchers nobody waits on. (Replacing the file would also make ext4 flush it to disk,
    // auto_da_alloc: block I/O on every foreground run for a record nobody reads.)
    let heard = report.is_some_and(|conn| {
        serde_json::to_string(&status).is_ok_and(|line| super::spawner::write_line(conn, line).is_ok())
    });
    // Only now the container's mounts go (see `hold_mount_namespace`).
    drop(mount_ns);
    super::overlay::remove_stale_work(&plan.rootfs);
    if heard {
        return status.code;
    }
    match write_status(&plan.status_path, &status) {
        // A caller that heard the outcome may remove its dir at once (a build's or a shell's
        // temporary one): nothing is left to record it in, and nothing is lost.
        Err(e) if reporting && e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            eprintln!("vrd init: failed to record the exit status in {}: {e}", plan.status_path.display())
        }
        Ok(()) => {}
    }
    status.code
}

/// Makes `stdio` (stdin, stdout, stderr, in that order) this process's fds 0, 1 and 2.
pub(super) fn take_stdio(stdio: [OwnedFd; 3]) -> Result<(), String> {
    let [stdin, stdout, stderr] = stdio;
    nix::unistd::dup2_stdin(&stdin).map_err(|e| e.to_string())?;
    nix::unistd::dup2_stdout(&stdout).map_err(|e| e.to_string())?;
    nix::unistd::dup2_stderr(&stderr).map_err(|e| e.to_string())
}

/// Forks; the parent prints the child's pid and returns `false`, the child (the launcher that goes
/// on) returns `true` in a session of its own with stdio on /dev/null.
pub(super) fn detach_from_caller() -> Result<bool, String> {
    match sys::fork_single_threaded().map_err(|e| e.to_string())? {
        ForkResult::Parent { child } => {
            println!("{child}");
            Ok(false)
        }
        ForkResult::Child => {
            new_session()?;
            Ok(true)
        }
    }
}

/// Leaves the caller's session and points stdio at /dev/null: nothing ties the launcher to the
/// process that started it any more.
pub(super) fn new_session() -> Result<(), String> {
    nix::unistd::setsid().map_err(|e| e.to_string())?;
    let null = fs::OpenOptions::new().read(true).write(true).open("/dev/null").map_err(|e| e.to_string())?;
    for dup in [nix::unistd::dup2_stdin, nix::unistd::dup2_stdout, nix::unistd::dup2_stderr] {
        dup(&null).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Where the launcher records the container's pid 1 as the host sees it.
pub fn app_pid_path(plan: &LaunchPlan) -> std::path::PathBuf {
    plan.status_path.with_file_name("app.pid")
}

fn write_status(path: &Path, status: &ExitStatus) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, serde_json::to_vec(status)?)?;
    fs::rename(tmp, path)
}

fn check_sources(plan: &LaunchPlan) -> Result<(), String> {
    for b in plan.volumes.iter().chain(&plan.host_files) {
        if !b.outside.exists() {
            return Err(format!(
                "volume source {} does not exist on this host: create it, or fix `volumes` in proc.yaml",
                b.outside.display()
            ));
        }
    }
    Ok(())
}

/// The launcher's ends of the pipes and sockets it shares with the container.
struct LauncherIo {
    go: OwnedFd,
    errors: OwnedFd,
    output: Option<(OwnedFd, OwnedFd)>,
    console: Option<OwnedFd>,
}

fn make_io(plan: &LaunchPlan) -> Result<(LauncherIo, ChildIo), String> {
    let pipe = || pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("failed to create a pipe: {e}"));
    let (go_r, go_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (mut ours, mut theirs) = (
        LauncherIo { go: go_w, errors: err_r, output: None, console: None },
        ChildIo { go: go_r, errors: err_w, output: None, console: None, kept_ns: None, net_ns: None },
    );
    match plan.stdio {
        StdioPlan::Pipes { .. } => {
            let (out_r, out_w) = pipe()?;
            let (e_r, e_w) = pipe()?;
            ours.output = Some((out_r, e_r));
            theirs.output = Some((out_w, e_w));
        }
        StdioPlan::Tty => {
            let (a, b) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
                .map_err(|e| format!("failed to create a socket pair: {e}"))?;
            ours.console = Some(a);
            theirs.console = Some(b);
        }
    }
    Ok((ours, theirs))
}

fn launch(plan: &LaunchPlan, write_app_pid: bool, mount_ns: &mut Option<File>) -> Result<ExitStatus, String> {
    check_sources(plan)?;
    let kept_ns = match plan.rootfs.keep_mounted {
        true => {
            let fresh = super::overlay::ensure_kept_root(&plan.rootfs)?;
            Some(super::kept_ns::ensure(&plan.rootfs, fresh)?)
        }
        false => None,
    };
    let network = plan.network.as_ref().map(network::ensure).transpose()?;
    // Listening before the container starts: a port the host already uses fails the start.
    let published = match (&network, plan.network.as_ref().and_then(|p| p.publish)) {
        (Some(attached), Some(port)) => {
            Some((network::publish::listen(port)?, SocketAddrV4::new(attached.address, port)))
        }
        _ => None,
    };
    let root = CgroupRoot::detect(&plan.cgroup.root).map_err(|e| e.to_string())?;
    let (ours, mut theirs) = make_io(plan)?;
    theirs.kept_ns = kept_ns;
    theirs.net_ns = network.map(|attached| attached.netns.into());
    // Blocked since the start (run_plan_with); pending ones are read from the signalfd.
    let blocked = hold_forwarded_signals()?;
    let signals = SignalFd::with_flags(&blocked, SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("failed to create a signalfd: {e}"))?;
    // Only children enter the new pid namespace: the launcher stays on the host's side of it.
    unshare(CloneFlags::CLONE_NEWPID).map_err(|e| format!("failed to create a pid namespace: {e}"))?;
    match sys::fork_single_threaded().map_err(|e| format!("failed to fork: {e}"))? {
        ForkResult::Child => {
            drop(ours);
            drop(signals);
            child::run(plan, theirs)
        }
        ForkResult::Parent { child } => {
            drop(theirs);
            // The cgroup is made while the child mounts its root; the child waits for "go" (after
            // the cgroup) before anything in it can fork or exec.
            let cgroup = match ProcCgroup::create(&root, &plan.cgroup.name, &plan.cgroup.limits) {
                Ok(cgroup) => cgroup,
                Err(e) => {
                    let _ = kill(child, Signal::SIGKILL);
                    let _ = waitpid(child, None);
                    return Err(e.to_string());
                }
            };
            let started = Started { write_app_pid, published };
            let result = supervise(plan, &cgroup, ours, &signals, child, started, mount_ns);
            // The container's tasks died with its pid 1, so the cgroup is normally empty by now.
            if !cgroup.remove_if_empty() {
                if let Err(e) = cgroup.destroy() {
                    eprintln!("vrd init: {}: {e}", plan.name);
                }
            }
            result
        }
    }
}

/// What the launcher does once the container runs: note its pid (supervised procs), and relay
/// its published port.
struct Started {
    write_app_pid: bool,
    published: Option<(std::net::TcpListener, SocketAddrV4)>,
}

fn supervise(
    plan: &LaunchPlan,
    cgroup: &ProcCgroup,
    io: LauncherIo,
    signals: &SignalFd,
    child: Pid,
    started_as: Started,
    mount_ns: &mut Option<File>,
) -> Result<ExitStatus, String> {
    let started = cgroup.add_pid(child.as_raw()).map_err(|e| e.to_string()).and_then(|_| {
        File::from(io.go).write_all(b"g").map_err(|e| format!("failed to start the container: {e}"))
    });
    let mut errors = File::from(io.errors);
    if let Err(e) = started {
        let _ = kill(child, Signal::SIGKILL);
        let _ = waitpid(child, None);
        // A child that failed before waiting for "go" closed its end (so the write above broke)
        // and said why on the errors pipe: that is the cause, not the broken pipe.
        let mut message = String::new();
        let _ = errors.read_to_string(&mut message);
        return Err(if message.is_empty() { e } else { message });
    }
    let mut message = String::new();
    let _ = errors.read_to_string(&mut message);
    if !message.is_empty() {
        let _ = waitpid(child, None);
        return Err(message);
    }
    *mount_ns = hold_mount_namespace(child);
    if started_as.write_app_pid {
        let _ = fs::write(app_pid_path(plan), child.to_string());
    }
    // A thread only now: the launcher forks nothing after the container.
    let _published = match started_as.published {
        None => None,
        Some((listener, target)) => {
            match leave_child_pid_namespace().and_then(|_| network::publish::start(listener, target)) {
                Ok(published) => Some(published),
                Err(e) => {
                    let _ = kill(child, Signal::SIGKILL);
                    let _ = waitpid(child, None);
                    return Err(e);
                }
            }
        }
    };
    let mut fwd = Forwarder {
        signals,
        cgroup,
        child,
        grace: Duration::from_secs(plan.stop_grace_secs),
        deadline: None,
    };
    // From here the launcher only copies output and forwards signals, for as long as the proc
    // lives (one launcher per proc): the heap setup freed goes back to the kernel.
    sys::release_free_heap();
    match (&plan.stdio, io.output, io.console) {
        (StdioPlan::Pipes { log }, Some((out, err)), _) => {
            pump_output(log.as_deref(), plan.log_rotation, out, err, &mut fwd)?
        }
        (StdioPlan::Tty, _, Some(console)) => proxy_terminal(&console, &mut fwd)?,
        _ => return Err("launch plan and pipes disagree".into()),
    }
    let status = wait_for(child)?;
    let oom_killed = cgroup.oom_kills().unwrap_or(0) > 0;
    if let (true, StdioPlan::Pipes { log: Some(log) }) = (oom_killed, &plan.stdio) {
        // The app never learns why it died; its log is where its operator looks first.
        if let Ok(mut writer) = LogWriter::open(log, plan.log_rotation) {
            let line = format!(
                "the kernel's OOM killer killed a process of this proc: it reached its memory limit \
                 (the container ended with status {})",
                status.code
            );
            writer.write_lines("vr", line.as_bytes());
        }
    }
    Ok(ExitStatus { oom_killed, ..status })
}

/// Points the launcher's future children back at its own pid namespace. After unshare(NEWPID)
/// the kernel refuses to make threads (EINVAL), since a thread must share its process's pid
/// namespace; the container is forked, so the launcher needs the new one no more.
pub(super) fn leave_child_pid_namespace() -> Result<(), String> {
    let own =
        File::open("/proc/self/ns/pid").map_err(|e| format!("failed to open /proc/self/ns/pid: {e}"))?;
    nix::sched::setns(own, CloneFlags::CLONE_NEWPID)
        .map_err(|e| format!("failed to return to the launcher's pid namespace: {e}"))
}

/// Opens the container's mount namespace (the app has exec'd, so the child unshared it long ago),
/// which keeps it alive past the container's last process. Without this the namespace's mounts
/// are unmounted inside that process's exit, which waits for an expedited RCU grace period
/// (0.1-0.5 ms measured here) before the launcher hears of the exit; held, they go when the
/// launcher drops the file after reporting. `None` if the app is already gone.
fn hold_mount_namespace(child: Pid) -> Option<File> {
    File::open(format!("/proc/{child}/ns/mnt")).ok()
}

fn wait_for(child: Pid) -> Result<ExitStatus, String> {
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => {
                return Ok(ExitStatus {
                    code,
                    signal: None,
                    oom_killed: false,
                    setup_failed: false,
                    error: None,
                })
            }
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                return Ok(ExitStatus {
                    code: 128 + sig as i32,
                    signal: Some(sig as i32),
                    oom_killed: false,
                    setup_failed: false,
                    error: None,
                })
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("failed to wait for the container: {e}")),
        }
    }
}

/// Passes signals on to the container's pid 1. A pid 1 without a handler ignores SIGTERM, so a
/// terminating signal also starts the stop grace period, after which pid 1 (and with it the whole
/// pid namespace) is SIGKILLed, as `docker stop` does.
struct Forwarder<'a> {
    signals: &'a SignalFd,
    cgroup: &'a ProcCgroup,
    child: Pid,
    grace: Duration,
    deadline: Option<Instant>,
}

impl Forwarder<'_> {
    fn on_signal(&mut self) {
        let Ok(Some(info)) = self.signals.read_signal() else { return };
        let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else { return };
        if !matches!(sig, Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP | Signal::SIGQUIT) {
            let _ = kill(self.child, sig);
            return;
        }
        // A stop reaches every process of the container, as Heroku does it, not just pid 1.
        if self.cgroup.signal_all(sig).is_err() {
            let _ = kill(self.child, sig);
        }
        if default_action_applies(self.child, sig) {
            // Any other process would have died of this signal; pid 1 is only immune to it.
            let _ = kill(self.child, Signal::SIGKILL);
        } else if self.deadline.is_none() {
            self.deadline = Some(Instant::now() + self.grace);
        }
    }

    /// How long poll may sleep: until the grace period ends, or `idle`.
    fn timeout(&self, idle: Option<Duration>) -> PollTimeout {
        let left = self.deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match left.into_iter().chain(idle).min() {
            None => PollTimeout::NONE,
            Some(d) => {
                PollTimeout::try_from(d.as_millis().min(60_000) as i32 + 1).unwrap_or(PollTimeout::MAX)
            }
        }
    }

    fn enforce_deadline(&mut self) {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = kill(self.child, Signal::SIGKILL);
            self.deadline = None;
        }
    }
}

/// Whether `pid` neither catches nor ignores `sig` (its /proc status masks SigCgt and SigIgn),
/// so that the signal's default action (here: terminate) would apply to it were it not pid 1.
fn default_action_applies(pid: Pid, sig: Signal) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else { return false };
    let mask = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(u64::MAX)
    };
    let bit = 1u64 << (sig as i32 - 1);
    (mask("SigCgt:") | mask("SigIgn:")) & bit == 0
}

/// Copies both output pipes until the container has closed them, forwarding signals meanwhile.
fn pump_output(
    log: Option<&Path>,
    rotation: Rotation,
    out: OwnedFd,
    err: OwnedFd,
    fwd: &mut Forwarder<'_>,
) -> Result<(), String> {
    let mut log = match log {
        Some(path) => Some(LogWriter::open(path, rotation)?),
        None => None,
    };
    let mut streams = [Some(Stream::new(out, "out")), Some(Stream::new(err, "err"))];
    // A launcher lives as long as its proc, one per proc: a small buffer keeps it cheap (a pipe
    // holds 64 KiB, so a busy app just takes a few more reads).
    let mut buf = vec![0u8; PUMP_BUFFER];
    while streams.iter().any(Option::is_some) {
        let fds: Vec<BorrowedFd<'_>> = streams.iter().flatten().map(|s| s.fd.as_fd()).collect();
        let mut polls: Vec<PollFd<'_>> = fds.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)).collect();
        polls.push(PollFd::new(fwd.signals.as_fd(), PollFlags::POLLIN));
        let timeout = fwd.timeout(None);
        match poll(&mut polls, timeout) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("failed to poll the container's output: {e}")),
            Ok(_) => {}
        }
        let ready: Vec<bool> = polls.iter().map(|p| p.revents().is_some_and(|r| !r.is_empty())).collect();
        drop(polls);
        if ready[ready.len() - 1] {
            fwd.on_signal();
        }
        fwd.enforce_deadline();
        let mut index = 0;
        for slot in streams.iter_mut() {
            let Some(stream) = slot else { continue };
            let is_ready = ready[index];
            index += 1;
            if is_ready && !stream.copy_once(&mut buf, log.as_mut()) {
                *slot = None;
            }
        }
    }
    Ok(())
}

/// One output pipe of the container.
struct Stream {
    fd: OwnedFd,
    name: &'static str,
    partial: Vec<u8>,
}

impl Stream {
    fn new(fd: OwnedFd, name: &'static str) -> Stream {
        Stream { fd, name, partial: Vec::new() }
    }

    /// Reads once; returns false at end of stream.
    fn copy_once(&mut self, buf: &mut [u8], log: Option<&mut LogWriter>) -> bool {
        let n = match nix::unistd::read(&self.fd, buf) {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        // Our own stdout/stderr may be a user's terminal that went away: keep logging regardless.
        // stdout is line-buffered: flushed at once, or output without a final newline (`printf
        // v1`) would sit in the buffer until the launcher exits, and be lost when it exits hard.
        let _ = if self.name == "out" {
            io::stdout().write_all(chunk).and_then(|()| io::stdout().flush())
        } else {
            io::stderr().write_all(chunk)
        };
        if let Some(log) = log {
            self.partial.extend_from_slice(chunk);
            let end = if n == 0 {
                self.partial.len()
            } else {
                self.partial.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
            };
            let complete: Vec<u8> = self.partial.drain(..end).collect();
            log.write_lines(self.name, &complete);
        }
        n > 0
    }
}

/// Proxies the user's terminal (our stdin/stdout) to the container's pty until the pty closes.
fn proxy_terminal(console: &OwnedFd, fwd: &mut Forwarder<'_>) -> Result<(), String> {
    let master =
        sys::recv_fds(console, 1).map_err(|e| format!("failed to receive the container's terminal: {e}"))?;
    let master = master.into_iter().next().ok_or("the container sent no terminal")?;
    let stdin = io::stdin();
    let mut stdin_open = true;
    let mut size = None;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        sync_window_size(stdin.as_fd(), master.as_fd(), &mut size);
        let mut polls = vec![
            PollFd::new(master.as_fd(), PollFlags::POLLIN),
            PollFd::new(fwd.signals.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            polls.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        let timeout = fwd.timeout(Some(Duration::from_millis(250)));
        match poll(&mut polls, timeout) {
            Err(nix::errno::Errno::EINTR) | Ok(0) => continue,
            Err(e) => return Err(format!("failed to poll the terminal: {e}")),
            Ok(_) => {}
        }
        let ready: Vec<bool> = polls.iter().map(|p| p.revents().is_some_and(|r| !r.is_empty())).collect();
        drop(polls);
        if ready[1] {
            fwd.on_signal();
        }
        fwd.enforce_deadline();
        if ready[0] {
            match nix::unistd::read(&master, &mut buf) {
                Ok(0) | Err(_) => return Ok(()), // EIO: every holder of the pty is gone.
                Ok(n) => {
                    let _ = io::stdout().write_all(&buf[..n]).and_then(|_| io::stdout().flush());
                }
            }
        }
        if ready.get(2) == Some(&true) {
            match nix::unistd::read(stdin.as_fd(), &mut buf) {
                Ok(0) | Err(_) => stdin_open = false, // The user's input closed; the shell keeps running.
                Ok(n) => {
                    let _ = nix::unistd::write(&master, &buf[..n]);
                }
            }
        }
    }
}

/// Copies the user's terminal size to the container's pty when it changed (polled: the user's
/// SIGWINCH goes to the client, not to us).
fn sync_window_size(user: BorrowedFd<'_>, pty: BorrowedFd<'_>, last: &mut Option<sys::WindowSize>) {
    let current = sys::window_size(user);
    if let Some(size) = current.filter(|_| current != *last) {
        *last = current;
        let _ = sys::set_window_size(pty, size);
    }
}
