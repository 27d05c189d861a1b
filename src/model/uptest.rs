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

/// One proc's failed uptests, as the scheduled (or on-demand) uptest run reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UptestFailure {
    /// The host.
    pub host: String,
    /// The proc.
    pub proc: String,
    /// The failed tests (or one `uptester` entry saying why the tests could not run).
    pub results: Vec<UptestResult>,
}

/// An uptest run over every running proc of every swarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UptestRun {
    /// When it started (unix seconds).
    pub start: i64,
    /// When it ended.
    pub end: i64,
    /// How many procs were tested.
    pub procs: usize,
    /// Those that failed.
    pub failures: Vec<UptestFailure>,
}
