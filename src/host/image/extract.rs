//! Creating files, directories and links under a root directory that nothing may escape.
//!
//! Every path is resolved with `openat2(RESOLVE_IN_ROOT)` against the root's descriptor, so `..`
//! stops at the root and an absolute symlink (`bin -> /usr/bin`) resolves inside it, exactly as
//! it will inside the container. Names are then created relative to an already resolved parent
//! descriptor, with calls that never follow a final symlink (`O_CREAT|O_EXCL`, `mkdirat`,
//! `symlinkat`, `linkat` without `AT_SYMLINK_FOLLOW`). This holds with or without a chroot; the
//! chroot of `vrd unpack` is a second wall.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmod, fstatat, futimens, mkdirat, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

/// What to set on a created file, directory or symlink once it exists.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    /// Permission bits including setuid/setgid/sticky (ignored for symlinks).
    pub mode: u32,
    /// Owner to chown to; `None` keeps the creating user.
    pub owner: Option<(u32, u32)>,
    /// Modification time (seconds, nanoseconds); `None` keeps the time of creation.
    pub mtime: Option<(i64, i64)>,
    /// Extended attributes to set (already filtered).
    pub xattrs: Vec<(CString, Vec<u8>)>,
}

/// Removes leading `/` and `.` components; `None` if the path climbs with `..`.
///
/// The empty result names the root itself (a `./` entry).
pub(crate) fn sanitize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return None,
            Component::Normal(name) => out.push(name),
        }
    }
    Some(out)
}

/// The destination directory, held open; all creation goes through it.
pub(crate) struct Root {
    fd: OwnedFd,
    /// Owner for directories created implicitly (a file whose parent has no entry).
    implicit_owner: Option<(u32, u32)>,
    /// The process umask is 0, so creation modes are exact and need no `fchmod`.
    umask_zero: bool,
}

fn how(flags: OFlag, mode: u32) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .mode(Mode::from_bits_truncate(mode))
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// Turns an empty relative path (the root itself) into `.`.
fn dot(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

impl Root {
    /// Wraps an open directory. `umask_zero` promises that the process umask is 0.
    pub(crate) fn new(fd: OwnedFd, implicit_owner: Option<(u32, u32)>, umask_zero: bool) -> Root {
        Root { fd, implicit_owner, umask_zero }
    }

    /// Opens directory `rel` (following symlinks, inside the root) as an `O_PATH` handle.
    fn open_dir(&self, rel: &Path) -> nix::Result<OwnedFd> {
        openat2(&self.fd, dot(rel), how(OFlag::O_PATH | OFlag::O_DIRECTORY, 0))
    }

    /// Resolves the parent of `rel`, creating missing directories, and returns it with the name.
    fn parent<'p>(&self, rel: &'p Path) -> io::Result<(OwnedFd, &'p OsStr)> {
        let name = rel.file_name().ok_or_else(|| io::Error::other("an entry without a name"))?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        match self.open_dir(parent) {
            Ok(fd) => Ok((fd, name)),
            Err(Errno::ENOENT) => Ok((self.mkdir_all(parent)?, name)),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates every missing directory of `rel` (mode 0755) and returns the last one.
    fn mkdir_all(&self, rel: &Path) -> io::Result<OwnedFd> {
        let mut current = self.open_dir(Path::new(""))?;
        let mut prefix = PathBuf::new();
        for part in rel.components() {
            prefix.push(part);
            current = match self.open_dir(&prefix) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    let name = part.as_os_str();
                    match mkdirat(&current, name, Mode::from_bits_truncate(0o755)) {
                        Ok(()) => {
                            if let Some((uid, gid)) = self.implicit_owner {
                                let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
                                fchownat(&current, name, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW)?;
                            }
                        }
                        Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    self.open_dir(&prefix)?
                }
                Err(e) => return Err(e.into()),
            };
        }
        Ok(current)
    }

    /// Creates regular file `rel`, replacing whatever was there, and returns it open for writing.
    /// Only the permission bits of `mode` are used; `finish_file` adds the rest.
    pub(crate) fn create_file(&self, rel: &Path, mode: u32) -> io::Result<File> {
        let mode = mode & 0o777;
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
        // The common case (fresh destination, parent already made) costs one syscall.
        match openat2(&self.fd, rel, how(flags, mode)) {
            Ok(fd) => return Ok(File::from(fd)),
            Err(Errno::ENOENT | Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let (parent, name) = self.parent(rel)?;
        let create = || openat(&parent, name, flags | OFlag::O_CLOEXEC, Mode::from_bits_truncate(mode));
        match create() {
            Err(Errno::EEXIST) => {
                remove(&parent, name)?;
                Ok(File::from(create()?))
            }
            other => Ok(File::from(other?)),
        }
    }

    /// Creates directory `rel` (owner-accessible until `finish_dir` sets its final mode). An
    /// existing directory, or a symlink to one, is kept; anything else is replaced.
    pub(crate) fn make_dir(&self, rel: &Path, mode: u32) -> io::Result<()> {
        if rel.as_os_str().is_empty() {
            return Ok(());
        }
        let (parent, name) = self.parent(rel)?;
        let mode = Mode::from_bits_truncate((mode & 0o777) | 0o700);
        match mkdirat(&parent, name, mode) {
            Err(Errno::EEXIST) => {}
            other => return Ok(other?),
        }
        let existing = fstatat(&parent, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        let kind = SFlag::from_bits_truncate(existing.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFDIR || (kind == SFlag::S_IFLNK && self.open_dir(rel).is_ok()) {
            return Ok(());
        }
        remove(&parent, name)?;
        Ok(mkdirat(&parent, name, mode)?)
    }

    /// Creates symlink `rel -> target` (target stored verbatim), replacing what was there.
    pub(crate) fn make_symlink(&self, rel: &Path, target: &Path, meta: &Meta) -> io::Result<()> {
        let (parent, name) = self.parent(rel)?;
        match symlinkat(target, &parent, name) {
            Err(Errno::EEXIST) => {
                remove(&parent, name)?;
                symlinkat(target, &parent, name)?;
            }
            other => other?,
        }
        if let Some((uid, gid)) = meta.owner {
            let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
            fchownat(&parent, name, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        }
        if let Some(time) = meta.mtime.map(timespec) {
            utimensat(&parent, name, &time, &time, UtimensatFlags::NoFollowSymlink)?;
        }
        Ok(())
    }

    /// Hardlinks `rel` to `target` (both relative to the root), replacing what was at `rel`.
    pub(crate) fn make_hardlink(&self, rel: &Path, target: &Path) -> io::Result<()> {
        if rel == target {
            return Ok(());
        }
        let target_name =
            target.file_name().ok_or_else(|| io::Error::other("a hardlink to the archive root"))?;
        let target_parent = self.open_dir(target.parent().unwrap_or(Path::new("")))?;
        let (parent, name) = self.parent(rel)?;
        let link = || linkat(&target_parent, target_name, &parent, name, AtFlags::empty());
        match link() {
            Err(Errno::EEXIST) => {
                remove(&parent, name)?;
                link()?;
            }
            other => other?,
        }
        Ok(())
    }

    /// Chowns the root directory itself (builds are chowned as a whole).
    pub(crate) fn chown_root(&self, uid: u32, gid: u32) -> io::Result<()> {
        let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        Ok(fchownat(&self.fd, "", uid, gid, AtFlags::AT_EMPTY_PATH)?)
    }

    /// Applies ownership, mode, xattrs and mtime to a freshly written file.
    ///
    /// The file must have been created by `create_file` with `meta.mode`.
    pub(crate) fn finish_file(&self, file: &File, meta: &Meta) -> io::Result<()> {
        if let Some((uid, gid)) = meta.owner {
            fchown(file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
        }
        // Files are created without setuid/setgid/sticky (chown would clear them anyway), and a
        // umask other than 0 trims the creation mode; only then is an fchmod needed.
        if !self.umask_zero || meta.mode & 0o7000 != 0 {
            fchmod(file, Mode::from_bits_truncate(meta.mode))?;
        }
        set_xattrs(file, &meta.xattrs);
        if let Some(time) = meta.mtime.map(timespec) {
            futimens(file, &time, &time)?;
        }
        Ok(())
    }

    /// Applies the deferred metadata of directory `rel`, unless it has become a symlink or gone.
    pub(crate) fn finish_dir(&self, rel: &Path, meta: &Meta) -> io::Result<()> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
        let dir = match openat2(&self.fd, dot(rel), how(flags, 0)) {
            Ok(fd) => File::from(fd),
            Err(Errno::ELOOP | Errno::ENOENT | Errno::ENOTDIR) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if let Some((uid, gid)) = meta.owner {
            fchown(&dir, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
        }
        fchmod(&dir, Mode::from_bits_truncate(meta.mode))?;
        set_xattrs(&dir, &meta.xattrs);
        if let Some(time) = meta.mtime.map(timespec) {
            futimens(&dir, &time, &time)?;
        }
        Ok(())
    }
}

/// Removes `name` from `parent` to make room for a new entry; an empty directory is removed too.
fn remove(parent: &OwnedFd, name: &OsStr) -> io::Result<()> {
    match unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EISDIR | Errno::EPERM) => Ok(unlinkat(parent, name, UnlinkatFlags::RemoveDir)?),
        Err(e) => Err(e.into()),
    }
}

fn timespec((secs, nanos): (i64, i64)) -> TimeSpec {
    TimeSpec::new(secs, nanos)
}

/// Sets extended attributes; like GNU tar, a filesystem that refuses one is not fatal.
fn set_xattrs(file: impl AsFd, xattrs: &[(CString, Vec<u8>)]) {
    let fd = file.as_fd();
    for (name, value) in xattrs {
        if let Err(errno) = crate::sys::fs::fsetxattr(fd, name, value) {
            tracing::debug!(?name, %errno, "failed to set an archived xattr; skipped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_strips_roots_and_refuses_parents() {
        assert_eq!(sanitize(Path::new("/etc/passwd")), Some(PathBuf::from("etc/passwd")));
        assert_eq!(sanitize(Path::new("./a/./b")), Some(PathBuf::from("a/b")));
        assert_eq!(sanitize(Path::new("./")), Some(PathBuf::new()));
        assert_eq!(sanitize(Path::new("../escape")), None);
        assert_eq!(sanitize(Path::new("a/../../b")), None);
    }
}
