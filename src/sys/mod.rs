//! The one home of `unsafe`: the few system calls nix does not wrap safely, each behind a safe,
//! I/O-safe signature (fds in as `BorrowedFd`/`AsFd`, out as `OwnedFd`; no raw integers cross).
//!
//! Everything here is small on purpose; the callers (the container launcher, the image unpacker,
//! the client's terminal handling) hold the logic.

pub mod beneath;
pub mod fdstream;
pub mod fs;
pub mod seccomp;
#[cfg(test)]
pub mod testing;

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::ForkResult;

/// Forks the calling process.
///
/// Only for processes that are single-threaded at the time of the call (the `vrd init` launcher,
/// which is a fresh exec of this binary): in a multi-threaded process the child could inherit held
/// locks. The daemon never calls this.
pub fn fork_single_threaded() -> nix::Result<ForkResult> {
    // SAFETY: callers are single-threaded processes (documented above), so the child owns every
    // lock and allocator state it inherits and may run arbitrary code until it execs or exits.
    unsafe { nix::unistd::fork() }
}

/// Ends the process at once, without running atexit handlers or flushing stdio buffers that the
/// parent shares; for a forked child whose exec failed.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(code) }
}

/// Marks every fd from `first` upwards close-on-exec, so nothing the launcher holds leaks into
/// the app (close_range(2), CLOSE_RANGE_CLOEXEC, Linux 5.11).
pub fn cloexec_from(first: u32) -> io::Result<()> {
    close_range_from(first, libc::CLOSE_RANGE_CLOEXEC)
}

/// Closes every fd from `first` upwards (close_range(2)). Only where nothing still owns one of
/// them (a spare launcher between jobs): an owner would later close a number reused since.
pub fn close_from(first: u32) -> io::Result<()> {
    close_range_from(first, 0)
}

fn close_range_from(first: u32, flags: std::ffi::c_uint) -> io::Result<()> {
    // SAFETY: close_range only closes or flags fds of this process; no memory is passed. Callers
    // (above) state when closing is sound for the fds' owners.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, flags) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether this process has one thread (its `Threads:` line in /proc/self/status): only then may
/// it fork and go on running Rust code in the child.
pub fn is_single_threaded() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| status.lines().find_map(|l| l.strip_prefix("Threads:")).map(|n| n.trim() == "1"))
        .unwrap_or(false)
}

/// Restores default dispositions for every catchable signal and unblocks them all. Rust's runtime
/// ignores SIGPIPE, and an ignored disposition survives exec: an app would never die of SIGPIPE.
pub fn reset_signals() -> nix::Result<()> {
    for signal in Signal::iterator() {
        if matches!(signal, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL involves no handler code, so no async-signal-safety concerns.
        unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) }?;
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
}

/// Whether the kernel reaps this process's children by itself (SIGCHLD ignored) instead of
/// leaving zombies for `wait`. The setting is inherited across fork: a forked child that waits for
/// its own children must switch it off again.
pub fn reap_children_automatically(on: bool) -> nix::Result<()> {
    let handler = if on { SigHandler::SigIgn } else { SigHandler::SigDfl };
    // SAFETY: SIG_IGN and SIG_DFL involve no handler code, so no async-signal-safety concerns.
    unsafe { nix::sys::signal::signal(Signal::SIGCHLD, handler) }.map(|_| ())
}

/// Unlocks a pty master opened from a devpts `ptmx` and opens its peer (the slave) directly by fd,
/// with TIOCGPTPEER (Linux 4.13), so no `/dev/pts/N` path is looked up in a mount namespace that
/// is about to change.
pub fn open_pty_peer(master: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, which points at a live local.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes the open flags by value and returns a new fd or -1.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes `tty` the controlling terminal of the calling session leader (TIOCSCTTY).
pub fn set_controlling_tty(tty: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument by value (0: do not steal from another session).
    if unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// Reads a terminal's window size; `None` when `fd` is not a terminal.
pub fn window_size(fd: BorrowedFd<'_>) -> Option<WindowSize> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one winsize through the pointer, which points at a live local.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (rc == 0).then_some(WindowSize { rows: ws.ws_row, cols: ws.ws_col })
}

/// Sets a terminal's window size (the kernel sends SIGWINCH to its foreground process group).
pub fn set_window_size(fd: BorrowedFd<'_>, size: WindowSize) -> io::Result<()> {
    let ws = libc::winsize { ws_row: size.rows, ws_col: size.cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize through the pointer, which points at a live local.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens `path` as if `root` were `/`: `..` and absolute symlinks cannot leave `root`
/// (openat2(2) with RESOLVE_IN_ROOT, Linux 5.6). For reading files inside images and builds.
pub fn open_in_root(root: &Path, path: &Path) -> io::Result<File> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    let root_dir = File::open(root)?;
    let rel = path.strip_prefix("/").unwrap_or(path);
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    Ok(File::from(openat2(&root_dir, rel, how)?))
}

/// The seals of a sealed copy: no write, no resize, no change of seals.
fn exe_seals() -> nix::fcntl::SealFlag {
    use nix::fcntl::SealFlag;
    SealFlag::F_SEAL_SEAL | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE
}

/// Whether `file` carries every seal of a sealed copy (a file that is no memfd has none).
fn is_sealed_copy(file: &File) -> bool {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    fcntl(file, FcntlArg::F_GET_SEALS)
        .is_ok_and(|seals| SealFlag::from_bits_truncate(seals).contains(exe_seals()))
}

/// Copies this process's executable into a sealed memfd, so the processes vrd starts run from a
/// copy that nothing can write: a container that makes the launcher re-run itself through
/// `/proc/self/exe` cannot reach the host's vrd binary (the CVE-2019-5736 class; runc's fix).
/// A process that already runs from such a copy ([`run_from_sealed_copy`]) gets that copy itself,
/// so that it and everything it starts share one copy of the code in memory.
pub fn sealed_copy_of_self() -> io::Result<OwnedFd> {
    use nix::fcntl::{fcntl, FcntlArg};
    let mut exe = File::open("/proc/self/exe")?;
    if is_sealed_copy(&exe) {
        return Ok(OwnedFd::from(exe));
    }
    let fd = memfd_create(c"vrd", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)?;
    let mut copy = File::from(fd);
    io::copy(&mut exe, &mut copy)?;
    fcntl(&copy, FcntlArg::F_ADD_SEALS(exe_seals()))?;
    Ok(OwnedFd::from(copy))
}

/// Re-executes this process, with the same arguments and environment, from a sealed copy of its
/// executable ([`sealed_copy_of_self`]), unless it already runs from one: returns `Ok` only then,
/// and does not return at all on success. For a single-threaded process, at its start.
///
/// The copy is in memory anyway (vrd's spawner and launchers run from it); a process that ran
/// from the file besides would keep a second copy of the code it touches, as page cache.
pub fn run_from_sealed_copy() -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    if is_sealed_copy(&File::open("/proc/self/exe")?) {
        return Ok(());
    }
    let copy = sealed_copy_of_self()?;
    let c_string =
        |bytes: &[u8]| CString::new(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let args = std::env::args_os().map(|a| c_string(a.as_bytes())).collect::<io::Result<Vec<_>>>()?;
    let env = std::env::vars_os()
        .map(|(k, v)| c_string(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect::<io::Result<Vec<_>>>()?;
    // The copy is close-on-exec: execveat(AT_EMPTY_PATH) runs it all the same, and the new image
    // finds it again through /proc/self/exe instead of inheriting a stray fd.
    let Err(errno) = nix::unistd::fexecve(&copy, &args, &env);
    Err(errno.into())
}

/// Sends `fds` over a connected Unix socket with SCM_RIGHTS, with one byte of payload.
pub fn send_fds(socket: &impl AsFd, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let payload = [io::IoSlice::new(b"F")];
    let cmsg = [ControlMessage::ScmRights(&raw)];
    sendmsg::<()>(socket.as_fd().as_raw_fd(), &payload, &cmsg, MsgFlags::empty(), None)?;
    Ok(())
}

/// Receives up to `max` fds sent with [`send_fds`]; they arrive close-on-exec.
pub fn recv_fds(socket: &impl AsFd, max: usize) -> io::Result<Vec<OwnedFd>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut byte = [0u8; 1];
    let mut iov = [io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 8]);
    let msg =
        recvmsg::<()>(socket.as_fd().as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            for fd in raw {
                // SAFETY: SCM_RIGHTS installed these fds in our table for us alone.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    if fds.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("peer sent {} fds, expected at most {max}", fds.len()),
        ));
    }
    Ok(fds)
}

/// A detached copy of the mount tree at `path` (open_tree(2) with OPEN_TREE_CLONE|AT_RECURSIVE,
/// Linux 5.2). The copy survives pivot_root and the detaching of the old root, so a host
/// directory can be attached inside a container root after the pivot with [`attach_tree`].
pub fn clone_tree(path: &Path) -> io::Result<OwnedFd> {
    open_tree(libc::AT_FDCWD, path, 0)
}

/// As [`clone_tree`], of the file or directory `fd` already names (an `O_PATH` fd resolved with
/// care, e.g. by [`beneath`]), so the tree cloned is the one that was checked.
pub fn clone_tree_of(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    open_tree(fd.as_raw_fd(), Path::new(""), libc::AT_EMPTY_PATH as libc::c_uint)
}

fn open_tree(dir: RawFd, path: &Path, extra: libc::c_uint) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let cpath = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint | extra;
    // SAFETY: the path is NUL-terminated and outlives the call; `dir` is AT_FDCWD or a descriptor
    // the caller borrows for the call; the kernel returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, dir, cpath.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Attaches a tree made by [`clone_tree`] at `target` (move_mount(2), Linux 5.2).
pub fn attach_tree(tree: BorrowedFd<'_>, target: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    let ctarget = std::ffi::CString::new(target.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: both strings are NUL-terminated and outlive the call; `tree` is a live borrowed fd.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            ctarget.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A pidfd for `pid` (pidfd_open(2), Linux 5.3): readable once the process has exited, whether or
/// not it is our child, and immune to pid reuse once opened.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags by value and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Registers an owned fd (a pidfd) with tokio's reactor for readiness.
pub fn async_fd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd is a valid open fd, and moving it into the AsyncFd means it stays open
    // and unchanged (OwnedFd::as_raw_fd always returns the same number) until the AsyncFd drops.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

/// Takes ownership of the sockets the service manager passed for socket activation
/// (sd_listen_fds(3): fds 3, 4, … when `LISTEN_PID` is this process and `LISTEN_FDS` counts them),
/// marked close-on-exec. Empty when the process was not socket-activated.
///
/// Only the first call in a process looks at the environment; later calls return no fds, so no fd
/// is ever owned twice and no fd reused since is touched.
pub fn take_listen_fds() -> io::Result<Vec<OwnedFd>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static TAKEN: AtomicBool = AtomicBool::new(false);
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(Vec::new());
    }
    let fds = sd_notify::listen_fds()?;
    Ok(fds
        // SAFETY: the service manager passed these fds to this very process (LISTEN_PID matched),
        // listen_fds just set FD_CLOEXEC on each (so each is open), and TAKEN makes this the one
        // place in the process that takes ownership of them.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect())
}

/// The slice vrd's own processes and threads ask for: the shortest the kernel grants (0.1 ms).
pub const SHORT_SLICE_NS: u64 = 100_000;

/// Asks the scheduler for `slice_ns`-long time slices for the calling thread (EEVDF custom slices,
/// Linux 6.12+; `0` restores the default). A task with a shorter slice gets an earlier deadline,
/// so on waking it preempts a CPU-bound task sooner instead of waiting out that task's slice.
/// A short slice is not inherited (reset on fork): threads and children that want it ask
/// themselves, and programs vrd starts (git, nginx, the app) get the default. Older kernels
/// ignore the request.
pub fn request_slice(slice_ns: u64) -> io::Result<()> {
    let size = std::mem::size_of::<libc::sched_attr>() as u32;
    // SAFETY: sched_attr is plain data; zeroed is a valid value for every field.
    let mut attr: libc::sched_attr = unsafe { std::mem::zeroed() };
    // SAFETY: `attr` is a live, writable sched_attr of `size` bytes for the kernel to fill.
    let rc =
        unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &mut attr as *mut libc::sched_attr, size, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if attr.sched_policy != libc::SCHED_OTHER as u32 {
        return Ok(()); // Real-time or batch scheduling chosen by the admin stays as it is.
    }
    attr.size = size;
    attr.sched_runtime = slice_ns;
    if slice_ns > 0 {
        attr.sched_flags |= libc::SCHED_FLAG_RESET_ON_FORK as u64;
    }
    // SAFETY: `attr` is a valid sched_attr of `size` bytes; the kernel only reads it.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const libc::sched_attr, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Keeps glibc's malloc to at most `arenas` arenas. By default every thread that allocates while
/// the others hold their arenas gets one more (up to 8 per CPU), and each keeps the memory freed in
/// it; a daemon whose threads mostly wait does better with one heap. Call it before any thread is
/// started. Returns whether glibc took the setting.
#[cfg(target_env = "gnu")]
pub fn limit_malloc_arenas(arenas: i32) -> bool {
    // SAFETY: mallopt only sets one of the allocator's tunables; no memory is passed.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
}

/// Other C libraries (musl: the `vr` client's) have no arenas to limit.
#[cfg(not(target_env = "gnu"))]
pub fn limit_malloc_arenas(_arenas: i32) -> bool {
    false
}

/// Gives the heap's free pages back to the kernel (malloc_trim(3)): for a long-lived process after
/// a start-up that freed most of what it allocated.
#[cfg(target_env = "gnu")]
pub fn release_free_heap() {
    // SAFETY: malloc_trim only returns pages that hold no allocation; no memory is passed.
    unsafe { libc::malloc_trim(0) };
}

/// musl (the `vr` client's C library) has no malloc_trim; its allocator unmaps freed memory itself.
#[cfg(not(target_env = "gnu"))]
pub fn release_free_heap() {}

/// Whether `path` is the root of a mount (statx's STATX_ATTR_MOUNT_ROOT, Linux 5.8+): true for a
/// bind mount of a directory onto itself too, which st_dev cannot tell.
pub fn is_mount_root(path: &Path) -> io::Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let cpath = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: statx is plain data; zeroed is a valid value.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: the path is NUL-terminated and `st` is a live, writable statx for the kernel to fill.
    let rc = unsafe { libc::statx(libc::AT_FDCWD, cpath.as_ptr(), libc::AT_SYMLINK_NOFOLLOW, 0, &mut st) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let known = st.stx_attributes_mask & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0;
    if !known {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "the kernel does not report mount roots"));
    }
    Ok(st.stx_attributes & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_memfd_with_every_seal_counts_as_a_sealed_copy() {
        use nix::fcntl::{fcntl, FcntlArg, SealFlag};
        let memfd = || {
            let fd = memfd_create(c"vrd-test", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING).unwrap();
            let mut file = File::from(fd);
            io::Write::write_all(&mut file, b"\x7fELF").unwrap();
            file
        };
        let sealed = memfd();
        fcntl(&sealed, FcntlArg::F_ADD_SEALS(exe_seals())).unwrap();
        assert!(is_sealed_copy(&sealed));
        let writable = memfd();
        fcntl(&writable, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW)).unwrap();
        assert!(!is_sealed_copy(&writable), "a memfd that can still be written is no sealed copy");
        let file = tempfile::tempfile().unwrap();
        assert!(!is_sealed_copy(&file), "a plain file has no seals");
    }
}
