//! Classic BPF's opcodes (linux/bpf_common.h) that vr's own instructions use, and one way to
//! write an instruction: the refusals and the tree ahead of seccompiler's rules, and the tests'
//! interpreter, all spell them from here.

use seccompiler::sock_filter;

/// BPF_LD|BPF_W|BPF_ABS: load a word of `seccomp_data`.
pub const LD_W_ABS: u16 = 0x20;
/// BPF_JMP|BPF_JA: jump by `k`.
pub const JMP_JA: u16 = 0x05;
/// BPF_JMP|BPF_JEQ|BPF_K.
pub const JMP_JEQ_K: u16 = 0x15;
/// BPF_JMP|BPF_JGT|BPF_K.
pub const JMP_JGT_K: u16 = 0x25;
/// BPF_JMP|BPF_JGE|BPF_K.
pub const JMP_JGE_K: u16 = 0x35;
/// BPF_JMP|BPF_JSET|BPF_K.
#[cfg(any(test, target_arch = "x86_64"))]
pub const JMP_JSET_K: u16 = 0x45;
/// BPF_ALU|BPF_AND|BPF_K (seccompiler's masked argument checks).
#[cfg(test)]
pub const ALU_AND_K: u16 = 0x54;
/// BPF_RET|BPF_K: the filter's answer.
pub const RET_K: u16 = 0x06;

pub fn insn(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}
