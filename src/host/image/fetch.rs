//! Fetching an image or build into a local cache directory, with Velociraptor's md5 rules.
//!
//! The file lands at `dest_dir/<basename of the url path>`. If it is already there and either no
//! md5 was given or the md5 matches, it is not fetched again; a mismatch re-fetches. What is
//! fetched is written to a temporary file in `dest_dir`, checked against the md5, synced and only
//! then renamed into place, so a reader never sees a partial or unverified file.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};

use super::ImageError;

/// How long to wait for a TCP (and TLS) connection to the image server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the response headers once connected.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);
/// Copy buffer size.
const BUFFER: usize = 256 * 1024;

/// Where a url points.
enum Source {
    Http(String),
    Local(PathBuf),
}

/// Fetches `url` (http://, https://, file:// or an absolute path) into `dest_dir` and returns the
/// local path. `expected_md5` (32 hex digits, any case) is checked as described in the module
/// docs; on a mismatch after fetching, the file is removed and the error names both md5s.
pub fn fetch(url: &str, dest_dir: &Path, expected_md5: Option<&str>) -> Result<PathBuf, ImageError> {
    let (source, name) = parse_url(url)?;
    let expected = expected_md5.map(|md5| normalize_md5(url, md5)).transpose()?;
    let dest = dest_dir.join(name);
    if dest.is_file() {
        match &expected {
            None => return Ok(dest),
            Some(expected) if verified_md5(&dest)? == *expected => return Ok(dest),
            Some(_) => tracing::info!(url, path = %dest.display(), "md5 changed; fetching again"),
        }
    }
    fs::create_dir_all(dest_dir).map_err(|e| ImageError::io("create directory", dest_dir, e))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".fetch-")
        .suffix(".part")
        .tempfile_in(dest_dir)
        .map_err(|e| ImageError::io("create a temporary file in", dest_dir, e))?;
    let temp_path = temp.path().to_path_buf();
    let out = temp.as_file_mut();
    let actual = match source {
        Source::Http(url) => {
            let download_error = |source| ImageError::Download { url: url.clone(), source };
            copy_hashing(&mut open_http(&url)?, out, download_error, &temp_path)?
        }
        Source::Local(path) => {
            let mut file = File::open(&path).map_err(|e| ImageError::io("open", &path, e))?;
            let read_error = |e| ImageError::io("read", &path, e);
            copy_hashing(&mut file, out, read_error, &temp_path)?
        }
    };
    if let Some(expected) = expected {
        if actual != expected {
            // The temporary file is removed when dropped; a stale copy at `dest` is useless too.
            drop(temp);
            match fs::remove_file(&dest) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ImageError::io("remove", &dest, e)),
            }
            return Err(ImageError::Md5Mismatch { url: url.to_string(), expected, actual });
        }
    }
    let file = temp.as_file();
    file.set_permissions(fs::Permissions::from_mode(0o644))
        .and_then(|()| file.sync_all())
        .map_err(|e| ImageError::io("write", temp.path(), e))?;
    temp.persist(&dest).map_err(|e| ImageError::io("rename a download to", &dest, e.error))?;
    remember_md5(&dest, &actual);
    Ok(dest)
}

/// A cached file as it was when its md5 was taken: device, inode, size and mtime.
type FileKey = (u64, u64, u64, i64, i64);

/// The md5s of cache files this vrd wrote or read whole, so a cached archive is checked once per
/// vrd rather than at every setup (a 100 MB slug is 0.2 s of CPU each time, per proc). A file
/// changed since (another size, mtime or inode) is read again.
static KNOWN_MD5: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<FileKey, String>>> =
    std::sync::LazyLock::new(Default::default);

fn file_key(path: &Path) -> Option<FileKey> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

fn remember_md5(path: &Path, md5: &str) {
    if let Some(key) = file_key(path) {
        let mut known = KNOWN_MD5.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        known.insert(key, md5.to_string());
    }
}

/// The md5 of a cache file: remembered while the file is unchanged, else read (and remembered).
fn verified_md5(path: &Path) -> Result<String, ImageError> {
    let key = file_key(path);
    if let Some(key) = &key {
        let known = KNOWN_MD5.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(md5) = known.get(key) {
            return Ok(md5.clone());
        }
    }
    let md5 = md5_file(path)?;
    remember_md5(path, &md5);
    Ok(md5)
}

/// Returns the md5 of a file as 32 lowercase hex digits.
pub fn md5_file(path: &Path) -> Result<String, ImageError> {
    let mut file = File::open(path).map_err(|e| ImageError::io("open", path, e))?;
    let read_error = |e| ImageError::io("read", path, e);
    copy_hashing(&mut file, &mut io::sink(), read_error, path)
}

/// Splits a url into its source and the file name it will have locally.
fn parse_url(url: &str) -> Result<(Source, String), ImageError> {
    let bad = |reason| ImageError::BadUrl { url: url.to_string(), reason };
    let (source, path) = if url.starts_with("http://") || url.starts_with("https://") {
        let parsed = url::Url::parse(url).map_err(|_| bad("it is not a valid url"))?;
        (Source::Http(url.to_string()), PathBuf::from(parsed.path()))
    } else if url.starts_with("file://") {
        let parsed = url::Url::parse(url).map_err(|_| bad("it is not a valid url"))?;
        let path =
            parsed.to_file_path().map_err(|()| bad("a file:// url must name an absolute local path"))?;
        (Source::Local(path.clone()), path)
    } else if url.starts_with('/') {
        (Source::Local(PathBuf::from(url)), PathBuf::from(url))
    } else {
        return Err(bad("the scheme is not supported"));
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .ok_or_else(|| bad("its path does not end in a file name"))?;
    Ok((source, name.to_string()))
}

/// Checks that an md5 is 32 hex digits and lowercases it.
fn normalize_md5(url: &str, md5: &str) -> Result<String, ImageError> {
    let md5 = md5.trim().to_ascii_lowercase();
    if md5.len() == 32 && md5.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(md5)
    } else {
        Err(ImageError::BadMd5 { url: url.to_string(), md5 })
    }
}

/// Starts an HTTP GET and returns the body; HTTP error statuses become `HttpStatus`.
fn open_http(url: &str) -> Result<impl Read, ImageError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_recv_response(Some(RESPONSE_TIMEOUT))
        .build()
        .into();
    // Ask for the bytes as stored: a transparently gunzipped .tar.gz would fail its md5.
    let request = agent.get(url).header("Accept-Encoding", "identity");
    match request.call() {
        Ok(response) => Ok(response.into_body().into_reader()),
        Err(ureq::Error::StatusCode(status)) => Err(ImageError::HttpStatus { url: url.to_string(), status }),
        Err(e) => Err(ImageError::Download { url: url.to_string(), source: io::Error::other(e) }),
    }
}

/// Copies `from` into `to` (the file at `to_path`), returning the md5 of what passed. Read
/// errors go through `read_error`.
fn copy_hashing(
    from: &mut dyn Read,
    to: &mut dyn Write,
    read_error: impl Fn(io::Error) -> ImageError,
    to_path: &Path,
) -> Result<String, ImageError> {
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e)),
        };
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n]).map_err(|e| ImageError::io("write", to_path, e))?;
    }
    Ok(format!("{:x}", hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_local_file() {
        let name = |url| parse_url(url).map(|(_, name)| name);
        assert_eq!(name("http://h/images/base.tar.gz").unwrap(), "base.tar.gz");
        assert_eq!(name("https://h/b/app-1-abc.tar.gz?x=1").unwrap(), "app-1-abc.tar.gz");
        assert_eq!(name("file:///srv/img.tar.xz").unwrap(), "img.tar.xz");
        assert_eq!(name("/srv/img.tar").unwrap(), "img.tar");
        for bad in ["ftp://h/x.tar", "relative/x.tar", "http://h/", "/srv/..", "file://host/x"] {
            assert!(matches!(name(bad), Err(ImageError::BadUrl { .. })), "{bad} should be refused");
        }
    }

    #[test]
    fn md5s_are_checked_and_lowercased() {
        let ok = normalize_md5("u", " D41D8CD98F00B204E9800998ECF8427E ").unwrap();
        assert_eq!(ok, "d41d8cd98f00b204e9800998ecf8427e");
        assert!(matches!(normalize_md5("u", "xyz"), Err(ImageError::BadMd5 { .. })));
    }

    #[test]
    fn a_cached_file_changed_since_its_md5_was_taken_is_checked_again() {
        let dir = tempfile::tempdir().unwrap();
        let (src, cache) = (dir.path().join("src"), dir.path().join("cache"));
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("a.tar"), b"first").unwrap();
        let md5 = md5_file(&src.join("a.tar")).unwrap();
        let url = src.join("a.tar").display().to_string();
        let cached = fetch(&url, &cache, Some(&md5)).unwrap();
        assert_eq!(fs::read(&cached).unwrap(), b"first");
        // The cached copy is damaged (same size, new mtime): the next fetch reads it, sees the
        // mismatch and copies the source again.
        std::thread::sleep(Duration::from_millis(20));
        fs::write(&cached, b"xxxxx").unwrap();
        let again = fetch(&url, &cache, Some(&md5)).unwrap();
        assert_eq!(fs::read(&again).unwrap(), b"first");
        assert_eq!(verified_md5(&again).unwrap(), md5);
    }
}
