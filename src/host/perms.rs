//! Whether a caller could read a path itself. vrd runs as root, so before it reads a local path a
//! non-admin named (a `file://` image, a local repository, a provisioning script), the operations
//! layer asks here whether the caller's uid and groups would have been let in by the kernel's mode
//! bits: search on every directory on the way, read on the file (and, for a directory such as a
//! repository, read and search on everything inside it). ACLs are not consulted, so the check can
//! only refuse more than the kernel would, never less.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A caller's ids, as the kernel would check them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// The user id.
    pub uid: u32,
    /// The primary group id and every supplementary one.
    pub gids: Vec<u32>,
}

/// Read, write, execute (search, for directories): the low three mode bits.
const READ: u32 = 4;
const SEARCH: u32 = 1;

/// At most this many entries of a directory tree are checked; a larger tree is refused (ask an
/// admin), so a request cannot make vrd walk a whole disk.
pub const MAX_TREE_ENTRIES: usize = 200_000;

/// Whether the mode bits of `meta` give `ids` every bit of `want` (owner, else group, else other).
pub fn allows(meta: &Metadata, ids: &Ids, want: u32) -> bool {
    allows_mode(meta.mode(), meta.uid(), meta.gid(), ids, want)
}

fn allows_mode(mode: u32, owner: u32, group: u32, ids: &Ids, want: u32) -> bool {
    if ids.uid == 0 {
        return true;
    }
    let class = if ids.uid == owner {
        mode >> 6
    } else if ids.gids.contains(&group) {
        mode >> 3
    } else {
        mode
    };
    class & want == want
}

/// Checks that `ids` could read `path` (a file, or a directory tree) themselves; the error says
/// which path stopped them.
pub fn check_readable(path: &Path, ids: &Ids) -> Result<(), String> {
    if !path.is_absolute() {
        return Err(format!("'{}' is not an absolute path", path.display()));
    }
    // The path as given (its directories must be searchable, symlinks included)...
    check_ancestors(path, ids)?;
    // ...and where it really leads.
    let real =
        std::fs::canonicalize(path).map_err(|e| format!("cannot resolve '{}': {e}", path.display()))?;
    check_ancestors(&real, ids)?;
    let meta = metadata(&real)?;
    if meta.is_dir() {
        check_tree(&real, ids)
    } else if allows(&meta, ids, READ) {
        Ok(())
    } else {
        Err(denied(&real, ids, "read"))
    }
}

/// Every directory above `path` must let `ids` search it.
fn check_ancestors(path: &Path, ids: &Ids) -> Result<(), String> {
    for dir in path.ancestors().skip(1) {
        let meta = metadata(dir)?;
        if !allows(&meta, ids, SEARCH) {
            return Err(denied(dir, ids, "search"));
        }
    }
    Ok(())
}

/// Every directory in the tree must be readable and searchable and every file readable; links
/// are not followed (what they point at is not part of the tree).
fn check_tree(root: &Path, ids: &Ids) -> Result<(), String> {
    let mut pending: Vec<PathBuf> = vec![root.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = pending.pop() {
        let meta = metadata(&dir)?;
        if !allows(&meta, ids, READ | SEARCH) {
            return Err(denied(&dir, ids, "list"));
        }
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("cannot list '{}': {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list '{}': {e}", dir.display()))?;
            seen += 1;
            if seen > MAX_TREE_ENTRIES {
                return Err(format!(
                    "'{}' holds more than {MAX_TREE_ENTRIES} entries, too many to check; ask an admin",
                    root.display()
                ));
            }
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path)
                .map_err(|e| format!("cannot stat '{}': {e}", path.display()))?;
            if meta.is_dir() {
                pending.push(path);
            } else if meta.is_file() && !allows(&meta, ids, READ) {
                return Err(denied(&path, ids, "read"));
            }
        }
    }
    Ok(())
}

fn metadata(path: &Path) -> Result<Metadata, String> {
    std::fs::metadata(path).map_err(|e| format!("cannot stat '{}': {e}", path.display()))
}

fn denied(path: &Path, ids: &Ids, what: &str) -> String {
    format!("uid {} may not {what} '{}' (its mode bits do not allow it)", ids.uid, path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(uid: u32, gids: &[u32]) -> Ids {
        Ids { uid, gids: gids.to_vec() }
    }

    #[test]
    fn owner_bits_then_group_bits_then_other_bits() {
        let alice = ids(1000, &[1000, 50]);
        assert!(allows_mode(0o400, 1000, 0, &alice, READ), "owner may read");
        assert!(!allows_mode(0o040, 1000, 50, &alice, READ), "the owner class decides for the owner");
        assert!(allows_mode(0o040, 0, 50, &alice, READ), "a supplementary group counts");
        assert!(!allows_mode(0o704, 0, 50, &alice, READ), "group class without read");
        assert!(allows_mode(0o004, 0, 0, &alice, READ), "other may read");
        assert!(!allows_mode(0o640, 0, 0, &alice, READ));
        assert!(allows_mode(0o000, 5, 5, &ids(0, &[]), READ | SEARCH), "root passes");
        assert!(!allows_mode(0o644, 0, 0, &alice, SEARCH), "no search on a 644 directory");
    }

    #[test]
    fn a_world_readable_file_passes_and_relative_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let nobody = ids(65534, &[65534]);
        // The temp dir's parents (/tmp) are searchable by anyone.
        check_readable(&file, &nobody).unwrap();
        check_readable(dir.path(), &nobody).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let refused = check_readable(&file, &nobody).unwrap_err();
        assert!(refused.contains("uid 65534 may not read"), "{refused}");
        let tree = check_readable(dir.path(), &nobody).unwrap_err();
        assert!(tree.contains("may not read"), "{tree}");
        assert!(check_readable(Path::new("rel/x"), &nobody).unwrap_err().contains("absolute"));
    }
}
