//! The slug: a tar.gz of the built app dir (its contents, as Velociraptor packed them), without
//! `.git`/`.hg` and without what `.slugignore` names, with the Procfile completed from the
//! buildpacks' default process types; and its md5, computed while it is written.
//!
//! The app dir was written by the build user. vrd reads it as root only after the container is gone
//! (its pid namespace is dead, so nothing can change the tree meanwhile), walks it without
//! following symlinks (they are archived as symlinks), opens files with O_NOFOLLOW|O_NONBLOCK,
//! and archives only regular files, directories and symlinks.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use md5::{Digest, Md5};
use nix::fcntl::OFlag;
use tar::{EntryType, Header, HeaderMode};

use crate::model::slugignore::SlugIgnore;

/// A writer that hashes what passes through it.
struct Hashing<W: Write> {
    inner: W,
    md5: Md5,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.md5.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What to leave out and what to replace.
pub struct SlugPlan<'a> {
    /// `.slugignore`'s patterns.
    pub ignore: &'a SlugIgnore,
    /// The Procfile to write instead of the app's own, when defaults were added.
    pub procfile: Option<&'a str>,
    /// Entries newer than this (unix seconds; the app commit's time) get it as their mtime, and
    /// no entry records its atime or ctime, so rebuilding a commit gives the same bytes and the
    /// artifact store keeps them once (SOURCE_DATE_EPOCH's clamp).
    pub mtime_clamp: Option<u64>,
}

/// Opens a file for reading without following a symlink and without blocking on a FIFO.
pub fn open_plain(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// Writes the slug of `app` to `out`; returns the md5 of the bytes written.
pub fn write_slug(app: &Path, out: File, plan: &SlugPlan<'_>) -> io::Result<String> {
    let hashing = Hashing { inner: io::BufWriter::new(out), md5: Md5::new() };
    let mut tar = tar::Builder::new(GzEncoder::new(hashing, Compression::default()));
    tar.mode(HeaderMode::Complete);
    tar.follow_symlinks(false);
    add_dir(&mut tar, app, "", plan)?;
    if let Some(text) = plan.procfile {
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(text.len() as u64);
        header.set_mtime(plan.mtime_clamp.unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
        }));
        tar.append_data(&mut header, "Procfile", text.as_bytes())?;
    }
    let mut hashing = tar.into_inner()?.finish()?;
    hashing.flush()?;
    Ok(hashing.md5.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn add_dir<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &Path,
    rel: &str,
    plan: &SlugPlan<'_>,
) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| io::Error::other(format!("failed to read {}: {e}", dir.display())))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let child_rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        let path = entry.path();
        let meta = fs::symlink_metadata(&path)?;
        let skip = (rel.is_empty() && (name == ".git" || name == ".hg"))
            || (rel.is_empty() && name == "Procfile" && plan.procfile.is_some())
            || plan.ignore.is_ignored(&child_rel, meta.is_dir());
        if skip {
            continue;
        }
        let mut header = Header::new_gnu();
        header.set_metadata_in_mode(&meta, HeaderMode::Complete);
        if let Some(clamp) = plan.mtime_clamp {
            let mtime = header.mtime()?.min(clamp);
            header.set_mtime(mtime);
            if let Some(gnu) = header.as_gnu_mut() {
                gnu.set_atime(mtime);
                gnu.set_ctime(mtime);
            }
        }
        let kind = meta.file_type();
        if kind.is_dir() {
            header.set_entry_type(EntryType::Directory);
            header.set_size(0);
            tar.append_data(&mut header, &child_rel, io::empty())?;
            add_dir(tar, &path, &child_rel, plan)?;
        } else if kind.is_symlink() {
            header.set_entry_type(EntryType::Symlink);
            header.set_size(0);
            let target = fs::read_link(&path)?;
            tar.append_link(&mut header, &child_rel, target)?;
        } else if kind.is_file() {
            let mut file = open_plain(&path)
                .map_err(|e| io::Error::other(format!("failed to open {}: {e}", path.display())))?;
            header.set_entry_type(EntryType::Regular);
            header.set_size(meta.len());
            // A file that changed size since its stat is archived with what was read, padded.
            let mut limited = (&mut file).take(meta.len()).chain(io::repeat(0).take(meta.len()));
            tar.append_data(&mut header, &child_rel, (&mut limited).take(meta.len()))?;
        }
        // Sockets, FIFOs and devices are not part of an app.
    }
    Ok(())
}

/// Reads a small regular file of the app dir (`.buildpacks`, `.slugignore`, `Procfile`), resolving
/// symlinks inside the app dir only; `None` when it is missing or not a regular file.
pub fn read_small(root: &Path, rel: &str, max: u64) -> Option<String> {
    use nix::fcntl::{openat2, OpenHow, ResolveFlag};
    let dir = File::open(root).ok()?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let file = File::from(openat2(&dir, rel, how).ok()?);
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(max).read_to_string(&mut text).ok()?;
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(archive: &Path) -> Vec<(String, EntryType)> {
        let file = File::open(archive).unwrap();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        tar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().display().to_string(), e.header().entry_type())
            })
            .collect()
    }

    #[test]
    fn the_slug_leaves_out_vcs_dirs_and_slugignored_paths_and_keeps_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        for d in [".git/objects", "src", "docs", "tmp/cache"] {
            fs::create_dir_all(app.join(d)).unwrap();
        }
        fs::write(app.join(".git/HEAD"), "x").unwrap();
        fs::write(app.join("src/main.py"), "print(1)\n").unwrap();
        fs::write(app.join("docs/big.psd"), "psd").unwrap();
        fs::write(app.join("Procfile"), "web: mine\n").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", app.join("secret")).unwrap();
        let ignore = SlugIgnore::parse("*.psd\n/tmp\n");
        let out = dir.path().join("slug.tar.gz");
        let plan = SlugPlan { ignore: &ignore, procfile: Some("web: mine\nworker: w\n"), mtime_clamp: None };
        let md5 = write_slug(&app, File::create(&out).unwrap(), &plan).unwrap();
        assert_eq!(md5, format!("{:x}", Md5::digest(fs::read(&out).unwrap())));
        let names = entries(&out);
        let paths: Vec<&str> = names.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["docs", "secret", "src", "src/main.py", "Procfile"]);
        assert_eq!(names[1].1, EntryType::Symlink, "symlinks stay symlinks, never their targets");
    }

    #[test]
    fn small_reads_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("outside"), "secret").unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), root.join("link")).unwrap();
        fs::write(root.join("real"), "ok").unwrap();
        std::os::unix::fs::symlink("real", root.join("relative")).unwrap();
        assert_eq!(read_small(&root, "link", 100), None);
        assert_eq!(read_small(&root, "relative", 100).as_deref(), Some("ok"));
        nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(read_small(&root, "fifo", 100), None, "a FIFO neither blocks nor counts");
    }
}
