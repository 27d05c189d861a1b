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
    /// List supervised procs (also `vr ps`), those matching FILTER when given.
    List {
        /// An anchored regex on proc names (VR's FILTER).
        filter: Option<String>,
        /// Only procs on hosts matching this regex.
        #[arg(long)]
        host: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Start stopped or FATAL procs: every proc matching FILTER.
    Start {
        /// A proc name, or an anchored regex on proc names.
        filter: String,
        /// Only procs on hosts matching this regex.
        #[arg(long)]
        host: Option<String>,
    },
    /// Stop procs (SIGTERM to the container, SIGKILL after 30 s): every proc matching FILTER.
    Stop {
        /// A proc name, or an anchored regex on proc names.
        filter: String,
        /// Only procs on hosts matching this regex.
        #[arg(long)]
        host: Option<String>,
    },
    /// Stop, then start procs: every proc matching FILTER.
    Restart {
        /// A proc name, or an anchored regex on proc names.
        filter: String,
        /// Only procs on hosts matching this regex.
        #[arg(long)]
        host: Option<String>,
    },
    /// Stop a proc, tear it down and forget it (a routed proc leaves its pool first).
    Destroy {
        /// The proc name.
        name: String,
        /// Destroy it even when its balancer refuses to take it out of its pool (the node then
        /// stays listed until the pool's next change).
        #[arg(long)]
        force: bool,
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

/// How the proc's last run ended: its exit status, and `OOM` when the kernel's OOM killer ended
/// it (a 137 alone does not say why).
fn last_exit(code: Option<i32>, oom_killed: bool) -> String {
    match (code, oom_killed) {
        (Some(code), true) => format!("{code}(OOM)"),
        (None, true) => "OOM".into(),
        (Some(code), false) => code.to_string(),
        (None, false) => "-".into(),
    }
}

/// VR's `procs list` columns (host, port, statename, description) plus the last exit and the name.
fn print_procs(procs: &[ProcInfo]) -> std::io::Result<()> {
    say!("{:<22} {:>5} {:<9} {:<8} {:<8} {:<20} NAME", "HOST", "PORT", "STATE", "PID", "EXIT", "STARTED")?;
    for p in procs {
        let pid = p.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        say!(
            "{:<22} {:>5} {:<9} {:<8} {:<8} {:<20} {}",
            p.host,
            p.port,
            p.statename,
            pid,
            last_exit(p.exitstatus, p.oom_killed),
            time(p.start_time),
            p.name
        )?;
    }
    let oom: Vec<&str> = procs.iter().filter(|p| p.oom_killed).map(|p| p.name.as_str()).collect();
    if !oom.is_empty() {
        eprintln!(
            "The kernel's OOM killer ended the last run of: {} (raise the swarm's mem_limit, or find the leak)",
            oom.join(", ")
        );
    }
    let pinned: Vec<&str> = procs.iter().filter(|p| p.volumes).map(|p| p.name.as_str()).collect();
    if !pinned.is_empty() {
        // On stderr, so scripts reading the table see only its rows.
        eprintln!(
            "These procs bind host volumes, so vr never moves them off a lost host (bring the host back, or move them by hand): {}",
            pinned.join(", ")
        );
    }
    Ok(())
}

/// `vr proc deploy FILE`.
pub async fn deploy(socket: &Path, file: &Path, json: bool) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    let info = client.proc_deploy(read_file(file)?).await.map_err(explain)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&info)?)?;
    } else {
        print_procs(std::slice::from_ref(&info))?;
    }
    Ok(0)
}

/// Procs whose name matches the anchored regex `filter` and whose host matches `host`.
fn matching(procs: Vec<ProcInfo>, filter: Option<&str>, host: Option<&str>) -> anyhow::Result<Vec<ProcInfo>> {
    let anchored = |what: &str, re: &str| {
        regex_lite::Regex::new(&format!("^(?:{re})"))
            .with_context(|| format!("{what} '{re}' is not a regular expression"))
    };
    let name_re = filter.map(|f| anchored("FILTER", f)).transpose()?;
    let host_re = host.map(|h| anchored("--host", h)).transpose()?;
    Ok(procs
        .into_iter()
        .filter(|p| name_re.as_ref().is_none_or(|r| r.is_match(&p.name)))
        .filter(|p| host_re.as_ref().is_none_or(|r| r.is_match(&p.host)))
        .collect())
}

/// `vr procs ACTION`.
pub async fn procs(socket: &Path, action: ProcsAction) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    let (filter, host, verb) = match action {
        ProcsAction::List { filter, host, json } => {
            let procs =
                matching(client.procs_list().await.map_err(explain)?, filter.as_deref(), host.as_deref())?;
            if json {
                say!("{}", serde_json::to_string_pretty(&procs)?)?;
            } else {
                print_procs(&procs)?;
            }
            return Ok(0);
        }
        ProcsAction::Start { filter, host } => (filter, host, "start"),
        ProcsAction::Stop { filter, host } => (filter, host, "stop"),
        ProcsAction::Restart { filter, host } => (filter, host, "restart"),
        ProcsAction::Destroy { name, force } => {
            let action = if force { "force-destroy" } else { "destroy" };
            client.procs_act(name.clone(), action.into()).await.map_err(explain)?;
            eprintln!("vr: destroy: {name}");
            return Ok(0);
        }
    };
    let all = client.procs_list().await.map_err(explain)?;
    // An exact name means that proc alone, not every name it is a prefix of.
    let exact: Vec<ProcInfo> = all.iter().filter(|p| p.name == filter).cloned().collect();
    let chosen = if exact.is_empty() { matching(all, Some(&filter), host.as_deref())? } else { exact };
    if chosen.is_empty() {
        // Let vrd answer for a name it does not know: its error suggests the closest names.
        client.procs_act(filter.clone(), verb.into()).await.map_err(explain)?;
        anyhow::bail!("no proc matches '{filter}': `vr procs list` shows them");
    }
    for p in chosen {
        client.procs_act(p.name.clone(), verb.into()).await.map_err(explain)?;
        eprintln!("vr: {verb}: {}", p.name);
    }
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
            say!("{}", line.line)?;
        }
        return Ok(0);
    }
    let mut sub = client.logs_follow(name, since, tail).await.map_err(explain)?;
    while let Some(line) = sub.next().await {
        say!("{}", line.map_err(|e| anyhow::anyhow!("the log stream broke: {e}"))?.line)?;
    }
    Ok(0)
}

fn print_event(item: &EventItem, json: bool) -> anyhow::Result<()> {
    if json {
        say!("{}", serde_json::to_string(item)?)?;
    } else {
        let e = &item.event;
        let when = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(e.time.max(0.0)),
        );
        let exit = e.exitstatus.map(|c| format!(" exit={c}")).unwrap_or_default();
        let exit = if e.oom_killed { format!("{exit} oom_killed") } else { exit };
        say!("{:>6} {when} {:<9} {:<16} {}{exit}", item.id, e.statename, e.host, e.name)?;
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
        say!("{}", serde_json::to_string_pretty(&entries)?)?;
        return Ok(0);
    }
    say!("{:>6} {:<24} {:>12} {:<18} OUTCOME", "ID", "TIME", "WHO", "METHOD")?;
    for e in entries {
        let when = humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.time.max(0) as u64),
        );
        // A socket caller by its uid, an HTTPS caller by its user.
        let who = e.user.clone().unwrap_or_else(|| e.uid.to_string());
        say!("{:>6} {:<24} {:>12} {:<18} {}", e.id, when.to_string(), who, e.method, e.outcome)?;
    }
    Ok(0)
}

/// `vr scoop [--dry-run]`.
pub async fn scoop(socket: &Path, dry_run: bool) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    let done = client.housekeeping_scoop(dry_run).await.map_err(explain)?;
    if done.is_empty() {
        eprintln!("vr: nothing to scoop");
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    for line in done {
        say!("{verb} {line}")?;
    }
    Ok(0)
}
