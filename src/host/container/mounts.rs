//! The container's mounts as data ([`MountStep`]) and the small applier that performs them.
//!
//! Every step runs after pivot_root, so every path (and every absolute symlink in the image)
//! resolves inside the container root and nothing can land on the host. Host paths (volumes,
//! /etc/resolv.conf) are cloned as detached mount trees before the pivot ([`BindSource`]) and
//! attached inside the new root afterwards.

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

/// One thing to mount or create inside the new root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountStep {
    /// A fresh file system (proc, sysfs, tmpfs, devpts, mqueue) on a directory made if missing.
    Fs {
        /// Source label.
        source: &'static str,
        /// Mount point.
        target: PathBuf,
        /// File system type.
        fstype: &'static str,
        /// Mount flags.
        flags: MsFlags,
        /// File system options.
        data: Option<&'static str>,
    },
    /// A device node (the launcher has CAP_MKNOD; the app will not).
    Device {
        /// Path.
        path: PathBuf,
        /// Major number.
        major: u64,
        /// Minor number.
        minor: u64,
    },
    /// A symlink.
    Symlink {
        /// Where the link points.
        to: &'static str,
        /// The link itself.
        link: PathBuf,
    },
    /// Attach pre-cloned bind source number `source` (a [`BindSource`]) at `target`.
    BindFd {
        /// Index into the pre-opened sources.
        source: usize,
        /// Mount point (a file or a directory, made to match the source).
        target: PathBuf,
        /// Then remount read-only.
        read_only: bool,
    },
    /// Hide a file (bind /dev/null over it) or a directory (a read-only empty tmpfs), if present.
    Mask(PathBuf),
    /// Remount a path read-only onto itself, if present.
    ReadOnly(PathBuf),
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV).union(MsFlags::MS_NOEXEC);

/// Kernel interfaces no app needs and some leak host secrets or allow host-wide actions.
const MASKED: &[&str] = &[
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/proc/latency_stats",
    "/proc/timer_stats",
    "/proc/acpi",
    "/proc/scsi",
    "/sys/firmware",
];

/// Made read-only: writes would change the whole host.
const READ_ONLY: &[&str] = &["/proc/sys", "/proc/sysrq-trigger", "/proc/bus", "/proc/fs", "/proc/irq"];

/// The devices a container gets: (name, major, minor).
const DEVICES: &[(&str, u64, u64)] =
    &[("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

/// The standard steps: /proc, /sys, /dev and its nodes, then one bind per source, then masks.
/// `binds` pairs each pre-opened source index with its inside path and mode.
pub fn standard_steps(binds: &[(String, bool)]) -> Vec<MountStep> {
    let p = |s: &str| PathBuf::from(s);
    let mut steps = vec![
        MountStep::Fs {
            source: "proc",
            target: p("/proc"),
            fstype: "proc",
            flags: NOSUID_NODEV_NOEXEC,
            data: None,
        },
        MountStep::Fs {
            source: "sysfs",
            target: p("/sys"),
            fstype: "sysfs",
            flags: NOSUID_NODEV_NOEXEC.union(MsFlags::MS_RDONLY),
            data: None,
        },
        MountStep::Fs {
            source: "tmpfs",
            target: p("/dev"),
            fstype: "tmpfs",
            flags: MsFlags::MS_NOSUID.union(MsFlags::MS_STRICTATIME),
            data: Some("mode=755,size=65536k"),
        },
    ];
    for (name, major, minor) in DEVICES {
        steps.push(MountStep::Device { path: p(&format!("/dev/{name}")), major: *major, minor: *minor });
    }
    steps.extend([
        MountStep::Fs {
            source: "devpts",
            target: p("/dev/pts"),
            fstype: "devpts",
            flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
            data: Some("newinstance,ptmxmode=0666,mode=0620"),
        },
        MountStep::Fs {
            source: "shm",
            target: p("/dev/shm"),
            fstype: "tmpfs",
            flags: NOSUID_NODEV_NOEXEC,
            data: Some("mode=1777,size=65536k"),
        },
        MountStep::Fs {
            source: "mqueue",
            target: p("/dev/mqueue"),
            fstype: "mqueue",
            flags: NOSUID_NODEV_NOEXEC,
            data: None,
        },
        MountStep::Symlink { to: "pts/ptmx", link: p("/dev/ptmx") },
        MountStep::Symlink { to: "/proc/self/fd", link: p("/dev/fd") },
        MountStep::Symlink { to: "/proc/self/fd/0", link: p("/dev/stdin") },
        MountStep::Symlink { to: "/proc/self/fd/1", link: p("/dev/stdout") },
        MountStep::Symlink { to: "/proc/self/fd/2", link: p("/dev/stderr") },
    ]);
    for (source, (inside, read_only)) in binds.iter().enumerate() {
        steps.push(MountStep::BindFd { source, target: p(inside), read_only: *read_only });
    }
    steps.extend(MASKED.iter().map(|m| MountStep::Mask(p(m))));
    steps.extend(READ_ONLY.iter().map(|m| MountStep::ReadOnly(p(m))));
    steps
}

/// Whether `step` can be made once in a proc's kept namespace and serve every run: what lives on
/// /sys, which is read-only. /proc belongs to the run's pid namespace and /dev/mqueue to its ipc
/// namespace; /dev is writable (an app may add a socket there, or remove a node) and so fresh per
/// run, as are binds, so that a host file replaced by rename (as resolvers rewrite
/// /etc/resolv.conf) is seen by the next run.
pub fn lasts(step: &MountStep) -> bool {
    let path = match step {
        MountStep::Fs { target, .. } | MountStep::BindFd { target, .. } => target,
        MountStep::Device { path, .. } | MountStep::Mask(path) | MountStep::ReadOnly(path) => path,
        MountStep::Symlink { link, .. } => link,
    };
    !matches!(step, MountStep::BindFd { .. }) && path.starts_with("/sys")
}

/// The steps a proc's kept namespace is made with (see [`lasts`]).
pub fn lasting_steps() -> Vec<MountStep> {
    standard_steps(&[]).into_iter().filter(lasts).collect()
}

/// The steps a run in a proc's kept namespace still makes: the rest, in the same order.
pub fn per_run_steps(binds: &[(String, bool)]) -> Vec<MountStep> {
    standard_steps(binds).into_iter().filter(|s| !lasts(s)).collect()
}

/// A host path cloned as a detached mount tree before the pivot.
pub struct BindSource {
    /// The tree (from open_tree).
    pub tree: OwnedFd,
    /// Whether the source is a directory (else the mount point is made a file).
    pub is_dir: bool,
}

impl BindSource {
    /// Clones `path`; done before pivot_root, while host paths are still reachable. For paths vrd
    /// chose itself (the host's resolver files, which are often symlinks).
    pub fn clone_host_path(path: &Path) -> io::Result<BindSource> {
        let is_dir = fs::metadata(path).map_err(|e| at(path, "read", e))?.is_dir();
        let tree = crate::sys::clone_tree(path).map_err(|e| at(path, "clone the mount of", e))?;
        Ok(BindSource { tree, is_dir })
    }

    /// Clones a volume's source, a path a proc.yaml named: resolved without following any
    /// symlink, so a link one app planted in its volume cannot hand another app's volume a host
    /// directory such as /root. A path through a link is refused with its real path.
    pub fn clone_volume(path: &Path) -> io::Result<BindSource> {
        let fd = crate::sys::beneath::open_host_path(path).map_err(|e| volume_error(path, e))?;
        let is_dir = fd.metadata().map_err(|e| at(path, "read", e))?.is_dir();
        let tree = crate::sys::clone_tree_of(fd.as_fd()).map_err(|e| at(path, "clone the mount of", e))?;
        Ok(BindSource { tree, is_dir })
    }
}

fn volume_error(path: &Path, e: io::Error) -> io::Error {
    if e.raw_os_error() != Some(nix::errno::Errno::ELOOP as i32) {
        return at(path, "open the volume source", e);
    }
    let real = fs::canonicalize(path).map(|p| format!(" (it leads to {})", p.display())).unwrap_or_default();
    io::Error::other(format!(
        "volume source {} passes through a symbolic link{real}: vr does not follow links in volume \
         sources, so a link planted in one volume cannot redirect another; name the real path in `volumes`",
        path.display()
    ))
}

fn at(target: &Path, what: &str, err: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("failed to {what} {}: {err}", target.display()))
}

fn ensure_dir(target: &Path) -> io::Result<()> {
    fs::create_dir_all(target).map_err(|e| at(target, "create mount point", e))
}

fn ensure_file(target: &Path) -> io::Result<()> {
    if let Some(parent) = target.parent() {
        ensure_dir(parent)?;
    }
    if fs::symlink_metadata(target).is_err() {
        fs::File::create(target).map_err(|e| at(target, "create mount point", e))?;
    }
    Ok(())
}

/// statvfs(3)'s flag for a relatime mount (the kernel's ST_RELATIME, 0x1000), which nix names for
/// glibc only; the lib is also built against musl for the `vr` client.
const ST_RELATIME: std::ffi::c_ulong = 0x1000;

/// Remounts the bind mount at `target` with `add`, keeping the flags it has (a noexec or
/// read-only host mount stays so: a bind remount sets the flags it is given, and clears the rest).
fn remount_bind(target: &Path, add: MsFlags) -> io::Result<()> {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let has = statvfs(target).map_err(|e| at(target, "read the mount flags of", e))?.flags();
    let kept = [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::from_bits_retain(ST_RELATIME), MsFlags::MS_RELATIME),
    ]
    .into_iter()
    .filter(|(st, _)| has.contains(*st))
    .fold(MsFlags::empty(), |all, (_, ms)| all | ms);
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | kept | add;
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(|e| at(target, "remount", e))
}

fn remount_read_only(target: &Path, extra: MsFlags) -> io::Result<()> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | extra;
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .map_err(|e| at(target, "remount read-only", e))
}

fn bind(source: &Path, target: &Path) -> io::Result<()> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount(Some(source), target, None::<&str>, flags, None::<&str>)
        .map_err(|e| at(target, "bind-mount onto", e))
}

/// Performs one step; `sources` are the pre-cloned bind sources.
pub fn apply(step: &MountStep, sources: &[BindSource]) -> io::Result<()> {
    match step {
        MountStep::Fs { source, target, fstype, flags, data } => {
            ensure_dir(target)?;
            mount(Some(*source), target, Some(*fstype), *flags, *data)
                .map_err(|e| at(target, &format!("mount {fstype} on"), e))
        }
        MountStep::Device { path, major, minor } => {
            let mode = Mode::from_bits_truncate(0o666);
            mknod(path, SFlag::S_IFCHR, mode, makedev(*major, *minor))
                .map_err(|e| at(path, "create device", e))?;
            // mknod honours the umask; the nodes must be usable by the app's user.
            fs::set_permissions(path, fs::Permissions::from_mode(0o666)).map_err(|e| at(path, "chmod", e))
        }
        MountStep::Symlink { to, link } => symlink(to, link).map_err(|e| at(link, "create symlink", e)),
        MountStep::BindFd { source, target, read_only } => {
            let src =
                sources.get(*source).ok_or_else(|| at(target, "find the source of", "no such source"))?;
            if src.is_dir {
                ensure_dir(target)?;
            } else {
                ensure_file(target)?;
            }
            crate::sys::attach_tree(src.tree.as_fd(), target)
                .map_err(|e| at(target, "attach a volume at", e))?;
            // A tree cloned from a shared host mount would share its peer group: mounts made in
            // it would show on the host and the host's in the container.
            mount(None::<&str>, target, None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
                .map_err(|e| at(target, "make private", e))?;
            // nosuid, nodev always: a root container must not leave a setuid-root file or a device
            // node in a volume for the host or another app to use.
            let ro = if *read_only { MsFlags::MS_RDONLY } else { MsFlags::empty() };
            remount_bind(target, MsFlags::MS_NOSUID | MsFlags::MS_NODEV | ro)
        }
        MountStep::Mask(target) => match fs::metadata(target) {
            Err(_) => Ok(()),
            Ok(m) if m.is_dir() => {
                let flags = MsFlags::MS_RDONLY | NOSUID_NODEV_NOEXEC;
                mount(Some("tmpfs"), target, Some("tmpfs"), flags, Some("size=0"))
                    .map_err(|e| at(target, "mask", e))
            }
            Ok(_) => bind(Path::new("/dev/null"), target),
        },
        MountStep::ReadOnly(target) => {
            if fs::metadata(target).is_err() {
                return Ok(());
            }
            bind(target, target)?;
            remount_read_only(target, MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_comes_first_and_masks_come_after_binds() {
        let steps = standard_steps(&[("/data".into(), false), ("/conf".into(), true)]);
        assert!(matches!(&steps[0], MountStep::Fs { fstype: "proc", .. }));
        let bind_at = steps.iter().position(|s| matches!(s, MountStep::BindFd { .. })).unwrap();
        let mask_at = steps.iter().position(|s| matches!(s, MountStep::Mask(_))).unwrap();
        assert!(bind_at < mask_at, "a volume must not be able to unmask /proc/kcore");
        assert!(steps.contains(&MountStep::BindFd { source: 1, target: "/conf".into(), read_only: true }));
    }

    #[test]
    fn a_kept_namespace_plus_a_run_make_every_step_once() {
        let binds = [("/data".to_string(), false), ("/dev/shm/x".to_string(), false)];
        let (lasting, per_run) = (lasting_steps(), per_run_steps(&binds));
        assert!(lasting.iter().any(|s| matches!(s, MountStep::Fs { fstype: "sysfs", .. })));
        assert!(lasting.contains(&MountStep::Mask("/sys/firmware".into())));
        for fresh in ["proc", "devpts", "mqueue"] {
            assert!(per_run.iter().any(|s| matches!(s, MountStep::Fs { fstype, .. } if *fstype == fresh)));
        }
        assert!(per_run
            .iter()
            .any(|s| matches!(s, MountStep::Fs { target, .. } if target == Path::new("/dev/shm"))));
        assert_eq!(
            per_run.iter().filter(|s| matches!(s, MountStep::BindFd { .. })).count(),
            2,
            "binds are per run"
        );
        assert_eq!(lasting.len() + per_run.len(), standard_steps(&binds).len());
        let bind_at = per_run.iter().position(|s| matches!(s, MountStep::BindFd { .. })).unwrap();
        let mask_at = per_run.iter().position(|s| matches!(s, MountStep::Mask(_))).unwrap();
        assert!(bind_at < mask_at, "a volume must not be able to unmask /proc/kcore");
    }

    #[test]
    fn sys_is_read_only_and_proc_sys_too() {
        let steps = standard_steps(&[]);
        let sys = steps.iter().find(|s| matches!(s, MountStep::Fs { fstype: "sysfs", .. })).unwrap();
        assert!(matches!(sys, MountStep::Fs { flags, .. } if flags.contains(MsFlags::MS_RDONLY)));
        assert!(steps.contains(&MountStep::ReadOnly("/proc/sys".into())));
        assert!(steps.contains(&MountStep::Mask("/proc/kcore".into())));
    }
}
