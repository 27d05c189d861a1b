//! vr's default seccomp filter for every container: the calls Docker's default profile refuses
//! are refused (EPERM), whoever the app runs as.
//!
//! One program, installed just before `execve`: seccompiler's architecture check, then three
//! refusals of our own ahead of seccompiler's rules (which can give only one action to all the
//! calls they match):
//!
//! 1. **x32:** on x86_64 every call of the x32 ABI (number with bit 30 set, same audit arch) is
//!    refused (EPERM), so the x32 entry points are no way around the list. Docker allows x32;
//!    nothing vr runs uses it, and most distributions' kernels disable it.
//! 2. **clone3:** `ENOSYS`: its flags sit in memory a filter cannot read, and glibc falls back to
//!    `clone`, whose flags the rules see (Docker does the same).
//! 3. **Refused (seccompiler's rules):** `EPERM` for the calls that reach past the container: new
//!    namespaces (`unshare`, `setns`, `clone` with a namespace flag), the mount API, the kernel
//!    keyring, `perf_event_open`, `userfaultfd`, `bpf`, io_uring, modules, kexec, reboot, swap,
//!    clocks, accounting, quotas, NUMA policy, handles, and `personality` beyond the harmless
//!    values.
//!
//! A denylist rather than Docker's allowlist, on purpose: an allowlist of every known call is a
//! 2,300-instruction linear program with seccompiler, and installing it cost ~1 ms of the ~4 ms a
//! container start takes; the refusals are the same. Calls newer than this list are let through
//! to the kernel (Docker answers them EPERM, which once broke glibc's faccessat2 fallback); the
//! list is checked against Docker's profile when vr moves to a newer libc crate.
//!
//! Most of these need a capability the container lacks anyway; the filter is what stops the ones
//! that do not (user namespaces, keyrings, perf, userfaultfd, io_uring) and what keeps a kernel
//! bug in one of them out of reach.

use std::collections::BTreeMap;

mod bpf;
#[cfg(test)]
mod eval;
mod tree;

#[cfg(target_arch = "x86_64")]
use bpf::JMP_JSET_K;
use bpf::{insn, JMP_JEQ_K, LD_W_ABS, RET_K};

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Refused with EPERM whatever their arguments.
const REFUSED: &[(&str, i64)] = &[
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("keyctl", libc::SYS_keyctl),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("bpf", libc::SYS_bpf),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("acct", libc::SYS_acct),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("quotactl", libc::SYS_quotactl),
    ("quotactl_fd", libc::SYS_quotactl_fd),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ("syslog", libc::SYS_syslog),
    ("vhangup", libc::SYS_vhangup),
    ("fanotify_init", libc::SYS_fanotify_init),
    ("kcmp", libc::SYS_kcmp),
    ("mbind", libc::SYS_mbind),
    ("set_mempolicy", libc::SYS_set_mempolicy),
    ("get_mempolicy", libc::SYS_get_mempolicy),
    ("move_pages", libc::SYS_move_pages),
    ("memfd_secret", libc::SYS_memfd_secret),
    ("sethostname", libc::SYS_sethostname),
    ("setdomainname", libc::SYS_setdomainname),
    ("nfsservctl", libc::SYS_nfsservctl),
    #[cfg(target_arch = "x86_64")]
    ("iopl", libc::SYS_iopl),
    #[cfg(target_arch = "x86_64")]
    ("ioperm", libc::SYS_ioperm),
    #[cfg(target_arch = "x86_64")]
    ("uselib", libc::SYS_uselib),
    #[cfg(target_arch = "x86_64")]
    ("ustat", libc::SYS_ustat),
    #[cfg(target_arch = "x86_64")]
    ("sysfs", libc::SYS_sysfs),
    #[cfg(target_arch = "x86_64")]
    ("_sysctl", libc::SYS__sysctl),
];

/// The x32 ABI's syscall number bit (x86_64 only): `X32 | nr` is the x32 entry of a call.
#[cfg(target_arch = "x86_64")]
const X32: u32 = 0x4000_0000;

/// `clone` flags that make a namespace: refused, as in Docker's profile.
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
];

/// The `personality` values allowed (Docker's): PER_LINUX, PER_LINUX32, UNAME26,
/// UNAME26|PER_LINUX32, and the query 0xffffffff. Others (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE...)
/// would weaken the process's own protections.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// Every syscall [`REFUSED`] names, for tests and the docs.
pub fn refused_names() -> impl Iterator<Item = &'static str> {
    REFUSED.iter().map(|(name, _)| *name)
}

#[cfg(target_arch = "x86_64")]
fn arch() -> TargetArch {
    TargetArch::x86_64
}

#[cfg(target_arch = "aarch64")]
fn arch() -> TargetArch {
    TargetArch::aarch64
}

fn error(e: seccompiler::BackendError) -> String {
    format!("failed to build the seccomp filter: {e}")
}

/// Where `seccomp_data` holds the call's number.
const NR_OFFSET: u32 = 0;
/// Instructions seccompiler's program starts with: load the arch, jump over the kill if it is
/// ours, kill.
const ARCH_CHECK: usize = 3;

fn errno(e: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | e as u32
}

/// The refusals of our own: the x32 ABI (EPERM) and clone3 (ENOSYS), each decided at once.
fn ahead_of_rules() -> Vec<sock_filter> {
    let mut prefix = vec![insn(LD_W_ABS, 0, 0, NR_OFFSET)];
    #[cfg(target_arch = "x86_64")]
    prefix.extend([insn(JMP_JSET_K, 0, 1, X32), insn(RET_K, 0, 0, errno(libc::EPERM))]);
    prefix.extend([insn(JMP_JEQ_K, 0, 1, libc::SYS_clone3 as u32), insn(RET_K, 0, 0, errno(libc::ENOSYS))]);
    prefix
}

/// `arg0 & flag == flag`, one rule per flag: the rules of one call are alternatives.
fn any_flag(flags: &[u64]) -> Result<Vec<SeccompRule>, String> {
    flags
        .iter()
        .map(|flag| {
            let set = SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(*flag), *flag)
                .map_err(error)?;
            SeccompRule::new(vec![set]).map_err(error)
        })
        .collect()
}

/// `personality(arg0)` for any arg0 but the allowed ones: one rule, all conditions must hold.
fn other_personality() -> Result<Vec<SeccompRule>, String> {
    let conditions = PERSONALITIES
        .iter()
        .map(|p| SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, *p).map_err(error))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(vec![SeccompRule::new(conditions).map_err(error)?])
}

/// The rules of the calls refused for some arguments only (seccompiler's map: call number to its
/// rules); the ones refused whatever the arguments are the tree's.
fn argument_rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, String> {
    Ok(BTreeMap::from([
        (libc::SYS_clone, any_flag(NAMESPACE_FLAGS)?),
        (libc::SYS_personality, other_personality()?),
    ]))
}

/// The calls the rules match EPERM (seccompiler's program); everything else is allowed.
fn refused(rules: BTreeMap<i64, Vec<SeccompRule>>) -> Result<BpfProgram, String> {
    let filter =
        SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch())
            .map_err(error)?;
    filter.try_into().map_err(|e: seccompiler::BackendError| error(e))
}

/// The tree ahead of the rules: [`REFUSED`] EPERM, the `ruled` calls on to the rules.
fn tree(ruled: &[u32]) -> Option<Vec<sock_filter>> {
    let refused: Vec<u32> = REFUSED.iter().map(|(_, nr)| *nr as u32).collect();
    tree::decision_tree(&refused, ruled, errno(libc::EPERM), libc::SECCOMP_RET_ALLOW)
}

/// The whole program: seccompiler's architecture check, our refusals, the tree that refuses the
/// [`REFUSED`] calls and allows every call without a rule at once (`tree`), seccompiler's rules
/// for `clone` and `personality`. Their jumps are all forward and relative, so what follows the
/// check may grow in front.
fn program() -> Result<BpfProgram, String> {
    let rules = argument_rules()?;
    let ruled: Vec<u32> = rules.keys().map(|nr| *nr as u32).collect();
    let mut program = refused(rules)?;
    let checks_arch = program.get(..ARCH_CHECK).is_some_and(|check| {
        check[0] == insn(LD_W_ABS, 0, 0, 4)
            && check[1].code == JMP_JEQ_K
            && (check[1].jt, check[1].jf) == (1, 0)
    });
    if !checks_arch {
        return Err("seccompiler's program no longer starts with its architecture check: vr's own refusals have no place to go".into());
    }
    let mut ahead = ahead_of_rules();
    ahead.extend(tree(&ruled).ok_or("the seccomp filter's refusals outgrew one tree of 8-bit jumps")?);
    program.splice(ARCH_CHECK..ARCH_CHECK, ahead);
    Ok(program)
}

/// The program, compiled once per process; install it with [`install`]. A spare launcher compiles
/// it while it waits, so the containers it forks inherit it. (Compiled in the spawner ahead of
/// time it would save every start 0.055 ms, but cost every supervised launcher ~6 kB of private
/// heap, copied on its first writes there.)
pub fn default_filter() -> Result<&'static BpfProgram, String> {
    static FILTER: std::sync::OnceLock<Result<BpfProgram, String>> = std::sync::OnceLock::new();
    FILTER.get_or_init(program).as_ref().map_err(Clone::clone)
}

/// Installs `filters` on the calling thread, in order (needs no_new_privs or CAP_SYS_ADMIN).
/// The last thing before `execve`: from here on the process can never drop them.
pub fn install(filters: &[BpfProgram]) -> Result<(), String> {
    for filter in filters {
        seccompiler::apply_filter(filter)
            .map_err(|e| format!("failed to install the seccomp filter: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_small_program_with_our_refusals_after_the_arch_check() {
        let program = default_filter().unwrap();
        // BPF_MAXINSNS is 4096; small, since the kernel checks and compiles it at every start
        // (203 instructions when written; 603 with a tree over single numbers and seccompiler's
        // chain for every refused call).
        assert!(program.len() < 256, "{}", program.len());
        let ours = ahead_of_rules();
        assert_eq!(&program[ARCH_CHECK..ARCH_CHECK + ours.len()], &ours[..]);
        assert!(ours.contains(&insn(RET_K, 0, 0, errno(libc::ENOSYS))));
        #[cfg(target_arch = "x86_64")]
        assert!(ours.contains(&insn(JMP_JSET_K, 0, 1, X32)));
        // The tree follows, then the rules' own load of the number, as seccompiler emitted it.
        let ruled: Vec<u32> = argument_rules().unwrap().keys().map(|nr| *nr as u32).collect();
        let tree = tree(&ruled).expect("the refusals fit one tree");
        let rules_start = ARCH_CHECK + ours.len() + tree.len();
        assert_eq!(&program[ARCH_CHECK + ours.len()..rules_start], &tree[..]);
        assert_eq!(program[rules_start], insn(LD_W_ABS, 0, 0, NR_OFFSET));
    }

    /// The program as it was before the tree: arch check, our refusals, seccompiler's rules for
    /// every refused call.
    fn without_tree() -> BpfProgram {
        let mut rules = argument_rules().unwrap();
        rules.extend(REFUSED.iter().map(|(_, nr)| (*nr, Vec::new())));
        let mut program = refused(rules).unwrap();
        program.splice(ARCH_CHECK..ARCH_CHECK, ahead_of_rules());
        program
    }

    /// Calls that exercise every branch of the rules: every number, the x32 and foreign-arch
    /// entries, clone with each flag, personality with each value.
    fn probes() -> Vec<eval::Call> {
        use eval::Call;
        let mut calls: Vec<Call> = (0..1024).map(Call::nr).collect();
        #[cfg(target_arch = "x86_64")]
        calls.extend((0..512).map(|nr| Call::nr(X32 | nr)));
        calls.extend((0..512).map(|nr| Call { arch: 0x4000_0003, ..Call::nr(nr) }));
        let flags = NAMESPACE_FLAGS.iter().copied().chain([0, 0x11, 0x100 | 0x200 | 0x400 | 0x800 | 0x10000]);
        for f in flags {
            calls.push(Call::with_arg0(libc::SYS_clone as u32, f));
            calls.push(Call::with_arg0(libc::SYS_clone as u32, f | 0x11 | (1 << 40)));
        }
        for p in PERSONALITIES.iter().copied().chain([0x1, 0x40_0000, 0x0400_0000, 0x1_0000_0000]) {
            calls.push(Call::with_arg0(libc::SYS_personality as u32, p));
        }
        for (_, nr) in REFUSED {
            calls.push(Call::with_arg0(*nr as u32, u64::MAX));
        }
        calls
    }

    #[test]
    fn the_tree_changes_no_answer_of_the_rules() {
        let (with, without) = (default_filter().unwrap(), without_tree());
        for call in probes() {
            assert_eq!(
                eval::run(with, &call),
                eval::run(&without, &call),
                "nr {:#x} arch {:#x} arg0 {:#x}",
                call.nr,
                call.arch,
                call.args[0]
            );
        }
        // And the answers are the ones meant, so the comparison is not between two wrong programs.
        let eperm = errno(libc::EPERM);
        for (name, nr) in REFUSED {
            assert_eq!(eval::run(with, &eval::Call::nr(*nr as u32)), eperm, "{name}");
        }
        assert_eq!(eval::run(with, &eval::Call::nr(libc::SYS_read as u32)), libc::SECCOMP_RET_ALLOW);
        let new_user = eval::Call::with_arg0(libc::SYS_clone as u32, libc::CLONE_NEWUSER as u64);
        assert_eq!(eval::run(with, &new_user), eperm);
        let thread = eval::Call::with_arg0(libc::SYS_clone as u32, 0x3d0f00);
        assert_eq!(eval::run(with, &thread), libc::SECCOMP_RET_ALLOW);
    }

    #[test]
    fn the_refused_calls_are_the_dangerous_ones_and_nothing_common() {
        let names: Vec<_> = refused_names().collect();
        for needed in
            ["unshare", "keyctl", "perf_event_open", "userfaultfd", "bpf", "io_uring_setup", "mount"]
        {
            assert!(names.contains(&needed), "{needed}");
        }
        for common in ["read", "write", "clone", "execve", "ptrace", "chroot", "process_vm_readv"] {
            assert!(!names.contains(&common), "{common} must stay allowed");
        }
        let numbers: std::collections::HashSet<_> = REFUSED.iter().map(|(_, nr)| nr).collect();
        assert_eq!(numbers.len(), REFUSED.len(), "no call listed twice");
    }
}
