//! The `vr` client: parses the command line (also as `vrun`, `vbuild` and `vimage`, Velociraptor's
//! command names), talks to vrd over its socket, and renders the answers.

pub mod client;
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
    /// Show the versions of vr and of the daemon.
    Version,
}

/// Runs the command; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    let socket = client::socket_path(cli.socket);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Runner { action } => runner::run(&socket, action).await,
            Command::Version => {
                let client = client::connect(&socket).await?;
                let daemon = crate::api::VrdClient::version(&client).await.map_err(client::explain)?;
                println!("vr {}\nvrd {daemon}", env!("CARGO_PKG_VERSION"));
                Ok(0)
            }
        }
    })
}
