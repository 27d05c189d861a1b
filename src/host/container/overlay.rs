//! The container's root file system: an overlay of the plan's lowers and a private upper dir,
//! mounted `volatile`, or the upper dir itself bound in place when there are no lowers.
//!
//! Why volatile: without it, unmounting an overlay (which happens when the container's last
//! process exits and its mount namespace goes) runs `syncfs` on the upper dir's *whole file
//! system*. On a host busy writing (builds, logs) that took 10–600 ms per container stop, always
//! on the path from the app's exit to the caller hearing of it. A volatile overlay skips every sync
//! to the upper file system, including the app's own fsync(2) calls on files of its root: the root
//! is scratch space (Heroku's "ephemeral filesystem"); data meant to last goes in volumes, which
//! are plain bind mounts and sync as usual.
//!
//! The price is overlayfs's crash rule: a volatile mount leaves `<work>/work/incompat/volatile`
//! behind, and overlayfs refuses to mount that upper dir again while it is there, because after a
//! host crash the upper dir may have lost writes. So each mount records the boot it happened in
//! ([`BOOT_STAMP`], beside overlayfs's own `work/work`); the next mount clears the marker when the
//! host has not restarted since (the page cache still holds every write: it moves `work/work`
//! aside with one rename, and the launcher deletes it once that container has ended, since on a
//! busy disk every deleted directory costs), and otherwise starts
//! from an empty upper dir, saying so on stderr. A root's writes thus last across runs and vrd
//! restarts, not across host restarts (on Heroku they do not even last across restarts).
//!
//! A proc's own root is *kept* mounted ([`Overlay::keep_mounted`]): the launcher mounts it once in
//! vrd's mount namespace and every later container of the proc starts on a copy of that mount, as
//! Docker keeps a container's merged dir between its starts. Mounting an overlay creates and
//! deletes probe files in the work dir and builds a fresh dentry cache (0.4-2.6 ms measured), and
//! its unmount lies between the app's exit and the caller's answer; a kept root pays neither on
//! each run. The kept mount records what it was mounted from ([`MOUNTED_FROM`]), so a root whose
//! layers changed is mounted again; setup (which rewrites the `meta` layer) and teardown release
//! it with [`release_kept_root`].

use std::fs;
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::mount::{umount2, MntFlags};
use nix::sys::statfs::{statfs, OVERLAYFS_SUPER_MAGIC, TMPFS_MAGIC};

use super::plan::Overlay;

/// overlayfs's marker of a volatile mount, relative to the work dir.
const VOLATILE_MARKER: &str = "work/incompat/volatile";

/// overlayfs's own dir in the work dir, which holds the marker.
const OVERLAY_WORK: &str = "work";

/// The name prefix under which an old `work/work` (and its marker) waits to be deleted, off the
/// container's way. Each gets a name of its own, so a launcher still deleting older ones never
/// races the next container's start.
const STALE_WORK: &str = "vr-stale-work.";

/// The boot id of the last volatile mount of this upper dir, in the work dir.
pub const BOOT_STAMP: &str = "vr-boot-id";

/// Where the kernel says which boot this is (a random UUID per boot).
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// The mount options a kept root was mounted with, in the work dir.
pub const MOUNTED_FROM: &str = "vr-mounted-from";

/// Mounts the root described by `o` on `o.target`, unless it is kept mounted (then the container's
/// mount namespace holds a copy of the kept mount already); before pivot_root, while host paths
/// resolve.
pub fn mount_root(o: &Overlay) -> Result<(), String> {
    if o.keep_mounted {
        return Ok(());
    }
    if o.lowers.is_empty() {
        // The root is the upper dir itself, written in place (a stack image being provisioned).
        return sys_mount::Mount::builder()
            .fstype("")
            .flags(sys_mount::MountFlags::BIND | sys_mount::MountFlags::REC)
            .mount(&o.upper, &o.target)
            .map(|_| ())
            .map_err(|e| {
                format!("failed to bind the root {} on {}: {e}", o.upper.display(), o.target.display())
            });
    }
    mount_overlay(o)
}

/// Makes sure a kept root ([`Overlay::keep_mounted`]) is mounted from `o`'s layers in this (vrd's)
/// mount namespace: leaves a matching mount alone, mounts a missing one, and mounts again one
/// whose layers differ. Returns whether it mounted the root now. Run by the launcher before it
/// forks the container.
pub fn ensure_kept_root(o: &Overlay) -> Result<bool, String> {
    let from = overlay_options(o);
    let stamp = o.work.join(MOUNTED_FROM);
    if is_overlay_mount(&o.target) {
        if fs::read_to_string(&stamp).is_ok_and(|s| s == from) {
            return Ok(false);
        }
        release_kept_root(&o.target)?;
    }
    // A namespace still bound from an earlier mount (the root was unmounted some other way) holds
    // the old overlay on these very upper and work dirs: it goes before the new mount.
    super::kept_ns::release(&o.target)?;
    make_parent_private(o)?;
    mount_overlay(o)?;
    fs::write(&stamp, from).map_err(|e| at("write", &stamp, e))?;
    Ok(true)
}

/// Makes the directory holding the proc dirs (`<data dir>/procs`) a private mount of its own, once,
/// before a kept root is mounted or a kept namespace bound below it. On a host whose `/` is shared
/// (systemd's default) a mount made there would otherwise propagate into every mount namespace
/// that is a slave of the host's (each sandboxed service), pinning the overlay there too; and the
/// kernel refuses to bind a mount namespace file on a shared mount at all. Serialized with a lock
/// on the directory, so two first runs do not both bind it.
pub(super) fn make_parent_private(o: &Overlay) -> Result<(), String> {
    use nix::fcntl::{Flock, FlockArg};
    use nix::mount::{mount, MsFlags};
    let dir =
        o.target.parent().and_then(Path::parent).filter(|d| d.file_name().is_some_and(|n| n == "procs"));
    // Only ever the procs dir: binding some other parent (a test's /tmp) would change the host.
    let Some(dir) = dir else {
        return Err(format!("a kept root must be <data dir>/procs/NAME/rootfs, not {}", o.target.display()));
    };
    let file = fs::File::open(dir).map_err(|e| at("open", dir, e))?;
    let _lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("failed to lock {}: {e}", dir.display()))?;
    let mounted = crate::sys::is_mount_root(dir).map_err(|e| at("inspect", dir, e))?;
    if !mounted {
        mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .map_err(|e| format!("failed to bind {} onto itself: {e}", dir.display()))?;
    }
    mount(None::<&str>, dir, None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|e| format!("failed to make {} a private mount: {e}", dir.display()))
}

/// Unmounts a kept root, and first its kept namespace, which holds it (see `kept_ns`), from vrd's
/// mount namespace if they are mounted there (a running container keeps its own copy until it
/// ends). Lazy, so that a shell of the host's sitting in it cannot block a teardown; nothing is
/// written through it afterwards.
pub fn release_kept_root(target: &Path) -> Result<(), String> {
    super::kept_ns::release(target)?;
    if !is_overlay_mount(target) {
        return Ok(());
    }
    umount2(target, MntFlags::MNT_DETACH).map_err(|e| format!("failed to unmount {}: {e}", target.display()))
}

/// Mounts the size-limited tmpfs of `o.rw` (unless it is mounted already: a kept root's stays
/// until teardown, so its writes last across runs and setups as on disk) and makes the upper and
/// work dirs in it. For a sibling container the mount is made in its own mount namespace and goes
/// with it.
fn ensure_rw(o: &Overlay) -> Result<(), String> {
    let Some(rw) = &o.rw else { return Ok(()) };
    if !is_tmpfs_mount(&rw.dir) {
        fs::create_dir_all(&rw.dir).map_err(|e| at("create", &rw.dir, e))?;
        sys_mount::Mount::builder()
            .fstype("tmpfs")
            .flags(sys_mount::MountFlags::NODEV)
            .data(&format!("size={},mode=0755", rw.bytes))
            .mount("vr-root", &rw.dir)
            .map_err(|e| {
                format!("failed to mount the writable layer's tmpfs on {}: {e}", rw.dir.display())
            })?;
    }
    for dir in [&o.upper, &o.work] {
        fs::create_dir_all(dir).map_err(|e| at("create", dir, e))?;
    }
    Ok(())
}

/// Unmounts a kept root's writable-layer tmpfs (at teardown, after [`release_kept_root`]); lazy,
/// like the root's own unmount. Nothing mounted there is no error.
pub fn release_rw(dir: &Path) -> Result<(), String> {
    if !is_tmpfs_mount(dir) {
        return Ok(());
    }
    umount2(dir, MntFlags::MNT_DETACH).map_err(|e| format!("failed to unmount {}: {e}", dir.display()))
}

fn is_tmpfs_mount(dir: &Path) -> bool {
    crate::sys::is_mount_root(dir).unwrap_or(false)
        && statfs(dir).is_ok_and(|s| s.filesystem_type() == TMPFS_MAGIC)
}

/// Whether an overlay is mounted on `target` (not merely: `target` lies on one, as it does when
/// vrd's own data dir is on an overlay).
fn is_overlay_mount(target: &Path) -> bool {
    crate::sys::is_mount_root(target).unwrap_or(false)
        && statfs(target).is_ok_and(|s| s.filesystem_type() == OVERLAYFS_SUPER_MAGIC)
}

fn overlay_options(o: &Overlay) -> String {
    let lowers: Vec<String> = o.lowers.iter().map(|p| p.display().to_string()).collect();
    format!("lowerdir={},upperdir={},workdir={}", lowers.join(":"), o.upper.display(), o.work.display())
}

/// Mounts the overlay of `o` (volatile where the kernel can) on `o.target`.
fn mount_overlay(o: &Overlay) -> Result<(), String> {
    ensure_rw(o)?;
    let boot = fs::read_to_string(BOOT_ID).map_err(|e| format!("failed to read {BOOT_ID}: {e}"))?;
    if let Some(warning) = prepare_work_dir(o, boot.trim())? {
        eprintln!("vrd init: {warning}");
    }
    let data = overlay_options(o);
    let mount =
        |data: &str| sys_mount::Mount::builder().fstype("overlay").data(data).mount("overlay", &o.target);
    match mount(&format!("{data},volatile")) {
        Ok(_) => Ok(()),
        // Kernels before 5.10 have no volatile mounts; they sync on unmount as before.
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EINVAL as i32) => mount(&data).map(|_| ()),
        Err(e) => Err(e),
    }
    .map_err(|e| format!("failed to mount the overlay root on {}: {e}", o.target.display()))
}

/// Clears the marker a volatile mount of `o` left in this boot, or resets the upper and work dirs
/// when the last volatile mount was in an earlier boot (the host may have crashed and lost writes);
/// records this boot. Returns a warning for the user when it reset anything.
pub fn prepare_work_dir(o: &Overlay, boot: &str) -> Result<Option<String>, String> {
    let stamp_path = o.work.join(BOOT_STAMP);
    let stamp = fs::read_to_string(&stamp_path).unwrap_or_default();
    let marked = fs::symlink_metadata(o.work.join(VOLATILE_MARKER)).is_ok();
    let mut warning = None;
    if marked && stamp.trim() == boot {
        // One rename now; the deletes (each one a block freed on the host's disk) wait for
        // `remove_stale_work`, after the container.
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let work = o.work.join(OVERLAY_WORK);
        fs::rename(&work, o.work.join(format!("{STALE_WORK}{nanos}")))
            .map_err(|e| at("move aside", &work, e))?;
    } else if marked {
        for dir in [&o.upper, &o.work] {
            fs::remove_dir_all(dir).map_err(|e| at("remove", dir, e))?;
            fs::create_dir(dir).map_err(|e| at("create", dir, e))?;
        }
        warning = Some(format!(
            "the host restarted since the container root {} was last mounted (without syncs), so \
             its writes may be incomplete: it starts empty again (keep lasting data in volumes)",
            o.upper.display()
        ));
    }
    if stamp.trim() != boot {
        fs::write(&stamp_path, boot).map_err(|e| at("write", &stamp_path, e))?;
    }
    Ok(warning)
}

/// Deletes the old overlayfs work dirs [`prepare_work_dir`] moved aside: once the container has
/// ended, so that its start did not wait for it. Best effort; what is left goes next time.
pub fn remove_stale_work(o: &Overlay) {
    if o.lowers.is_empty() {
        return;
    }
    let Ok(entries) = fs::read_dir(&o.work) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(STALE_WORK) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn at(what: &str, path: &Path, e: io::Error) -> String {
    format!("failed to {what} {}: {e}", path.display())
}

/// A proc's dirs as the runner lays them out: `<dir>/procs/p/{upper,work,rootfs}`, lowers in
/// `<dir>`.
#[cfg(test)]
pub(super) fn test_overlay(dir: &Path) -> Overlay {
    let proc_dir = dir.join("procs/p");
    for sub in ["upper", "work", "rootfs"] {
        fs::create_dir_all(proc_dir.join(sub)).unwrap();
    }
    Overlay {
        lowers: vec![dir.join("lower")],
        upper: proc_dir.join("upper"),
        work: proc_dir.join("work"),
        target: proc_dir.join("rootfs"),
        keep_mounted: false,
        rw: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mount id of what is mounted on `target` (the last mount there), from mountinfo.
    fn mount_id(target: &Path) -> Option<String> {
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let target = target.to_str().unwrap();
        info.lines()
            .rfind(|l| l.split(' ').nth(4) == Some(target))
            .map(|l| l.split(' ').next().unwrap().into())
    }

    #[test]
    fn a_kept_root_is_mounted_once_and_again_when_its_layers_change() {
        if !crate::sys::testing::root_or_skip("a_kept_root_is_mounted_once_and_again_when_its_layers_change")
        {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut o = Overlay { keep_mounted: true, ..test_overlay(dir.path()) };
        for (layer, file) in [("lower", "a"), ("lower2", "b")] {
            fs::create_dir_all(dir.path().join(layer)).unwrap();
            fs::write(dir.path().join(layer).join(file), file).unwrap();
        }
        fs::create_dir_all(&o.target).unwrap();
        let _mounts = crate::sys::testing::MountsUnder(dir.path().to_path_buf());
        assert!(!is_overlay_mount(&o.target));
        assert!(ensure_kept_root(&o).unwrap(), "mounted now");
        assert!(is_overlay_mount(&o.target) && o.target.join("a").exists());
        fs::write(o.target.join("written"), "x").unwrap();
        let first = mount_id(&o.target);
        assert!(!ensure_kept_root(&o).unwrap());
        assert_eq!(mount_id(&o.target), first, "the same layers: the mount is reused");
        o.lowers.insert(0, dir.path().join("lower2"));
        ensure_kept_root(&o).unwrap();
        assert_ne!(mount_id(&o.target), first, "new layers: mounted again");
        assert!(o.target.join("b").exists(), "the new layer is seen");
        assert!(o.target.join("written").exists(), "the upper dir is kept");
        release_kept_root(&o.target).unwrap();
        assert!(!is_overlay_mount(&o.target), "released");
        release_kept_root(&o.target).expect("releasing what is not mounted is no error");
    }

    fn mark(o: &Overlay) {
        fs::create_dir_all(o.work.join(VOLATILE_MARKER).join("dirty")).unwrap();
    }

    #[test]
    fn a_first_mount_records_the_boot_and_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let o = test_overlay(dir.path());
        fs::write(o.upper.join("kept"), "x").unwrap();
        assert_eq!(prepare_work_dir(&o, "boot-1").unwrap(), None);
        assert_eq!(fs::read_to_string(o.work.join(BOOT_STAMP)).unwrap(), "boot-1");
        assert!(o.upper.join("kept").exists());
    }

    #[test]
    fn the_marker_of_this_boot_is_cleared_and_the_upper_dir_kept() {
        let dir = tempfile::tempdir().unwrap();
        let o = test_overlay(dir.path());
        prepare_work_dir(&o, "boot-1").unwrap();
        mark(&o);
        fs::write(o.upper.join("kept"), "x").unwrap();
        assert_eq!(prepare_work_dir(&o, "boot-1").unwrap(), None);
        assert!(!o.work.join("work/incompat").exists(), "overlayfs would refuse the next mount");
        assert!(o.upper.join("kept").exists());
        remove_stale_work(&o);
        let left: Vec<_> = fs::read_dir(&o.work).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, [BOOT_STAMP], "the old work dir is gone after the container");
    }

    #[test]
    fn a_stale_work_dir_left_by_a_killed_launcher_does_not_block_the_next_mount() {
        let dir = tempfile::tempdir().unwrap();
        let o = test_overlay(dir.path());
        prepare_work_dir(&o, "boot-1").unwrap();
        mark(&o);
        prepare_work_dir(&o, "boot-1").unwrap();
        mark(&o);
        assert_eq!(prepare_work_dir(&o, "boot-1").unwrap(), None, "the older stale dir is no obstacle");
        assert!(!o.work.join(VOLATILE_MARKER).exists());
        remove_stale_work(&o);
        let left: Vec<_> = fs::read_dir(&o.work).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, [BOOT_STAMP], "both stale dirs are gone after the next container");
    }

    #[test]
    fn the_marker_of_an_earlier_boot_resets_the_root_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let o = test_overlay(dir.path());
        prepare_work_dir(&o, "boot-1").unwrap();
        mark(&o);
        fs::write(o.upper.join("maybe-torn"), "x").unwrap();
        let warning = prepare_work_dir(&o, "boot-2").unwrap().expect("a reset is reported");
        assert!(warning.contains("restarted") && warning.contains("upper"), "{warning}");
        assert_eq!(fs::read_dir(&o.upper).unwrap().count(), 0, "the upper dir starts empty");
        assert!(!o.work.join(VOLATILE_MARKER).exists());
        assert_eq!(fs::read_to_string(o.work.join(BOOT_STAMP)).unwrap(), "boot-2");
    }
}
