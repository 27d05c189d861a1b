//! vrd: the per-host daemon. `vrd daemon` serves the API; the hidden `init` and `unpack`
//! subcommands are the single-threaded helpers the daemon re-executes itself as (it never forks).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use vr::config::{self, DaemonConfig};

/// vrd: one privileged daemon per host that builds, runs and supervises app containers.
#[derive(Debug, Parser)]
#[command(name = "vrd", version, about)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serve the API and supervise procs.
    Daemon {
        /// Images, builds and procs.
        #[arg(long, default_value = config::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// Runtime files.
        #[arg(long, default_value = config::DEFAULT_RUN_DIR)]
        run_dir: PathBuf,
        /// The API socket [default: RUN_DIR/vrd.sock]
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Where the cgroup file systems are mounted.
        #[arg(long, default_value = config::DEFAULT_CGROUP_ROOT)]
        cgroup_root: PathBuf,
        /// The cgroup every container is created under.
        #[arg(long, default_value = config::DEFAULT_CGROUP_PARENT)]
        cgroup_parent: String,
        /// A numeric group id that may use the socket (mode 0660).
        #[arg(long)]
        socket_gid: Option<u32>,
    },
    /// Launch one container from a plan (run by the daemon).
    #[command(hide = true)]
    Init {
        #[arg(long)]
        plan: PathBuf,
    },
    /// Unpack an archive inside a chroot (run by the daemon).
    #[command(hide = true, disable_help_flag = true)]
    Unpack {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() {
    let args = Args::parse();
    let code = match args.command {
        Cmd::Init { plan } => vr::host::container::launcher::main(&plan),
        Cmd::Unpack { args } => vr::host::image::unpack_main(&args),
        Cmd::Daemon { data_dir, run_dir, socket, cgroup_root, cgroup_parent, socket_gid } => {
            let socket = socket.unwrap_or_else(|| run_dir.join("vrd.sock"));
            let config = DaemonConfig { data_dir, run_dir, socket, cgroup_root, cgroup_parent, socket_gid };
            match daemon(config) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("vrd: {e:#}");
                    1
                }
            }
        }
    };
    std::process::exit(code);
}

fn daemon(config: DaemonConfig) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let daemon = vr::daemon::Daemon::open(&config)?;
        let listener = vr::daemon::server::bind(&config.socket, config.socket_gid)?;
        tracing::info!(socket = %config.socket.display(), data_dir = %config.data_dir.display(), "vrd is serving");
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
            tracing::info!("stopping: in-flight calls finish, procs keep running");
        };
        vr::daemon::server::serve(listener, daemon, shutdown).await;
        Ok(())
    })
}
