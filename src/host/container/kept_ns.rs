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
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::statfs::{statfs, NSFS_MAGIC};
use nix::sys::wait::waitpid;
use nix::unistd::{chdir, pipe2, pivot_root, ForkResult};

use super::mounts::{apply, lasting_steps};
use super::plan::Overlay;
use crate::sys;

/// Where the namespace of the kept root mounted on `root` is bound: beside it.
pub fn path_of(root: &Path) -> PathBuf {
    root.with_file_name("mntns")
}

/// Makes sure the kept namespace of `o` exists, building it when it does not or when the root was
/// just mounted (`fresh_root`); returns it opened, for the container to enter. Run by the launcher
/// (single-threaded, in vrd's mount namespace) before it forks the container.
pub fn ensure(o: &Overlay, fresh_root: bool) -> Result<OwnedFd, String> {
    let path = path_of(&o.target);
    if fresh_root || !is_bound(&path) {
        release(&o.target)?;
        build(o, &path)?;
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
    statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

/// Forks a child that makes the namespace and waits; binds the child's namespace at `path`.
fn build(o: &Overlay, path: &Path) -> Result<(), String> {
    let pipe = || pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("failed to create a pipe: {e}"));
    let (ready_r, ready_w) = pipe()?;
    let (done_r, done_w) = pipe()?;
    match sys::fork_single_threaded().map_err(|e| format!("failed to fork: {e}"))? {
        ForkResult::Child => {
            drop((ready_r, done_w));
            let outcome = make_namespace(&o.target);
            let mut ready = File::from(ready_w);
            let code = match outcome {
                Ok(()) => i32::from(ready.write_all(b"+").is_err()),
                Err(message) => {
                    let _ = ready.write_all(format!("-{message}").as_bytes());
                    1
                }
            };
            drop(ready);
            // Stay until the launcher has bound the namespace (EOF when it closes its end).
            let _ = File::from(done_r).read(&mut [0u8; 1]);
            sys::exit_now(code)
        }
        ForkResult::Parent { child } => {
            drop((ready_w, done_r));
            let mut answer = String::new();
            let _ = File::from(ready_r).read_to_string(&mut answer);
            let bound = match answer.strip_prefix('+') {
                Some(_) => bind_namespace(child, path),
                None => Err(format!(
                    "failed to prepare the proc's mount namespace: {}",
                    answer.strip_prefix('-').unwrap_or("the helper died")
                )),
            };
            drop(done_w);
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
    use crate::host::container::overlay::{ensure_kept_root, release_kept_root};

    /// The namespace's identity: its nsfs inode.
    fn ns_id(fd: &OwnedFd) -> u64 {
        File::from(fd.try_clone().unwrap()).metadata().unwrap().ino()
    }

    /// Releases a test's kept root (and namespace) on drop, so a failed test leaves no mount.
    struct Release(PathBuf);

    impl Drop for Release {
        fn drop(&mut self) {
            let _ = release_kept_root(&self.0);
        }
    }

    #[test]
    fn a_kept_namespace_is_reused_until_its_root_is_mounted_again_and_goes_with_it() {
        if !crate::sys::testing::root_or_skip(
            "a_kept_namespace_is_reused_until_its_root_is_mounted_again_and_goes_with_it",
        ) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let sub = |s: &str| dir.path().join(s);
        for d in ["lower/sys", "upper", "work", "rootfs"] {
            fs::create_dir_all(sub(d)).unwrap();
        }
        let o = Overlay {
            lowers: vec![sub("lower")],
            upper: sub("upper"),
            work: sub("work"),
            target: sub("rootfs"),
            keep_mounted: true,
        };
        let _release = Release(o.target.clone());
        let fresh = ensure_kept_root(&o).unwrap();
        let first = ensure(&o, fresh).unwrap();
        assert!(is_bound(&path_of(&o.target)));
        assert_eq!(ns_id(&ensure(&o, false).unwrap()), ns_id(&first), "kept between runs");
        assert_ne!(ns_id(&ensure(&o, true).unwrap()), ns_id(&first), "a new root, a new namespace");
        release_kept_root(&o.target).unwrap();
        assert!(!is_bound(&path_of(&o.target)), "released with the root");
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!info.contains(dir.path().to_str().unwrap()), "nothing left mounted: {info}");
    }
}
