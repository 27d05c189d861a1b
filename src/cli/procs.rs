//! `vr proc deploy`, `vr procs ...` (alias `vr ps`), `vr logs`, `vr events`, `vr audit`: supervised
//! procs. Every listing is a table for people and `--json` for scripts.

use std::path::Path;

use anyhow::Context;
use clap::Subcommand;
use jsonrpsee::core::client::Client;

use super::client::{connect, explain};
use crate::api::{AuditInfo, EventItem, ProcFile, ProcInfo, VrdClient};

/// `vr procs` actions.
#[derive(Debug, Subcommand)]
pub enum ProcsAction {
    /// List supervised procs (also `vr ps`).
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Start a stopped or FATAL proc.
    Start {
        /// The proc name.
        name: String,
    },
    /// Stop a proc (SIGTERM to the container, SIGKILL after 30 s).
    Stop {
        /// The proc name.
        name: String,
    },
    /// Stop, then start a proc.
    Restart {
        /// The proc name.
        name: String,
    },
    /// Stop a proc, tear it down and forget it.
    Destroy {
        /// The proc name.
        name: String,
    },
}

fn read_file(path: &Path) -> anyhow::Result<ProcFile> {
    let yaml = std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
    Ok(ProcFile { path: path.display().to_string(), yaml })
}

fn time(secs: Option<i64>) -> String {
    match secs.and_then(|s| u64::try_from(s).ok()) {
        Some(s) => {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s))
                .to_string()
        }
        None => "-".into(),
    }
}

/// VR's `procs list` columns (host, port, statename, description) plus the name.
fn print_procs(procs: &[ProcInfo]) {
    println!("{:<22} {:>5} {:<9} {:<8} {:<20} NAME", "HOST", "PORT", "STATE", "PID", "STARTED");
    for p in procs {
        let pid = p.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "{:<22} {:>5} {:<9} {:<8} {:<20} {}",
            p.host,
            p.port,
            p.statename,
            pid,
            time(p.start_time),
            p.name
        );
    }
}

/// `vr proc deploy FILE`.
pub async fn deploy(socket: &Path, file: &Path, json: bool) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    let info = client.proc_deploy(read_file(file)?).await.map_err(explain)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print_procs(std::slice::from_ref(&info));
    }
    Ok(0)
}

/// `vr procs ACTION`.
pub async fn procs(socket: &Path, action: ProcsAction) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    let (name, verb) = match action {
        ProcsAction::List { json } => {
            let procs = client.procs_list().await.map_err(explain)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&procs)?);
            } else {
                print_procs(&procs);
            }
            return Ok(0);
        }
        ProcsAction::Start { name } => (name, "start"),
        ProcsAction::Stop { name } => (name, "stop"),
        ProcsAction::Restart { name } => (name, "restart"),
        ProcsAction::Destroy { name } => (name, "destroy"),
    };
    client.procs_act(name.clone(), verb.into()).await.map_err(explain)?;
    eprintln!("vr: {verb}: {name}");
    Ok(0)
}

/// `vr logs [-f] [--since T] [--tail N] NAME`.
pub async fn logs(
    socket: &Path,
    name: String,
    follow: bool,
    since: Option<String>,
    tail: Option<usize>,
) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    if !follow {
        for line in client.logs_read(name, since, tail).await.map_err(explain)? {
            println!("{}", line.line);
        }
        return Ok(0);
    }
    let mut sub = client.logs_follow(name, since, tail).await.map_err(explain)?;
    while let Some(line) = sub.next().await {
        println!("{}", line.map_err(|e| anyhow::anyhow!("the log stream broke: {e}"))?.line);
    }
    Ok(0)
}

fn print_event(item: &EventItem, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(item)?);
    } else {
        let e = &item.event;
        let when = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(e.time.max(0.0)),
        );
        let exit = e.exitstatus.map(|c| format!(" exit={c}")).unwrap_or_default();
        println!("{:>6} {when} {:<9} {}{exit}", item.id, e.statename, e.name);
    }
    Ok(())
}

/// `vr events [-f] [--after ID] [--json]`.
pub async fn events(socket: &Path, follow: bool, after: u64, json: bool) -> anyhow::Result<i32> {
    let client: Client = connect(socket).await?;
    if !follow {
        for item in client.events_list(after, 10_000).await.map_err(explain)? {
            print_event(&item, json)?;
        }
        return Ok(0);
    }
    let mut sub = client.events_follow(after).await.map_err(explain)?;
    while let Some(item) = sub.next().await {
        print_event(&item.map_err(|e| anyhow::anyhow!("the event stream broke: {e}"))?, json)?;
    }
    Ok(0)
}

/// `vr audit [--limit N] [--json]`.
pub async fn audit(socket: &Path, limit: usize, json: bool) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    let entries: Vec<AuditInfo> = client.audit_list(limit).await.map_err(explain)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(0);
    }
    println!("{:>6} {:<24} {:>6} {:<18} OUTCOME", "ID", "TIME", "UID", "METHOD");
    for e in entries {
        let when = humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.time.max(0) as u64),
        );
        println!("{:>6} {:<24} {:>6} {:<18} {}", e.id, when.to_string(), e.uid, e.method, e.outcome);
    }
    Ok(0)
}
