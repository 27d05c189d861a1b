//! Direct cgroupfs file I/O for what cgroups-rs lacks or hides: counters, pid lists of a whole
//! subtree, and removing a cgroup tree children-first. Every error carries its path.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;
use std::{fs, io};

use super::CgroupError;

/// How often `rmdir` of a cgroup is retried while the kernel still reports it busy (tasks that were
/// just killed leave a cgroup a moment after they exit), and the first pause between tries.
const RMDIR_TRIES: u32 = 6;
const RMDIR_FIRST_PAUSE: Duration = Duration::from_millis(10);

/// Reads a whole cgroup file.
pub(super) fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `value` to a cgroup file in one `write(2)`, as cgroupfs expects.
pub(super) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

/// The value of `key` in a flat-keyed file such as `memory.events` or `memory.oom_control`
/// (`key value` per line); `None` when the kernel does not report that key.
pub(super) fn keyed_value(path: &Path, text: &str, key: &str) -> Result<Option<u64>, CgroupError> {
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        if fields.next() == Some(key) {
            let value = fields.next().unwrap_or_default();
            return value.parse().map(Some).map_err(|_| CgroupError::Parse {
                path: path.to_path_buf(),
                reason: format!("'{key}' has value '{value}', not a count"),
            });
        }
    }
    Ok(None)
}

/// Reads a file holding one number (`memory.usage_in_bytes`, `memory.current`, ...).
pub(super) fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    let text = read(path)?;
    text.trim().parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        reason: format!("'{}' is not a number", text.trim()),
    })
}

/// The pids in `dir/cgroup.procs`; a cgroup directory that is gone has none.
pub(super) fn procs(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let path = dir.join("cgroup.procs");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(CgroupError::Io { action: "read", path, source }),
    };
    let mut pids = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let pid: i32 = line.parse().map_err(|_| CgroupError::Parse {
            path: path.clone(),
            reason: format!("'{line}' is not a pid"),
        })?;
        // The kernel lists processes outside the reader's pid namespace as 0; signalling "pid 0"
        // would hit the caller's own process group, so such entries are dropped here.
        if pid > 0 {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// `dir` and every cgroup below it, parents before children; empty when `dir` does not exist.
pub(super) fn subtree(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries = match fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(source) => return Err(CgroupError::Io { action: "list", path: current, source }),
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
        out.push(current);
    }
    Ok(out)
}

/// The names of the child cgroups (directories) of `dir`; none when `dir` does not exist.
pub(super) fn child_names(dir: &Path) -> Result<Vec<String>, CgroupError> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(CgroupError::Io { action: "list", path: dir.to_path_buf(), source }),
    }
}

/// Removes the cgroup at `dir` and all cgroups below it, deepest first. Missing directories are
/// fine (removal is idempotent). cgroupfs lets `rmdir` drop a directory that still lists its
/// control files, so only directories are removed, never files.
pub(super) fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let mut dirs = subtree(dir)?;
    dirs.reverse();
    for d in dirs {
        rmdir_retrying(&d)?;
    }
    Ok(())
}

/// `rmdir(2)` that treats a missing directory as done and retries EBUSY a few times.
pub(super) fn rmdir_retrying(dir: &Path) -> Result<(), CgroupError> {
    let mut pause = RMDIR_FIRST_PAUSE;
    for attempt in 1..=RMDIR_TRIES {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind() == ErrorKind::ResourceBusy && attempt < RMDIR_TRIES => {
                sleep(pause);
                pause *= 2;
            }
            Err(source) => return Err(rmdir_error(dir, source)),
        }
    }
    Ok(())
}

fn rmdir_error(dir: &Path, source: io::Error) -> CgroupError {
    CgroupError::Remove { path: dir.to_path_buf(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_values_are_found_by_key_not_position() {
        let p = Path::new("memory.oom_control");
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed_value(p, v1, "oom_kill").unwrap(), Some(3));
        // Kernels before 4.13 have no oom_kill line.
        assert_eq!(keyed_value(p, "oom_kill_disable 0\nunder_oom 0\n", "oom_kill").unwrap(), None);
        let v2 = "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(keyed_value(p, v2, "oom_kill").unwrap(), Some(2));
        let err = keyed_value(p, "oom_kill x\n", "oom_kill").unwrap_err();
        assert!(err.to_string().contains("memory.oom_control"), "{err}");
    }

    #[test]
    fn procs_of_a_missing_cgroup_are_empty_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(procs(&dir.path().join("gone")).unwrap(), Vec::<i32>::new());
        fs::write(dir.path().join("cgroup.procs"), "12\n0\n7\n").unwrap();
        assert_eq!(procs(dir.path()).unwrap(), [12, 7]);
        fs::write(dir.path().join("cgroup.procs"), "12\nx\n").unwrap();
        assert!(procs(dir.path()).is_err());
    }

    #[test]
    fn remove_tree_goes_children_first_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("a");
        fs::create_dir_all(top.join("b/c")).unwrap();
        fs::create_dir_all(top.join("d")).unwrap();
        assert_eq!(subtree(&top).unwrap().len(), 4);
        remove_tree(&top).unwrap();
        assert!(!top.exists());
        remove_tree(&top).unwrap();
    }
}
