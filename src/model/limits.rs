//! Resource limits of one container, in the units the kernel takes.
//!
//! Velociraptor wrote `mem_limit: 256M` and `memsw_limit: 512M` verbatim into LXC's config; vr parses
//! them into bytes up front so a typo is an error at setup, not a container that silently has no limit.

use serde::{Deserialize, Serialize};

/// The limits one container's cgroup gets. `None` leaves the kernel's default (no limit).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory hard limit in bytes (v1 `memory.limit_in_bytes`, v2 `memory.max`).
    pub memory: Option<u64>,
    /// Memory plus swap in bytes (v1 `memory.memsw.limit_in_bytes`; v2 `memory.swap.max` gets
    /// `memsw - memory`). Never below `memory`.
    pub memsw: Option<u64>,
    /// Relative CPU weight, v1 `cpu.shares` scale (2..=262144, default 1024).
    pub cpu_shares: Option<u64>,
    /// CPU bandwidth: microseconds of CPU per `CPU_PERIOD_US`, e.g. 50_000 = half a core.
    pub cpu_quota_us: Option<u64>,
    /// Maximum number of tasks (processes and threads) in the container.
    pub pids_max: Option<u64>,
}

/// The CFS period every quota is expressed against.
pub const CPU_PERIOD_US: u64 = 100_000;

/// Why a size string such as `256M` was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SizeError {
    /// The text was not a number with an optional unit.
    #[error(
        "'{0}' is not a size: write a whole number of bytes with an optional unit K, M, G or T (e.g. 256M)"
    )]
    Malformed(String),
    /// The number does not fit in 64 bits.
    #[error("'{0}' is too large")]
    TooLarge(String),
}

/// Parses Velociraptor's size strings: `1048576`, `512k`, `256M`, `1G`, `1.5G`, also `256MB`/`256MiB`.
/// Units are binary (1K = 1024), as LXC and the cgroup files read them.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(SizeError::Malformed(text.to_string())),
    };
    if number.is_empty() {
        return Err(SizeError::Malformed(text.to_string()));
    }
    if number.contains('.') {
        let value: f64 = number.parse().map_err(|_| SizeError::Malformed(text.to_string()))?;
        let bytes = value * (1u64 << shift) as f64;
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(SizeError::TooLarge(text.to_string()));
        }
        return Ok(bytes as u64);
    }
    let value: u64 = number.parse().map_err(|_| SizeError::TooLarge(text.to_string()))?;
    value.checked_mul(1u64 << shift).ok_or_else(|| SizeError::TooLarge(text.to_string()))
}

/// The host-wide limits the runner applies to every proc (config keys `min_free_disk`,
/// `default_mem_limit`, `root_disk_limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    /// New work is refused while the data dir's file system has less than this free (bytes).
    pub min_free_disk: u64,
    /// The memory limit of a proc whose proc.yaml or swarm sets none (bytes); `None`: unlimited.
    pub default_memory: Option<u64>,
    /// The size of a proc container's writable layer, a tmpfs (bytes); `None`: unbounded, on the
    /// data dir's file system.
    pub root_disk: Option<u64>,
}

/// 1 GiB free on the data dir's file system, unless the config says otherwise.
pub const DEFAULT_MIN_FREE_DISK: u64 = 1 << 30;

/// 1 GiB for a proc that sets no `mem_limit`, unless the config says otherwise.
pub const DEFAULT_MEMORY: u64 = 1 << 30;

/// 1 GiB of writes to a proc container's own root, unless the config says otherwise.
pub const DEFAULT_ROOT_DISK: u64 = 1 << 30;

impl Default for HostLimits {
    fn default() -> HostLimits {
        HostLimits {
            min_free_disk: DEFAULT_MIN_FREE_DISK,
            default_memory: Some(DEFAULT_MEMORY),
            root_disk: Some(DEFAULT_ROOT_DISK),
        }
    }
}

impl HostLimits {
    /// `spec`'s limits, with the default memory limit when it sets none.
    pub fn applied_to(&self, limits: &Limits) -> Limits {
        Limits { memory: limits.memory.or(self.default_memory), ..limits.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_velociraptor_form() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size(" 64MiB "), Ok(64 << 20));
    }

    #[test]
    fn bad_sizes_say_how_to_write_them() {
        let err = parse_size("lots").unwrap_err();
        assert!(err.to_string().contains("256M"), "{err}");
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("M").is_err());
        assert!(matches!(parse_size("99999999999T"), Err(SizeError::TooLarge(_))));
    }

    #[test]
    fn a_proc_without_a_memory_limit_gets_the_default_and_one_with_keeps_its_own() {
        let host = HostLimits { min_free_disk: 0, default_memory: Some(512 << 20), root_disk: None };
        assert_eq!(host.applied_to(&Limits::default()).memory, Some(512 << 20));
        let own = Limits { memory: Some(64 << 20), pids_max: Some(9), ..Limits::default() };
        assert_eq!(host.applied_to(&own), own);
        let unlimited = HostLimits { default_memory: None, ..host };
        assert_eq!(unlimited.applied_to(&Limits::default()).memory, None);
    }
}
