//! One build as vrd's state keeps it: what was built, how it ended, and where its slug and
//! compile log are kept.

use serde::{Deserialize, Serialize};

/// A build's status: `started` until it ends, then `succeeded` or `failed`.
pub const STARTED: &str = "started";
/// The build made a slug.
pub const SUCCEEDED: &str = "succeeded";
/// The build failed (`step` says where).
pub const FAILED: &str = "failed";

/// One `builder.build` call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// Increasing id, given by the database.
    pub id: u64,
    /// The app.
    pub app_name: String,
    /// build.yaml's version.
    pub version: String,
    /// The exact app revision built, once known.
    pub app_commit: Option<String>,
    /// Each buildpack that ran, as `url#<revision>`.
    pub buildpacks: Vec<String>,
    /// [`STARTED`], [`SUCCEEDED`] or [`FAILED`].
    pub status: String,
    /// The failing step (checkout, detect, compile, release, package, ...), for a failed build.
    pub step: Option<String>,
    /// The error message of a failed build.
    pub error: Option<String>,
    /// When it started, in unix seconds.
    pub started: i64,
    /// When it ended, in unix seconds.
    pub ended: Option<i64>,
    /// The md5 of build.tar.gz.
    pub build_md5: Option<String>,
    /// The slug's sha256: its address in the store (`store/sha256/<hex>`), until gc removes it.
    pub artifact: Option<String>,
    /// The kept compile.log, until gc removes it.
    pub log_path: Option<String>,
    /// When gc removed its artifact and log, in unix seconds.
    pub collected: Option<i64>,
    /// The md5 of the stack image it was built on, for builds a swarm asked for.
    #[serde(default)]
    pub image_md5: Option<String>,
    /// The buildpacks' config_vars (a release's env starts from them).
    #[serde(default)]
    pub env: serde_json::Map<String, serde_json::Value>,
}
