//! Tests for `host::image`: the shared harness here, the cases in `hostile`, `semantics` and
//! `fetch`.
//!
//! Archives are built in memory with the tar crate; entries its builder refuses (`..` paths,
//! device nodes, broken uid fields) are written as raw headers. Every unpack test runs twice: in
//! process (`unpack_archive`) and through the chrooted helper (`unpack_with_helper`), for which
//! this test binary re-executes itself (see `helper_process`). The helper and ownership tests need
//! root: they print `SKIPPED <test>: needs root` otherwise, or fail when `VRD_TEST_STRICT=1`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};
use tempfile::TempDir;

use super::*;
use crate::sys::testing::root_or_skip;

mod fetch;
mod hostile;
mod semantics;

// ---------------------------------------------------------------------------------------------
// Building archives

/// An in-memory tar archive with raw control over every header field.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Tar {
        Tar(tar::Builder::new(Vec::new()))
    }

    /// Appends an entry whose name and link name are copied verbatim into the header.
    fn raw(&mut self, path: &str, kind: EntryType, link: &str, mode: u32, data: &[u8]) -> &mut Tar {
        let mut header = Header::new_gnu();
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_600_000_000);
        header.set_cksum();
        self.0.append(&header, data).unwrap();
        self
    }

    fn file(&mut self, path: &str, data: &str) -> &mut Tar {
        self.raw(path, EntryType::Regular, "", 0o644, data.as_bytes())
    }

    fn dir(&mut self, path: &str) -> &mut Tar {
        self.raw(path, EntryType::Directory, "", 0o755, b"")
    }

    fn symlink(&mut self, path: &str, target: &str) -> &mut Tar {
        self.raw(path, EntryType::Symlink, target, 0o777, b"")
    }

    fn hardlink(&mut self, path: &str, target: &str) -> &mut Tar {
        self.raw(path, EntryType::Link, target, 0o644, b"")
    }

    /// Appends a header edited by `edit` (after the defaults, before the checksum).
    fn with(&mut self, path: &str, kind: EntryType, data: &[u8], edit: impl FnOnce(&mut Header)) -> &mut Tar {
        let mut header = Header::new_gnu();
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_600_000_000);
        edit(&mut header);
        header.set_cksum();
        self.0.append(&header, data).unwrap();
        self
    }

    /// Appends a pax extended header describing the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Tar {
        let mut data = Vec::new();
        for (key, value) in records {
            let body_len = key.len() + value.len() + 3; // ' ', '=', '\n'
            let mut len = body_len + 1;
            while len != body_len + len.to_string().len() {
                len = body_len + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        self.raw("PaxHeaders/next", EntryType::XHeader, "", 0o644, &data)
    }

    fn bytes(&mut self) -> Vec<u8> {
        self.0.finish().unwrap();
        self.0.get_ref().clone()
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut enc = ::bzip2::write::BzEncoder::new(Vec::new(), ::bzip2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 1);
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Two concatenated gzip members, as pigz or `cat a.gz b.gz` produce.
fn multi_gzip(data: &[u8]) -> Vec<u8> {
    let (a, b) = data.split_at(data.len() / 2);
    let mut out = gzip(a);
    out.extend(gzip(b));
    out
}

// ---------------------------------------------------------------------------------------------
// Running unpacks

/// Not a test: when `VR_TEST_UNPACK_ARGS` is set, this process is a stand-in for `vrd unpack`.
#[test]
fn helper_process() {
    let Ok(args) = std::env::var("VR_TEST_UNPACK_ARGS") else {
        return;
    };
    let args: Vec<String> = args.lines().map(str::to_string).collect();
    std::process::exit(unpack_main(&args));
}

/// Which entry point an unpack goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    InProcess,
    Helper,
}

/// Both entry points, or only the in-process one when not root.
fn vias(test: &str) -> Vec<Via> {
    let mut vias = vec![Via::InProcess];
    if root_or_skip(&format!("{test} (chroot helper)")) {
        vias.push(Via::Helper);
    }
    vias
}

fn opts() -> UnpackOptions {
    UnpackOptions { untrusted: false, owner: None, max_bytes: 1 << 30, max_entries: 100_000 }
}

/// A temp dir holding an `outside` directory that must stay empty, the archives and the
/// destinations, and a `vrd` script that re-executes this test binary as the helper.
struct Fixture {
    tmp: TempDir,
    runs: usize,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("outside")).unwrap();
        let exe = std::env::current_exe().unwrap();
        let script = tmp.path().join("vrd");
        fs::write(
            &script,
            format!(
                "#!/bin/sh\nVR_TEST_UNPACK_ARGS=\"$(printf '%s\\n' \"$@\")\"\nexport VR_TEST_UNPACK_ARGS\n\
                 exec '{}' --exact host::image::tests::helper_process --nocapture --quiet --test-threads=1\n",
                exe.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        Fixture { tmp, runs: 0 }
    }

    fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }

    /// Unpacks `bytes` into a fresh destination; returns it and the result.
    fn run(
        &mut self,
        via: Via,
        bytes: &[u8],
        opts: &UnpackOptions,
    ) -> (PathBuf, Result<UnpackStats, ImageError>) {
        self.runs += 1;
        let archive = self.tmp.path().join(format!("archive-{}.tar.gz", self.runs));
        let dest = self.tmp.path().join(format!("dest-{}", self.runs));
        fs::write(&archive, bytes).unwrap();
        let result = match via {
            Via::InProcess => unpack_archive(&archive, &dest, opts),
            Via::Helper => unpack_with_helper(&self.tmp.path().join("vrd"), &archive, &dest, opts),
        };
        self.assert_contained();
        (dest, result)
    }

    /// Nothing was written next to the destinations or into `outside`.
    fn assert_contained(&self) {
        let outside: Vec<_> = fs::read_dir(self.outside()).unwrap().collect();
        assert!(outside.is_empty(), "something landed outside: {outside:?}");
        for entry in fs::read_dir(self.tmp.path()).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                name == "outside"
                    || name == "vrd"
                    || name.starts_with("archive-")
                    || name.starts_with("dest-"),
                "something landed outside: {name}"
            );
        }
    }
}

/// A snapshot of a directory tree: path → `d`, `f:<content>` or `l:<target>`.
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                out.insert(rel, "d".into());
                walk(root, &path, out);
            } else if meta.file_type().is_symlink() {
                out.insert(rel, format!("l:{}", fs::read_link(&path).unwrap().display()));
            } else {
                out.insert(rel, format!("f:{}", fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}
