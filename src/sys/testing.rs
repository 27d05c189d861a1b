//! Test support shared by the privileged unit tests: how a test that needs root says it cannot
//! run, so that every such skip reads the same and `VRD_TEST_STRICT=1` (set by CI) turns it into a
//! failure.

use std::io::Write;

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
