//! Spare launchers: an attached launcher (`vr runner run`, a shell, a build) whose container has
//! ended offers itself to the spawner for the next attached request, instead of exiting.
//!
//! Why: a launcher forked from the spawner starts with none of the code it runs mapped (fork
//! copies no page tables of file-backed memory) and copies every page of the spawner's heap and
//! stack it writes. About 120 page faults, a quarter of a millisecond on a VM, before it can fork
//! the container; a launcher that has run a container has all of that in place. A spare costs
//! its private pages while it waits (460 kB measured, most of it the heap the jobs grew); it
//! waits at most [`SPARE_IDLE`], and the spawner keeps at most [`MAX_SPARES`].
//!
//! Who may do what: only the spawner sends a spare work, on the connection the spare opened to
//! the spawner's socket (mode 0600, root's). A spare holds nothing of its last job: its stdio is
//! /dev/null, every other fd is closed, signals that came after its container ended are dropped,
//! and it is back in its own pid namespace. A launcher that made a thread (a published port's
//! relay) never becomes a spare: it could no longer fork safely.
//!
//! Only the spawner ends a spare's wait (by closing the connection, or with work), so a request
//! can never reach a spare that has just given up.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::sys;
use crate::sys::fdstream::send_with_fds;

/// How long a spare waits for work before the spawner lets it go.
pub const SPARE_IDLE: Duration = Duration::from_secs(30);

/// Spares the spawner keeps at once: one per foreground start that may overlap another.
pub const MAX_SPARES: usize = 2;

/// The line a launcher sends the spawner to offer itself.
pub const OFFER: &str = "spare";

/// An attached request handed to a spare: the plan, the caller's stdio and the connection the
/// launcher answers on (vrd's, as if the spawner had forked it).
pub struct Job {
    pub plan: PathBuf,
    pub stdio: [OwnedFd; 3],
    pub conn: UnixStream,
}

/// The spawner's spares, newest last (the newest has run most recently: its pages are warm).
#[derive(Default)]
pub struct Spares {
    waiting: Vec<(UnixStream, Instant)>,
}

impl Spares {
    /// Keeps `conn` (a launcher that offered itself at `now`), unless there are enough: dropping
    /// the connection lets that launcher exit.
    pub fn offer(&mut self, conn: UnixStream, now: Instant) {
        if self.waiting.len() < MAX_SPARES {
            self.waiting.push((conn, now));
        }
    }

    /// Hands `job` to a spare; gives it back when none took it (none waiting, or every one
    /// waiting had died), for the caller to fork a launcher.
    pub fn hand_over(&mut self, job: Job) -> Result<(), Job> {
        let line = super::spawner::attach_line(&job.plan);
        while let Some((spare, _)) = self.waiting.pop() {
            let [a, b, c] = &job.stdio;
            let fds = [a.as_fd(), b.as_fd(), c.as_fd(), job.conn.as_fd()];
            // One short message on a connection nothing else writes to: it goes whole or not at
            // all; a spare that died answers EPIPE, and the next one is tried.
            if send_with_fds(spare.as_fd(), line.as_bytes(), &fds).is_ok_and(|n| n == line.len()) {
                return Ok(());
            }
        }
        Err(job)
    }

    /// Lets go of the spares that have waited [`SPARE_IDLE`] by `now`.
    pub fn expire(&mut self, now: Instant) {
        self.waiting.retain(|(_, since)| now.duration_since(*since) < SPARE_IDLE);
    }

    /// How long until the next spare expires, if any waits.
    pub fn next_expiry(&self, now: Instant) -> Option<Duration> {
        self.waiting.iter().map(|(_, since)| (*since + SPARE_IDLE).saturating_duration_since(now)).min()
    }

    /// The raw fds of the waiting spares' connections, which a forked launcher must close: a copy
    /// kept open would hide from a spare that the spawner let it go.
    pub fn raw_fds(&self) -> impl Iterator<Item = i32> + '_ {
        self.waiting.iter().map(|(conn, _)| conn.as_raw_fd())
    }
}

/// In a launcher whose attached job is done: clears what the job left and waits on the spawner
/// at `socket` for the next one. `None` when the launcher should exit instead (it has a thread,
/// its state could not be cleared, the spawner let it go or is gone, or a stop signal came).
pub fn wait_for_job(socket: &Path) -> Option<Job> {
    if !sys::is_single_threaded() {
        return None;
    }
    clear_last_job().ok()?;
    // The default seccomp program, compiled while nothing waits: every container forked from here
    // inherits it instead of compiling it on its way to exec (0.055 ms; ~6 kB of this heap).
    let _ = sys::seccomp::default_filter();
    // Signals stay blocked (as for a job); read here, one sent to a waiting spare ends it.
    let blocked = super::launcher::hold_forwarded_signals().ok()?;
    let signals = SignalFd::with_flags(&blocked, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).ok()?;
    // Sent for the last job after its container had ended: they must not reach the next one.
    drain(&signals);
    let _ = nix::sys::prctl::set_name(c"vrd-spare");
    let mut conn = UnixStream::connect(socket).ok()?;
    super::spawner::write_line(&mut conn, OFFER).ok()?;
    let mut polls =
        [PollFd::new(conn.as_fd(), PollFlags::POLLIN), PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
    loop {
        match poll(&mut polls, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
            Ok(_) => break,
        }
    }
    if polls[1].revents().is_some_and(|r| !r.is_empty()) {
        return None;
    }
    let (line, fds) = super::spawner::read_line_with_fds(&conn).ok()?;
    let plan = line.strip_prefix("attach ")?;
    let [stdin, stdout, stderr, caller] = <[OwnedFd; 4]>::try_from(fds).ok()?;
    // Whoever signals the new job learns its pid from the launcher first: nothing pending is its.
    drain(&signals);
    let _ = nix::sys::prctl::set_name(c"vrd-init");
    Some(Job { plan: PathBuf::from(plan), stdio: [stdin, stdout, stderr], conn: UnixStream::from(caller) })
}

/// Reads every pending signal of `signals` (non-blocking), so none is delivered later.
fn drain(signals: &SignalFd) {
    while let Ok(Some(_)) = signals.read_signal() {}
}

/// Lets go of everything the last job held: the caller's stdio (or `vr runner run | cat` would
/// not end), any other fd, and the container's dead pid namespace (the next container needs a
/// new one).
fn clear_last_job() -> Result<(), String> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("failed to open /dev/null: {e}"))?;
    for dup in [nix::unistd::dup2_stdin, nix::unistd::dup2_stdout, nix::unistd::dup2_stderr] {
        dup(&null).map_err(|e| e.to_string())?;
    }
    drop(null);
    // Nothing of the job is left that owns an fd; what did not close is closed here.
    sys::close_from(3).map_err(|e| format!("failed to close the last job's fds: {e}"))?;
    super::launcher::leave_child_pid_namespace()
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    fn job() -> (Job, [UnixStream; 2]) {
        let (conn, vrd) = UnixStream::pair().unwrap();
        let (out, reader) = UnixStream::pair().unwrap();
        let stdio =
            [OwnedFd::from(out.try_clone().unwrap()), OwnedFd::from(out.try_clone().unwrap()), out.into()];
        (Job { plan: PathBuf::from("/data/procs/p/launch.json"), stdio, conn }, [vrd, reader])
    }

    #[test]
    fn the_newest_spare_gets_the_job_with_the_callers_fds() {
        let now = Instant::now();
        let mut spares = Spares::default();
        let (old, _old_end) = UnixStream::pair().unwrap();
        let (new, new_end) = UnixStream::pair().unwrap();
        spares.offer(old, now);
        spares.offer(new, now + Duration::from_secs(1));
        let (job, [mut vrd, _]) = job();
        assert!(spares.hand_over(job).is_ok());
        let (line, fds) = crate::host::container::spawner::read_line_with_fds(&new_end).unwrap();
        assert_eq!(line, "attach /data/procs/p/launch.json");
        assert_eq!(fds.len(), 4);
        // The fourth is the caller's connection: what the spare writes there, vrd reads.
        UnixStream::from(fds.into_iter().nth(3).unwrap()).write_all(b"42\n").unwrap();
        let mut heard = [0u8; 3];
        vrd.read_exact(&mut heard).unwrap();
        assert_eq!(&heard, b"42\n");
        assert_eq!(spares.waiting.len(), 1, "the older spare still waits");
    }

    #[test]
    fn a_dead_spare_is_skipped_and_without_spares_the_job_comes_back() {
        let now = Instant::now();
        let mut spares = Spares::default();
        let (dead, dead_end) = UnixStream::pair().unwrap();
        drop(dead_end);
        spares.offer(dead, now);
        let (job, _ends) = job();
        let Err(job) = spares.hand_over(job) else { panic!("a dead spare cannot take a job") };
        assert_eq!(job.plan, Path::new("/data/procs/p/launch.json"));
        assert!(spares.waiting.is_empty());
    }

    #[test]
    fn spares_are_bounded_and_let_go_after_their_idle_time() {
        let now = Instant::now();
        let mut spares = Spares::default();
        let mut ends = Vec::new();
        for i in 0..MAX_SPARES + 1 {
            let (conn, end) = UnixStream::pair().unwrap();
            spares.offer(conn, now + Duration::from_secs(i as u64));
            ends.push(end);
        }
        assert_eq!(spares.waiting.len(), MAX_SPARES);
        // The one turned away reads end of file: it exits.
        let mut rest = Vec::new();
        assert_eq!(ends[MAX_SPARES].read_to_end(&mut rest).unwrap(), 0);
        assert_eq!(spares.next_expiry(now), Some(SPARE_IDLE));
        spares.expire(now + SPARE_IDLE);
        assert_eq!(spares.waiting.len(), MAX_SPARES - 1, "the first spare waited its idle time");
        assert_eq!(ends[0].read_to_end(&mut rest).unwrap(), 0);
        spares.expire(now + SPARE_IDLE * 2);
        assert!(spares.waiting.is_empty());
        assert_eq!(spares.next_expiry(now), None);
    }
}
