//! The spawner (`vrd spawner --socket PATH`): one small single-threaded process per vrd that forks
//! launchers, so that no launcher pays for an exec of the static vrd binary.
//!
//! A launcher exec'd from the static-pie vrd binary relocates its data at start and so owns a
//! private copy of it (about 280 kB), and the exec and relocation take about a millisecond; a
//! launcher forked from the spawner shares those pages, and most of its heap, with the spawner and
//! its siblings, and starts at once. The spawner dies with vrd (parent-death signal); launchers do
//! not, and the next vrd starts a new spawner.
//!
//! Each request is one line on a Unix socket:
//! - `detach PLAN`: a supervised proc's launcher. The spawner forks twice (so the launcher's
//!   parent is init, as with `vrd init --detach`) and answers the launcher's pid; the launcher
//!   runs in a session of its own with stdio on /dev/null.
//! - `attach PLAN`, sent with three fds (SCM_RIGHTS): a foreground container (`vr runner run`, a
//!   shell, a build). The launcher, forked once (one process less on the way to the container),
//!   takes the fds as its stdin, stdout and stderr in a session of its own and keeps the
//!   connection: it writes its pid as the first line and, when the
//!   container has ended and its cgroup is gone, the [`ExitStatus`] as a JSON line. vrd answers
//!   its caller on that line, without waiting for the launcher's exit or reading status.json.

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::wait::waitpid;
use nix::unistd::ForkResult;

use super::launcher::{new_session, run_plan, run_plan_reporting, take_stdio};
use super::plan::{ExitStatus, SETUP_FAILED_CODE};
use crate::sys;
use crate::sys::fdstream::{recv_with_fds, send_with_fds};

/// The longest request line the spawner reads (a plan path with its tag).
const MAX_REQUEST: usize = 8192;

/// Entry point of `vrd spawner --socket PATH`; returns the exit code.
pub fn main(socket: &Path) -> i32 {
    let _ = nix::sys::prctl::set_name(c"vrd-spawner");
    let _ = sys::request_slice(sys::SHORT_SLICE_NS);
    // vrd starts a fresh spawner when it starts; an orphaned one would only hold old code.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    if nix::unistd::getppid().as_raw() == 1 {
        return 0;
    }
    let _ = std::fs::remove_file(socket);
    let listener = match UnixListener::bind(socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("vrd spawner: failed to listen on {}: {e}", socket.display());
            return 1;
        }
    };
    let _ = std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600));
    // Launchers and intermediate children are reaped by the kernel: the spawner never waits for
    // a foreground launcher, which lives as long as its container.
    if let Err(e) = sys::reap_children_automatically(true) {
        eprintln!("vrd spawner: failed to ignore SIGCHLD: {e}");
        return 1;
    }
    for conn in listener.incoming().flatten() {
        if let Err(e) = serve(&listener, conn) {
            eprintln!("vrd spawner: {e}");
        }
    }
    0
}

/// One request: what to start, and the stdio an attached launcher gets.
enum Request {
    Detach(PathBuf),
    Attach(PathBuf, [OwnedFd; 3]),
}

/// Reads one request line and the fds sent with it.
fn read_request(conn: &UnixStream) -> Result<Option<Request>, String> {
    let mut buf = vec![0u8; MAX_REQUEST];
    let (mut len, mut fds) = (0, Vec::new());
    while !buf[..len].contains(&b'\n') && len < buf.len() {
        let (n, more) = recv_with_fds(conn.as_fd(), &mut buf[len..])
            .map_err(|e| format!("failed to read a request: {e}"))?;
        fds.extend(more);
        if n == 0 {
            break;
        }
        len += n;
    }
    let line = String::from_utf8_lossy(&buf[..len]);
    let line = line.trim();
    if line.is_empty() {
        return Ok(None); // A caller checking that the spawner is up.
    }
    match line.split_once(' ') {
        Some(("detach", plan)) => Ok(Some(Request::Detach(PathBuf::from(plan)))),
        Some(("attach", plan)) => {
            let stdio = <[OwnedFd; 3]>::try_from(fds)
                .map_err(|fds| format!("an attach request came with {} fds, not 3", fds.len()))?;
            Ok(Some(Request::Attach(PathBuf::from(plan), stdio)))
        }
        _ => Err(format!("unknown request {line:?}")),
    }
}

fn serve(listener: &UnixListener, conn: UnixStream) -> Result<(), String> {
    match read_request(&conn)? {
        None => Ok(()),
        Some(Request::Attach(plan, stdio)) => fork_attached(listener, conn, &plan, stdio),
        Some(Request::Detach(plan)) => fork_detached(listener, conn, &plan),
    }
}

/// Forks the attached launcher once: it is the spawner's child, reaped by the kernel when it ends
/// (the spawner ignores SIGCHLD), and reparented to init should vrd and the spawner go first.
fn fork_attached(
    listener: &UnixListener,
    conn: UnixStream,
    plan: &Path,
    stdio: [OwnedFd; 3],
) -> Result<(), String> {
    match sys::fork_single_threaded().map_err(|e| format!("failed to fork: {e}"))? {
        ForkResult::Parent { .. } => Ok(()),
        ForkResult::Child => {
            // The launcher keeps nothing of the spawner's: not its socket.
            let _ = nix::unistd::close(listener.as_raw_fd());
            sys::exit_now(run_attached(plan, stdio, conn))
        }
    }
}

/// Forks twice for a supervised launcher, so that its parent is init from the start.
fn fork_detached(listener: &UnixListener, conn: UnixStream, plan: &Path) -> Result<(), String> {
    match sys::fork_single_threaded().map_err(|e| format!("failed to fork: {e}"))? {
        ForkResult::Parent { child } => {
            drop(conn);
            // With SIGCHLD ignored the kernel reaps the child: waitpid then reports ECHILD.
            match waitpid(child, None) {
                Ok(_) | Err(nix::errno::Errno::ECHILD) => Ok(()),
                Err(e) => Err(format!("failed to wait for a child: {e}")),
            }
        }
        ForkResult::Child => sys::exit_now(fork_launcher(listener, conn, plan)),
    }
}

/// In the intermediate child: forks the launcher, tells the caller its pid, and exits so the
/// launcher is reparented to init.
fn fork_launcher(listener: &UnixListener, mut conn: UnixStream, plan: &Path) -> i32 {
    match sys::fork_single_threaded() {
        Ok(ForkResult::Parent { child }) => {
            let _ = writeln!(conn, "{child}");
            0
        }
        Ok(ForkResult::Child) => {
            // The launcher keeps nothing of the spawner's: not its socket, not the request.
            let _ = nix::unistd::close(listener.as_raw_fd());
            drop(conn);
            if new_session().is_err() {
                return SETUP_FAILED_CODE;
            }
            sys::exit_now(run_plan(plan))
        }
        Err(e) => {
            let _ = writeln!(conn, "error: failed to fork the launcher: {e}");
            1
        }
    }
}

/// The attached launcher: the caller's stdio, its own session, its pid and then its outcome on
/// the connection.
fn run_attached(plan: &Path, stdio: [OwnedFd; 3], mut conn: UnixStream) -> i32 {
    if let Err(e) = nix::unistd::setsid().map_err(|e| e.to_string()).and_then(|_| take_stdio(stdio)) {
        let _ = writeln!(conn, "error: failed to take the caller's terminal: {e}");
        return SETUP_FAILED_CODE;
    }
    // Before the caller learns the pid, and so may signal it.
    if let Err(e) = super::launcher::hold_forwarded_signals() {
        let _ = writeln!(conn, "error: {e}");
        return SETUP_FAILED_CODE;
    }
    if writeln!(conn, "{}", std::process::id()).is_err() {
        return SETUP_FAILED_CODE;
    }
    run_plan_reporting(plan, &mut conn)
}

/// Asks the spawner at `socket` to start the detached launcher of `plan`; returns its pid.
pub fn request(socket: &Path, plan: &Path) -> Result<i32, String> {
    let mut conn = UnixStream::connect(socket)
        .map_err(|e| format!("failed to reach the spawner at {}: {e}", socket.display()))?;
    writeln!(conn, "detach {}", plan.display()).map_err(|e| format!("failed to ask the spawner: {e}"))?;
    let mut answer = String::new();
    BufReader::new(&conn)
        .read_line(&mut answer)
        .map_err(|e| format!("failed to hear from the spawner: {e}"))?;
    answer.trim().parse().map_err(|_| format!("the spawner could not start the launcher: {}", answer.trim()))
}

/// Asks the spawner at `socket` to start the launcher of `plan` with `stdio` (stdin, stdout,
/// stderr; the launcher gets copies). Returns the connection on which the launcher will answer
/// its pid ([`parse_pid`]) and then its report ([`parse_report`]), without waiting for either.
pub fn send_attached(socket: &Path, plan: &Path, stdio: [BorrowedFd<'_>; 3]) -> Result<UnixStream, String> {
    let conn = UnixStream::connect(socket)
        .map_err(|e| format!("failed to reach the spawner at {}: {e}", socket.display()))?;
    let line = format!("attach {}\n", plan.display());
    let sent = send_with_fds(conn.as_fd(), line.as_bytes(), &stdio)
        .map_err(|e| format!("failed to ask the spawner: {e}"))?;
    if sent != line.len() {
        return Err("failed to ask the spawner: the request was cut short".into());
    }
    Ok(conn)
}

/// The launcher's first line on an attached connection: its pid, or why it could not start.
pub fn parse_pid(answer: &str) -> Result<i32, String> {
    answer.trim().parse().map_err(|_| match answer.trim() {
        "" => "the spawner went away without starting the launcher".to_string(),
        other => format!("the spawner could not start the launcher: {other}"),
    })
}

/// The launcher's last line on an attached connection: how the container ended, or `None` when
/// the connection closed without one (the launcher was killed).
pub fn parse_report(line: &str) -> io::Result<Option<ExitStatus>> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(line).map(Some).map_err(io::Error::other)
}
