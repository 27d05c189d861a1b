//! Fuzz target: `unpack_archive` on arbitrary bytes (tar, or gzip/bzip2/xz around one), as a
//! tenant's build archive (even lengths) or as an image (odd lengths). Whatever the archive holds, nothing may appear or
//! change outside the destination: it is unpacked into `jail/dest`, next to a sentinel file, and
//! afterwards `jail` must hold exactly `dest` and the untouched sentinel.

#![no_main]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vr::host::image::{unpack_archive, UnpackOptions};

const SENTINEL: &[u8] = b"outside the destination\n";

struct Dirs {
    _base: tempfile::TempDir,
    archive: PathBuf,
    jail: PathBuf,
    /// The uid and gid this fuzzer runs as (the owner of the temp dir it made).
    me: (u32, u32),
}

fn dirs() -> &'static Dirs {
    static DIRS: OnceLock<Dirs> = OnceLock::new();
    DIRS.get_or_init(|| {
        let base = tempfile::Builder::new().prefix("vr-fuzz-unpack").tempdir().expect("a temp dir");
        let jail = base.path().join("jail");
        fs::create_dir(&jail).expect("the jail");
        let sentinel = jail.join("sentinel");
        fs::write(&sentinel, SENTINEL).expect("the sentinel");
        fs::set_permissions(&sentinel, fs::Permissions::from_mode(0o644)).expect("the sentinel's mode");
        let meta = fs::metadata(&jail).expect("the jail");
        Dirs { archive: base.path().join("archive"), jail, me: (meta.uid(), meta.gid()), _base: base }
    })
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("readable")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn check_jail(jail: &Path) {
    let found = names(jail);
    assert!(
        found == ["dest", "sentinel"] || found == ["sentinel"],
        "something was written outside dest: {found:?}"
    );
    let sentinel = jail.join("sentinel");
    let meta = fs::symlink_metadata(&sentinel).expect("the sentinel");
    assert!(
        meta.is_file() && meta.nlink() == 1 && meta.mode() & 0o7777 == 0o644,
        "the sentinel changed: {meta:?}"
    );
    assert_eq!(fs::read(&sentinel).expect("the sentinel"), SENTINEL, "the sentinel was overwritten");
}

fuzz_target!(|data: &[u8]| {
    let Dirs { archive, jail, me, .. } = dirs();
    fs::write(archive, data).expect("the archive");
    // A tenant's build archive, or (odd lengths) an image: unpacking twice would halve the speed.
    let opts = if data.len() % 2 == 0 {
        UnpackOptions { untrusted: true, owner: Some(*me), max_bytes: 1 << 20, max_entries: 256 }
    } else {
        UnpackOptions { untrusted: false, owner: None, max_bytes: 1 << 20, max_entries: 256 }
    };
    let dest = jail.join("dest");
    let _ = unpack_archive(archive, &dest, &opts);
    check_jail(jail);
    if dest.exists() {
        remove(&dest);
    }
});

/// Removes what an unpack wrote, first making its directories writable (an archive may make
/// them read-only, which stops an unprivileged fuzzer from removing their entries).
fn remove(dest: &Path) {
    if fs::remove_dir_all(dest).is_ok() {
        return;
    }
    open_up(dest);
    fs::remove_dir_all(dest).expect("dest can be removed");
}

fn open_up(dir: &Path) {
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            open_up(&entry.path());
        }
    }
}
