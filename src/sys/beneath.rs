//! Paths a container or a request controls, resolved without following them out (openat2(2),
//! Linux 5.6): every component must stay beneath the given directory and none may be a symlink.
//!
//! vrd is root; a symlink an app planted in its volume or its uptest results, or a `..` in a name
//! a request gave, would otherwise make vrd read or write any host file. Resolving with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` makes the kernel refuse such paths (ELOOP, EXDEV)
//! instead of vrd checking a path string and racing the app that changes it.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

fn strict() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

fn relative(path: &Path) -> io::Result<&Path> {
    if path.is_absolute() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not relative", path.display()),
        ));
    }
    Ok(path)
}

/// Opens `dir/rel` with `flags` (and `mode` for a new file), refusing symlinks anywhere on the way
/// (`ELOOP`) and any escape from `dir` (`EXDEV`). `O_NOCTTY` and `O_CLOEXEC` are always added.
/// (Not `O_NOFOLLOW`: with `O_PATH` it would return the trailing symlink itself instead of
/// `ELOOP`; `RESOLVE_NO_SYMLINKS` already refuses a trailing link.)
pub fn open(dir: impl AsFd, rel: &Path, flags: OFlag, mode: Mode) -> io::Result<File> {
    // openat2 refuses (EINVAL) any flag but O_CLOEXEC, O_DIRECTORY and O_NOFOLLOW with O_PATH.
    let extra =
        if flags.contains(OFlag::O_PATH) { OFlag::O_CLOEXEC } else { OFlag::O_NOCTTY | OFlag::O_CLOEXEC };
    let how = OpenHow::new().flags(flags | extra).mode(mode).resolve(strict());
    Ok(File::from(openat2(dir, relative(rel)?, how)?))
}

/// An `O_PATH` descriptor of the absolute `path`, resolved from `/` with no symlink followed on
/// the way (`ELOOP` if one is): for host paths a request names, such as volume sources, where a
/// link an app planted must not redirect the mount.
pub fn open_host_path(path: &Path) -> io::Result<File> {
    let rel = path.strip_prefix("/").map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not absolute", path.display()))
    })?;
    let root = open_dir_at(Path::new("/"))?;
    if rel.as_os_str().is_empty() {
        return Ok(root);
    }
    open(root, rel, OFlag::O_PATH, Mode::empty())
}

/// Opens the directory `dir/rel` (symlinks and escapes refused as in [`open`]).
pub fn open_dir(dir: impl AsFd, rel: &Path) -> io::Result<File> {
    open(dir, rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())
}

/// Opens the directory at `path` itself without following a symlink at its last component.
pub fn open_dir_at(path: &Path) -> io::Result<File> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    Ok(File::from(nix::fcntl::open(path, flags, Mode::empty())?))
}

/// Makes `base` if missing, then (as `mkdir -p` would, mode 0700 for new ones) the directories of
/// `rel` under it, and opens the last: each step is resolved beneath the one before with no
/// symlink followed, so a link planted anywhere on the way fails the call (`ELOOP`) instead of
/// moving the writes.
pub fn make_dirs(base: &Path, rel: &Path) -> io::Result<File> {
    // `base` is vrd's own (the data dir, from its config): made as given.
    std::fs::create_dir_all(base)?;
    let mut dir = open_dir_at(base)?;
    for part in relative(rel)?.components() {
        let std::path::Component::Normal(name) = part else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a plain relative path", rel.display()),
            ));
        };
        match nix::sys::stat::mkdirat(&dir, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        dir = open_dir(&dir, Path::new(name))?;
    }
    Ok(dir)
}

/// What [`read_regular`] read: at most the limit's bytes, and whether the file held more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounded {
    pub bytes: Vec<u8>,
    pub cut: bool,
}

/// Reads at most `limit` bytes of the regular file `dir/rel`. A FIFO, socket or device is refused
/// rather than read (opened non-blocking, so a FIFO cannot hang the call), and so is a symlink or
/// a path leaving `dir`: what a container left there cannot make vrd read a host file or wait.
pub fn read_regular(dir: impl AsFd, rel: &Path, limit: u64) -> io::Result<Bounded> {
    let file = open(dir, rel, OFlag::O_RDONLY | OFlag::O_NONBLOCK, Mode::empty())?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{} is {what}", rel.display())));
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    let cut = bytes.len() as u64 > limit;
    bytes.truncate(limit as usize);
    Ok(Bounded { bytes, cut })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> (tempfile::TempDir, File) {
        let tmp = tempfile::tempdir().unwrap();
        let fd = open_dir_at(tmp.path()).unwrap();
        (tmp, fd)
    }

    #[test]
    fn a_regular_file_is_read_up_to_the_limit() {
        let (tmp, fd) = dir();
        std::fs::write(tmp.path().join("out"), "0123456789").unwrap();
        let whole = read_regular(&fd, Path::new("out"), 64).unwrap();
        assert_eq!((whole.bytes.as_slice(), whole.cut), (&b"0123456789"[..], false));
        let cut = read_regular(&fd, Path::new("out"), 4).unwrap();
        assert_eq!((cut.bytes.as_slice(), cut.cut), (&b"0123"[..], true));
    }

    #[test]
    fn symlinks_escapes_and_fifos_are_refused() {
        let (tmp, fd) = dir();
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("link")).unwrap();
        let err = read_regular(&fd, Path::new("link"), 64).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc_eloop()), "{err}");
        assert!(read_regular(&fd, Path::new("../x"), 64).is_err());
        assert!(read_regular(&fd, Path::new("/etc/hostname"), 64).is_err());
        nix::unistd::mkfifo(&tmp.path().join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let err = read_regular(&fd, Path::new("fifo"), 64).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
        std::fs::create_dir(tmp.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("/", tmp.path().join("sub/root")).unwrap();
        assert!(open_dir(&fd, Path::new("sub/root/etc")).is_err(), "a link in the middle");
        assert!(open_dir(&fd, Path::new("sub")).is_ok());
        let err = open_host_path(&tmp.path().join("sub/root")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc_eloop()), "a trailing link, even for O_PATH: {err}");
        assert!(open_host_path(&tmp.path().join("sub")).is_ok());
    }

    #[test]
    fn directories_are_made_beneath_without_following_links() {
        let (tmp, _) = dir();
        make_dirs(tmp.path(), Path::new("images/busybox")).unwrap();
        assert!(tmp.path().join("images/busybox").is_dir());
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("images/evil")).unwrap();
        assert!(make_dirs(tmp.path(), Path::new("images/evil/x")).is_err());
        assert!(!outside.path().join("x").exists(), "nothing made through the link");
        for bad in ["../x", "/x", "images/../x"] {
            assert!(make_dirs(tmp.path(), Path::new(bad)).is_err(), "{bad}");
        }
    }

    fn libc_eloop() -> i32 {
        nix::errno::Errno::ELOOP as i32
    }
}
