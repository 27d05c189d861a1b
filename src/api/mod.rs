//! The wire contract between `vr` and `vrd`: JSON-RPC 2.0 methods (dotted names) and their types.
//! Both sides compile against this one trait, so they cannot drift apart.

pub mod error;
pub mod forward;
pub mod host;

pub use error::ApiError;

use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use serde::{Deserialize, Serialize};

pub use crate::model::audit::AuditEntry as AuditInfo;
pub use crate::model::build_record::BuildRecord as BuildInfo;
pub use crate::model::deploy::records::{DeployLogEntry, NumberedRelease, ReleaseRecord, SwarmProcRecord};
pub use crate::model::deploy::Kind;
pub use crate::model::exit::ExitStatus;
pub use crate::model::image_record::ImageRecord as ImageInfo;
pub use crate::model::supervision::ProcEvent;
pub use crate::model::uptest::{UptestFailure, UptestResult, UptestRun};
pub use crate::model::users::{NewToken, Role, TokenInfo, UserInfo};

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
    /// Whether the kernel's OOM killer killed a process of its last run (its memory limit).
    #[serde(default)]
    pub oom_killed: bool,
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
    /// Its swarm binds host volumes, so vr never moves it off a lost host on its own (the
    /// operator brings the host back or moves it); only a coordinator's listing sets it.
    #[serde(default)]
    pub volumes: bool,
}

/// One stored or live event with its id (for `Last-Event-ID`-style resumption).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventItem {
    /// Increasing id.
    pub id: u64,
    /// The event.
    pub event: ProcEvent,
}

/// One line of a proc's log (or of a build's or stack image's build log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// A proc's line as stored: `<RFC 3339 time> <out|err> <text>`; a build log's line as written.
    pub line: String,
}

/// The close message of `builds.follow` and `stacks.follow` once the log's writer has ended:
/// vrd closes the subscription (jsonrpsee's close notification), and the client's stream ends.
pub const LOG_ENDED: &str = "the log ended: its build is over";

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
    /// The stack images whose tarball and log went.
    #[serde(default)]
    pub images: Vec<u64>,
    /// One line per removed thing.
    pub removed: Vec<String>,
}

// ---- end of builds ----

// ---- Deployments: definitions, swarms, releases ----

/// What `vr swarm` changes in each matching swarm before dispatching it (VR's `--squad` and
/// `--add-/--remove-/--replace-ingredients`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmChanges {
    /// The version; `None` keeps each swarm's (VR's `-`).
    pub version: Option<String>,
    /// Move the swarms to this squad.
    pub squad: Option<String>,
    /// Ingredients to append (when not there yet).
    pub add_ingredients: Vec<String>,
    /// Ingredients to drop.
    pub remove_ingredients: Vec<String>,
    /// The whole ingredient list, in merge order.
    pub replace_ingredients: Option<Vec<String>>,
}

/// A dispatch that was started: follow it with `deploys.follow(trace)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatched {
    /// The swarm (or, for `apps.build`, the app).
    pub swarm: String,
    /// The dispatch's trace id; every deployment log entry of it carries it.
    pub trace: String,
}

// ---- end of deployments ----

/// What `vr hosts add` (and `vr hosts token`) give: everything the new host's `vrd join` needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostJoin {
    /// The host.
    pub host: String,
    /// The one-time token (shown once; stored hashed).
    pub token: String,
    /// The sha256 of the fleet's CA certificate, to pin.
    pub ca_sha256: String,
    /// The address hosts dial (`peer_advertise`, else `peer_listen`).
    pub coordinator: String,
    /// The command to run on the host.
    pub command: String,
}

/// A joined host's link, as the coordinator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostLink {
    /// The host.
    pub host: String,
    /// Connected now.
    pub connected: bool,
    /// up, suspect or down (see ARCHITECTURE "The fleet").
    pub state: String,
    /// Since when (unix seconds): linked since, or lost since.
    pub since: Option<i64>,
    /// Its vrd's version, when connected.
    pub version: Option<String>,
}

/// Who leads the coordinators of a model, as one of them sees it (`vr hosts leader`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderView {
    /// The model's engine: sqlite (one coordinator, always leading) or postgresql.
    pub model: String,
    /// The coordinator answering.
    pub this: String,
    /// Whether it leads.
    pub leads: bool,
    /// The lease's holder, if any coordinator took it.
    pub holder: Option<String>,
    /// Where the holder is reached.
    pub address: Option<String>,
    /// The lease's fencing epoch.
    pub epoch: Option<u64>,
    /// Milliseconds until the lease expires unless renewed (negative: expired).
    pub expires_in_ms: Option<i64>,
    /// Every coordinator of the model, as each recorded itself when it last started.
    #[serde(default)]
    pub coordinators: Vec<CoordinatorView>,
}

/// One coordinator of the model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CoordinatorView {
    /// Its host name.
    pub name: String,
    /// Its peer port's address, if it has one others reach.
    pub address: Option<String>,
    /// The sha256 of the fleet CA it signs with (the same on all).
    pub ca_sha256: String,
}

/// One host as `vr hosts list` shows it: its definition, and how it is doing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostRow {
    /// The host.
    pub host: String,
    /// Its squad.
    pub squad: String,
    /// Where balancers reach its procs.
    pub address: String,
    /// Whether it joined this coordinator (else this vrd serves it).
    pub joined: bool,
    /// Whether new procs may be placed on it.
    pub active: bool,
    /// Whether it is being drained.
    pub draining: bool,
    /// `local` (this vrd), or a joined host's `up`, `suspect` or `down`.
    pub state: String,
    /// When it last answered a heartbeat (unix seconds).
    pub last_heartbeat: Option<i64>,
    /// How many procs it runs (`None`: it did not answer within the listing's deadline).
    pub procs: Option<u64>,
    /// Its vrd's version (`None` while not connected).
    pub version: Option<String>,
}

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
    /// The host keeps too little free on its data dir's file system to start new work.
    pub const NO_ROOM: i32 = 15;
    /// The caller's uid holds as many connections to vrd as one user may.
    pub const TOO_MANY_CONNECTIONS: i32 = 16;

    // Deployments: 20..=29.
    /// A definition of that kind and name already exists.
    pub const EXISTS: i32 = 20;
    /// No definition (or release, or swarm) of that kind and name.
    pub const NOT_FOUND: i32 = 21;
    /// The definition is used by others, or refers to one that does not exist.
    pub const REFERENCE: i32 = 22;
    /// A dispatch failed (build, deploy, uptests, routing); the deployment log says where.
    pub const DISPATCH: i32 = 23;
    /// A balancer refused or failed a change.
    pub const BALANCER: i32 = 24;
    /// A host could not be reached or refused.
    pub const HOST: i32 = 25;
    /// This coordinator is a standby (or lost the lead): the leader dispatches and acts on hosts.
    pub const NOT_LEADER: i32 = 26;

    // Stack images (imager): 30..=39.
    /// The provisioning script of an image build failed (its log is kept, no tarball is written).
    pub const SCRIPT_FAILED: i32 = 30;
}

/// vrd's JSON-RPC API.
#[rpc(server, client)]
pub trait Vrd {
    /// The daemon's version.
    #[method(name = "vrd.version", with_extensions)]
    async fn version(&self) -> RpcResult<String>;

    /// Defines a host that joins this coordinator's fleet, and makes its one-time join token.
    #[method(name = "hosts.add", with_extensions)]
    async fn hosts_add(&self, name: String, address: String, squad: Option<String>) -> RpcResult<HostJoin>;

    /// Makes a user of the HTTP API and dashboard (admins only; the password is never logged).
    #[method(name = "users.create", with_extensions)]
    async fn users_create(&self, name: String, role: Role, password: String) -> RpcResult<UserInfo>;

    /// Changes a user's role, password, or both.
    #[method(name = "users.update", with_extensions)]
    async fn users_update(
        &self,
        name: String,
        role: Option<Role>,
        password: Option<String>,
    ) -> RpcResult<UserInfo>;

    /// Deletes a user and its tokens (never the last admin).
    #[method(name = "users.delete", with_extensions)]
    async fn users_delete(&self, name: String) -> RpcResult<()>;

    /// Every user.
    #[method(name = "users.list", with_extensions)]
    async fn users_list(&self) -> RpcResult<Vec<UserInfo>>;

    /// A new API token acting as `user` (its text is in the answer, and nowhere else ever).
    #[method(name = "tokens.create", with_extensions)]
    async fn tokens_create(&self, user: String, name: String, ttl_secs: Option<i64>) -> RpcResult<NewToken>;

    /// The API tokens of `user`, or everyone's.
    #[method(name = "tokens.list", with_extensions)]
    async fn tokens_list(&self, user: Option<String>) -> RpcResult<Vec<TokenInfo>>;

    /// Revokes an API token.
    #[method(name = "tokens.revoke", with_extensions)]
    async fn tokens_revoke(&self, id: u64) -> RpcResult<TokenInfo>;

    /// A new join token for a defined host (to join again).
    #[method(name = "hosts.token", with_extensions)]
    async fn hosts_token(&self, name: String) -> RpcResult<HostJoin>;

    /// Drains a host: replacements placed, uptested and routed elsewhere first, then its procs
    /// retired (one dispatch per swarm with procs there).
    #[method(name = "hosts.drain", with_extensions)]
    async fn hosts_drain(&self, name: String) -> RpcResult<Vec<Dispatched>>;

    /// Every joined host's link and state.
    #[method(name = "hosts.links", with_extensions)]
    async fn hosts_links(&self) -> RpcResult<Vec<HostLink>>;

    /// Which coordinator leads: the lease's holder and epoch, and this vrd's part.
    #[method(name = "hosts.leader", with_extensions)]
    async fn hosts_leader(&self) -> RpcResult<LeaderView>;

    /// Every host with its state, last heartbeat, procs and version; a host that cannot answer
    /// within 2 s shows no proc count instead of holding the listing.
    #[method(name = "hosts.list", with_extensions)]
    async fn hosts_list(&self) -> RpcResult<Vec<HostRow>>;

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
    #[method(name = "runner.uptest", with_extensions)]
    async fn runner_uptest(&self, file: ProcFile) -> RpcResult<Vec<UptestResult>>;

    /// Velociraptor's `vrun teardown`.
    #[method(name = "runner.teardown", with_extensions)]
    async fn runner_teardown(&self, file: ProcFile) -> RpcResult<()>;

    /// Sets a proc up and keeps it running under supervision.
    #[method(name = "proc.deploy", with_extensions)]
    async fn proc_deploy(&self, file: ProcFile) -> RpcResult<ProcInfo>;

    /// Every proc vrd supervises.
    #[method(name = "procs.list", with_extensions)]
    async fn procs_list(&self) -> RpcResult<Vec<ProcInfo>>;

    /// Starts, stops, restarts or destroys a proc (`action`: start, stop, restart, destroy).
    #[method(name = "procs.act", with_extensions)]
    async fn procs_act(&self, name: String, action: String) -> RpcResult<()>;

    /// The last `tail` lines of a proc's log (all when `None`), at or after `since` (RFC 3339).
    #[method(name = "logs.read", with_extensions)]
    async fn logs_read(
        &self,
        name: String,
        since: Option<String>,
        tail: Option<usize>,
    ) -> RpcResult<Vec<LogLine>>;

    /// A proc's log as it grows, from the end (or from `since`).
    #[subscription(name = "logs.follow" => "logs.line", unsubscribe = "logs.unfollow", item = LogLine, with_extensions)]
    async fn logs_follow(
        &self,
        name: String,
        since: Option<String>,
        tail: Option<usize>,
    ) -> jsonrpsee::core::SubscriptionResult;

    /// Stored proc events after `after` (0: the oldest kept), oldest first.
    #[method(name = "events.list", with_extensions)]
    async fn events_list(&self, after: u64, limit: usize) -> RpcResult<Vec<EventItem>>;

    /// Proc events after `after`: the stored ones first, then live ones, in order.
    #[subscription(name = "events.follow" => "events.event", unsubscribe = "events.unfollow", item = EventItem, with_extensions)]
    async fn events_follow(&self, after: u64) -> jsonrpsee::core::SubscriptionResult;

    /// The audit log of mutating calls, newest last.
    #[method(name = "audit.list", with_extensions)]
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
    #[method(name = "builds.list", with_extensions)]
    async fn builds_list(&self, app: Option<String>) -> RpcResult<Vec<BuildInfo>>;

    /// One build; UNKNOWN_BUILD when there is none with this id.
    #[method(name = "builds.show", with_extensions)]
    async fn builds_show(&self, id: u64) -> RpcResult<BuildInfo>;

    /// A build's kept compile log; UNKNOWN_BUILD when there is none with this id.
    #[method(name = "builds.log", with_extensions)]
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

    // ---- Deployments ----

    /// Creates a definition of `kind` from its JSON (the YAML file's content); returns it as
    /// stored (defaults filled in).
    #[method(name = "objects.create", with_extensions)]
    async fn objects_create(&self, kind: Kind, spec: serde_json::Value) -> RpcResult<serde_json::Value>;

    /// Replaces an existing definition (matched by its `name`); returns it as stored.
    #[method(name = "objects.update", with_extensions)]
    async fn objects_update(&self, kind: Kind, spec: serde_json::Value) -> RpcResult<serde_json::Value>;

    /// One definition.
    #[method(name = "objects.get", with_extensions)]
    async fn objects_get(&self, kind: Kind, name: String) -> RpcResult<serde_json::Value>;

    /// Every definition of a kind (buildpacks in detect order, the rest by name).
    #[method(name = "objects.list", with_extensions)]
    async fn objects_list(&self, kind: Kind) -> RpcResult<Vec<serde_json::Value>>;

    /// Deletes a definition nothing refers to. A swarm is first scaled to nothing (its procs
    /// de-routed, then destroyed).
    #[method(name = "objects.delete", with_extensions)]
    async fn objects_delete(&self, kind: Kind, name: String) -> RpcResult<()>;

    /// VR's `swarm FILTER TAG`: every swarm whose name or `app-config-proc` matches the anchored
    /// regex `filter` (and not `exclude`, searched case-insensitively) gets `changes` (its
    /// version, squad, ingredients) and is dispatched. With `rebuild`, each distinct build is made
    /// anew first (VR's `rebuild-all`). Returns one trace per swarm.
    #[method(name = "swarms.dispatch", with_extensions)]
    async fn swarms_dispatch(
        &self,
        filter: String,
        changes: SwarmChanges,
        exclude: Option<String>,
        rebuild: bool,
    ) -> RpcResult<Vec<Dispatched>>;

    /// Redeploys release `number` of a swarm (the one before the current when `None`) through
    /// the same uptest-gated path.
    #[method(name = "swarms.rollback", with_extensions)]
    async fn swarms_rollback(&self, swarm: String, number: Option<u64>) -> RpcResult<Dispatched>;

    /// A swarm's releases, numbered, oldest first.
    #[method(name = "swarms.releases", with_extensions)]
    async fn swarms_releases(&self, swarm: String) -> RpcResult<Vec<NumberedRelease>>;

    /// The procs swarms own (of one swarm when given).
    #[method(name = "swarms.procs", with_extensions)]
    async fn swarms_procs(&self, swarm: Option<String>) -> RpcResult<Vec<SwarmProcRecord>>;

    /// One release.
    #[method(name = "releases.show", with_extensions)]
    async fn releases_show(&self, id: u64) -> RpcResult<ReleaseRecord>;

    /// VR's manual deploy: release `id` as `proc_name` with `config_name` on `host` at `port`
    /// (not owned by any swarm, not routed).
    #[method(name = "releases.deploy", with_extensions)]
    async fn releases_deploy(
        &self,
        id: u64,
        host: String,
        port: u16,
        proc_name: String,
        config_name: String,
    ) -> RpcResult<ProcInfo>;

    /// VR's `build APP TAG`: builds the app at that version on its stack's active image (a new
    /// build even when one exists); follow it with `deploys.follow(trace)`.
    #[method(name = "apps.build", with_extensions)]
    async fn apps_build(&self, app: String, version: String) -> RpcResult<Dispatched>;

    /// Deployment log entries after `after` (of one trace when given), oldest first.
    #[method(name = "deploys.log", with_extensions)]
    async fn deploys_log(
        &self,
        trace: Option<String>,
        after: u64,
        limit: usize,
    ) -> RpcResult<Vec<DeployLogEntry>>;

    /// The deployment log as it grows (of one trace when given: the stream ends after that
    /// dispatch's last entry), starting after `after`.
    #[subscription(name = "deploys.follow" => "deploys.entry", unsubscribe = "deploys.unfollow", item = DeployLogEntry, with_extensions)]
    async fn deploys_follow(&self, trace: Option<String>, after: u64) -> jsonrpsee::core::SubscriptionResult;

    /// Runs the uptests of every proc swarms own now (VR's hourly `uptest_all_procs`).
    #[method(name = "uptests.run", with_extensions)]
    async fn uptests_run(&self) -> RpcResult<UptestRun>;

    /// The newest uptest run, scheduled or on demand.
    #[method(name = "uptests.latest", with_extensions)]
    async fn uptests_latest(&self) -> RpcResult<Option<UptestRun>>;

    /// The configured balancers, by name, with their kinds.
    #[method(name = "balancers.list", with_extensions)]
    async fn balancers_list(&self) -> RpcResult<Vec<(String, String)>>;

    /// The nodes of a pool as the balancer reports them.
    #[method(name = "balancers.nodes", with_extensions)]
    async fn balancers_nodes(&self, balancer: String, pool: String) -> RpcResult<Vec<String>>;

    /// VR's scoopers: removes the containers and proc dirs nothing owns (or, with `dry_run`, only
    /// says which); one line per thing. vrd also runs it every 30 minutes.
    #[method(name = "housekeeping.scoop", with_extensions)]
    async fn housekeeping_scoop(&self, dry_run: bool) -> RpcResult<Vec<String>>;

    // ---- Stacks ----

    /// Starts building a new image of `stack` (its base plus its provisioning script, run by the
    /// imager) and returns its record, `started`; on success it becomes the stack's active image.
    /// Follow it with `stacks.follow`. BUSY while the stack is being built already.
    #[method(name = "stacks.build", with_extensions)]
    async fn stacks_build(&self, stack: String) -> RpcResult<ImageInfo>;

    /// The images of a stack, oldest first (the active one marked).
    #[method(name = "stacks.images", with_extensions)]
    async fn stacks_images(&self, stack: String) -> RpcResult<Vec<ImageInfo>>;

    /// Makes an earlier image (by name, or by its number) the stack's active image again.
    #[method(name = "stacks.activate", with_extensions)]
    async fn stacks_activate(&self, stack: String, image: String) -> RpcResult<ImageInfo>;

    /// An image's build log from its start, live until its build ends; then vrd closes the
    /// subscription ([`LOG_ENDED`]).
    #[subscription(name = "stacks.follow" => "stacks.line", unsubscribe = "stacks.unfollow", item = LogLine, with_extensions)]
    async fn stacks_follow(&self, stack: String, image: String) -> jsonrpsee::core::SubscriptionResult;

    /// A build's compile.log from its start, live until the build ends; then vrd closes the
    /// subscription ([`LOG_ENDED`]). UNKNOWN_BUILD when there is no such build or gc removed its log.
    #[subscription(name = "builds.follow" => "builds.line", unsubscribe = "builds.unfollow", item = LogLine, with_extensions)]
    async fn builds_follow(&self, id: u64) -> jsonrpsee::core::SubscriptionResult;
}
