//! Where a runner keeps things under the data dir (VR's /apps, made per daemon):
//!
//! ```text
//! images/<image_name>/<archive>        the downloaded OS image (shared)
//! images/<image_name>/<md5>/contents/  unpacked once per content, the read-only lower of procs
//! builds/<archive>                     a downloaded build (shared, never removed by teardown)
//! builds/<archive>.layers/<md5>/<uid>-<gid>/app/   unpacked once per content and run-as user
//! procs/<proc name>/                   proc.yaml, layers.json, meta/ (proc.sh, env.sh,
//!                                      settings.yaml), upper/, work/, rootfs/, log, launch.json,
//!                                      status.json
//! ```
//!
//! Unpacked trees are keyed by the archive's content (its md5), never by its file name alone:
//! vbuild always writes `build.tar.gz`, so a name says nothing about what is inside. A proc's
//! `layers.json` records the trees its setup chose; runs read it. Trees no proc names are
//! collected by the scooper ([`super::caches`]). vrds before content keys unpacked into
//! `images/<name>/contents` and `builds/<archive>.layers/<uid>-<gid>`; procs set up by them
//! (no `layers.json`) keep running on those.

use std::path::{Path, PathBuf};

use super::RunnerError;
use crate::host::container::overlay;
use crate::host::container::passwd::UserIds;
use crate::model::names::ProcName;

/// The kinds of download dirs [`Layout::make_cache_dir`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheDir {
    /// `images/<name>`: an OS image's archive and its unpacked trees.
    Image,
    /// `builds`: build archives (the name is the build's, checked all the same).
    Build,
}

/// The directories of one runner (one daemon).
#[derive(Debug, Clone)]
pub struct Layout {
    /// The daemon's data dir.
    pub data_dir: PathBuf,
}

impl Layout {
    /// Makes `images/<name>` or `builds` (`kind`) for an artifact's download: `name` passes the one
    /// validator of names that become paths, and the dirs are made beneath the data dir without
    /// following a link, so no name and no planted symlink puts a download elsewhere.
    pub fn make_cache_dir(&self, kind: CacheDir, name: &str) -> Result<PathBuf, RunnerError> {
        let (what, rel) = match kind {
            CacheDir::Image => ("image name", Path::new("images").join(name)),
            CacheDir::Build => ("build file name", PathBuf::from("builds")),
        };
        crate::model::names::file_name(what, name).map_err(|e| RunnerError::Artifact(e.to_string()))?;
        crate::sys::beneath::make_dirs(&self.data_dir, &rel).map_err(|e| {
            RunnerError::Io(format!(
                "failed to make {} beneath {}: {e}",
                rel.display(),
                self.data_dir.display()
            ))
        })?;
        Ok(self.data_dir.join(rel))
    }

    /// Where image `name` is kept.
    pub fn image_dir(&self, name: &str) -> PathBuf {
        self.data_dir.join("images").join(name)
    }

    /// The image `name` unpacked from the archive whose md5 is `md5`.
    pub fn image_contents(&self, name: &str, md5: &str) -> PathBuf {
        self.image_dir(name).join(md5).join("contents")
    }

    /// Where a vrd before content keys unpacked image `name`.
    pub fn legacy_image_contents(&self, name: &str) -> PathBuf {
        self.image_dir(name).join("contents")
    }

    /// Where build archives are kept.
    pub fn builds_dir(&self) -> PathBuf {
        self.data_dir.join("builds")
    }

    /// The build archive `build` whose md5 is `md5`, unpacked for one run-as user; holds `app/`.
    pub fn build_layer(&self, build: &str, md5: &str, user: UserIds) -> PathBuf {
        self.builds_dir().join(format!("{build}.layers")).join(md5).join(format!("{}-{}", user.uid, user.gid))
    }

    /// Where a vrd before content keys unpacked build `build` for one run-as user.
    pub fn legacy_build_layer(&self, build: &str, user: UserIds) -> PathBuf {
        self.builds_dir().join(format!("{build}.layers")).join(format!("{}-{}", user.uid, user.gid))
    }

    /// The address leases of the private network.
    pub fn network_leases_dir(&self) -> PathBuf {
        self.data_dir.join("network").join("leases")
    }

    /// One proc's dir.
    pub fn proc_dir(&self, name: &ProcName) -> PathBuf {
        self.data_dir.join("procs").join(name.to_string())
    }
}

/// The files of one proc dir.
#[derive(Debug, Clone)]
pub struct ProcDir(pub PathBuf);

impl ProcDir {
    /// A path in the proc dir.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    /// The proc dir itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Unmounts the proc's kept root from vrd's mount namespace, if it is mounted (setup is
    /// about to change its layers, or teardown to remove it).
    pub fn release_root(&self) -> Result<(), RunnerError> {
        overlay::release_kept_root(&self.join("rootfs")).map_err(RunnerError::Io)?;
        // The network namespace too: setup may change the proc's network, teardown ends it.
        crate::host::network::release(&self.join("netns")).map_err(RunnerError::Io)
    }

    /// Removes the proc dir, its kept root unmounted first (a removal through the mount would
    /// write whiteouts, and the mount point itself could not go); a missing dir is no error.
    pub fn remove(&self) -> Result<(), RunnerError> {
        if !self.0.exists() {
            return Ok(());
        }
        self.release_root()?;
        crate::host::container::overlay::release_rw(&self.join("rw")).map_err(RunnerError::Io)?;
        super::retained::retain(&self.0);
        // The launcher of the last run answers before it writes status.json: a removal right after
        // it may meet that file appearing, and tries again.
        for attempt in 1.. {
            match std::fs::remove_dir_all(&self.0) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty && attempt < 5 => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(RunnerError::Io(format!("failed to remove {}: {e}", self.0.display())));
                }
            }
        }
        unreachable!("the loop returns")
    }
}
