//! vrd: the per-host daemon. `vrd daemon` serves the API; the hidden `init` and `unpack`
//! subcommands are the single-threaded helpers the daemon re-executes itself as (it never forks).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use vr::config::{ConfigError, DaemonConfig, RawConfig};

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
        /// A TOML file with any of the settings below (the flags win over it).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        settings: Box<RawConfig>,
    },
    /// Join the fleet of a coordinating vrd: make this host's key, check the coordinator against
    /// the pinned CA, and get a certificate with the one-time token `vr hosts add` printed there.
    /// Then start (or restart) `vrd daemon` here: it keeps its link to the coordinator up.
    Join {
        /// The coordinator's peer address (its `peer_listen`), ADDR:PORT.
        coordinator: String,
        /// The one-time join token.
        #[arg(long)]
        token: String,
        /// The sha256 of the coordinator's CA certificate.
        #[arg(long)]
        ca_sha256: String,
        /// The config file this host's vrd uses (for data_dir and host_name).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        settings: Box<RawConfig>,
    },
    /// Move an installation's model (apps, swarms, releases, builds' records, users, audit, hosts)
    /// from its SQLite file into an empty PostgreSQL database, checked by row counts and hashes,
    /// in one transaction. Stop vrd first; then set `state_url` and start it again. The SQLite
    /// file is only read, and stays this host's record of its procs.
    MigrateState {
        /// The SQLite state: sqlite:PATH (or PATH), e.g. sqlite:/var/lib/vrd/state.db.
        #[arg(long)]
        from: String,
        /// The PostgreSQL database: postgres://USER:PASSWORD@HOST/DB?sslmode=require.
        #[arg(long)]
        to: String,
        /// PEM certificates to trust for the database's TLS, besides the system's roots.
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
    /// Launch one container from a plan (run by the daemon).
    #[command(hide = true)]
    Init {
        #[arg(long)]
        plan: PathBuf,
        /// Fork, print the launcher's pid and return; the launcher outlives its caller.
        #[arg(long)]
        detach: bool,
    },
    /// Fork the launchers of supervised procs (run by the daemon).
    #[command(hide = true)]
    Spawner {
        #[arg(long)]
        socket: PathBuf,
    },
    /// Write vrd's man pages (roff) into DIR, one per command (packaging/build.sh).
    #[command(hide = true)]
    Man { dir: PathBuf },
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
        Cmd::Init { plan, detach } => vr::host::container::launcher::main(&plan, detach),
        Cmd::Spawner { socket } => vr::host::container::spawner::main(&socket),
        Cmd::Unpack { args } => vr::host::image::unpack_main(&args),
        Cmd::Man { dir } => man_pages(&dir),
        Cmd::Join { coordinator, token, ca_sha256, config, settings } => {
            join_command(config.as_deref(), *settings, &coordinator, &token, &ca_sha256)
        }
        Cmd::Daemon { config, settings } => daemon_command(config.as_deref(), *settings),
        Cmd::MigrateState { from, to, ca_file } => migrate_state_command(&from, to, ca_file),
    };
    std::process::exit(code);
}

#[inline(never)]
fn migrate_state_command(from: &str, to: String, ca_file: Option<PathBuf>) -> i32 {
    let path = PathBuf::from(from.strip_prefix("sqlite:").unwrap_or(from));
    if !to.starts_with("postgres://") && !to.starts_with("postgresql://") {
        eprintln!("vrd migrate-state: --to must be a PostgreSQL URL (postgres://USER@HOST/DB), not '{to}'");
        return 2;
    }
    let target = vr::services::state::PgTarget { url: to, ca_file };
    match vr::services::state::migrate_state(&path, target) {
        Ok(report) => {
            println!("{report}");
            0
        }
        Err(e) => {
            eprintln!("vrd migrate-state: {}", vr::api::error::ApiError::caused(0, &e).full());
            1
        }
    }
}

// The daemon's and join's locals (their configs, runtimes and futures) stay out of main's stack
// frame: the spawner and every launcher it forks run below main's frame, and each page more of
// it is a page more of private memory in each of them (docs/benchmarks.md, "Supervision").
#[inline(never)]
fn join_command(
    config: Option<&std::path::Path>,
    flags: RawConfig,
    coordinator: &str,
    token: &str,
    pin: &str,
) -> i32 {
    let joined = load_config(config, flags)
        .map_err(anyhow::Error::from)
        .and_then(|c| join(&c, coordinator, token, pin));
    match joined {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vrd join: {e:#}");
            1
        }
    }
}

#[inline(never)]
fn daemon_command(config: Option<&std::path::Path>, flags: RawConfig) -> i32 {
    match load_config(config, flags).map_err(anyhow::Error::from).and_then(daemon) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vrd: {e:#}");
            1
        }
    }
}

fn man_pages(dir: &std::path::Path) -> i32 {
    use clap::CommandFactory;
    match vr::cli::docs::man_pages(Args::command(), dir) {
        Ok(pages) => {
            pages.iter().for_each(|p| println!("{}", p.display()));
            0
        }
        Err(e) => {
            eprintln!("vrd man: failed to write the man pages into {}: {e}", dir.display());
            1
        }
    }
}

fn load_config(file: Option<&std::path::Path>, flags: RawConfig) -> Result<DaemonConfig, ConfigError> {
    let from_file = match file {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig::default(),
    };
    from_file.overridden_by(flags).validate()
}

fn join(config: &DaemonConfig, coordinator: &str, token: &str, pin: &str) -> anyhow::Result<()> {
    let files = vr::services::peer::identity::FleetFiles::new(&config.data_dir);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let name = config.host_name.clone();
    let id = runtime
        .block_on(vr::services::peer::client::join(coordinator, pin, &name, token))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    files.save_host(&id)?;
    println!(
        "joined the fleet of {coordinator} as host {name}; (re)start vrd here (`systemctl restart vrd`) and it connects"
    );
    Ok(())
}

fn daemon(config: DaemonConfig) -> anyhow::Result<()> {
    // First, while single-threaded: run from the sealed copy of this binary that the spawner and
    // the launchers run from, so that vrd's code is in memory once (see the function). Failing
    // that, vrd runs from its file as before.
    if let Err(e) = vr::sys::run_from_sealed_copy() {
        eprintln!("vrd: failed to re-execute from a sealed copy of itself (running from its file): {e}");
    }
    // Started from a file descriptor, the process would show in ps as its number.
    let _ = nix::sys::prctl::set_name(c"vrd");
    // Before any thread: one malloc arena for the runtime's threads (see the function).
    vr::sys::limit_malloc_arenas(1);
    vr::daemon::logging::init();
    let _ = vr::sys::request_slice(vr::sys::SHORT_SLICE_NS);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(|| {
            let _ = vr::sys::request_slice(vr::sys::SHORT_SLICE_NS);
        })
        .build()?;
    let result = runtime.block_on(async move {
        let daemon = vr::daemon::Daemon::open(&config).await?;
        // Socket activation: systemd holds the socket, so clients queue while vrd restarts.
        let listener = match vr::daemon::activation::systemd_listener()? {
            Some(listener) => tokio::net::UnixListener::from_std(listener)?,
            None => vr::daemon::server::bind(&config.socket, config.socket_gid)?,
        };
        if let Some(addr) = config.http_listen {
            vr::daemon::https::spawn(&config, addr, std::sync::Arc::clone(&daemon)).await?;
        }
        if let Some(addr) = config.metrics_listen {
            vr::daemon::metrics_http::spawn(addr, std::sync::Arc::clone(&daemon)).await?;
        }
        vr::daemon::activation::notify_ready("serving");
        if let Some(every) = vr::daemon::watchdog::interval() {
            tokio::spawn(vr::daemon::watchdog::keep_alive(daemon.supervisor.state().clone(), every));
        }
        tracing::info!(socket = %config.socket.display(), data_dir = %config.data_dir.display(), "vrd is serving");
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
            tracing::info!("stopping: in-flight calls finish, procs keep running");
            vr::daemon::activation::notify_stopping();
        };
        let stopping = std::sync::Arc::clone(&daemon);
        vr::daemon::server::serve(listener, daemon, shutdown).await;
        stopping.stand_down().await;
        Ok(())
    });
    // A blocking task may still wait on a foreground container; don't wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    result
}
