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
//!   Then it offers itself for the next `attach` (see [`super::spare`]).
//! - `spare`, from an attached launcher whose job is done: the spawner keeps the connection and
//!   sends the next `attach PLAN` and its fds (plus the caller's connection) on it, instead of
//!   forking; closing it lets the spare exit.

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::waitpid;
use nix::unistd::ForkResult;

use super::launcher::{new_session, run_plan, run_plan_reporting, take_stdio};
use super::plan::{ExitStatus, SETUP_FAILED_CODE};
use super::spare::{self, Job, Spares};
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
    let mut spares = Spares::default();
    loop {
        match wait_for_caller(&listener, &spares) {
            Ok(Some(conn)) => {
                if let Err(e) = serve(&listener, conn, socket, &mut spares) {
                    eprintln!("vrd spawner: {e}");
                }
            }
            Ok(None) => {}
            Err(e) => eprintln!("vrd spawner: {e}"),
        }
        spares.expire(Instant::now());
    }
}

/// The next connection to the spawner, or `None` when a spare's idle time ran out first.
fn wait_for_caller(listener: &UnixListener, spares: &Spares) -> Result<Option<UnixStream>, String> {
    let timeout = match spares.next_expiry(Instant::now()) {
        None => PollTimeout::NONE,
        Some(left) => {
            PollTimeout::try_from(left.as_millis().min(60_000) as i32 + 1).unwrap_or(PollTimeout::MAX)
        }
    };
    let mut polls = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    match poll(&mut polls, timeout) {
        Ok(0) | Err(nix::errno::Errno::EINTR) => Ok(None),
        Ok(_) => listener.accept().map(|(conn, _)| Some(conn)).map_err(|e| format!("failed to accept: {e}")),
        Err(e) => Err(format!("failed to wait for callers: {e}")),
    }
}

/// One request: what to start, and the stdio an attached launcher gets.
enum Request {
    Detach(PathBuf),
    Attach(PathBuf, [OwnedFd; 3]),
    /// An attached launcher whose job is done, offering itself for the next one (`spare`).
    Offer,
}

/// Reads one line (without its newline and surrounding space) and the fds sent with it.
pub(super) fn read_line_with_fds(conn: &UnixStream) -> Result<(String, Vec<OwnedFd>), String> {
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
    Ok((String::from_utf8_lossy(&buf[..len]).trim().to_string(), fds))
}

/// Reads one request line and the fds sent with it.
fn read_request(conn: &UnixStream) -> Result<Option<Request>, String> {
    let (line, fds) = read_line_with_fds(conn)?;
    if line.is_empty() {
        return Ok(None); // A caller checking that the spawner is up.
    }
    if line == spare::OFFER {
        return Ok(Some(Request::Offer));
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

fn serve(
    listener: &UnixListener,
    conn: UnixStream,
    socket: &Path,
    spares: &mut Spares,
) -> Result<(), String> {
    match read_request(&conn)? {
        None => Ok(()),
        Some(Request::Offer) => {
            spares.offer(conn, Instant::now());
            Ok(())
        }
        Some(Request::Attach(plan, stdio)) => match spares.hand_over(Job { plan, stdio, conn }) {
            Ok(()) => Ok(()),
            Err(job) => fork_attached(listener, spares, job, socket),
        },
        Some(Request::Detach(plan)) => fork_detached(listener, spares, conn, &plan),
    }
}

/// In a launcher just forked: closes the spawner's own fds (its socket, its spares' connections),
/// so the launcher holds nothing of the spawner's.
fn close_spawner_fds(listener: &UnixListener, spares: &Spares) {
    let _ = nix::unistd::close(listener.as_raw_fd());
    for fd in spares.raw_fds() {
        let _ = nix::unistd::close(fd);
    }
}

/// Forks the attached launcher once: it is the spawner's child, reaped by the kernel when it ends
/// (the spawner ignores SIGCHLD), and reparented to init should vrd and the spawner go first.
/// When its job is done it offers itself as a spare (`spare`), and runs jobs until it is let go.
fn fork_attached(listener: &UnixListener, spares: &Spares, job: Job, socket: &Path) -> Result<(), String> {
    match sys::fork_single_threaded().map_err(|e| format!("failed to fork: {e}"))? {
        ForkResult::Parent { .. } => Ok(()),
        ForkResult::Child => {
            close_spawner_fds(listener, spares);
            let mut job = job;
            loop {
                let code = run_attached(&job.plan, job.stdio, job.conn);
                match spare::wait_for_job(socket) {
                    Some(next) => job = next,
                    None => sys::exit_now(code),
                }
            }
        }
    }
}

/// Forks twice for a supervised launcher, so that its parent is init from the start.
fn fork_detached(
    listener: &UnixListener,
    spares: &Spares,
    conn: UnixStream,
    plan: &Path,
) -> Result<(), String> {
    match sys::fork_single_threaded().map_err(|e| format!("failed to fork: {e}"))? {
        ForkResult::Parent { child } => {
            drop(conn);
            // With SIGCHLD ignored the kernel reaps the child: waitpid then reports ECHILD.
            match waitpid(child, None) {
                Ok(_) | Err(nix::errno::Errno::ECHILD) => Ok(()),
                Err(e) => Err(format!("failed to wait for a child: {e}")),
            }
        }
        ForkResult::Child => {
            close_spawner_fds(listener, spares);
            sys::exit_now(fork_launcher(conn, plan))
        }
    }
}

/// In the intermediate child: forks the launcher, tells the caller its pid, and exits so the
/// launcher is reparented to init.
fn fork_launcher(mut conn: UnixStream, plan: &Path) -> i32 {
    match sys::fork_single_threaded() {
        Ok(ForkResult::Parent { child }) => {
            let _ = write_line(&mut conn, child);
            0
        }
        Ok(ForkResult::Child) => {
            // The launcher keeps nothing of the request.
            drop(conn);
            if new_session().is_err() {
                return SETUP_FAILED_CODE;
            }
            sys::exit_now(run_plan(plan))
        }
        Err(e) => {
            let _ = write_line(&mut conn, format_args!("error: failed to fork the launcher: {e}"));
            1
        }
    }
}

/// The attached launcher: the caller's stdio, its own session, its pid and then its outcome on
/// the connection.
fn run_attached(plan: &Path, stdio: [OwnedFd; 3], mut conn: UnixStream) -> i32 {
    if let Err(e) = own_session().and_then(|_| take_stdio(stdio)) {
        let _ = write_line(&mut conn, format_args!("error: failed to take the caller's terminal: {e}"));
        return SETUP_FAILED_CODE;
    }
    // Before the caller learns the pid, and so may signal it.
    if let Err(e) = super::launcher::hold_forwarded_signals() {
        let _ = write_line(&mut conn, format_args!("error: {e}"));
        return SETUP_FAILED_CODE;
    }
    if write_line(&mut conn, std::process::id()).is_err() {
        return SETUP_FAILED_CODE;
    }
    run_plan_reporting(plan, &mut conn)
}

/// Writes `line` and its newline in one write: the reader wakes once, for a whole line (a
/// `writeln!` on an unbuffered socket writes the pieces one by one).
pub(super) fn write_line(conn: &mut UnixStream, line: impl std::fmt::Display) -> io::Result<()> {
    conn.write_all(format!("{line}\n").as_bytes())
}

/// Puts the launcher in a session of its own; a spare already leads the one it made for its
/// first job (setsid would fail).
fn own_session() -> Result<(), String> {
    let me = nix::unistd::getpid();
    if nix::unistd::getsid(None).is_ok_and(|sid| sid == me) {
        return Ok(());
    }
    nix::unistd::setsid().map(drop).map_err(|e| e.to_string())
}

/// Asks the spawner at `socket` to start the detached launcher of `plan`; returns its pid.
pub fn request(socket: &Path, plan: &Path) -> Result<i32, String> {
    let mut conn = UnixStream::connect(socket)
        .map_err(|e| format!("failed to reach the spawner at {}: {e}", socket.display()))?;
    write_line(&mut conn, format_args!("detach {}", plan.display()))
        .map_err(|e| format!("failed to ask the spawner: {e}"))?;
    let mut answer = String::new();
    BufReader::new(&conn)
        .read_line(&mut answer)
        .map_err(|e| format!("failed to hear from the spawner: {e}"))?;
    answer.trim().parse().map_err(|_| format!("the spawner could not start the launcher: {}", answer.trim()))
}

/// The request for an attached launcher of `plan`, as vrd sends it to the spawner and the spawner
/// to a spare.
pub(super) fn attach_line(plan: &Path) -> String {
    format!("attach {}\n", plan.display())
}

/// Asks the spawner at `socket` to start the launcher of `plan` with `stdio` (stdin, stdout,
/// stderr; the launcher gets copies). Returns the connection on which the launcher will answer
/// its pid ([`parse_pid`]) and then its report ([`parse_report`]), without waiting for either.
pub fn send_attached(socket: &Path, plan: &Path, stdio: [BorrowedFd<'_>; 3]) -> Result<UnixStream, String> {
    let conn = UnixStream::connect(socket)
        .map_err(|e| format!("failed to reach the spawner at {}: {e}", socket.display()))?;
    let line = attach_line(plan);
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
