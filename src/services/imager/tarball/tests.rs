//! The tarball writer, read back with the tar crate: entry order, types, modes, owners, links,
//! long names, pax records, left-out fifos, and the md5 of what was written.

use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};

use flate2::read::GzDecoder;

use super::*;

struct Entry {
    path: String,
    kind: EntryType,
    mode: u32,
    uid: u64,
    link: Option<String>,
    data: Vec<u8>,
    pax: Vec<(String, Vec<u8>)>,
}

fn read_back(tarball: &Path) -> Vec<Entry> {
    let mut archive = tar::Archive::new(GzDecoder::new(File::open(tarball).unwrap()));
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let pax = entry
            .pax_extensions()
            .unwrap()
            .map(|p| p.flatten().map(|e| (e.key().unwrap().to_string(), e.value_bytes().to_vec())).collect())
            .unwrap_or_default();
        let header = entry.header().clone();
        let link = entry.link_name().unwrap().map(|l| l.display().to_string());
        let path = entry.path().unwrap().display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.push(Entry {
            path,
            kind: header.entry_type(),
            mode: header.mode().unwrap(),
            uid: header.uid().unwrap(),
            link,
            data,
            pax,
        });
    }
    out
}

#[test]
fn a_tree_round_trips_with_its_links_modes_and_owners() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let long = "d".repeat(60);
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join(format!("usr/{long}/{long}"))).unwrap();
    fs::write(root.join("bin/tool"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(root.join("bin/tool"), root.join("bin/tool2")).unwrap();
    symlink("/bin/tool", root.join("bin/sh")).unwrap();
    fs::write(root.join(format!("usr/{long}/{long}/deep.txt")), "deep").unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let out = dir.path().join("out.tar.gz");
    let archived = write_tar_gz(&root, File::create(&out).unwrap(), "out.tar.gz").unwrap();
    assert_eq!((archived.entries, archived.skipped), (9, 1), "the fifo is left out");
    let md5 = format!("{:x}", Md5::digest(fs::read(&out).unwrap()));
    assert_eq!(archived.md5, md5);
    let entries = read_back(&out);
    let paths: Vec<_> = entries.iter().map(|e| e.path.trim_end_matches('/').to_string()).collect();
    let deep = format!("usr/{long}/{long}");
    assert_eq!(
        paths,
        [
            ".",
            "bin",
            "bin/sh",
            "bin/tool",
            "bin/tool2",
            "usr",
            &format!("usr/{long}"),
            &deep,
            &format!("{deep}/deep.txt")
        ]
    );
    let by = |p: &str| entries.iter().find(|e| e.path.trim_end_matches('/') == p).unwrap();
    assert_eq!(by(".").mode, 0o755);
    assert_eq!(by(".").kind, EntryType::Directory);
    let tool = by("bin/tool");
    assert_eq!(
        (tool.kind, tool.mode, tool.data.as_slice()),
        (EntryType::Regular, 0o4755, &b"#!/bin/sh\n"[..])
    );
    assert_eq!(tool.uid, u64::from(nix::unistd::geteuid().as_raw()));
    let link = by("bin/tool2");
    assert_eq!((link.kind, link.link.as_deref()), (EntryType::Link, Some("bin/tool")));
    let sh = by("bin/sh");
    assert_eq!((sh.kind, sh.link.as_deref()), (EntryType::Symlink, Some("/bin/tool")));
    assert_eq!(by(&format!("{deep}/deep.txt")).data, b"deep");
}

#[test]
fn pax_records_count_their_own_length_and_reach_the_next_entry() {
    assert_eq!(pax_record("k", b"v"), b"6 k=v\n");
    assert_eq!(pax_record("key", b"12"), b"9 key=12\n");
    assert_eq!(pax_record("k", b"vvvvv"), b"11 k=vvvvv\n", "the length's second digit counts too");
    let value = vec![7u8; 95];
    let record = pax_record("SCHILY.xattr.security.capability", &value);
    let len: usize = String::from_utf8_lossy(&record).split(' ').next().unwrap().parse().unwrap();
    assert_eq!(len, record.len());

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.tar.gz");
    let sink =
        Md5Writer { inner: BufWriter::new(File::create(&out).unwrap()), md5: Md5::new(), failed: false };
    let mut tar = tar::Builder::new(GzEncoder::new(sink, Compression::fast()));
    append_pax(&mut tar, &[("SCHILY.xattr.security.capability", &value)]).unwrap();
    let mut header = Header::new_gnu();
    header.set_size(2);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    tar.append_data(&mut header, "bin/ping", &b"hi"[..]).unwrap();
    tar.into_inner().unwrap().finish().unwrap().flush().unwrap();
    let entries = read_back(&out);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].pax, [("SCHILY.xattr.security.capability".to_string(), value)]);
}
