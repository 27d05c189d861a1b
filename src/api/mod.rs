//! The wire contract between `vr` and `vrd`: JSON-RPC 2.0 methods (dotted names) and their types.
//! Both sides compile against this one trait, so they cannot drift apart.

use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use serde::{Deserialize, Serialize};

pub use crate::model::audit::AuditEntry as AuditInfo;
pub use crate::model::build_record::BuildRecord as BuildInfo;
pub use crate::model::exit::ExitStatus;
pub use crate::model::supervision::ProcEvent;
pub use crate::model::uptest::UptestResult;

/// A proc.yaml as the client read it: its path (for messages) and its text. The client reads the
/// file, so vrd never opens paths on behalf of an unprivileged caller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcFile {
    /// The path the user gave, for messages.
    pub path: String,
    /// The file's text.
    pub yaml: String,
}

/// What `setup` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetupReport {
    /// The proc name.
    pub name: String,
    /// Its proc dir on the host.
    pub proc_dir: String,
    /// Things worth knowing that did not stop the setup.
    pub warnings: Vec<String>,
}

/// How the client hands over its terminal (stdin, stdout and stderr, with SCM_RIGHTS): with the
/// request itself, on the API connection (`inline`), or on a Unix socket it listens on, where vrd
/// connects, checks the peer is the caller, and receives them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Attach {
    /// The socket path; unused when `inline`.
    #[serde(default)]
    pub socket: String,
    /// The fds came with the request on the API connection, in order; no socket to connect to.
    #[serde(default)]
    pub inline: bool,
}

impl Attach {
    /// The fds travel with the request.
    pub fn inline() -> Attach {
        Attach { socket: String::new(), inline: true }
    }

    /// The fds wait on the Unix socket at `path`.
    pub fn socket(path: impl Into<String>) -> Attach {
        Attach { socket: path.into(), inline: false }
    }
}

/// One proc as `vr procs list` shows it: VR's `Proc.as_dict()` fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcInfo {
    /// The six-part name.
    pub name: String,
    /// `<host>-<name>`, as VR's dashboard keyed procs.
    pub id: String,
    /// The host.
    pub host: String,
    /// supervisord's state name (RUNNING, FATAL, ...).
    pub statename: String,
    /// supervisord's numeric state.
    pub state: i32,
    /// What the operator asked for: running, stopped or destroyed.
    pub desired: String,
    /// The app's pid (pid 1 of its container, as the host sees it).
    pub pid: Option<i32>,
    /// The last exit code.
    pub exitstatus: Option<i32>,
    /// Why the last start failed.
    pub spawnerr: Option<String>,
    /// When it last started (unix seconds).
    pub start_time: Option<i64>,
    /// When it last stopped (unix seconds).
    pub stop_time: Option<i64>,
    /// The app part of the name.
    pub app_name: String,
    /// The version part.
    pub version: String,
    /// The config part.
    pub config_name: String,
    /// The hash part.
    pub hash: String,
    /// The proc part.
    pub proc_name: String,
    /// The port part.
    pub port: u16,
}

/// One stored or live event with its id (for `Last-Event-ID`-style resumption).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventItem {
    /// Increasing id.
    pub id: u64,
    /// The event.
    pub event: ProcEvent,
}

/// One line of a proc's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// The line as stored: `<RFC 3339 time> <out|err> <text>`.
    pub line: String,
}

// ------------------------------------------------------------------------------------------------
// Stack images (`vr imager`, Velociraptor's `vimage`)
// ------------------------------------------------------------------------------------------------

/// An image.yaml as the client read it, with the directory its relative local paths
/// (`base_image_url`, `script_url`) are relative to: the client's working directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageFile {
    /// The path the user gave, for messages.
    pub path: String,
    /// The file's text.
    pub yaml: String,
    /// The client's working directory, absolute.
    pub cwd: String,
}

/// How many fds the client hands over for `imager.build`, in this order: its stdout, its stderr,
/// then the files it created in its directory: `<new_image_name>.log`, `<new_image_name>.tar.gz`
/// and `<new_image_name>.tar.gz.md5`.
pub const IMAGER_BUILD_FDS: usize = 5;

/// What `imager.build` made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageBuilt {
    /// The new image's name.
    pub name: String,
    /// The tarball's md5 (also written to `<name>.tar.gz.md5`).
    pub md5: String,
    /// Entries in the tarball.
    pub entries: u64,
    /// Device nodes, fifos and sockets left out of it.
    pub skipped: u64,
    /// Things worth knowing that did not stop the build.
    pub warnings: Vec<String>,
}

// ---- Builds (`vr builder`, Velociraptor's `vbuild`) ----

/// A build.yaml as the client read it: its path (for messages) and its text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildFile {
    /// The path the user gave, for messages.
    pub path: String,
    /// The file's text.
    pub yaml: String,
}

/// What `builder.build` made. The files themselves went to the fds the client handed over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildReport {
    /// The app.
    pub app_name: String,
    /// The exact app revision built.
    pub app_commit: String,
    /// Each buildpack that ran, as `url#<revision>`.
    pub buildpacks: Vec<String>,
    /// The md5 of build.tar.gz.
    pub build_md5: String,
}

/// The number of fds a client hands over for `builder.build`, in this order: its stdout, its
/// stderr, then build.tar.gz, build_result.yaml and compile.log opened for writing.
pub const BUILD_FDS: usize = 5;

/// What `builds.gc` removed (or, for a dry run, would remove): one line per log or artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// The builds whose artifact and log went.
    pub builds: Vec<u64>,
    /// One line per removed thing.
    pub removed: Vec<String>,
}

// ---- end of builds ----

/// Stable error codes; clients branch on these, never on message text.
pub mod codes {
    /// proc.yaml or an argument is wrong.
    pub const INVALID: i32 = 1;
    /// The proc is locked by another call.
    pub const BUSY: i32 = 2;
    /// The proc is not set up.
    pub const NOT_SET_UP: i32 = 3;
    /// An image or build could not be fetched or unpacked.
    pub const ARTIFACT: i32 = 4;
    /// The run-as user or group is not in the image.
    pub const USER: i32 = 5;
    /// A file system operation on the host failed.
    pub const IO: i32 = 6;
    /// The container could not be launched.
    pub const LAUNCH: i32 = 7;
    /// The caller may not do this.
    pub const DENIED: i32 = 8;
    /// A bug: a task of the daemon failed.
    pub const INTERNAL: i32 = 9;
    /// No such proc.
    pub const UNKNOWN_PROC: i32 = 10;
    /// The state database failed.
    pub const STATE: i32 = 11;
    /// A build could not check out its app or a buildpack.
    pub const CHECKOUT: i32 = 12;
    /// A build failed in its detect, compile, release or package step.
    pub const BUILD_FAILED: i32 = 13;
    /// No build with this id.
    pub const UNKNOWN_BUILD: i32 = 14;

    // Stack images (imager): 30..=39.
    /// The provisioning script of an image build failed (its log is kept, no tarball is written).
    pub const SCRIPT_FAILED: i32 = 30;
}

/// vrd's JSON-RPC API.
#[rpc(server, client)]
pub trait Vrd {
    /// The daemon's version.
    #[method(name = "vrd.version")]
    async fn version(&self) -> RpcResult<String>;

    /// Velociraptor's `vrun setup`.
    #[method(name = "runner.setup", with_extensions)]
    async fn runner_setup(&self, file: ProcFile) -> RpcResult<SetupReport>;

    /// Velociraptor's `vrun run`: the proc in the foreground, its output on the caller's terminal.
    #[method(name = "runner.run", with_extensions)]
    async fn runner_run(&self, file: ProcFile, attach: Attach) -> RpcResult<ExitStatus>;

    /// Velociraptor's `vrun shell`: an interactive shell in a sibling container.
    #[method(name = "runner.shell", with_extensions)]
    async fn runner_shell(&self, file: ProcFile, attach: Attach) -> RpcResult<ExitStatus>;

    /// Sends a signal (e.g. "TERM", "INT") to the proc's foreground `run`; a terminating signal
    /// is followed by SIGKILL after the stop grace period. Returns false when nothing runs.
    #[method(name = "runner.signal", with_extensions)]
    async fn runner_signal(&self, file: ProcFile, signal: String) -> RpcResult<bool>;

    /// Velociraptor's `vrun uptest`.
    #[method(name = "runner.uptest")]
    async fn runner_uptest(&self, file: ProcFile) -> RpcResult<Vec<UptestResult>>;

    /// Velociraptor's `vrun teardown`.
    #[method(name = "runner.teardown", with_extensions)]
    async fn runner_teardown(&self, file: ProcFile) -> RpcResult<()>;

    /// Sets a proc up and keeps it running under supervision.
    #[method(name = "proc.deploy", with_extensions)]
    async fn proc_deploy(&self, file: ProcFile) -> RpcResult<ProcInfo>;

    /// Every proc vrd supervises.
    #[method(name = "procs.list")]
    async fn procs_list(&self) -> RpcResult<Vec<ProcInfo>>;

    /// Starts, stops, restarts or destroys a proc (`action`: start, stop, restart, destroy).
    #[method(name = "procs.act", with_extensions)]
    async fn procs_act(&self, name: String, action: String) -> RpcResult<()>;

    /// The last `tail` lines of a proc's log (all when `None`), at or after `since` (RFC 3339).
    #[method(name = "logs.read")]
    async fn logs_read(
        &self,
        name: String,
        since: Option<String>,
        tail: Option<usize>,
    ) -> RpcResult<Vec<LogLine>>;

    /// A proc's log as it grows, from the end (or from `since`).
    #[subscription(name = "logs.follow" => "logs.line", unsubscribe = "logs.unfollow", item = LogLine)]
    async fn logs_follow(
        &self,
        name: String,
        since: Option<String>,
        tail: Option<usize>,
    ) -> jsonrpsee::core::SubscriptionResult;

    /// Stored proc events after `after` (0: the oldest kept), oldest first.
    #[method(name = "events.list")]
    async fn events_list(&self, after: u64, limit: usize) -> RpcResult<Vec<EventItem>>;

    /// Proc events after `after`: the stored ones first, then live ones, in order.
    #[subscription(name = "events.follow" => "events.event", unsubscribe = "events.unfollow", item = EventItem)]
    async fn events_follow(&self, after: u64) -> jsonrpsee::core::SubscriptionResult;

    /// The audit log of mutating calls, newest last.
    #[method(name = "audit.list")]
    async fn audit_list(&self, limit: usize) -> RpcResult<Vec<AuditInfo>>;

    // --- Stack images (`vr imager`, Velociraptor's `vimage`) ---------------------------------

    /// Velociraptor's `vimage build`: runs image.yaml's script on a fresh copy of the base and
    /// writes the tarball, its md5 and the log into the files the client hands over at `attach`
    /// ([`IMAGER_BUILD_FDS`]); the script's output streams to the client's stdout and stderr.
    /// `term` is the client's `TERM`.
    #[method(name = "imager.build", with_extensions)]
    async fn imager_build(
        &self,
        file: ImageFile,
        attach: Attach,
        term: Option<String>,
    ) -> RpcResult<ImageBuilt>;

    /// Velociraptor's `vimage shell`: an interactive shell (on the client's terminal, handed over
    /// at `attach` as for `runner.shell`) in the provisioning container; nothing is kept.
    #[method(name = "imager.shell", with_extensions)]
    async fn imager_shell(
        &self,
        file: ImageFile,
        attach: Attach,
        term: Option<String>,
    ) -> RpcResult<ExitStatus>;

    // ---- Builds ----

    /// Velociraptor's `vbuild build`: builds the app of a build.yaml in a container. The client
    /// hands over [`BUILD_FDS`] fds on the attach socket (see there); compile output streams to
    /// its stdout and stderr as it happens. Fails with CHECKOUT or BUILD_FAILED naming the step.
    #[method(name = "builder.build", with_extensions)]
    async fn builder_build(&self, file: BuildFile, attach: Attach) -> RpcResult<BuildReport>;

    /// Velociraptor's `vbuild shell`: an interactive shell in the build container, set up as for
    /// a build (stdin, stdout and stderr handed over as for `runner.shell`).
    #[method(name = "builder.shell", with_extensions)]
    async fn builder_shell(&self, file: BuildFile, attach: Attach) -> RpcResult<ExitStatus>;

    /// Every recorded build (of `app` only, when given), oldest first.
    #[method(name = "builds.list")]
    async fn builds_list(&self, app: Option<String>) -> RpcResult<Vec<BuildInfo>>;

    /// One build; UNKNOWN_BUILD when there is none with this id.
    #[method(name = "builds.show")]
    async fn builds_show(&self, id: u64) -> RpcResult<BuildInfo>;

    /// A build's kept compile log; UNKNOWN_BUILD when there is none with this id.
    #[method(name = "builds.log")]
    async fn builds_log(&self, id: u64) -> RpcResult<String>;

    /// Removes the artifacts and logs of builds older than `max_age_days` (default 30) that are
    /// not among the `keep` (default 10) newest successful builds of their app, and every store
    /// file no build references. With `dry_run`, only says what it would remove.
    #[method(name = "builds.gc", with_extensions)]
    async fn builds_gc(
        &self,
        dry_run: bool,
        max_age_days: Option<u64>,
        keep: Option<usize>,
    ) -> RpcResult<GcReport>;
}
