//! Turning `model::limits::Limits` into kernel values (a pure plan), and applying that plan through
//! the cgroups-rs controllers.
//!
//! The plan is computed and validated before anything is written, so a bad limit is refused
//! before a cgroup exists, and the conversions (shares to weight, memsw to swap.max) are unit
//! tested as values.

use std::path::Path;

use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::{Cgroup, Controller, MaxValue};

use super::{CgroupError, CgroupVersion};
use crate::model::limits::{Limits, CPU_PERIOD_US};

/// The smallest `cpu.shares` the kernel accepts (v1 clamps below it).
const MIN_SHARES: u64 = 2;
/// The largest `cpu.shares` the kernel accepts (v1 clamps above it).
const MAX_SHARES: u64 = 262_144;
/// The smallest CFS quota the kernel accepts, in microseconds (1 ms).
const MIN_QUOTA_US: u64 = 1_000;

/// Converts v1 `cpu.shares` to v2 `cpu.weight` with the formula runc, crun and systemd share:
/// `1 + ((shares - 2) * 9999) / 262142`, which maps 2..=262144 onto 1..=10000 (1024 becomes 39).
/// Out-of-range shares are clamped first, as the v1 kernel would.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(MIN_SHARES, MAX_SHARES);
    1 + ((shares - MIN_SHARES) * 9999) / (MAX_SHARES - MIN_SHARES)
}

/// The values one cgroup gets, in the units of the files they go to on `version`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct LimitPlan {
    /// v1 `memory.limit_in_bytes`, v2 `memory.max`.
    pub memory: Option<i64>,
    /// v1 `memory.memsw.limit_in_bytes` (memory + swap), v2 `memory.swap.max` (swap alone).
    pub swap: Option<i64>,
    /// v1 `cpu.shares`, v2 `cpu.weight` (already converted).
    pub cpu_weight: Option<u64>,
    /// CFS quota per `CPU_PERIOD_US`: v1 `cpu.cfs_quota_us`, v2 the first field of `cpu.max`.
    pub cpu_quota: Option<i64>,
    /// `pids.max`.
    pub pids_max: Option<i64>,
}

impl LimitPlan {
    /// Validates `limits` and converts them for `version`; `name` only labels errors.
    pub(super) fn new(limits: &Limits, version: CgroupVersion, name: &str) -> Result<Self, CgroupError> {
        let invalid = |reason: String| CgroupError::InvalidLimits { name: name.to_string(), reason };
        let memory = limits.memory.map(|m| to_i64(m, "memory")).transpose().map_err(invalid)?;
        let swap = match (limits.memsw, memory) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "memsw (memory plus swap) is set without memory; set memory too".to_string(),
                ))
            }
            (Some(memsw), Some(memory)) => {
                let memsw = to_i64(memsw, "memsw").map_err(invalid)?;
                if memsw < memory {
                    return Err(invalid(format!(
                        "memsw ({memsw} bytes) is below memory ({memory} bytes); memsw counts \
                         memory plus swap, so raise it to at least the memory limit"
                    )));
                }
                Some(match version {
                    CgroupVersion::V1 => memsw,
                    CgroupVersion::V2 => memsw - memory,
                })
            }
        };
        let cpu_weight = limits.cpu_shares.map(|shares| match version {
            CgroupVersion::V1 => shares.clamp(MIN_SHARES, MAX_SHARES),
            CgroupVersion::V2 => shares_to_weight(shares),
        });
        let cpu_quota = match limits.cpu_quota_us {
            None => None,
            Some(q) if q < MIN_QUOTA_US => {
                return Err(invalid(format!(
                    "cpu quota {q}us is below the kernel minimum of {MIN_QUOTA_US}us per \
                     {CPU_PERIOD_US}us period; use at least {MIN_QUOTA_US} (1% of a core)"
                )))
            }
            Some(q) => Some(to_i64(q, "cpu quota").map_err(invalid)?),
        };
        let pids_max = limits.pids_max.map(|p| to_i64(p, "pids_max")).transpose().map_err(invalid)?;
        if pids_max == Some(0) {
            return Err(invalid("pids_max is 0, so nothing could run; use at least 1".to_string()));
        }
        Ok(LimitPlan { memory, swap, cpu_weight, cpu_quota, pids_max })
    }

    /// Writes the plan through cgroups-rs. Memory goes before memsw, because v1 refuses a memsw
    /// limit below the memory limit (and a fresh cgroup's memory limit is "unlimited").
    pub(super) fn apply(&self, cg: &Cgroup, name: &str) -> Result<(), CgroupError> {
        if self.memory.is_some() || self.swap.is_some() {
            let mem: &MemController = controller(cg, name, "memory")?;
            if let Some(limit) = self.memory {
                let file = if cg.v2() { "memory.max" } else { "memory.limit_in_bytes" };
                mem.set_limit(limit).map_err(|e| write_err(mem.path(), file, e))?;
            }
            if let Some(swap) = self.swap {
                let file = if cg.v2() { "memory.swap.max" } else { "memory.memsw.limit_in_bytes" };
                // cgroups-rs would create the file on a fixture and fail obscurely on a kernel;
                // a missing file means the kernel does not account swap.
                if !mem.path().join(file).exists() {
                    return Err(CgroupError::NoSwapAccounting { path: mem.path().join(file) });
                }
                mem.set_memswap_limit(swap).map_err(|e| write_err(mem.path(), file, e))?;
            }
        }
        if self.cpu_weight.is_some() || self.cpu_quota.is_some() {
            let cpu: &CpuController = controller(cg, name, "cpu")?;
            if let Some(weight) = self.cpu_weight {
                let file = if cg.v2() { "cpu.weight" } else { "cpu.shares" };
                cpu.set_shares(weight).map_err(|e| write_err(cpu.path(), file, e))?;
            }
            if let Some(quota) = self.cpu_quota {
                let file = if cg.v2() { "cpu.max" } else { "cpu.cfs_quota_us" };
                cpu.set_cfs_quota_and_period(Some(quota), Some(CPU_PERIOD_US))
                    .map_err(|e| write_err(cpu.path(), file, e))?;
            }
        }
        if let Some(max) = self.pids_max {
            let pids: &PidController = controller(cg, name, "pids")?;
            pids.set_pid_max(MaxValue::Value(max)).map_err(|e| write_err(pids.path(), "pids.max", e))?;
        }
        Ok(())
    }
}

fn to_i64(value: u64, what: &str) -> Result<i64, String> {
    i64::try_from(value).map_err(|_| format!("{what} {value} is too large; use at most {}", i64::MAX))
}

fn controller<'a, T>(cg: &'a Cgroup, name: &str, which: &'static str) -> Result<&'a T, CgroupError>
where
    &'a T: From<&'a cgroups_rs::fs::Subsystem>,
    T: Controller + cgroups_rs::fs::ControllIdentifier,
{
    cg.controller_of::<T>()
        .ok_or_else(|| CgroupError::ControllerMissing { controller: which, name: name.to_string() })
}

fn write_err(dir: &Path, file: &str, source: cgroups_rs::fs::error::Error) -> CgroupError {
    CgroupError::Crate { action: "write", path: dir.join(file), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(limits: Limits, version: CgroupVersion) -> Result<LimitPlan, CgroupError> {
        LimitPlan::new(&limits, version, "vrd/t")
    }

    #[test]
    fn shares_map_onto_weights_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(512), 20);
        assert_eq!(shares_to_weight(262_144), 10_000);
        // Clamped like the v1 kernel clamps.
        assert_eq!(shares_to_weight(0), 1);
        assert_eq!(shares_to_weight(1 << 40), 10_000);
    }

    #[test]
    fn memsw_becomes_swap_max_on_v2_and_stays_memsw_on_v1() {
        let limits = Limits { memory: Some(256 << 20), memsw: Some(512 << 20), ..Limits::default() };
        assert_eq!(plan(limits.clone(), CgroupVersion::V1).unwrap().swap, Some(512 << 20));
        assert_eq!(plan(limits, CgroupVersion::V2).unwrap().swap, Some(256 << 20));
    }

    #[test]
    fn memsw_below_memory_or_without_memory_is_refused_with_a_fix() {
        let below = Limits { memory: Some(512 << 20), memsw: Some(256 << 20), ..Limits::default() };
        let err = plan(below, CgroupVersion::V1).unwrap_err().to_string();
        assert!(err.contains("vrd/t") && err.contains("at least the memory limit"), "{err}");
        let alone = Limits { memsw: Some(256 << 20), ..Limits::default() };
        let err = plan(alone, CgroupVersion::V2).unwrap_err().to_string();
        assert!(err.contains("set memory too"), "{err}");
    }

    #[test]
    fn cpu_and_pids_convert_per_version() {
        let limits = Limits {
            cpu_shares: Some(512),
            cpu_quota_us: Some(50_000),
            pids_max: Some(64),
            ..Limits::default()
        };
        let v1 = plan(limits.clone(), CgroupVersion::V1).unwrap();
        assert_eq!((v1.cpu_weight, v1.cpu_quota, v1.pids_max), (Some(512), Some(50_000), Some(64)));
        let v2 = plan(limits, CgroupVersion::V2).unwrap();
        assert_eq!((v2.cpu_weight, v2.cpu_quota), (Some(20), Some(50_000)));
    }

    #[test]
    fn values_the_kernel_would_reject_are_refused_up_front() {
        let tiny_quota = Limits { cpu_quota_us: Some(10), ..Limits::default() };
        assert!(plan(tiny_quota, CgroupVersion::V1).unwrap_err().to_string().contains("1000"));
        let zero_pids = Limits { pids_max: Some(0), ..Limits::default() };
        assert!(plan(zero_pids, CgroupVersion::V1).is_err());
        let huge = Limits { memory: Some(u64::MAX), ..Limits::default() };
        assert!(plan(huge, CgroupVersion::V1).unwrap_err().to_string().contains("too large"));
        assert_eq!(plan(Limits::default(), CgroupVersion::V2).unwrap(), LimitPlan::default());
    }
}
