//! Which cgroup version a host runs, decided from the filesystem type of the cgroup root.
//!
//! The rule is youki's and cgroups-rs's: if the root itself is a cgroup2 mount the host is in
//! unified (v2) mode; anything else is v1. Hybrid hosts (a tmpfs at the root holding v1 mounts plus
//! a `unified` cgroup2 mount) count as v1, because their cgroup2 mount usually offers no useful
//! controllers (here only `hugetlb`). Looking for "some cgroup2 mount with controllers" instead is
//! the mistake that makes crun 1.8 refuse hybrid hosts.

use std::path::Path;

use nix::sys::statfs::{statfs, FsType, CGROUP2_SUPER_MAGIC};

use super::CgroupError;

/// The cgroup interface a host offers at its cgroup root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CgroupVersion {
    /// One hierarchy per controller (or controller group) under the root, as on legacy and hybrid
    /// hosts: `<root>/memory`, `<root>/pids`, `<root>/cpu,cpuacct`, ...
    V1,
    /// The unified hierarchy: the root is itself a cgroup2 mount.
    V2,
}

impl CgroupVersion {
    /// Detects the version from the filesystem that is mounted at `root`.
    ///
    /// Only `statfs(2)` is used, so this needs no privileges. A missing root is an error rather
    /// than a guess.
    pub fn detect(root: &Path) -> Result<CgroupVersion, CgroupError> {
        let stat = statfs(root).map_err(|source| CgroupError::Detect { path: root.to_path_buf(), source })?;
        Ok(Self::from_fs_type(stat.filesystem_type()))
    }

    /// The decision on its own: a cgroup2 superblock means v2, every other type (tmpfs on hybrid
    /// and legacy hosts) means v1.
    pub fn from_fs_type(fs_type: FsType) -> CgroupVersion {
        if fs_type == CGROUP2_SUPER_MAGIC {
            CgroupVersion::V2
        } else {
            CgroupVersion::V1
        }
    }
}

#[cfg(test)]
mod tests {
    use nix::sys::statfs::{CGROUP_SUPER_MAGIC, EXT4_SUPER_MAGIC, TMPFS_MAGIC};

    use super::*;
    use crate::host::cgroup::DEFAULT_CGROUP_ROOT;

    #[test]
    fn only_a_cgroup2_superblock_is_v2() {
        assert_eq!(CgroupVersion::from_fs_type(CGROUP2_SUPER_MAGIC), CgroupVersion::V2);
        // Hybrid and legacy hosts mount a tmpfs at the root.
        assert_eq!(CgroupVersion::from_fs_type(TMPFS_MAGIC), CgroupVersion::V1);
        assert_eq!(CgroupVersion::from_fs_type(CGROUP_SUPER_MAGIC), CgroupVersion::V1);
        assert_eq!(CgroupVersion::from_fs_type(EXT4_SUPER_MAGIC), CgroupVersion::V1);
    }

    #[test]
    fn a_plain_directory_detects_as_v1() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(CgroupVersion::detect(dir.path()).unwrap(), CgroupVersion::V1);
    }

    #[test]
    fn a_missing_root_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = CgroupVersion::detect(&missing).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    /// On a hybrid host the root is v1 even though `<root>/unified` is a cgroup2 mount with a
    /// controller in it; on a v2 host the root is v2. Either way the answer matches the root's own
    /// filesystem type.
    #[test]
    fn this_host_root_matches_its_own_superblock() {
        let root = Path::new(DEFAULT_CGROUP_ROOT);
        let Ok(stat) = statfs(root) else {
            println!("SKIPPED this_host_root_matches_its_own_superblock: no {DEFAULT_CGROUP_ROOT}");
            return;
        };
        let expected = CgroupVersion::from_fs_type(stat.filesystem_type());
        assert_eq!(CgroupVersion::detect(root).unwrap(), expected);
        let unified = root.join("unified");
        if expected == CgroupVersion::V1 && unified.exists() {
            // Hybrid: the unified mount on its own would be v2, the host as a whole is not.
            assert_eq!(CgroupVersion::detect(&unified).unwrap(), CgroupVersion::V2);
        }
    }
}
