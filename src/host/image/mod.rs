//! OS images and app builds on disk: fetching them (`fetch`) and unpacking them safely (`unpack`).
//!
//! Velociraptor downloaded an image or build tarball once per host (re-fetching only when its md5
//! changed), then untarred it: images keep the ownership recorded in the archive, builds are
//! chowned to the proc's run-as user. vr does the same, but treats every archive as hostile:
//! nothing may land outside the destination, device nodes are never created, and an archive that
//! expands past a byte or entry limit is stopped (see `UnpackOptions`).
//!
//! Unpacking resolves every path with `openat2(RESOLVE_IN_ROOT)`, so absolute symlinks inside an
//! image (`bin -> /usr/bin`) point into the image, never at the host. The daemon additionally runs
//! the unpack in a chrooted helper process (`vrd unpack`, see `unpack_with_helper`), because a
//! multi-threaded tokio process must neither fork nor chroot itself.

mod compress;
mod extract;
mod fetch;
mod helper;
mod unpack;

#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;

pub use fetch::{fetch, md5_file};
pub use helper::{unpack_main, unpack_with_helper};
pub use unpack::{unpack_archive, unpack_in_chroot, UnpackOptions, UnpackStats};

/// Everything that can go wrong while fetching or unpacking an image or build.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A filesystem operation on a named path failed.
    #[error("failed to {action} {path}")]
    Io {
        /// What was being done, as a verb phrase (`create file`, `rename`).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The url is neither http(s), file:// nor an absolute path, or has no file name.
    #[error("failed to parse url {url}: {reason}; use http://, https://, file:// or an absolute path ending in a file name")]
    BadUrl {
        /// The url as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The expected md5 is not 32 hex digits.
    #[error("failed to use md5 '{md5}' for {url}: an md5 is 32 hex digits; fix image_md5/build_md5")]
    BadMd5 {
        /// The url the md5 was given for.
        url: String,
        /// The md5 as given.
        md5: String,
    },
    /// The server answered with an HTTP error status.
    #[error("failed to download {url}: the server answered HTTP {status}; check that the url is right and the file is on the server")]
    HttpStatus {
        /// The url requested.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The download failed below HTTP (DNS, connect, TLS, a broken connection).
    #[error("failed to download {url}; check the network and the url, then retry")]
    Download {
        /// The url requested.
        url: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The fetched file's md5 is not the expected one; the file was removed.
    #[error("failed to verify {url}: its md5 is {actual} but {expected} was expected; the file was removed, check the md5 you gave and the file at the url")]
    Md5Mismatch {
        /// The url fetched.
        url: String,
        /// The md5 the caller expected.
        expected: String,
        /// The md5 of what was fetched.
        actual: String,
    },
    /// The archive is compressed with a format vr does not read.
    #[error("failed to unpack {archive}: {compression} compression is not supported; recompress it with gzip, bzip2 or xz")]
    UnsupportedCompression {
        /// The archive.
        archive: PathBuf,
        /// The format that was recognised.
        compression: &'static str,
    },
    /// The archive is not a readable (compressed) tar stream.
    #[error("failed to read archive {archive}; check that it is a complete tar file, optionally gzip, bzip2 or xz compressed")]
    Archive {
        /// The archive.
        archive: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The archive expands to more bytes than `UnpackOptions::max_bytes`.
    #[error("failed to unpack {archive}: it expands to more than the max_bytes limit of {limit} bytes; if the archive is legitimate, raise the limit (vrd unpack --max-bytes)")]
    TooManyBytes {
        /// The archive.
        archive: PathBuf,
        /// The limit that was hit.
        limit: u64,
    },
    /// The archive holds more entries than `UnpackOptions::max_entries`.
    #[error("failed to unpack {archive}: it holds more than the max_entries limit of {limit} entries; if the archive is legitimate, raise the limit (vrd unpack --max-entries)")]
    TooManyEntries {
        /// The archive.
        archive: PathBuf,
        /// The limit that was hit.
        limit: u64,
    },
    /// A long-name or pax header is implausibly large (a memory bomb).
    #[error("failed to unpack {archive}: a long-name or pax header is larger than {limit} bytes; the archive is hostile or corrupt, rebuild it")]
    HeaderTooLarge {
        /// The archive.
        archive: PathBuf,
        /// The limit that was hit.
        limit: u64,
    },
    /// A hardlink's target climbs out of the archive with `..`.
    #[error("failed to unpack {archive}: hardlink {entry} points outside the archive ({target}); rebuild the archive without it")]
    LinkOutside {
        /// The archive.
        archive: PathBuf,
        /// The link's path inside the archive.
        entry: PathBuf,
        /// The link's target as archived.
        target: PathBuf,
    },
    /// One entry could not be written.
    #[error("failed to {action} {path} while unpacking {archive}; the destination is incomplete and should be deleted")]
    Entry {
        /// The archive.
        archive: PathBuf,
        /// What was being done (`create file`, `link`).
        action: &'static str,
        /// The entry's path under the destination.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The unpack helper could not be started.
    #[error("failed to start the unpack helper {exe}; check that it exists and is executable")]
    HelperSpawn {
        /// The helper executable.
        exe: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The unpack helper failed; `message` is what it printed on stderr (which names the
    /// archive and says what to do).
    #[error("failed to unpack in the helper ({status}): {message}")]
    Helper {
        /// The archive.
        archive: PathBuf,
        /// How the helper exited.
        status: String,
        /// The helper's stderr.
        message: String,
    },
    /// The unpack helper succeeded but did not print its one-line JSON result.
    #[error(
        "failed to parse the unpack helper's result {output:?}; check that {exe} is the same vrd version"
    )]
    HelperOutput {
        /// The helper executable.
        exe: PathBuf,
        /// What it printed.
        output: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// `vrd unpack` was given bad arguments.
    #[error("failed to parse unpack arguments: {0}; usage: vrd unpack --archive FILE --dest DIR [--untrusted] [--owner UID:GID] [--max-bytes N] [--max-entries N]")]
    Usage(String),
}

impl ImageError {
    /// Wraps an io error with the action and the path it concerned.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        ImageError::Io { action, path: path.into(), source }
    }
}
