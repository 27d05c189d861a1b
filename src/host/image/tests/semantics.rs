//! What a legitimate archive unpacks to: compressions, links, modes, owners, xattrs, times.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::unistd::geteuid;
use tar::{EntryType, Header};

use super::*;

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

#[test]
fn large_files_cross_copy_buffers_intact() {
    let chunk = super::unpack::COPY_BUFFER;
    let pattern = |len: usize| (0..len).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>();
    let sizes = [0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 17];
    let mut tar = Tar::new();
    for size in sizes {
        tar.raw(&format!("f{size}"), EntryType::Regular, "", 0o644, &pattern(size));
    }
    let bytes = gzip(&tar.bytes());
    let mut fx = Fixture::new();
    for via in vias("large_files_cross_copy_buffers_intact") {
        let (dest, result) = fx.run(via, &bytes, &opts());
        let stats = result.unwrap();
        assert_eq!(stats.bytes, sizes.iter().sum::<usize>() as u64);
        for size in sizes {
            let got = fs::read(dest.join(format!("f{size}"))).unwrap();
            assert!(got == pattern(size), "{via:?}: f{size} differs");
            assert_eq!(fs::metadata(dest.join(format!("f{size}"))).unwrap().mtime(), 1_600_000_000);
        }
    }
}
