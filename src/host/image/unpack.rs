//! Unpacking a tar archive into a directory: limits, entry types, ownership and modes.
//!
//! The tar crate parses headers; vr writes the entries itself (see `extract`), because the
//! crate's own `unpack` resolves absolute symlinks against the host, turns device nodes into
//! empty files and fails a whole archive on one empty uid field. Directories get their final
//! mode, owner and mtime at the end, deepest first, so a read-only directory cannot block its
//! own children and writing children does not disturb a parent's mtime.

use std::cell::Cell;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{chdir, chroot, geteuid};
use serde::{Deserialize, Serialize};
use tar::EntryType;

use super::compress::Stream;
use super::extract::{sanitize, Meta, Root};
use super::ImageError;

/// How an archive is unpacked. There are no defaults: the caller decides the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackOptions {
    /// The archive comes from a tenant (an app build): files lose setuid/setgid/sticky bits and
    /// only `user.*` xattrs are kept. Images (`false`) keep their modes and file capabilities.
    pub untrusted: bool,
    /// Chown every entry to this uid/gid and make files `ug+rw` and directories `ug+rx`, as
    /// Velociraptor did for builds. `None` keeps the archive's numeric owners when running as
    /// root (images) and the current user otherwise.
    pub owner: Option<(u32, u32)>,
    /// Maximum total size of all entries' data, in bytes (a decompression bomb stops here).
    pub max_bytes: u64,
    /// Maximum number of entries.
    pub max_entries: u64,
}

/// What an unpack did; `vrd unpack` prints it as one line of JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpackStats {
    /// Entries read from the archive, including skipped ones.
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hardlinks created.
    pub hardlinks: u64,
    /// Entries skipped: device nodes, fifos, `..` paths and unknown types.
    pub skipped: u64,
    /// Bytes of file data written.
    pub bytes: u64,
}

/// Unpacks `archive` into `dest` (created if missing) in this process.
///
/// Safe for a multi-threaded daemon: it neither forks nor changes process-wide state (it starts
/// one decompressor thread). Paths are confined to `dest` by `openat2(RESOLVE_IN_ROOT)`. On
/// error, what was written stays inside `dest`; the caller deletes it.
pub fn unpack_archive(archive: &Path, dest: &Path, opts: &UnpackOptions) -> Result<UnpackStats, ImageError> {
    let mut stream = Stream::open(archive)?;
    fs::create_dir_all(dest).map_err(|e| ImageError::io("create directory", dest, e))?;
    let root = open_dir(dest)?;
    Unpacker::new(archive, dest, opts, root, false).run(stream.reader())
}

/// Unpacks `archive` into `dest` after `chroot(dest)`, for the `vrd unpack` helper process.
///
/// This changes the root directory, working directory and umask of the whole process, so call
/// it only in a dedicated single-purpose process (see `unpack_with_helper`); it needs root
/// (CAP_SYS_CHROOT). The archive is opened before the chroot.
pub fn unpack_in_chroot(
    archive: &Path,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, ImageError> {
    let file = File::open(archive).map_err(|e| ImageError::io("open", archive, e))?;
    fs::create_dir_all(dest).map_err(|e| ImageError::io("create directory", dest, e))?;
    let mut stream = Stream::start(file, archive)?;
    chroot(dest).map_err(|e| ImageError::io("chroot (needs root) into", dest, e.into()))?;
    chdir("/").map_err(|e| ImageError::io("change directory to the new root", dest, e.into()))?;
    umask(Mode::empty());
    let root = open_dir(Path::new("/"))?;
    Unpacker::new(archive, dest, opts, root, true).run(stream.reader())
}

fn open_dir(dir: &Path) -> Result<OwnedFd, ImageError> {
    open(dir, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| ImageError::io("open directory", dir, e.into()))
}

/// Size of the buffer file data is copied through (one `write` per buffer).
pub(crate) const COPY_BUFFER: usize = 1 << 20;

/// Bytes a long-name or pax header (plus the unread rest of the previous entry) may take.
const HEADER_LIMIT: u64 = 4 << 20;

/// Counts the bytes the tar parser reads between entries, so a gigantic long-name or pax header
/// (which the tar crate reads into memory) is refused instead of exhausting memory.
struct Metered<'r> {
    inner: &'r mut dyn Read,
    /// Bytes still allowed; `u64::MAX` while entry data is read (that is limited by size).
    budget: Rc<Cell<u64>>,
    tripped: Rc<Cell<bool>>,
}

impl Read for Metered<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let left = self.budget.get();
        let used = n as u64;
        if used > left {
            self.tripped.set(true);
            return Err(io::Error::other("header larger than the limit"));
        }
        self.budget.set(left - used);
        Ok(n)
    }
}

/// Who owns what is unpacked.
#[derive(Debug, Clone, Copy)]
enum Ownership {
    /// Everything to this uid/gid.
    Fixed(u32, u32),
    /// The archive's numeric uid/gid (needs root).
    Archive,
    /// Whoever runs the unpack.
    Caller,
}

/// One unpack in progress.
struct Unpacker<'a> {
    archive: &'a Path,
    dest: &'a Path,
    opts: &'a UnpackOptions,
    root: Root,
    ownership: Ownership,
    /// Directories whose metadata is applied at the end.
    dirs: Vec<(PathBuf, Meta)>,
    /// Declared bytes so far, checked against `max_bytes`.
    reserved: u64,
    buf: Vec<u8>,
    stats: UnpackStats,
}

impl<'a> Unpacker<'a> {
    fn new(
        archive: &'a Path,
        dest: &'a Path,
        opts: &'a UnpackOptions,
        root: OwnedFd,
        umask_zero: bool,
    ) -> Unpacker<'a> {
        let ownership = match opts.owner {
            Some((uid, gid)) => Ownership::Fixed(uid, gid),
            None if geteuid().is_root() => Ownership::Archive,
            None => Ownership::Caller,
        };
        Unpacker {
            archive,
            dest,
            opts,
            root: Root::new(root, opts.owner, umask_zero),
            ownership,
            dirs: Vec::new(),
            reserved: 0,
            buf: vec![0; COPY_BUFFER],
            stats: UnpackStats::default(),
        }
    }

    /// Reads the whole tar stream and writes its entries.
    fn run(mut self, stream: &mut dyn Read) -> Result<UnpackStats, ImageError> {
        let budget = Rc::new(Cell::new(u64::MAX));
        let tripped = Rc::new(Cell::new(false));
        let metered = Metered { inner: stream, budget: Rc::clone(&budget), tripped: Rc::clone(&tripped) };
        let mut tar = tar::Archive::new(metered);
        let mut entries = tar.entries().map_err(|e| self.archive_error(e))?;
        let mut previous_size = 0u64;
        loop {
            budget.set(HEADER_LIMIT.saturating_add(previous_size.saturating_add(511) & !511));
            let entry = match entries.next() {
                None => break,
                Some(Ok(entry)) => entry,
                Some(Err(_)) if tripped.get() => {
                    return Err(ImageError::HeaderTooLarge {
                        archive: self.archive.to_path_buf(),
                        limit: HEADER_LIMIT,
                    })
                }
                Some(Err(e)) => return Err(self.archive_error(e)),
            };
            budget.set(u64::MAX);
            previous_size = entry.size();
            self.stats.entries += 1;
            if self.stats.entries > self.opts.max_entries {
                return Err(ImageError::TooManyEntries {
                    archive: self.archive.to_path_buf(),
                    limit: self.opts.max_entries,
                });
            }
            self.reserve(entry.size())?;
            self.entry(entry)?;
        }
        // Read what follows the end-of-archive blocks (record padding, the gzip trailer) so a
        // corrupt or truncated compressed stream is an error, not a silent success.
        let mut rest = tar.into_inner();
        rest.budget.set(HEADER_LIMIT);
        loop {
            match rest.read(&mut self.buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) if tripped.get() => break,
                Err(e) => return Err(self.archive_error(e)),
            }
        }
        self.finish()
    }

    /// Counts `bytes` more against `max_bytes`.
    fn reserve(&mut self, bytes: u64) -> Result<(), ImageError> {
        self.reserved = self.reserved.saturating_add(bytes);
        if self.reserved > self.opts.max_bytes {
            return Err(ImageError::TooManyBytes {
                archive: self.archive.to_path_buf(),
                limit: self.opts.max_bytes,
            });
        }
        Ok(())
    }

    /// Writes one entry.
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), ImageError> {
        let kind = entry.header().entry_type();
        let archived = entry.path().map_err(|e| self.archive_error(e))?.into_owned();
        let Some(rel) = sanitize(&archived) else {
            // A tenant controls this, so it is not worth a warning per entry; it is counted.
            tracing::debug!(entry = %archived.display(), "skipped an entry that climbs out with ..");
            self.stats.skipped += 1;
            return Ok(());
        };
        let is_root = rel.as_os_str().is_empty();
        match kind {
            EntryType::Directory => {
                let meta = self.meta(&mut entry, true);
                self.root
                    .make_dir(&rel, meta.mode)
                    .map_err(|e| self.entry_error("create directory", &rel, e))?;
                self.dirs.push((rel, meta));
                self.stats.dirs += 1;
            }
            _ if is_root => self.stats.skipped += 1,
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let meta = self.meta(&mut entry, false);
                let declared = entry.size();
                self.file(&mut entry, &rel, &meta, declared)?;
            }
            EntryType::Symlink => {
                let meta = self.meta(&mut entry, false);
                let target = entry.link_name().map_err(|e| self.archive_error(e))?;
                let target = target.unwrap_or_default().into_owned();
                if !self.opts.untrusted && rel == Path::new("etc/resolv.conf") {
                    // Velociraptor replaced a symlinked resolv.conf with an empty file; the
                    // host's resolv.conf is bind-mounted over it at run time.
                    let meta = Meta { mode: 0o644, ..meta };
                    return self.file(&mut io::empty(), &rel, &meta, 0);
                }
                self.root
                    .make_symlink(&rel, &target, &meta)
                    .map_err(|e| self.entry_error("create symlink", &rel, e))?;
                self.stats.symlinks += 1;
            }
            EntryType::Link => {
                let archived_target = entry.link_name().map_err(|e| self.archive_error(e))?;
                let archived_target = archived_target.unwrap_or_default().into_owned();
                let Some(target) = sanitize(&archived_target) else {
                    return Err(ImageError::LinkOutside {
                        archive: self.archive.to_path_buf(),
                        entry: archived,
                        target: archived_target,
                    });
                };
                self.root
                    .make_hardlink(&rel, &target)
                    .map_err(|e| self.entry_error("create hardlink", &rel, e))?;
                self.stats.hardlinks += 1;
            }
            other => {
                // Device nodes and fifos are never created: the container's /dev is a tmpfs
                // with a fixed set of nodes. Unknown types (pax globals, volume labels) carry
                // nothing to write.
                tracing::debug!(entry = %archived.display(), ?other, "skipped an entry");
                self.stats.skipped += 1;
            }
        }
        Ok(())
    }

    /// Writes a regular file with the data read from `data`, of which `declared` bytes were
    /// already counted against `max_bytes`.
    fn file(
        &mut self,
        data: &mut dyn Read,
        rel: &Path,
        meta: &Meta,
        declared: u64,
    ) -> Result<(), ImageError> {
        let mut file =
            self.root.create_file(rel, meta.mode).map_err(|e| self.entry_error("create file", rel, e))?;
        let mut written = 0u64;
        let mut allowed = declared;
        loop {
            let filled = fill(data, &mut self.buf).map_err(|e| self.archive_error(e))?;
            if filled == 0 {
                break;
            }
            written += filled as u64;
            // A sparse entry can expand past its declared size; count the excess too.
            if written > allowed {
                self.reserve(written - allowed)?;
                allowed = written;
            }
            file.write_all(&self.buf[..filled]).map_err(|e| self.entry_error("write file", rel, e))?;
            if filled < self.buf.len() {
                break;
            }
        }
        self.root
            .finish_file(&file, meta)
            .map_err(|e| self.entry_error("set owner, mode or time of", rel, e))?;
        self.stats.files += 1;
        self.stats.bytes += written;
        Ok(())
    }

    /// Works out mode, owner, mtime and xattrs of an entry. Unparseable header fields (an empty
    /// uid, say) fall back to defaults instead of failing the archive.
    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, dir: bool) -> Meta {
        let header = entry.header();
        let mut mode = header.mode().unwrap_or(if dir { 0o755 } else { 0o644 }) & 0o7777;
        let archived_owner = match (header.uid(), header.gid()) {
            (Ok(uid), Ok(gid)) => u32::try_from(uid).ok().zip(u32::try_from(gid).ok()),
            _ => None,
        };
        let mut mtime = header.mtime().ok().and_then(|s| i64::try_from(s).ok()).map(|s| (s, 0));
        let owner = match self.ownership {
            Ownership::Fixed(uid, gid) => {
                mode |= if dir { 0o550 } else { 0o660 };
                Some((uid, gid))
            }
            Ownership::Archive => archived_owner,
            Ownership::Caller => None,
        };
        if self.opts.untrusted && !dir {
            mode &= 0o777;
        }
        let mut xattrs = Vec::new();
        if let Ok(Some(pax)) = entry.pax_extensions() {
            for ext in pax.flatten() {
                let Ok(key) = ext.key() else { continue };
                if key == "mtime" {
                    mtime = ext.value().ok().and_then(parse_pax_time).or(mtime);
                } else if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    if self.keep_xattr(name) {
                        if let Ok(name) = CString::new(name) {
                            xattrs.push((name, ext.value_bytes().to_vec()));
                        }
                    }
                }
            }
        }
        Meta { mode, owner, mtime, xattrs }
    }

    /// SELinux labels are never taken from an archive (the host relabels); tenants get only
    /// `user.*`, so a build cannot carry file capabilities.
    fn keep_xattr(&self, name: &str) -> bool {
        name != "security.selinux" && (!self.opts.untrusted || name.starts_with("user."))
    }

    /// Applies directory metadata, deepest first, and returns the stats.
    fn finish(mut self) -> Result<UnpackStats, ImageError> {
        if let Ownership::Fixed(uid, gid) = self.ownership {
            self.root.chown_root(uid, gid).map_err(|e| ImageError::io("chown", self.dest, e))?;
        }
        let mut dirs = std::mem::take(&mut self.dirs);
        // Stable sort: of two entries for one directory, the later one is applied last.
        dirs.sort_by(|(a, _), (b, _)| b.as_os_str().cmp(a.as_os_str()));
        for (rel, meta) in &dirs {
            self.root
                .finish_dir(rel, meta)
                .map_err(|e| self.entry_error("set owner, mode or time of directory", rel, e))?;
        }
        Ok(self.stats)
    }

    fn archive_error(&self, source: io::Error) -> ImageError {
        ImageError::Archive { archive: self.archive.to_path_buf(), source }
    }

    fn entry_error(&self, action: &'static str, rel: &Path, source: io::Error) -> ImageError {
        ImageError::Entry { archive: self.archive.to_path_buf(), action, path: self.dest.join(rel), source }
    }
}

/// Reads until `buf` is full or the data ends; returns the bytes read.
fn fill(data: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match data.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Parses a pax time such as `1700000000.25` into seconds and nanoseconds.
fn parse_pax_time(text: &str) -> Option<(i64, i64)> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let nanos = if digits.is_empty() { 0 } else { format!("{digits:0<9}").parse().ok()? };
    // Times before 1970 are rare enough to keep whole seconds only.
    Some((secs, if secs < 0 { 0 } else { nanos }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_parse() {
        assert_eq!(parse_pax_time("1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(parse_pax_time("1700000000.25"), Some((1_700_000_000, 250_000_000)));
        assert_eq!(parse_pax_time("12.1234567891"), Some((12, 123_456_789)));
        assert_eq!(parse_pax_time("x"), None);
    }
}
