//! Where a runner keeps things under the data dir (VR's /apps, made per daemon):
//!
//! ```text
//! images/<image_name>/<archive>        the downloaded OS image (shared)
//! images/<image_name>/contents/        unpacked once, the read-only lower of every proc
//! builds/<archive>                     a downloaded build (shared, never removed by teardown)
//! builds/<archive>.layers/<uid>-<gid>/app/   unpacked once per run-as user, a read-only lower
//! procs/<proc name>/                   proc.yaml, meta/ (proc.sh, env.sh, settings.yaml),
//!                                      upper/, work/, rootfs/, log, launch.json, status.json
//! ```

use std::path::{Path, PathBuf};

use super::RunnerError;
use crate::host::container::overlay;
use crate::host::container::passwd::UserIds;
use crate::model::names::ProcName;

/// The directories of one runner (one daemon).
#[derive(Debug, Clone)]
pub struct Layout {
    /// The daemon's data dir.
    pub data_dir: PathBuf,
}

impl Layout {
    /// Where image `name` is kept.
    pub fn image_dir(&self, name: &str) -> PathBuf {
        self.data_dir.join("images").join(name)
    }

    /// The unpacked image.
    pub fn image_contents(&self, name: &str) -> PathBuf {
        self.image_dir(name).join("contents")
    }

    /// Where build archives are kept.
    pub fn builds_dir(&self) -> PathBuf {
        self.data_dir.join("builds")
    }

    /// The unpacked build for one run-as user; holds `app/`.
    pub fn build_layer(&self, build: &str, user: UserIds) -> PathBuf {
        self.builds_dir().join(format!("{build}.layers")).join(format!("{}-{}", user.uid, user.gid))
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
        overlay::release_kept_root(&self.join("rootfs")).map_err(RunnerError::Io)
    }

    /// Removes the proc dir, its kept root unmounted first (a removal through the mount would
    /// write whiteouts, and the mount point itself could not go); a missing dir is no error.
    pub fn remove(&self) -> Result<(), RunnerError> {
        if !self.0.exists() {
            return Ok(());
        }
        self.release_root()?;
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
