//! A search tree over the call numbers the rules name, ahead of seccompiler's rules: every other
//! number returns ALLOW within a few comparisons, and the named ones go on to the rules.
//!
//! Why: when a filter is installed the kernel runs it for every call number of the architecture
//! (about 460) to find the ones it always allows (seccomp's action cache; those later skip the
//! filter), under the task's signal lock. seccompiler emits one linear chain, so each allowed
//! number walked the whole chain, ~130 steps: about 0.2 ms of every container start. Through the
//! tree an allowed number takes at most three steps per level (six levels for 64 numbers).
//!
//! The tree decides nothing the rules do not: it only lets through the numbers that have no rule,
//! which seccompiler's program also allows (its default action), and hands every ruled number to
//! the rules unchanged. `tests` checks that the two programs answer alike for every number.

use seccompiler::sock_filter;

use super::bpf::{insn, JMP_JA, JMP_JEQ_K, JMP_JGT_K, RET_K};

/// A jump in the tree to the rules, which follow it: its offset is only known once the whole
/// tree is laid out.
const TO_RULES: u32 = u32::MAX;

/// The tree for the call numbers in `ruled` (any order, repeats allowed), for a program whose
/// accumulator holds the call's number when the tree starts: a ruled number falls through to the
/// instruction right after the tree, any other returns `allow`. `None` when a subtree is too big
/// for classic BPF's 8-bit conditional jumps (over ~170 ruled numbers): the rules alone then.
pub fn allow_tree(ruled: &[u32], allow: u32) -> Option<Vec<sock_filter>> {
    let mut numbers = ruled.to_vec();
    numbers.sort_unstable();
    numbers.dedup();
    let mut tree = subtree(&numbers, allow)?;
    let len = tree.len();
    for (at, insn) in tree.iter_mut().enumerate() {
        if insn.code == JMP_JA && insn.k == TO_RULES {
            // Relative to the next instruction; the rules start at `len`.
            insn.k = (len - at - 1) as u32;
        }
    }
    Some(tree)
}

/// Preorder: at the middle number `v`, "is it v?" (then on to the rules), "is it above v?" (then
/// the right half), else the left half; an empty half allows.
fn subtree(sorted: &[u32], allow: u32) -> Option<Vec<sock_filter>> {
    if sorted.is_empty() {
        return Some(vec![insn(RET_K, 0, 0, allow)]);
    }
    let middle = sorted.len() / 2;
    let v = sorted[middle];
    let left = subtree(&sorted[..middle], allow)?;
    let right = subtree(&sorted[middle + 1..], allow)?;
    let over_left = u8::try_from(left.len()).ok()?;
    let mut out = Vec::with_capacity(3 + left.len() + right.len());
    out.push(insn(JMP_JEQ_K, 0, 1, v));
    out.push(insn(JMP_JA, 0, 0, TO_RULES));
    out.push(insn(JMP_JGT_K, over_left, 0, v));
    out.extend(left);
    out.extend(right);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::bpf::LD_W_ABS;
    use super::super::eval::{run, Call};
    use super::*;

    const ALLOW: u32 = 0x7fff_0000;
    const FALL_THROUGH: u32 = 1;

    /// Runs `tree` followed by "return FALL_THROUGH", with the number `nr` in the accumulator.
    fn decide(tree: &[sock_filter], nr: u32) -> u32 {
        let mut program = vec![insn(LD_W_ABS, 0, 0, 0)]; // the number
        program.extend_from_slice(tree);
        program.push(insn(RET_K, 0, 0, FALL_THROUGH));
        run(&program, &Call::nr(nr))
    }

    #[test]
    fn ruled_numbers_go_on_to_the_rules_and_all_others_are_allowed() {
        for ruled in [vec![], vec![7], vec![3, 1, 2, 3], (0..64).map(|n| n * 5 + 1).collect::<Vec<_>>()] {
            let tree = allow_tree(&ruled, ALLOW).unwrap();
            for nr in 0..400 {
                let want = if ruled.contains(&nr) { FALL_THROUGH } else { ALLOW };
                assert_eq!(decide(&tree, nr), want, "nr {nr} with {} ruled", ruled.len());
            }
            assert_eq!(decide(&tree, u32::MAX), ALLOW);
        }
    }

    #[test]
    fn the_tree_is_three_instructions_per_number_and_one_per_gap() {
        let ruled: Vec<u32> = (0..64).map(|n| n * 7).collect();
        assert_eq!(allow_tree(&ruled, ALLOW).unwrap().len(), 3 * 64 + 65);
    }

    #[test]
    fn a_tree_too_big_for_8_bit_jumps_is_refused() {
        let ruled: Vec<u32> = (0..400).collect();
        assert!(allow_tree(&ruled, ALLOW).is_none());
    }
}
