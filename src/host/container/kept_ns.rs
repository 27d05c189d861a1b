//! A proc's kept mount namespace: its kept root ([`super::overlay::ensure_kept_root`]) already
//! pivoted into, with the old root detached and the read-only /sys mounted, held by a bind mount
//! of its nsfs file at `<proc dir>/mntns` in vrd's mount namespace.
//!
//! Each run's container enters it and unshares a private copy ([`super::child`]), then mounts what
//! must be fresh per run ([`super::mounts::lasts`]): /proc (for its pid namespace) and its masks,
//! /dev, /dev/mqueue (for its ipc namespace), volumes and the host's resolver files. Copying the
//! host's mount table, pivot_root (which visits every process of the host) and detaching the old
//! root happen once per proc instead of once per run; the detach alone waits for an expedited RCU
//! grace period (0.1-0.5 ms here, more when the CPUs are busy).
//!
//! The namespace holds the root's overlay alive, so it is released first and always with the root
//! ([`release`], called by [`super::overlay::release_kept_root`]).

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{chdir, pipe2, pivot_root, ForkResult};

use super::mounts::{apply, lasting_steps};
use super::plan::Overlay;
use crate::sys;

/// The way a kept namespace is built ([`build`]), as a version: raise it when that changes. With
/// the [`lasting_steps`] themselves it makes the namespace's [`layout`], so a namespace built by
/// an older vrd is built again on its proc's next run rather than kept until its teardown.
const BUILD_METHOD: u32 = 1;

/// What a kept namespace built now is made of.
fn layout() -> String {
    format!("{BUILD_METHOD}\n{:?}\n", lasting_steps())
}

/// Where the namespace of the kept root mounted on `root` is bound: beside it.
pub fn path_of(root: &Path) -> PathBuf {
    root.with_file_name("mntns")
}

/// The [`layout`] a bound namespace was built with, beside it.
fn layout_path(root: &Path) -> PathBuf {
    root.with_file_name("mntns.layout")
}

/// Makes sure the kept namespace of `o` exists, building it when it does not, when the root was
/// just mounted (`fresh_root`) or when it was built to another layout; returns it opened, for
/// the container to enter. Run by the launcher (single-threaded, in vrd's mount namespace) before
/// it forks the container.
pub fn ensure(o: &Overlay, fresh_root: bool) -> Result<OwnedFd, String> {
    let path = path_of(&o.target);
    let wanted = layout();
    let current = || fs::read_to_string(layout_path(&o.target)).is_ok_and(|l| l == wanted);
    if fresh_root || !is_bound(&path) || !current() {
        release(&o.target)?;
        super::overlay::make_parent_private(o)?;
        build(o, &path)?;
        let layout = layout_path(&o.target);
        fs::write(&layout, &wanted).map_err(|e| format!("failed to write {}: {e}", layout.display()))?;
    }
    File::open(&path).map(OwnedFd::from).map_err(|e| format!("failed to open {}: {e}", path.display()))
}

/// Unbinds the namespace of the kept root on `root`, if bound; its mounts go once no container
/// uses them.
pub fn release(root: &Path) -> Result<(), String> {
    let path = path_of(root);
    while is_bound(&path) {
        umount2(&path, MntFlags::MNT_DETACH)
            .map_err(|e| format!("failed to unmount {}: {e}", path.display()))?;
    }
    Ok(())
}

fn is_bound(path: &Path) -> bool {
    sys::fs::is_nsfs_bound(path)
}

/// Forks a helper that makes the namespace and reports on a pipe, binds the helper's namespace at
/// `path`, then ends the helper. The report is one line, not EOF, and the helper is ended by a
/// signal, not by closing a pipe: nothing here waits on a pipe end another fork may have copied.
fn build(o: &Overlay, path: &Path) -> Result<(), String> {
    let (ready_r, ready_w) =
        pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("failed to create a pipe: {e}"))?;
    match sys::fork_single_threaded().map_err(|e| format!("failed to fork: {e}"))? {
        ForkResult::Child => {
            drop(ready_r);
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            let line = match make_namespace(&o.target) {
                Ok(()) => "+\n".to_string(),
                Err(message) => format!("-{}\n", message.replace('\n', " ")),
            };
            let _ = File::from(ready_w).write_all(line.as_bytes());
            // Holds the namespace until the launcher has bound it and ends this process.
            loop {
                nix::unistd::pause();
            }
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            let mut answer = String::new();
            let _ = BufReader::new(File::from(ready_r)).read_line(&mut answer);
            let bound = match answer.strip_prefix('+') {
                Some(_) => bind_namespace(child, path),
                None => Err(format!(
                    "failed to prepare the proc's mount namespace: {}",
                    answer.strip_prefix('-').map(str::trim).unwrap_or("the helper died")
                )),
            };
            let _ = kill(child, Signal::SIGKILL);
            let _ = waitpid(child, None);
            bound
        }
    }
}

/// In the helper: a private copy of vrd's mounts, pivoted into the kept root, the old root
/// detached, then the lasting mounts.
fn make_namespace(root: &Path) -> Result<(), String> {
    let step = |what: &str, r: nix::Result<()>| r.map_err(|e| format!("failed to {what}: {e}"));
    step("create a mount namespace", unshare(CloneFlags::CLONE_NEWNS))?;
    step(
        "make mounts private",
        mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>),
    )?;
    step("enter the root", chdir(root))?;
    step("pivot_root", pivot_root(".", "."))?;
    step("detach the old root", umount2(".", MntFlags::MNT_DETACH))?;
    step("chdir to /", chdir("/"))?;
    for s in lasting_steps() {
        apply(&s, &[]).map_err(|e| format!("failed to mount: {e}"))?;
    }
    Ok(())
}

/// Binds the namespace of `helper` at `path` (an empty file, made if missing).
fn bind_namespace(helper: nix::unistd::Pid, path: &Path) -> Result<(), String> {
    if fs::symlink_metadata(path).is_err() {
        File::create(path).map_err(|e| format!("failed to create {}: {e}", path.display()))?;
    }
    let ns = File::open(format!("/proc/{helper}/ns/mnt"))
        .map_err(|e| format!("failed to open the helper's mount namespace: {e}"))?;
    let source = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&ns.as_fd()));
    mount(Some(source.as_str()), path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| format!("failed to bind the mount namespace at {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::host::container::overlay::{ensure_kept_root, release_kept_root, test_overlay};

    /// The namespace's identity: its nsfs inode.
    fn ns_id(fd: &OwnedFd) -> u64 {
        File::from(fd.try_clone().unwrap()).metadata().unwrap().ino()
    }

    #[test]
    fn a_kept_namespace_is_reused_until_its_root_is_mounted_again_and_goes_with_it() {
        if !crate::sys::testing::root_or_skip(
            "a_kept_namespace_is_reused_until_its_root_is_mounted_again_and_goes_with_it",
        ) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("lower/sys")).unwrap();
        let o = Overlay { keep_mounted: true, ..test_overlay(dir.path()) };
        let _mounts = crate::sys::testing::MountsUnder(dir.path().to_path_buf());
        let fresh = ensure_kept_root(&o).unwrap();
        let first = ensure(&o, fresh).unwrap();
        assert!(is_bound(&path_of(&o.target)));
        assert_eq!(ns_id(&ensure(&o, false).unwrap()), ns_id(&first), "kept between runs");
        assert_ne!(ns_id(&ensure(&o, true).unwrap()), ns_id(&first), "a new root, a new namespace");
        let third = ensure(&o, false).unwrap();
        fs::write(layout_path(&o.target), "0").unwrap();
        assert_ne!(ns_id(&ensure(&o, false).unwrap()), ns_id(&third), "built by an older vrd: built again");
        release_kept_root(&o.target).unwrap();
        assert!(!is_bound(&path_of(&o.target)), "released with the root");
        let procs = dir.path().join("procs");
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let left: Vec<&str> = info
            .lines()
            .filter(|l| l.contains(dir.path().to_str().unwrap()))
            .filter(|l| l.split(' ').nth(4) != procs.to_str())
            .collect();
        assert!(left.is_empty(), "nothing but the procs dir's private mount is left: {left:?}");
    }

    #[test]
    fn a_kept_namespace_is_bound_and_nothing_propagates_when_the_data_dir_is_on_a_shared_mount() {
        if !crate::sys::testing::root_or_skip(
            "a_kept_namespace_is_bound_and_nothing_propagates_when_the_data_dir_is_on_a_shared_mount",
        ) {
            return;
        }
        // As on a systemd host: `/` is shared, and sandboxed services hold copies of it (a peer).
        let dir = tempfile::tempdir().unwrap();
        let _mounts = crate::sys::testing::MountsUnder(dir.path().to_path_buf());
        let (shared, peer) = (dir.path().join("shared"), dir.path().join("peer"));
        for d in [&shared, &peer] {
            fs::create_dir_all(d).unwrap();
        }
        mount(Some(&shared), &shared, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
        mount(None::<&str>, &shared, None::<&str>, MsFlags::MS_SHARED, None::<&str>).unwrap();
        mount(Some(&shared), &peer, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
        fs::create_dir_all(shared.join("lower/sys")).unwrap();
        let o = Overlay { keep_mounted: true, ..test_overlay(&shared) };
        let fresh = ensure_kept_root(&o).unwrap();
        ensure(&o, fresh).expect("the namespace is bound although its dir is on a shared mount");
        let seen_by_peer = peer.join("procs/p/rootfs");
        assert!(
            seen_by_peer.is_dir() && !seen_by_peer.join("sys").exists(),
            "the kept root did not propagate"
        );
        assert!(!is_bound(&peer.join("procs/p/mntns")), "nor did the namespace");
    }
}
