//! The `vr` client: parses the command line (also as `vrun`, `vbuild` and `vimage`, Velociraptor's
//! command names), talks to vrd over its socket, and renders the answers.

#[macro_use]
pub mod out;
pub mod builder;
pub mod builds;
pub mod client;
pub mod docs;
mod hosts;
pub mod imager;
mod objects;
pub mod oneshot;
pub mod procs;
mod remote;
pub mod runner;
pub mod stacks;
mod swarm_logs;
pub mod swarms;
pub mod terminal;
mod users;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::api::Kind;

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
    /// A remote vrd's HTTPS API instead of the socket, as the user of $VR_TOKEN [default: $VR_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// The CA that signed the remote vrd's certificate (PEM) [default: $VR_CA, else the system's]
    #[arg(long, global = true, value_name = "PATH")]
    pub ca: Option<PathBuf>,
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
        #[arg(required_unless_present = "swarm", conflicts_with = "swarm")]
        name: Option<String>,
        /// Every proc of this swarm, on every host and of every release, as one stream.
        #[arg(long)]
        swarm: Option<String>,
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
    /// Apps: where the code is, how it builds, on which stack.
    Apps {
        /// What to do.
        #[command(subcommand)]
        action: objects::ObjectAction,
    },
    /// Buildpacks, in detect order.
    Buildpacks {
        /// What to do.
        #[command(subcommand)]
        action: objects::ObjectAction,
    },
    /// OS stacks (base image, provisioning script) and the images vrd builds for them.
    Stacks {
        /// What to do.
        #[command(subcommand)]
        action: stacks::StacksAction,
    },
    /// Squads: groups of hosts swarms are placed on.
    Squads {
        /// What to do.
        #[command(subcommand)]
        action: objects::ObjectAction,
    },
    /// Hosts that run procs: this machine, and hosts that joined it (peer mode).
    Hosts {
        /// What to do.
        #[command(subcommand)]
        action: HostsAction,
    },
    /// Users of the HTTP API and the dashboard (admins only).
    Users {
        /// What to do.
        #[command(subcommand)]
        action: users::UsersAction,
    },
    /// API tokens: how programs and `vr --url` act as a user (admins only).
    Tokens {
        /// What to do.
        #[command(subcommand)]
        action: users::TokensAction,
    },
    /// Config ingredients: reusable config and env merged into releases.
    Ingredients {
        /// What to do.
        #[command(subcommand)]
        action: objects::ObjectAction,
    },
    /// Swarm definitions, and their releases.
    Swarms {
        /// What to do.
        #[command(subcommand)]
        action: SwarmsAction,
    },
    /// Velociraptor's `swarm`: set matching swarms to TAG ('-' keeps each one's version) and
    /// deploy them: build, release, deploy, uptests, route, clean up. Follows the steps live.
    Swarm {
        /// An anchored regex on swarm names (or app-config-proc).
        filter: String,
        /// The version to deploy, or '-' for each swarm's current one.
        tag: String,
        /// Leave out swarms matching this regex (case-insensitive search).
        #[arg(short = 'x', long)]
        exclude: Option<String>,
        /// Move the swarms to this squad.
        #[arg(long)]
        squad: Option<String>,
        /// Append an ingredient (repeatable).
        #[arg(long = "add-ingredient", value_name = "NAME")]
        add: Vec<String>,
        /// Drop an ingredient (repeatable).
        #[arg(long = "remove-ingredient", value_name = "NAME")]
        remove: Vec<String>,
        /// Replace the ingredient list (comma-separated, in merge order).
        #[arg(long = "replace-ingredients", value_name = "A,B", value_delimiter = ',')]
        replace: Option<Vec<String>>,
        /// Print the trace ids and return at once.
        #[arg(long)]
        detach: bool,
    },
    /// List swarms (those matching FILTER), with how many procs each owns.
    ListSwarms {
        /// An anchored regex on swarm names (or app-config-proc).
        filter: Option<String>,
    },
    /// Deploy an earlier release of a swarm again, through the same uptest-gated path.
    Rollback {
        /// The swarm.
        swarm: String,
        /// The release number (`vr swarms releases SWARM`); the one before the current when absent.
        number: Option<u64>,
        /// Return at once.
        #[arg(long)]
        detach: bool,
    },
    /// Velociraptor's manual deploy: a release as one proc on one host and port (not routed).
    Deploy {
        /// The release id.
        release: u64,
        /// The host.
        host: String,
        /// The port.
        port: u16,
        /// The Procfile entry.
        proc_name: String,
        /// The config name.
        #[arg(short = 'c', long, default_value = "prod")]
        config: String,
    },
    /// Show what differs between two releases (config, env, build, limits).
    CompareReleases {
        /// A release id.
        a: u64,
        /// Another release id.
        b: u64,
    },
    /// Build an app at a version on its stack's image (a new build), following it live.
    Build {
        /// The app.
        app: String,
        /// The version (tag, branch or revision).
        tag: String,
        /// Return at once.
        #[arg(long)]
        detach: bool,
    },
    /// Build each matching swarm's app and version anew, then deploy the swarms.
    RebuildAll {
        /// An anchored regex on swarm names (or app-config-proc).
        filter: String,
        /// Return at once.
        #[arg(long)]
        detach: bool,
    },
    /// The failures of the newest uptest run over every swarm's procs.
    Uptests {
        /// Run the uptests now.
        #[arg(long)]
        run: bool,
    },
    /// Balancers: the configured ones, and the nodes of a pool.
    Balancers {
        /// What to do.
        #[command(subcommand)]
        action: BalancersAction,
    },
    /// Remove the containers and proc dirs nothing owns (vrd does it every 30 minutes).
    Scoop {
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// The deployment log: every step of every dispatch.
    Deploys {
        /// Only this dispatch.
        #[arg(long)]
        trace: Option<String>,
        /// Keep printing new entries as they come.
        #[arg(short, long)]
        follow: bool,
        /// Only entries after this id.
        #[arg(long, default_value_t = 0)]
        after: u64,
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

/// `vr swarms` actions: the definition commands, plus releases.
#[derive(Debug, Subcommand)]
pub enum SwarmsAction {
    /// The definition commands.
    #[command(flatten)]
    Object(objects::ObjectAction),
    /// A swarm's releases, numbered (what `vr rollback` takes).
    Releases {
        /// The swarm.
        name: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// `vr hosts` actions: the definition commands, plus joining hosts to this coordinator.
#[derive(Debug, Subcommand)]
pub enum HostsAction {
    /// The definition commands.
    #[command(flatten)]
    Object(objects::ObjectAction),
    /// Define a host that joins this coordinator, and print its one-time join command.
    Add {
        /// The host's name (its `host_name`).
        name: String,
        /// Where balancers reach its procs (an IP address or a name).
        #[arg(long)]
        address: String,
        /// Its squad [default: default].
        #[arg(long)]
        squad: Option<String>,
    },
    /// Move a host's procs elsewhere (replacements uptested and routed first), then leave it
    /// inactive; `vr hosts edit NAME --set active=true --set draining=false` takes it back.
    Drain {
        /// The host.
        name: String,
    },
    /// A new one-time join token for a defined host (to join it again).
    Token {
        /// The host.
        name: String,
    },
    /// The joined hosts connected now.
    Links {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Which coordinator leads (with the model in PostgreSQL, several may coordinate; one leads).
    Leader {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// `vr balancers` actions.
#[derive(Debug, Subcommand)]
pub enum BalancersAction {
    /// The configured balancers and their kinds.
    List,
    /// The nodes of a pool, as the balancer reports them.
    Nodes {
        /// The balancer.
        balancer: String,
        /// The pool.
        pool: String,
    },
}

/// `vr runner ...` (and `vrun ...`) with only the runner's commands. The runner's `run` is the
/// path whose start-up is timed against crun, and clap then builds only the runner's part of
/// the command tree. Anything this does not parse (help, `--socket` before `runner`, mistakes)
/// goes through [`Cli`] as usual.
#[derive(Debug, Parser)]
#[command(name = "vr runner")]
pub struct RunnerCli {
    /// vrd's API socket.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// What to do with the proc.
    #[command(subcommand)]
    pub action: runner::RunnerAction,
}

impl RunnerCli {
    /// Parses `args` (as [`normalize_args`] left them) when they are a plain runner command.
    pub fn parse_runner(args: &[String]) -> Option<RunnerCli> {
        if args.get(1).map(String::as_str) != Some("runner") {
            return None;
        }
        RunnerCli::try_parse_from(&args[1..]).ok()
    }

    /// Runs it; returns the process exit code.
    pub fn run(self) -> anyhow::Result<i32> {
        let socket = client::socket_path(self.socket);
        current_thread()?.block_on(runner::run(&socket, self.action))
    }
}

/// The client's runtime: one thread is all a client needs.
fn current_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
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
                say!("{}", page.display())?;
            }
            return Ok(0);
        }
        _ => {}
    }
    let socket = client::socket_path(cli.socket);
    remote::configure(cli.url, cli.ca)?;
    current_thread()?.block_on(async move {
        match cli.command {
            Command::Runner { action } => runner::run(&socket, action).await,
            Command::Builder { action } => builder::run(&socket, action).await,
            Command::Builds { action } => builds::run(&socket, action).await,
            Command::Imager { action } => imager::run(&socket, action).await,
            Command::Proc { action: ProcAction::Deploy { file, json } } => {
                procs::deploy(&socket, &file, json).await
            }
            Command::Procs { action } => procs::procs(&socket, action).await,
            Command::Ps { json } => {
                procs::procs(&socket, procs::ProcsAction::List { filter: None, host: None, json }).await
            }
            Command::Logs { swarm: Some(swarm), follow, since, tail, .. } => {
                swarm_logs::run(&socket, swarm, follow, since, tail).await
            }
            Command::Logs { name, follow, since, tail, .. } => {
                procs::logs(&socket, name.unwrap_or_default(), follow, since, tail).await
            }
            Command::Events { follow, after, json } => procs::events(&socket, follow, after, json).await,
            Command::Audit { limit, json } => procs::audit(&socket, limit, json).await,
            Command::Apps { action } => objects::run(&socket, Kind::App, action).await,
            Command::Buildpacks { action } => objects::run(&socket, Kind::Buildpack, action).await,
            Command::Stacks { action } => stacks::run(&socket, action).await,
            Command::Squads { action } => objects::run(&socket, Kind::Squad, action).await,
            Command::Hosts { action } => hosts::run(&socket, action).await,
            Command::Users { action } => users::users(&socket, action).await,
            Command::Tokens { action } => users::tokens(&socket, action).await,
            Command::Ingredients { action } => objects::run(&socket, Kind::Ingredient, action).await,
            Command::Swarms { action: SwarmsAction::Object(action) } => {
                objects::run(&socket, Kind::Swarm, action).await
            }
            Command::Swarms { action: SwarmsAction::Releases { name, json } } => {
                swarms::releases(&socket, name, json).await
            }
            Command::Swarm { filter, tag, exclude, squad, add, remove, replace, detach } => {
                let changes = crate::api::SwarmChanges {
                    version: Some(tag),
                    squad,
                    add_ingredients: add,
                    remove_ingredients: remove,
                    replace_ingredients: replace,
                };
                swarms::swarm(&socket, filter, changes, exclude, detach).await
            }
            Command::ListSwarms { filter } => swarms::list_swarms(&socket, filter).await,
            Command::Rollback { swarm, number, detach } => {
                swarms::rollback(&socket, swarm, number, detach).await
            }
            Command::Deploy { release, host, port, proc_name, config } => {
                swarms::deploy(&socket, release, host, port, proc_name, config).await
            }
            Command::CompareReleases { a, b } => swarms::compare(&socket, a, b).await,
            Command::Build { app, tag, detach } => swarms::build(&socket, app, tag, detach).await,
            Command::RebuildAll { filter, detach } => swarms::rebuild_all(&socket, filter, detach).await,
            Command::Balancers { action } => swarms::balancers(&socket, action).await,
            Command::Scoop { dry_run } => procs::scoop(&socket, dry_run).await,
            Command::Uptests { run } => swarms::uptests(&socket, run).await,
            Command::Deploys { trace, follow, after } => swarms::deploys(&socket, trace, follow, after).await,
            Command::Completions { .. } | Command::Man { .. } => Ok(0),
            Command::Version => {
                let client = client::call(&socket).await?;
                let daemon = crate::api::VrdClient::version(&client).await.map_err(client::explain)?;
                say!("vr {}\nvrd {daemon}", env!("CARGO_PKG_VERSION"))?;
                Ok(0)
            }
        }
    })
}
