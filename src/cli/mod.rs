//! The `vr` client: parses the command line (also as `vrun`, `vbuild` and `vimage`, Velociraptor's
//! command names), talks to vrd over its socket, and renders the answers.

pub mod builder;
pub mod builds;
pub mod client;
pub mod docs;
pub mod imager;
pub mod oneshot;
pub mod procs;
pub mod runner;
pub mod terminal;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The program name decides the command set: `vrun X FILE` is `vr runner X FILE`.
pub fn normalize_args(args: Vec<String>) -> Vec<String> {
    let name = args.first().map(|a| a.rsplit('/').next().unwrap_or(a).to_string()).unwrap_or_default();
    let sub = match name.as_str() {
        "vrun" => "runner",
        "vbuild" => "builder",
        "vimage" => "imager",
        _ => return args,
    };
    let mut out = vec!["vr".to_string(), sub.to_string()];
    out.extend(args.into_iter().skip(1));
    out
}

/// vr: deploy and run apps on vrd.
#[derive(Debug, Parser)]
#[command(name = "vr", version, about)]
pub struct Cli {
    /// vrd's API socket [default: $VR_SOCKET, else /run/vrd/vrd.sock]
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Velociraptor's runner (`vrun`): set up, run, test and tear down one proc.yaml.
    Runner {
        /// What to do with the proc.
        #[command(subcommand)]
        action: runner::RunnerAction,
    },
    /// Velociraptor's imager (`vimage`): build a stack image from image.yaml, or get a shell in
    /// its provisioning container.
    Imager {
        /// What to do with the image.
        #[command(subcommand)]
        action: imager::ImagerAction,
    },
    /// Velociraptor's builder (`vbuild`): build an app from a build.yaml with its buildpacks.
    Builder {
        /// What to do with the build.
        #[command(subcommand)]
        action: builder::BuilderAction,
    },
    /// Recorded builds: list, show, log, gc.
    Builds {
        /// What to do.
        #[command(subcommand)]
        action: builds::BuildsAction,
    },
    /// Supervised procs: deploy one from a proc.yaml.
    Proc {
        /// What to do.
        #[command(subcommand)]
        action: ProcAction,
    },
    /// Supervised procs: list, start, stop, restart, destroy.
    Procs {
        /// What to do.
        #[command(subcommand)]
        action: procs::ProcsAction,
    },
    /// List supervised procs (`vr procs list`).
    Ps {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// A proc's stdout and stderr, with timestamps.
    Logs {
        /// The proc name.
        name: String,
        /// Keep printing new lines as they come.
        #[arg(short, long)]
        follow: bool,
        /// Only lines at or after this time (RFC 3339) or this long ago (10m, 2h).
        #[arg(long)]
        since: Option<String>,
        /// Only the last N lines.
        #[arg(long, short = 'n')]
        tail: Option<usize>,
    },
    /// Proc state changes (VR's proc_events), oldest first.
    Events {
        /// Keep printing new events as they come.
        #[arg(short, long)]
        follow: bool,
        /// Only events after this id.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Who changed what, and when (every mutating call).
    Audit {
        /// How many entries, newest last.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show the versions of vr and of the daemon.
    Version,
    /// Print shell completions for vr (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write vr's man pages (vr.1, vr-runner.1, ...) into a directory.
    Man {
        /// Where to write them.
        dir: PathBuf,
    },
}

/// `vr proc` actions.
#[derive(Debug, Subcommand)]
pub enum ProcAction {
    /// Set up a proc.yaml's proc and keep it running under supervision.
    Deploy {
        /// The proc.yaml.
        file: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    use clap::CommandFactory;
    match &cli.command {
        Command::Completions { shell } => {
            docs::completions(Cli::command(), *shell, &mut std::io::stdout())?;
            return Ok(0);
        }
        Command::Man { dir } => {
            for page in docs::man_pages(Cli::command(), dir)? {
                println!("{}", page.display());
            }
            return Ok(0);
        }
        _ => {}
    }
    let socket = client::socket_path(cli.socket);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Runner { action } => runner::run(&socket, action).await,
            Command::Builder { action } => builder::run(&socket, action).await,
            Command::Builds { action } => builds::run(&socket, action).await,
            Command::Imager { action } => imager::run(&socket, action).await,
            Command::Proc { action: ProcAction::Deploy { file, json } } => {
                procs::deploy(&socket, &file, json).await
            }
            Command::Procs { action } => procs::procs(&socket, action).await,
            Command::Ps { json } => procs::procs(&socket, procs::ProcsAction::List { json }).await,
            Command::Logs { name, follow, since, tail } => {
                procs::logs(&socket, name, follow, since, tail).await
            }
            Command::Events { follow, after, json } => procs::events(&socket, follow, after, json).await,
            Command::Audit { limit, json } => procs::audit(&socket, limit, json).await,
            Command::Completions { .. } | Command::Man { .. } => Ok(0),
            Command::Version => {
                let client = client::call(&socket).await?;
                let daemon = crate::api::VrdClient::version(&client).await.map_err(client::explain)?;
                println!("vr {}\nvrd {daemon}", env!("CARGO_PKG_VERSION"));
                Ok(0)
            }
        }
    })
}
