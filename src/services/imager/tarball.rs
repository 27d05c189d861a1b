//! Writing a provisioned root as a gzip-compressed tar, hashing it on the way out.
//!
//! The walk is depth first in name order (the same tree gives the same entry order), never
//! follows a symlink, and keeps what an OS image needs: numeric owners, modes with setuid, setgid
//! and sticky bits, mtimes, symlinks as symlinks, hardlinks as links to the first path archived,
//! and file capabilities (`security.capability`, as a pax `SCHILY.xattr` record, which the
//! unpacker restores for images). Device nodes, fifos and sockets are left out: containers get
//! their own /dev. File contents are opened with `openat2(RESOLVE_IN_ROOT)`, so nothing the
//! script left behind can make vrd read a file outside the root.

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use md5::{Digest, Md5};
use tar::{EntryType, Header, HeaderMode};

use super::ImagerError;
use crate::sys;

/// What went into a tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    /// The md5 of the compressed file, 32 lowercase hex digits.
    pub md5: String,
    /// Entries written (directories, files, symlinks, hardlinks).
    pub entries: u64,
    /// Device nodes, fifos and sockets left out.
    pub skipped: u64,
}

/// The xattr kept: file capabilities (`ping`'s cap_net_raw, say).
const CAPABILITY_XATTR: &std::ffi::CStr = c"security.capability";

/// Passes writes on and hashes what was written; remembers whether writing failed, so an error
/// is blamed on the output rather than on the file being read.
struct Md5Writer<W> {
    inner: W,
    md5: Md5,
    failed: bool,
}

impl<W: Write> Write for Md5Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf).inspect_err(|_| self.failed = true)?;
        self.md5.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|_| self.failed = true)
    }
}

type Archive = tar::Builder<GzEncoder<Md5Writer<BufWriter<File>>>>;

/// Writes `root` to `out` as a .tar.gz (`name` is the output's file name, for messages).
pub fn write_tar_gz(root: &Path, out: File, name: &str) -> Result<Archived, ImagerError> {
    let output = |cause| ImagerError::Output { name: name.to_string(), cause };
    let sink = Md5Writer { inner: BufWriter::with_capacity(1 << 20, out), md5: Md5::new(), failed: false };
    let mut tar = tar::Builder::new(GzEncoder::new(sink, Compression::default()));
    let (entries, skipped) = append_tree(&mut tar, root).map_err(|(path, cause)| {
        if tar.get_ref().get_ref().failed {
            output(cause)
        } else {
            ImagerError::io("archive", path, cause)
        }
    })?;
    let mut sink = tar.into_inner().and_then(GzEncoder::finish).map_err(output)?;
    sink.flush().map_err(output)?;
    let md5 = format!("{:x}", sink.md5.finalize());
    let file = sink.inner.into_inner().map_err(|e| output(e.into_error()))?;
    file.sync_all().map_err(output)?;
    Ok(Archived { md5, entries, skipped })
}

/// Appends every entry under `root`; returns (entries, skipped), or the path that failed.
fn append_tree(tar: &mut Archive, root: &Path) -> Result<(u64, u64), (PathBuf, io::Error)> {
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let (mut entries, mut skipped) = (0, 0);
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let path = root.join(&rel);
        let at = |e| (path.clone(), e);
        let meta = fs::symlink_metadata(&path).map_err(at)?;
        if meta.is_dir() {
            let mut names: Vec<_> = fs::read_dir(&path)
                .and_then(|d| d.map(|e| e.map(|e| e.file_name())).collect())
                .map_err(at)?;
            names.sort();
            stack.extend(names.into_iter().rev().map(|n| rel.join(n)));
        }
        if append_entry(tar, root, &rel, &meta, &mut links).map_err(at)? {
            entries += 1;
        } else {
            skipped += 1;
        }
    }
    Ok((entries, skipped))
}

/// Appends one entry; false when its type is left out.
fn append_entry(
    tar: &mut Archive,
    root: &Path,
    rel: &Path,
    meta: &Metadata,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<bool> {
    let mut header = Header::new_gnu();
    header.set_metadata_in_mode(meta, HeaderMode::Complete);
    header.set_mode(meta.mode() & 0o7777);
    let kind = meta.file_type();
    if kind.is_dir() {
        let name = if rel.as_os_str().is_empty() { PathBuf::from("./") } else { rel.join("") };
        tar.append_data(&mut header, name, io::empty())?;
    } else if kind.is_symlink() {
        let target = fs::read_link(root.join(rel))?;
        tar.append_link(&mut header, rel, target)?;
    } else if kind.is_file() {
        append_file(tar, root, rel, meta, header, links)?;
    } else {
        return Ok(false);
    }
    Ok(true)
}

fn append_file(
    tar: &mut Archive,
    root: &Path,
    rel: &Path,
    meta: &Metadata,
    mut header: Header,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    if meta.nlink() > 1 {
        if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
            header.set_entry_type(EntryType::Link);
            header.set_size(0);
            return tar.append_link(&mut header, rel, first);
        }
        links.insert((meta.dev(), meta.ino()), rel.to_path_buf());
    }
    let file = sys::open_in_root(root, rel)?;
    if let Ok(caps) = sys::fs::fgetxattr(&file, CAPABILITY_XATTR) {
        append_pax(tar, &[("SCHILY.xattr.security.capability", &caps)])?;
    }
    tar.append_data(&mut header, rel, file)
}

/// Appends a pax extended header (`x`) that applies to the next entry.
fn append_pax(tar: &mut Archive, records: &[(&str, &[u8])]) -> io::Result<()> {
    let data: Vec<u8> = records.iter().flat_map(|(key, value)| pax_record(key, value)).collect();
    let mut header = Header::new_ustar();
    header.set_entry_type(EntryType::XHeader);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(data.len() as u64);
    tar.append_data(&mut header, "PaxHeader", data.as_slice())
}

/// One pax record: `<length> <key>=<value>\n`, where the length counts its own digits.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut record = format!("{len} {key}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

#[cfg(test)]
mod tests;
