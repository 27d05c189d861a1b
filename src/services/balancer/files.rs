//! Config files the file-writing balancers own: read one that may be missing, write one atomically
//! (temp file in the same directory, fsync, rename, fsync the directory) so nginx or varnish never
//! reads half a file, and put a file back the way it was when a change is refused.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::BalancerError;

/// VR wrote its pool files 0644 (root-owned, world-readable): the balancer's workers read them.
const MODE: u32 = 0o644;

/// The file's text, or `None` when it does not exist.
pub async fn read_optional(path: &Path) -> Result<Option<String>, BalancerError> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(cause) => Err(BalancerError::Io { what: "read", path: path.to_path_buf(), cause }),
    }
}

/// Makes the file hold `contents`, or removes it for `None`; atomic either way.
pub async fn put(path: &Path, contents: Option<&str>) -> Result<(), BalancerError> {
    let path = path.to_path_buf();
    let contents = contents.map(str::to_string);
    let task = tokio::task::spawn_blocking(move || match contents {
        Some(text) => write_atomic(&path, &text),
        None => remove(&path),
    });
    task.await.map_err(|e| BalancerError::Invalid(format!("a balancer file task failed: {e}")))?
}

/// Writes `path` through a temp file beside it. The temp name ends in `.tmp`, so an include glob
/// such as nginx's `*.conf` never picks it up. A file that exists keeps its mode and owner (a
/// user's haproxy.cfg); a new one is root's, 0644.
fn write_atomic(path: &Path, contents: &str) -> Result<(), BalancerError> {
    let dir = parent(path);
    let io = |what, cause| BalancerError::Io { what, path: path.to_path_buf(), cause };
    let mut tmp = tempfile::Builder::new()
        .prefix(".vr-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| io("create a temp file beside", e))?;
    tmp.write_all(contents.as_bytes()).map_err(|e| io("write a temp file for", e))?;
    match std::fs::metadata(path) {
        Ok(meta) => {
            tmp.as_file().set_permissions(meta.permissions()).map_err(|e| io("chmod", e))?;
            std::os::unix::fs::fchown(tmp.as_file(), Some(meta.uid()), Some(meta.gid()))
                .map_err(|e| io("set the owner of a temp file for", e))?;
        }
        Err(_) => tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(MODE))
            .map_err(|e| io("chmod", e))?,
    }
    tmp.as_file().sync_all().map_err(|e| io("fsync a temp file for", e))?;
    tmp.persist(path).map_err(|e| io("rename a temp file onto", e.error))?;
    sync_dir(&dir)
}

/// Removes `path`; a missing file is already removed.
fn remove(path: &Path) -> Result<(), BalancerError> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(&parent(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(cause) => Err(BalancerError::Io { what: "remove", path: path.to_path_buf(), cause }),
    }
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), BalancerError> {
    let sync = std::fs::File::open(dir).and_then(|d| d.sync_all());
    sync.map_err(|cause| BalancerError::Io { what: "fsync the directory", path: dir.to_path_buf(), cause })
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// One file's contents before a change, to put back if the change is refused.
pub struct Snapshot {
    path: PathBuf,
    before: Option<String>,
}

impl Snapshot {
    /// Reads the file as it is now.
    pub async fn take(path: &Path) -> Result<Snapshot, BalancerError> {
        Ok(Snapshot { path: path.to_path_buf(), before: read_optional(path).await? })
    }

    /// The contents read (`None`: no file).
    pub fn before(&self) -> Option<&str> {
        self.before.as_deref()
    }

    /// Puts the file back as it was.
    pub async fn restore(&self) -> Result<(), BalancerError> {
        put(&self.path, self.before()).await
    }
}

/// Puts every snapshot back and returns `error`, noting any file that could not be restored
/// (the user must then fix that file by hand).
pub async fn restore_all(snapshots: &[Snapshot], error: BalancerError) -> BalancerError {
    let mut failures = Vec::new();
    for snap in snapshots {
        if let Err(e) = snap.restore().await {
            failures.push(e.to_string());
        }
    }
    if failures.is_empty() {
        return error;
    }
    BalancerError::Invalid(format!(
        "{error}; and putting the previous file back failed too ({}): fix that file by hand",
        failures.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_writes_0644_replaces_removes_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.conf");
        assert_eq!(read_optional(&path).await.unwrap(), None);
        put(&path, Some("one")).await.unwrap();
        put(&path, Some("two")).await.unwrap();
        assert_eq!(read_optional(&path).await.unwrap().as_deref(), Some("two"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "a temp file was left behind");
        put(&path, None).await.unwrap();
        put(&path, None).await.unwrap();
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_snapshot_puts_back_the_old_text_or_the_absence_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (dir.path().join("old.conf"), dir.path().join("new.conf"));
        put(&old, Some("before")).await.unwrap();
        let snaps = [Snapshot::take(&old).await.unwrap(), Snapshot::take(&new).await.unwrap()];
        put(&old, Some("after")).await.unwrap();
        put(&new, Some("after")).await.unwrap();
        let err = restore_all(&snaps, BalancerError::Invalid("refused".into())).await;
        assert_eq!(err.to_string(), "refused");
        assert_eq!(read_optional(&old).await.unwrap().as_deref(), Some("before"));
        assert!(!new.exists());
    }
}
