//! The spawner (`vrd spawner --socket PATH`): one small single-threaded process per vrd that forks
//! the launchers of supervised procs.
//!
//! A launcher exec'd from the static-pie vrd binary relocates its data at start and so owns a
//! private copy of it (about 280 kB); a launcher forked from the spawner shares those pages, and
//! most of its heap, with the spawner and its siblings. Each request is one line on a Unix
//! socket, the plan's path; the spawner forks twice (so the launcher's parent is init, as with
//! `vrd init --detach`), and the answer is the launcher's pid. The spawner dies with vrd
//! (parent-death signal); launchers do not, and the next vrd starts a new spawner.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::wait::waitpid;
use nix::unistd::ForkResult;

use super::launcher::{new_session, run_plan};
use crate::sys;

/// Entry point of `vrd spawner --socket PATH`; returns the exit code.
pub fn main(socket: &Path) -> i32 {
    let _ = nix::sys::prctl::set_name(c"vrd-spawner");
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
    for conn in listener.incoming().flatten() {
        if let Err(e) = serve(&listener, conn) {
            eprintln!("vrd spawner: {e}");
        }
    }
    0
}

fn serve(listener: &UnixListener, conn: UnixStream) -> Result<(), String> {
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line).map_err(|e| format!("failed to read a request: {e}"))?;
    if line.trim().is_empty() {
        return Ok(()); // A caller checking that the spawner is up.
    }
    let plan = PathBuf::from(line.trim());
    match sys::fork_single_threaded().map_err(|e| format!("failed to fork: {e}"))? {
        ForkResult::Parent { child } => {
            drop(conn);
            waitpid(child, None).map_err(|e| format!("failed to reap a child: {e}"))?;
            Ok(())
        }
        ForkResult::Child => sys::exit_now(fork_launcher(listener, conn, &plan)),
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
                return 125;
            }
            sys::exit_now(run_plan(plan))
        }
        Err(e) => {
            let _ = writeln!(conn, "error: failed to fork the launcher: {e}");
            1
        }
    }
}

/// Asks the spawner at `socket` to start the launcher of `plan`; returns the launcher's pid.
pub fn request(socket: &Path, plan: &Path) -> Result<i32, String> {
    let mut conn = UnixStream::connect(socket)
        .map_err(|e| format!("failed to reach the spawner at {}: {e}", socket.display()))?;
    writeln!(conn, "{}", plan.display()).map_err(|e| format!("failed to ask the spawner: {e}"))?;
    let mut answer = String::new();
    BufReader::new(&conn)
        .read_line(&mut answer)
        .map_err(|e| format!("failed to hear from the spawner: {e}"))?;
    answer.trim().parse().map_err(|_| format!("the spawner could not start the launcher: {}", answer.trim()))
}
