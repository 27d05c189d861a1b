//! Builds as objects: where vrd keeps each build's compile log (`builds/<id>/compile.log`) and
//! slug (a content-addressed store, `store/sha256/<hex>`), and their garbage collection ([`gc`]).
//! Stack images share the store (their tarballs) and keep their build logs beside
//! (`stack-images/<id>/build.log`).
//!
//! The store is written the crash-safe way: a temp file in the store dir, fsync, rename, fsync of
//! the dir. Identical slugs have one address, so they are stored once.

pub mod fill;
pub mod gc;
pub mod recorded;

use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

/// The most of a kept compile log `builds.log` hands out.
pub const MAX_LOG: u64 = 32 << 20;

/// Why the build store failed; io errors carry their path.
#[derive(Debug, thiserror::Error)]
pub enum BuildsError {
    /// A file system operation failed.
    #[error(
        "failed to {what} {path}: {source}; check free disk space and the permissions of vrd's data dir"
    )]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BuildsError + 'a {
    move |source| BuildsError::Io { what, path: path.to_path_buf(), source }
}

/// The directories of builds' logs and artifacts, under the data dir.
#[derive(Debug, Clone)]
pub struct BuildStore {
    /// The data dir.
    pub root: PathBuf,
    /// Held (shared) by a build from its record to its outcome, and (exclusively) by gc, so gc
    /// never removes a slug that a running build has stored but not yet recorded.
    pub busy: std::sync::Arc<tokio::sync::RwLock<()>>,
    /// Where artifacts this store lacks come from (other coordinators of a shared model).
    pub fill: fill::Fill,
}

impl BuildStore {
    /// The store under `data_dir`.
    pub fn new(data_dir: &Path) -> BuildStore {
        BuildStore { root: data_dir.to_path_buf(), busy: Default::default(), fill: Default::default() }
    }

    /// `store/sha256`.
    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store").join("sha256")
    }

    /// Where the slug with this sha256 is kept.
    pub fn artifact_path(&self, sha256: &str) -> PathBuf {
        self.store_dir().join(sha256)
    }

    /// The store's file for `sha256`, fetched from another coordinator when this store lacks it
    /// and the model is shared; an error says why it is not there.
    pub async fn ensure_artifact(&self, sha256: &str) -> Result<PathBuf, String> {
        self.fill.ensure(sha256, &self.artifact_path(sha256)).await
    }

    /// `builds/<id>`: the kept files of build `id`.
    pub fn build_dir(&self, id: u64) -> PathBuf {
        self.root.join("builds").join(id.to_string())
    }

    /// Creates `builds/<id>/compile.log`; returns its path and the file.
    pub fn create_log(&self, id: u64) -> Result<(PathBuf, File), BuildsError> {
        let dir = self.build_dir(id);
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let path = dir.join("compile.log");
        let file = File::create(&path).map_err(io_err("create", &path))?;
        Ok((path, file))
    }

    /// A temp file in the store dir for a slug being written.
    pub fn temp_artifact(&self) -> Result<NamedTempFile, BuildsError> {
        let dir = self.store_dir();
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        tempfile::Builder::new()
            .prefix(".incoming.")
            .tempfile_in(&dir)
            .map_err(io_err("create a file in", &dir))
    }

    /// Copies the finished slug in `temp` to `to` (the caller's build.tar.gz) while hashing it,
    /// then keeps it at its address (once: when the address exists, the temp file is dropped).
    /// Returns the sha256.
    pub fn publish(&self, temp: NamedTempFile, to: &mut File) -> Result<String, BuildsError> {
        self.store(temp, Some(to))
    }

    /// Keeps the finished artifact in `temp` at its address; returns the sha256.
    pub fn keep(&self, temp: NamedTempFile) -> Result<String, BuildsError> {
        self.store(temp, None)
    }

    fn store(&self, temp: NamedTempFile, mut to: Option<&mut File>) -> Result<String, BuildsError> {
        let path = temp.path().to_path_buf();
        let mut file = temp.as_file();
        file.rewind().map_err(io_err("read", &path))?;
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = file.read(&mut buf).map_err(io_err("read", &path))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            if let Some(to) = to.as_mut() {
                to.write_all(&buf[..n]).map_err(io_err("write the caller's copy of", &path))?;
            }
        }
        let hex = format!("{:x}", hash.finalize());
        let dest = self.artifact_path(&hex);
        if dest.exists() {
            return Ok(hex);
        }
        temp.as_file().sync_all().map_err(io_err("sync", &path))?;
        temp.persist(&dest).map_err(|e| BuildsError::Io {
            what: "rename",
            path: dest.clone(),
            source: e.error,
        })?;
        let dir = self.store_dir();
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io_err("sync", &dir))?;
        Ok(hex)
    }

    /// `stack-images/<id>`: the kept files of stack image `id`.
    pub fn image_dir(&self, id: u64) -> PathBuf {
        self.root.join("stack-images").join(id.to_string())
    }

    /// `stack-images/<id>/build.log`.
    pub fn image_log(&self, id: u64) -> PathBuf {
        self.image_dir(id).join("build.log")
    }

    /// Creates the build log of stack image `id`.
    pub fn create_image_log(&self, id: u64) -> Result<File, BuildsError> {
        let dir = self.image_dir(id);
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let path = self.image_log(id);
        File::create(&path).map_err(io_err("create", &path))
    }

    /// The kept compile log at `path`, up to [`MAX_LOG`] bytes.
    pub fn read_log(&self, path: &Path) -> Result<String, BuildsError> {
        let mut text = Vec::new();
        File::open(path)
            .and_then(|f| f.take(MAX_LOG).read_to_end(&mut text))
            .map_err(io_err("read", path))?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}
