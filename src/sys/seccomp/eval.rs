//! A classic BPF interpreter for the instructions seccomp filters use here (tests only): the
//! kernel runs the same program, so the tests can ask it what the filter answers for any call.

use seccompiler::sock_filter;

use super::bpf::{ALU_AND_K, JMP_JA, JMP_JEQ_K, JMP_JGE_K, JMP_JGT_K, JMP_JSET_K, LD_W_ABS, RET_K};

/// The fields of `struct seccomp_data` a filter may load.
pub struct Call {
    pub nr: u32,
    pub arch: u32,
    pub args: [u64; 6],
}

impl Call {
    /// A call of the native architecture with no arguments.
    pub fn nr(nr: u32) -> Self {
        Call { nr, arch: native_arch(), args: [0; 6] }
    }

    pub fn with_arg0(nr: u32, arg0: u64) -> Self {
        Call { args: [arg0, 0, 0, 0, 0, 0], ..Call::nr(nr) }
    }

    /// The 32-bit word at `offset` in `struct seccomp_data` (little-endian halves of the args).
    fn word(&self, offset: u32) -> u32 {
        match offset {
            0 => self.nr,
            4 => self.arch,
            16..=63 if offset.is_multiple_of(4) => {
                let arg = self.args[(offset as usize - 16) / 8];
                if (offset - 16).is_multiple_of(8) {
                    arg as u32
                } else {
                    (arg >> 32) as u32
                }
            }
            other => panic!("load at offset {other} of seccomp_data"),
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub fn native_arch() -> u32 {
    0xc000_003e // AUDIT_ARCH_X86_64 (linux/audit.h; the libc crate lacks it)
}

#[cfg(target_arch = "aarch64")]
pub fn native_arch() -> u32 {
    0xc000_00b7 // AUDIT_ARCH_AARCH64
}

/// What `program` returns for `call`; panics on an instruction the filters here never use, or on
/// a jump out of the program (the kernel would refuse such a program).
pub fn run(program: &[sock_filter], call: &Call) -> u32 {
    let (mut a, mut pc) = (0u32, 0usize);
    loop {
        let i = program.get(pc).unwrap_or_else(|| panic!("ran off the program's end at {pc}"));
        pc += 1;
        let jump = |taken: bool| if taken { i.jt as usize } else { i.jf as usize };
        match i.code {
            LD_W_ABS => a = call.word(i.k),
            ALU_AND_K => a &= i.k,
            JMP_JA => pc += i.k as usize,
            JMP_JEQ_K => pc += jump(a == i.k),
            JMP_JGT_K => pc += jump(a > i.k),
            JMP_JGE_K => pc += jump(a >= i.k),
            JMP_JSET_K => pc += jump(a & i.k != 0),
            RET_K => return i.k,
            other => panic!("opcode {other:#x} at {}", pc - 1),
        }
    }
}
