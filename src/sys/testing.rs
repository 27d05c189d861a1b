//! Test support shared by the privileged unit tests: how a test that needs root says it cannot
//! run, so that every such skip reads the same and `VRD_TEST_STRICT=1` (set by CI) turns it into a
//! failure.

use std::io::Write;
use std::path::PathBuf;

/// Whether this process may run a test that needs root; otherwise says so (or fails under
/// `VRD_TEST_STRICT=1`) and the test returns early.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    skip(test, "needs root");
    false
}

/// Records that `test` cannot run here, and why; a failure under `VRD_TEST_STRICT=1`.
pub fn skip(test: &str, reason: &str) {
    assert!(
        std::env::var("VRD_TEST_STRICT").as_deref() != Ok("1"),
        "{test}: {reason}, and VRD_TEST_STRICT=1 turns skips into failures"
    );
    // Written past libtest's capture so a skip is visible in every run.
    let _ = writeln!(std::io::stdout(), "SKIPPED {test}: {reason}");
}

/// Unmounts every mount under a test's directory when dropped, deepest first, so a failed test
/// leaves no mount behind.
pub struct MountsUnder(pub PathBuf);

impl Drop for MountsUnder {
    fn drop(&mut self) {
        let Some(dir) = self.0.to_str() else { return };
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut targets: Vec<String> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|t| t.starts_with(&format!("{dir}/")))
            .map(str::to_string)
            .collect();
        targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
        for target in targets {
            let _ = nix::mount::umount2(target.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
