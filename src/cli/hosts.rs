//! `vr hosts add|token|links`: joining hosts to a coordinating vrd (the definition commands are
//! `cli::objects`).

use std::path::Path;

use super::client::{connect, explain};
use super::objects::ObjectAction;
use super::HostsAction;
use crate::api::{HostJoin, HostRow, LeaderView, VrdClient};

fn print_join(join: &HostJoin) -> std::io::Result<()> {
    say!("Host {} may join this coordinator once within 24 hours. On it, run:", join.host)?;
    say!()?;
    say!("  {}", join.command)?;
    say!()?;
    say!("then start vrd there with host_name = \"{}\". The token is shown only now.", join.host)?;
    Ok(())
}

/// Runs one of the fleet actions.
pub async fn run(socket: &Path, action: HostsAction) -> anyhow::Result<i32> {
    if let HostsAction::Object(ObjectAction::List { json }) = action {
        return list(socket, json).await;
    }
    if let HostsAction::Object(action) = action {
        return super::objects::run(socket, crate::model::deploy::Kind::Host, action).await;
    }
    let client = connect(socket).await?;
    match action {
        HostsAction::Object(_) => {}
        HostsAction::Add { name, address, squad } => {
            print_join(&client.hosts_add(name, address, squad).await.map_err(explain)?)?;
        }
        HostsAction::Token { name } => print_join(&client.hosts_token(name).await.map_err(explain)?)?,
        HostsAction::Drain { name } => {
            let started = client.hosts_drain(name.clone()).await.map_err(explain)?;
            if started.is_empty() {
                say!("host {name} runs no swarm's procs; it is inactive now")?;
                return Ok(0);
            }
            return super::swarms::follow(&client, started).await;
        }
        HostsAction::Leader { json } => {
            let view = client.hosts_leader().await.map_err(explain)?;
            if json {
                say!("{}", serde_json::to_string_pretty(&view)?)?;
            } else {
                print_leader(&view)?;
            }
        }
        HostsAction::Links { json } => {
            let links = client.hosts_links().await.map_err(explain)?;
            if json {
                say!("{}", serde_json::to_string_pretty(&links)?)?;
            } else {
                say!("{:<24} {:<10} {:<22} VERSION", "HOST", "LINK", "SINCE")?;
                for l in links {
                    let since = l.since.map(|s| {
                        humantime::format_rfc3339_seconds(
                            std::time::UNIX_EPOCH + std::time::Duration::from_secs(s as u64),
                        )
                        .to_string()
                    });
                    say!(
                        "{:<24} {:<10} {:<22} {}",
                        l.host,
                        if l.connected { "connected" } else { "down" },
                        since.unwrap_or_default(),
                        l.version.unwrap_or_default()
                    )?;
                }
            }
        }
    }
    Ok(0)
}

fn print_leader(v: &LeaderView) -> std::io::Result<()> {
    let role = if v.leads { "leads" } else { "is a standby" };
    match (&v.holder, v.epoch, v.expires_in_ms) {
        (Some(holder), Some(epoch), Some(ms)) => {
            let address = v.address.as_deref().map(|a| format!(" at {a}")).unwrap_or_default();
            let expiry = if ms >= 0 {
                format!("expires in {:.1} s unless renewed", ms as f64 / 1000.0)
            } else {
                format!("expired {:.1} s ago", -ms as f64 / 1000.0)
            };
            say!("leader: {holder}{address}, lease epoch {epoch}, {expiry}")?;
        }
        _ if v.model == "sqlite" => say!("leader: {} (the model is in SQLite: one coordinator)", v.this)?,
        _ => say!("leader: none yet (no coordinator has taken the lease)")?,
    }
    say!("this coordinator, {}, {role}; the model is in {}", v.this, v.model)?;
    for c in &v.coordinators {
        let address = c.address.as_deref().unwrap_or("no peer address");
        say!("coordinator {:<20} {:<24} CA sha256 {}", c.name, address, c.ca_sha256)?;
    }
    Ok(())
}

/// How long ago `secs` (unix seconds) was, for people.
fn ago(secs: Option<i64>, now: i64) -> String {
    match secs {
        Some(s) => format!("{}s ago", (now - s).max(0)),
        None => "-".to_string(),
    }
}

/// The state column: the link's state, and what keeps procs off the host.
fn state_of(row: &HostRow) -> String {
    match (row.draining, row.active) {
        (true, _) => format!("{} (draining)", row.state),
        (false, false) => format!("{} (inactive)", row.state),
        _ => row.state.clone(),
    }
}

/// `vr hosts list`: every host, its state, last heartbeat, procs and version.
async fn list(socket: &Path, json: bool) -> anyhow::Result<i32> {
    let rows = super::client::call(socket).await?.hosts_list().await.map_err(explain)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(0);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    say!(
        "{:<20} {:<12} {:<18} {:<20} {:<15} {:>5}  VERSION",
        "HOST",
        "SQUAD",
        "ADDRESS",
        "STATE",
        "HEARTBEAT",
        "PROCS"
    )?;
    for row in &rows {
        let procs = row.procs.map_or_else(|| "?".to_string(), |n| n.to_string());
        let beat = if row.joined { ago(row.last_heartbeat, now) } else { "-".to_string() };
        say!(
            "{:<20} {:<12} {:<18} {:<20} {:<15} {:>5}  {}",
            row.host,
            row.squad,
            row.address,
            state_of(row),
            beat,
            procs,
            row.version.as_deref().unwrap_or("-")
        )?;
    }
    Ok(0)
}
