//! Hostile-archive and fetch tests for `host::image`.
//!
//! Archives are built in memory with the tar crate; entries its builder refuses (`..` paths,
//! device nodes, broken uid fields) are written as raw headers. Every unpack test runs twice: in
//! process (`unpack_archive`) and through the chrooted helper (`unpack_with_helper`), for which
//! this test binary re-executes itself (see `helper_process`). The helper and ownership tests need
//! root: they print `SKIPPED <test>: needs root` otherwise, or fail when `VRD_TEST_STRICT=1`.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use nix::unistd::geteuid;
use tar::{EntryType, Header};
use tempfile::TempDir;

use super::*;

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

fn root_or_skip(test: &str) -> bool {
    if geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("VRD_TEST_STRICT").as_deref() != Ok("1"),
        "{test} needs root and VRD_TEST_STRICT=1 forbids skipping"
    );
    println!("SKIPPED {test}: needs root");
    false
}

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

// ---------------------------------------------------------------------------------------------
// Hostile archives

#[test]
fn dotdot_entries_are_skipped() {
    let bytes = Tar::new()
        .file("../escape.txt", "x")
        .file("a/../../escape2.txt", "x")
        .file("../outside/escape3.txt", "x")
        .file("ok.txt", "ok")
        .bytes();
    let mut fx = Fixture::new();
    for via in vias("dotdot_entries_are_skipped") {
        let (dest, result) = fx.run(via, &gzip(&bytes), &opts());
        let stats = result.unwrap();
        assert_eq!(stats.skipped, 3, "{via:?}");
        assert_eq!(tree(&dest), BTreeMap::from([("ok.txt".into(), "f:ok".into())]));
    }
}

#[test]
fn absolute_paths_land_inside() {
    let mut fx = Fixture::new();
    let outside = fx.outside().join("abs2.txt");
    let bytes = Tar::new().file("/abs.txt", "a").file(outside.to_str().unwrap(), "b").bytes();
    for via in vias("absolute_paths_land_inside") {
        let (dest, result) = fx.run(via, &bytes, &opts());
        result.unwrap();
        assert_eq!(fs::read_to_string(dest.join("abs.txt")).unwrap(), "a");
        let inside = dest.join(outside.strip_prefix("/").unwrap());
        assert_eq!(fs::read_to_string(inside).unwrap(), "b", "{via:?}");
    }
}

#[test]
fn symlink_escapes_cannot_write_outside() {
    let mut fx = Fixture::new();
    let outside = fx.outside();
    let abs = outside.to_str().unwrap().to_string();
    let climb = format!("../../../../../../../..{abs}");
    // Without the target inside the image the write-through fails; either way nothing escapes.
    let dangling = Tar::new().symlink("link", &abs).file("link/through.txt", "x").bytes();
    let relative = Tar::new().symlink("rel", &climb).file("rel/through.txt", "x").bytes();
    // With the target present inside the image, the write goes there.
    let inside = Tar::new()
        .dir(&format!("{abs}/"))
        .symlink("link", &abs)
        .file("link/through.txt", "x")
        .symlink("rel", &climb)
        .file("rel/through2.txt", "y")
        .bytes();
    for via in vias("symlink_escapes_cannot_write_outside") {
        let (_, result) = fx.run(via, &dangling, &opts());
        assert!(result.is_err(), "{via:?}: a dangling write-through should fail");
        let (_, result) = fx.run(via, &relative, &opts());
        assert!(result.is_err(), "{via:?}: a dangling write-through should fail");
        let (dest, result) = fx.run(via, &inside, &opts());
        result.unwrap();
        let target = dest.join(outside.strip_prefix("/").unwrap());
        assert_eq!(fs::read_to_string(target.join("through.txt")).unwrap(), "x");
        assert_eq!(fs::read_to_string(target.join("through2.txt")).unwrap(), "y");
    }
}

#[test]
fn hardlinks_cannot_reach_host_files() {
    let mut fx = Fixture::new();
    let host_links = fs::metadata("/etc/passwd").unwrap().nlink();
    let absolute = Tar::new().hardlink("hl", "/etc/passwd").bytes();
    let climbing = Tar::new().hardlink("hl", "../../../../../etc/passwd").bytes();
    let via_symlink = Tar::new().symlink("etcl", "/etc").hardlink("hl", "etcl/passwd").bytes();
    for via in vias("hardlinks_cannot_reach_host_files") {
        for bytes in [&absolute, &via_symlink] {
            let (dest, result) = fx.run(via, bytes, &opts());
            let err = result.unwrap_err().to_string();
            assert!(err.contains("failed to create hardlink"), "{via:?}: {err}");
            assert!(!dest.join("hl").exists());
        }
        let (_, result) = fx.run(via, &climbing, &opts());
        let err = result.unwrap_err().to_string();
        assert!(err.contains("points outside the archive"), "{via:?}: {err}");
    }
    assert_eq!(fs::metadata("/etc/passwd").unwrap().nlink(), host_links);
}

#[test]
fn hardlinks_inside_the_archive_work() {
    let bytes = Tar::new().file("a", "data").hardlink("b", "a").hardlink("/c", "/a").bytes();
    let mut fx = Fixture::new();
    for via in vias("hardlinks_inside_the_archive_work") {
        let (dest, result) = fx.run(via, &bytes, &opts());
        assert_eq!(result.unwrap().hardlinks, 2);
        let inode = fs::metadata(dest.join("a")).unwrap().ino();
        assert_eq!(fs::metadata(dest.join("b")).unwrap().ino(), inode);
        assert_eq!(fs::metadata(dest.join("c")).unwrap().ino(), inode);
    }
}

#[test]
fn device_nodes_and_fifos_are_skipped() {
    let bytes = Tar::new()
        .dir("dev/")
        .with("dev/null", EntryType::Char, b"", |h| {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        })
        .with("dev/sda", EntryType::Block, b"", |h| {
            h.set_device_major(8).unwrap();
            h.set_device_minor(0).unwrap();
        })
        .raw("dev/fifo", EntryType::Fifo, "", 0o644, b"")
        .file("dev/readme", "r")
        .bytes();
    let mut fx = Fixture::new();
    for via in vias("device_nodes_and_fifos_are_skipped") {
        let (dest, result) = fx.run(via, &bytes, &opts());
        assert_eq!(result.unwrap().skipped, 3, "{via:?}");
        assert_eq!(
            tree(&dest),
            BTreeMap::from([("dev".into(), "d".into()), ("dev/readme".into(), "f:r".into())])
        );
    }
}

#[test]
fn untrusted_archives_lose_setuid_bits() {
    let bytes = Tar::new()
        .raw("su", EntryType::Regular, "", 0o4755, b"x")
        .raw("wall", EntryType::Regular, "", 0o2755, b"x")
        .raw("sticky", EntryType::Regular, "", 0o1755, b"x")
        .raw("tmp/", EntryType::Directory, "", 0o1777, b"")
        .bytes();
    let mut fx = Fixture::new();
    for via in vias("untrusted_archives_lose_setuid_bits") {
        let untrusted = UnpackOptions { untrusted: true, ..opts() };
        let (dest, result) = fx.run(via, &bytes, &untrusted);
        result.unwrap();
        for name in ["su", "wall", "sticky"] {
            assert_eq!(mode(&dest.join(name)), 0o755, "{via:?} {name}");
        }
        assert_eq!(mode(&dest.join("tmp")), 0o1777);
        // An image keeps them.
        let (dest, result) = fx.run(via, &bytes, &opts());
        result.unwrap();
        assert_eq!(mode(&dest.join("su")), 0o4755, "{via:?}");
        assert_eq!(mode(&dest.join("wall")), 0o2755, "{via:?}");
    }
}

#[test]
fn decompression_bombs_hit_the_limits() {
    let big = vec![0u8; 64 << 20];
    let bomb = gzip(&Tar::new().raw("zeros", EntryType::Regular, "", 0o644, &big).bytes());
    assert!(bomb.len() < 1 << 20, "the bomb should be small: {}", bomb.len());
    let mut many = Tar::new();
    for i in 0..50 {
        many.file(&format!("f{i}"), "x");
    }
    let many = many.bytes();
    let long_name = Tar::new()
        .raw("././@LongLink", EntryType::GNULongName, "", 0o644, &vec![b'a'; 8 << 20])
        .file("x", "x")
        .bytes();
    let mut fx = Fixture::new();
    let limits = UnpackOptions { max_bytes: 1 << 20, max_entries: 10, ..opts() };
    for via in vias("decompression_bombs_hit_the_limits") {
        let (dest, result) = fx.run(via, &bomb, &limits);
        let err = result.unwrap_err().to_string();
        assert!(err.contains("max_bytes limit of 1048576") && err.contains("--max-bytes"), "{err}");
        assert!(!dest.join("zeros").exists() || fs::metadata(dest.join("zeros")).unwrap().len() <= 1 << 20);
        let (_, result) = fx.run(via, &many, &limits);
        let err = result.unwrap_err().to_string();
        assert!(err.contains("max_entries limit of 10") && err.contains("--max-entries"), "{err}");
        let (_, result) = fx.run(via, &gzip(&long_name), &opts());
        let err = result.unwrap_err().to_string();
        assert!(err.contains("long-name or pax header is larger"), "{err}");
    }
}

#[test]
fn absolute_symlinks_resolve_inside_the_image() {
    let pid_file = format!("vr-test-{}.pid", std::process::id());
    let bytes = Tar::new()
        .dir("usr/")
        .dir("usr/bin/")
        .symlink("bin", "/usr/bin")
        .file("bin/sh", "#!fake")
        .dir("usr/lib64/")
        .symlink("lib64", "usr/lib64")
        .file("lib64/ld.so", "ld")
        .dir("run/")
        .dir("var/")
        .symlink("var/run", "/run")
        .file(&format!("var/run/{pid_file}"), "1")
        .bytes();
    let mut fx = Fixture::new();
    for via in vias("absolute_symlinks_resolve_inside_the_image") {
        let (dest, result) = fx.run(via, &xz(&bytes), &opts());
        result.unwrap();
        assert_eq!(fs::read_to_string(dest.join("usr/bin/sh")).unwrap(), "#!fake");
        assert_eq!(fs::read_to_string(dest.join("usr/lib64/ld.so")).unwrap(), "ld");
        assert_eq!(fs::read_to_string(dest.join("run").join(&pid_file)).unwrap(), "1");
        assert_eq!(fs::read_link(dest.join("bin")).unwrap(), Path::new("/usr/bin"));
        assert!(!Path::new("/run").join(&pid_file).exists(), "{via:?} wrote to the host /run");
    }
}

#[test]
fn all_compressions_unpack_alike() {
    let bytes = Tar::new().dir("d/").file("d/f", "hello").symlink("d/l", "f").hardlink("d/h", "d/f").bytes();
    let expected = BTreeMap::from([
        ("d".into(), "d".into()),
        ("d/f".into(), "f:hello".into()),
        ("d/h".into(), "f:hello".into()),
        ("d/l".into(), "l:f".into()),
    ]);
    let mut fx = Fixture::new();
    for via in vias("all_compressions_unpack_alike") {
        for (name, packed) in [
            ("plain", bytes.clone()),
            ("gzip", gzip(&bytes)),
            ("multi-member gzip", multi_gzip(&bytes)),
            ("bzip2", bzip2(&bytes)),
            ("xz", xz(&bytes)),
        ] {
            let (dest, result) = fx.run(via, &packed, &opts());
            result.unwrap_or_else(|e| panic!("{via:?} {name}: {e}"));
            assert_eq!(tree(&dest), expected, "{via:?} {name}");
        }
        let (_, result) = fx.run(via, &[0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0], &opts());
        let err = result.unwrap_err().to_string();
        assert!(err.contains("zstd compression is not supported"), "{err}");
    }
}

#[test]
fn corrupt_archives_are_errors() {
    let bytes = Tar::new().file("a", &"x".repeat(100_000)).bytes();
    let gz = gzip(&bytes);
    let truncated = &gz[..gz.len() / 2];
    let mut flipped = gz.clone();
    let len = flipped.len();
    flipped[len - 6] ^= 0xff; // inside the CRC32 trailer
    let mut fx = Fixture::new();
    for via in vias("corrupt_archives_are_errors") {
        for (name, packed) in
            [("truncated", truncated), ("bad crc", &flipped[..]), ("garbage", &[7u8; 2048][..])]
        {
            let (_, result) = fx.run(via, packed, &opts());
            let err = result.unwrap_err().to_string();
            assert!(err.contains("failed to read archive"), "{via:?} {name}: {err}");
        }
    }
}

#[test]
fn symlinked_resolv_conf_becomes_an_empty_file() {
    let bytes =
        Tar::new().dir("etc/").symlink("etc/resolv.conf", "../run/systemd/resolve/stub-resolv.conf").bytes();
    let mut fx = Fixture::new();
    for via in vias("symlinked_resolv_conf_becomes_an_empty_file") {
        let (dest, result) = fx.run(via, &bytes, &opts());
        result.unwrap();
        let meta = fs::symlink_metadata(dest.join("etc/resolv.conf")).unwrap();
        assert!(meta.is_file() && meta.len() == 0, "{via:?}");
        assert_eq!(meta.mode() & 0o777, 0o644);
    }
}

#[test]
fn broken_numeric_fields_do_not_fail_the_archive() {
    let bytes = Tar::new()
        .with("no-owner", EntryType::Regular, b"x", |h| {
            h.as_old_mut().uid = [0; 8];
            h.as_old_mut().gid = [b' '; 8];
            h.as_old_mut().mtime = [0; 12];
        })
        .with("no-mode", EntryType::Regular, b"y", |h| h.as_old_mut().mode = [0; 8])
        .bytes();
    let mut fx = Fixture::new();
    for via in vias("broken_numeric_fields_do_not_fail_the_archive") {
        let (dest, result) = fx.run(via, &bytes, &opts());
        assert_eq!(result.unwrap().files, 2);
        assert_eq!(fs::read_to_string(dest.join("no-owner")).unwrap(), "x");
        assert_eq!(mode(&dest.join("no-mode")), 0o644);
    }
}

#[test]
fn later_entries_replace_earlier_ones_without_following_links() {
    let bytes = Tar::new()
        .file("target.txt", "orig")
        .symlink("x", "target.txt")
        .file("x", "new")
        .file("dup", "one")
        .file("dup", "two")
        .file("was-file", "f")
        .dir("was-file/")
        .bytes();
    let mut fx = Fixture::new();
    for via in vias("later_entries_replace_earlier_ones_without_following_links") {
        let (dest, result) = fx.run(via, &bytes, &opts());
        result.unwrap();
        assert_eq!(
            tree(&dest),
            BTreeMap::from([
                ("dup".into(), "f:two".into()),
                ("target.txt".into(), "f:orig".into()),
                ("was-file".into(), "d".into()),
                ("x".into(), "f:new".into()),
            ])
        );
    }
}

#[test]
fn directory_modes_and_times_are_applied_last() {
    let bytes = Tar::new()
        .raw("./", EntryType::Directory, "", 0o755, b"")
        .raw("ro/", EntryType::Directory, "", 0o555, b"")
        .file("ro/f", "f")
        .raw("ro/sub/", EntryType::Directory, "", 0o500, b"")
        .file("ro/sub/g", "g")
        .bytes();
    let mut fx = Fixture::new();
    for via in vias("directory_modes_and_times_are_applied_last") {
        let (dest, result) = fx.run(via, &bytes, &opts());
        result.unwrap();
        assert_eq!(mode(&dest), 0o755, "{via:?}: the ./ entry sets the root's mode");
        assert_eq!(mode(&dest.join("ro")), 0o555);
        assert_eq!(mode(&dest.join("ro/sub")), 0o500);
        for path in ["ro", "ro/f", "ro/sub", "ro/sub/g"] {
            assert_eq!(fs::metadata(dest.join(path)).unwrap().mtime(), 1_600_000_000, "{path}");
        }
        // Let the temp dir be cleaned up by a non-root run too.
        for path in ["ro/sub", "ro"] {
            fs::set_permissions(dest.join(path), fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

#[test]
fn pax_xattrs_are_filtered() {
    let bytes = Tar::new()
        .pax(&[
            ("SCHILY.xattr.user.vr", b"kept"),
            ("SCHILY.xattr.security.selinux", b"system_u:object_r:etc_t:s0"),
            ("SCHILY.xattr.trusted.vr", b"image only"),
            ("mtime", b"1500000000.5"),
        ])
        .file("f", "x")
        .bytes();
    let xattr = |path: &Path, name: &str| {
        let file = fs::File::open(path).unwrap();
        crate::sys::fs::fgetxattr(&file, &CString::new(name).unwrap()).ok()
    };
    let mut fx = Fixture::new();
    for via in vias("pax_xattrs_are_filtered") {
        let (dest, result) = fx.run(via, &bytes, &opts());
        result.unwrap();
        let f = dest.join("f");
        assert_eq!(xattr(&f, "user.vr").as_deref(), Some(&b"kept"[..]), "{via:?}");
        assert_eq!(xattr(&f, "security.selinux"), None, "{via:?}");
        if geteuid().is_root() {
            assert_eq!(xattr(&f, "trusted.vr").as_deref(), Some(&b"image only"[..]));
        }
        assert_eq!(fs::metadata(&f).unwrap().mtime(), 1_500_000_000);
        assert_eq!(fs::metadata(&f).unwrap().mtime_nsec(), 500_000_000);
        let untrusted = UnpackOptions { untrusted: true, ..opts() };
        let (dest, result) = fx.run(via, &bytes, &untrusted);
        result.unwrap();
        assert_eq!(xattr(&dest.join("f"), "trusted.vr"), None, "{via:?}");
        assert!(xattr(&dest.join("f"), "user.vr").is_some());
    }
}

#[test]
fn image_ownership_is_kept() {
    if !root_or_skip("image_ownership_is_kept") {
        return;
    }
    let owned = |uid, gid| {
        move |h: &mut Header| {
            h.set_uid(uid);
            h.set_gid(gid);
        }
    };
    let bytes = Tar::new()
        .with("d/", EntryType::Directory, b"", owned(4242, 4343))
        .with("d/f", EntryType::Regular, b"x", owned(4244, 4345))
        .with("d/l", EntryType::Symlink, b"", |h| {
            h.set_link_name("f").unwrap();
            owned(4246, 4347)(h);
        })
        .bytes();
    let mut fx = Fixture::new();
    for via in vias("image_ownership_is_kept") {
        let (dest, result) = fx.run(via, &bytes, &opts());
        result.unwrap();
        for (path, uid, gid) in [("d", 4242, 4343), ("d/f", 4244, 4345), ("d/l", 4246, 4347)] {
            let meta = fs::symlink_metadata(dest.join(path)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{via:?} {path}");
        }
    }
}

#[test]
fn builds_are_chowned_to_the_run_as_user() {
    if !root_or_skip("builds_are_chowned_to_the_run_as_user") {
        return;
    }
    let bytes = Tar::new()
        .raw("d/", EntryType::Directory, "", 0o700, b"")
        .raw("d/f", EntryType::Regular, "", 0o600, b"x")
        .symlink("d/l", "f")
        .file("implicit/parent/g", "g")
        .bytes();
    let owner = UnpackOptions { untrusted: true, owner: Some((4321, 8765)), ..opts() };
    let mut fx = Fixture::new();
    for via in vias("builds_are_chowned_to_the_run_as_user") {
        let (dest, result) = fx.run(via, &bytes, &owner);
        result.unwrap();
        for path in ["", "d", "d/f", "d/l", "implicit", "implicit/parent", "implicit/parent/g"] {
            let meta = fs::symlink_metadata(dest.join(path)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (4321, 8765), "{via:?} '{path}'");
        }
        assert_eq!(mode(&dest.join("d")), 0o750);
        assert_eq!(mode(&dest.join("d/f")), 0o660);
    }
}

#[test]
fn helper_reports_usage_and_missing_archives() {
    if !root_or_skip("helper_reports_usage_and_missing_archives") {
        return;
    }
    let fx = Fixture::new();
    let missing = fx.tmp.path().join("archive-missing");
    let err =
        unpack_with_helper(&fx.tmp.path().join("vrd"), &missing, &fx.tmp.path().join("dest-x"), &opts())
            .unwrap_err()
            .to_string();
    assert!(err.contains("failed to open") && err.contains("archive-missing"), "{err}");
    let err = unpack_with_helper(Path::new("/nonexistent/vrd"), &missing, &missing, &opts()).unwrap_err();
    assert!(matches!(err, ImageError::HelperSpawn { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Fetching

/// A one-thread HTTP/1.0 server on 127.0.0.1 that serves `files` and counts requests.
fn serve(files: HashMap<String, Vec<u8>>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            let response = match files.get(&path) {
                Some(body) => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(body);
                    r
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    (base, hits)
}

fn md5_of(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    format!("{:x}", Md5::digest(data))
}

#[test]
fn fetch_copies_local_files_and_file_urls() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("img.tar.gz");
    fs::write(&src, b"image bytes").unwrap();
    let cache = tmp.path().join("cache");
    let got = fetch(src.to_str().unwrap(), &cache, Some(&md5_of(b"image bytes"))).unwrap();
    assert_eq!(got, cache.join("img.tar.gz"));
    assert_eq!(fs::read(&got).unwrap(), b"image bytes");
    assert_eq!(md5_file(&got).unwrap(), md5_of(b"image bytes"));
    let cache2 = tmp.path().join("cache2");
    let got = fetch(&format!("file://{}", src.display()), &cache2, None).unwrap();
    assert_eq!(fs::read(got).unwrap(), b"image bytes");
    let err = fetch(tmp.path().join("missing.tar").to_str().unwrap(), &cache, None).unwrap_err();
    assert!(err.to_string().contains("missing.tar"), "{err}");
}

#[test]
fn fetch_follows_the_md5_rules_over_http() {
    let body = b"build tarball".to_vec();
    let md5 = md5_of(&body);
    let (base, hits) = serve(HashMap::from([("/builds/app.tar.gz".to_string(), body.clone())]));
    let url = format!("{base}/builds/app.tar.gz");
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path();
    let dest = cache.join("app.tar.gz");

    // First fetch downloads and verifies.
    assert_eq!(fetch(&url, cache, Some(&md5)).unwrap(), dest);
    assert_eq!(fs::read(&dest).unwrap(), body);
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Present and matching (md5 in upper case): no request.
    fetch(&url, cache, Some(&md5.to_uppercase())).unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Present, no md5 given: kept as is, even if it differs.
    fs::write(&dest, b"stale").unwrap();
    fetch(&url, cache, None).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), b"stale");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Present with the wrong md5: fetched again.
    fetch(&url, cache, Some(&md5)).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), body);
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // Fetched but not what was expected: error naming both md5s, nothing left behind.
    let wrong = "0123456789abcdef0123456789abcdef";
    let err = fetch(&url, cache, Some(wrong)).unwrap_err().to_string();
    assert!(err.contains(wrong) && err.contains(&md5), "{err}");
    assert_eq!(fs::read_dir(cache).unwrap().count(), 0, "the file and temp files are removed");

    // HTTP errors name the url and the status.
    let missing = format!("{base}/builds/missing.tar.gz");
    let err = fetch(&missing, cache, None).unwrap_err();
    assert!(matches!(err, ImageError::HttpStatus { status: 404, .. }), "{err}");
    assert!(err.to_string().contains(&missing) && err.to_string().contains("404"), "{err}");
    assert_eq!(fs::read_dir(cache).unwrap().count(), 0);
}

#[test]
fn fetch_refuses_bad_urls_and_md5s() {
    let tmp = tempfile::tempdir().unwrap();
    let err = fetch("ftp://example.com/x.tar", tmp.path(), None).unwrap_err();
    assert!(err.to_string().contains("use http://"), "{err}");
    let err = fetch("/srv/x.tar", tmp.path(), Some("nope")).unwrap_err();
    assert!(matches!(err, ImageError::BadMd5 { .. }), "{err}");
    let err = fetch("http://127.0.0.1:1/x.tar", tmp.path(), None).unwrap_err();
    assert!(matches!(err, ImageError::Download { .. }), "{err}");
}
