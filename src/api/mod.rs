//! The wire contract between `vr` and `vrd`: JSON-RPC 2.0 methods (dotted names) and their types.
//! Both sides compile against this one trait, so they cannot drift apart.

use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use serde::{Deserialize, Serialize};

pub use crate::model::exit::ExitStatus;
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

/// Where the client waits to hand over its terminal: a Unix socket it listens on. vrd connects,
/// checks the peer is the caller, and receives stdin, stdout and stderr with SCM_RIGHTS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attach {
    /// The socket path.
    pub socket: String,
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
}

/// vrd's JSON-RPC API.
#[rpc(server, client)]
pub trait Vrd {
    /// The daemon's version.
    #[method(name = "vrd.version")]
    async fn version(&self) -> RpcResult<String>;

    /// Velociraptor's `vrun setup`.
    #[method(name = "runner.setup")]
    async fn runner_setup(&self, file: ProcFile) -> RpcResult<SetupReport>;

    /// Velociraptor's `vrun run`: the proc in the foreground, its output on the caller's terminal.
    #[method(name = "runner.run", with_extensions)]
    async fn runner_run(&self, file: ProcFile, attach: Attach) -> RpcResult<ExitStatus>;

    /// Velociraptor's `vrun shell`: an interactive shell in a sibling container.
    #[method(name = "runner.shell", with_extensions)]
    async fn runner_shell(&self, file: ProcFile, attach: Attach) -> RpcResult<ExitStatus>;

    /// Sends a signal (e.g. "TERM", "INT") to the proc's foreground `run`; a terminating signal
    /// is followed by SIGKILL after the stop grace period. Returns false when nothing runs.
    #[method(name = "runner.signal")]
    async fn runner_signal(&self, file: ProcFile, signal: String) -> RpcResult<bool>;

    /// Velociraptor's `vrun uptest`.
    #[method(name = "runner.uptest")]
    async fn runner_uptest(&self, file: ProcFile) -> RpcResult<Vec<UptestResult>>;

    /// Velociraptor's `vrun teardown`.
    #[method(name = "runner.teardown")]
    async fn runner_teardown(&self, file: ProcFile) -> RpcResult<()>;
}
