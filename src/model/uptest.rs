//! Uptest results in Velociraptor's JSON shape: `{"Name": ..., "Output": ..., "Passed": ...}`.

use serde::{Deserialize, Serialize};

/// One uptest's outcome, in VR's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UptestResult {
    /// The test's file name.
    pub name: String,
    /// Its combined stdout and stderr.
    pub output: String,
    /// It exited 0.
    pub passed: bool,
}
