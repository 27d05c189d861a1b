//! A search tree over the call numbers the filter treats specially, ahead of seccompiler's rules:
//! a call refused whatever its arguments is refused in the tree, a call whose arguments decide
//! (`clone`, `personality`) goes on to the rules, and every other number is allowed, each within
//! a few comparisons.
//!
//! Why: the kernel checks, translates and JIT-compiles the whole program at every container
//! start, and then runs it for every call number of the architecture (about 460) to find the
//! ones it always allows (seccomp's action cache), under the task's signal lock. seccompiler
//! emits one linear chain, four or more instructions per refused call, that each allowed number
//! walks: ~0.2 ms of every start. The tree works on runs of neighbouring numbers with one answer
//! (the mount calls, the module calls, the io_uring calls...), so it is about 3 instructions per
//! run, and a number takes at most three per level.
//!
//! `super::tests` checks that the program with the tree answers every probe as seccompiler's
//! program with every refusal among its rules does.

use seccompiler::sock_filter;

use super::bpf::{insn, JMP_JA, JMP_JGE_K, JMP_JGT_K, RET_K};

/// A jump in the tree to the rules, which follow it: its offset is only known once the whole
/// tree is laid out.
const TO_RULES: u32 = u32::MAX;

/// What the tree does with a number.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Answer {
    /// Return this action (the refusal).
    Return(u32),
    /// Go on to the rules, which follow the tree.
    Rules,
}

/// Neighbouring numbers with one answer: `first..=last`.
#[derive(Clone, Copy, Debug)]
struct Run {
    first: u32,
    last: u32,
    answer: Answer,
}

/// The tree for a program whose accumulator holds the call's number when the tree starts: the
/// numbers in `refused` return `refuse`, those in `ruled` fall through to the instruction right
/// after the tree (the rules), any other returns `allow`. A number in both lists goes to the
/// rules. `None` when a subtree is too big for classic BPF's 8-bit conditional jumps (about 80
/// runs).
pub fn decision_tree(refused: &[u32], ruled: &[u32], refuse: u32, allow: u32) -> Option<Vec<sock_filter>> {
    let runs = runs(refused, ruled, refuse);
    let mut tree = subtree(&runs, allow)?;
    let len = tree.len();
    for (at, insn) in tree.iter_mut().enumerate() {
        if insn.code == JMP_JA && insn.k == TO_RULES {
            // Relative to the next instruction; the rules start at `len`.
            insn.k = (len - at - 1) as u32;
        }
    }
    Some(tree)
}

/// The numbers of both lists, sorted, as runs of neighbours with one answer.
fn runs(refused: &[u32], ruled: &[u32], refuse: u32) -> Vec<Run> {
    let mut numbers: Vec<(u32, Answer)> = refused
        .iter()
        .filter(|nr| !ruled.contains(nr))
        .map(|nr| (*nr, Answer::Return(refuse)))
        .chain(ruled.iter().map(|nr| (*nr, Answer::Rules)))
        .collect();
    numbers.sort_unstable_by_key(|(nr, _)| *nr);
    numbers.dedup_by_key(|(nr, _)| *nr);
    let mut runs: Vec<Run> = Vec::new();
    for (nr, answer) in numbers {
        match runs.last_mut() {
            Some(run) if run.answer == answer && run.last.checked_add(1) == Some(nr) => run.last = nr,
            _ => runs.push(Run { first: nr, last: nr, answer }),
        }
    }
    runs
}

/// Preorder: at the middle run, "above its last?" (then the right half), "at or above its
/// first?" (then its answer), else the left half; an empty half allows.
fn subtree(runs: &[Run], allow: u32) -> Option<Vec<sock_filter>> {
    if runs.is_empty() {
        return Some(vec![insn(RET_K, 0, 0, allow)]);
    }
    let middle = runs.len() / 2;
    let run = runs[middle];
    let left = subtree(&runs[..middle], allow)?;
    let right = subtree(&runs[middle + 1..], allow)?;
    // Over the run's own check and answer, then the left half.
    let over_left = u8::try_from(left.len() + 2).ok()?;
    let answer = match run.answer {
        Answer::Return(action) => insn(RET_K, 0, 0, action),
        Answer::Rules => insn(JMP_JA, 0, 0, TO_RULES),
    };
    let mut out = Vec::with_capacity(3 + left.len() + right.len());
    out.push(insn(JMP_JGT_K, over_left, 0, run.last));
    out.push(insn(JMP_JGE_K, 0, 1, run.first));
    out.push(answer);
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
    const REFUSE: u32 = 0x0005_0001;
    const FALL_THROUGH: u32 = 1;

    /// Runs `tree` followed by "return FALL_THROUGH", with the number `nr` in the accumulator.
    fn decide(tree: &[sock_filter], nr: u32) -> u32 {
        let mut program = vec![insn(LD_W_ABS, 0, 0, 0)]; // the number
        program.extend_from_slice(tree);
        program.push(insn(RET_K, 0, 0, FALL_THROUGH));
        run(&program, &Call::nr(nr))
    }

    #[test]
    fn refused_numbers_are_refused_ruled_ones_go_on_and_all_others_are_allowed() {
        let spread: Vec<u32> = (0..40).map(|n| n * 5 + 1).collect();
        let cases: [(Vec<u32>, Vec<u32>); 5] = [
            (vec![], vec![]),
            (vec![7], vec![]),
            (vec![3, 1, 2, 3, 9], vec![4, 10]),
            (vec![0, 1, 2, 5, 6, 7, 8], vec![3, 6]),
            (spread.clone(), spread.iter().map(|n| n + 2).collect()),
        ];
        for (refused, ruled) in cases {
            let tree = decision_tree(&refused, &ruled, REFUSE, ALLOW).unwrap();
            for nr in 0..400 {
                let want = if ruled.contains(&nr) {
                    FALL_THROUGH
                } else if refused.contains(&nr) {
                    REFUSE
                } else {
                    ALLOW
                };
                assert_eq!(decide(&tree, nr), want, "nr {nr}, refused {refused:?}, ruled {ruled:?}");
            }
            assert_eq!(decide(&tree, u32::MAX), ALLOW);
        }
    }

    #[test]
    fn neighbours_with_one_answer_cost_one_node() {
        // Four runs: 10..=19 refused, 20 ruled, 21..=29 refused, 40 refused.
        let refused: Vec<u32> = (10..30).chain([40]).collect();
        let tree = decision_tree(&refused, &[20], REFUSE, ALLOW).unwrap();
        assert_eq!(tree.len(), 3 * 4 + 5);
        assert_eq!(decide(&tree, u32::MAX), ALLOW);
    }

    #[test]
    fn a_tree_too_big_for_8_bit_jumps_is_refused() {
        let refused: Vec<u32> = (0..400).map(|n| n * 2).collect();
        assert!(decision_tree(&refused, &[], REFUSE, ALLOW).is_none());
    }
}
