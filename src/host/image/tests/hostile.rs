//! Hostile archives: nothing may land outside the destination or exhaust the host.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use tar::EntryType;

use super::*;

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
