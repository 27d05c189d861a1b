//! `vr hosts add|token|links`: joining hosts to a coordinating vrd (the definition commands are
//! `cli::objects`).

use std::path::Path;

use super::client::{connect, explain};
use super::HostsAction;
use crate::api::{HostJoin, VrdClient};

fn print_join(join: &HostJoin) {
    println!("Host {} may join this coordinator once within 24 hours. On it, run:", join.host);
    println!();
    println!("  {}", join.command);
    println!();
    println!("then start vrd there with host_name = \"{}\". The token is shown only now.", join.host);
}

/// Runs one of the fleet actions.
pub async fn run(socket: &Path, action: HostsAction) -> anyhow::Result<i32> {
    if let HostsAction::Object(action) = action {
        return super::objects::run(socket, crate::model::deploy::Kind::Host, action).await;
    }
    let client = connect(socket).await?;
    match action {
        HostsAction::Object(_) => {}
        HostsAction::Add { name, address, squad } => {
            print_join(&client.hosts_add(name, address, squad).await.map_err(explain)?);
        }
        HostsAction::Token { name } => print_join(&client.hosts_token(name).await.map_err(explain)?),
        HostsAction::Drain { name } => {
            let started = client.hosts_drain(name.clone()).await.map_err(explain)?;
            if started.is_empty() {
                println!("host {name} runs no swarm's procs; it is inactive now");
                return Ok(0);
            }
            return super::swarms::follow(&client, started).await;
        }
        HostsAction::Links { json } => {
            let links = client.hosts_links().await.map_err(explain)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&links)?);
            } else {
                println!("{:<24} {:<10} {:<22} VERSION", "HOST", "LINK", "SINCE");
                for l in links {
                    let since = l.since.map(|s| {
                        humantime::format_rfc3339_seconds(
                            std::time::UNIX_EPOCH + std::time::Duration::from_secs(s as u64),
                        )
                        .to_string()
                    });
                    println!(
                        "{:<24} {:<10} {:<22} {}",
                        l.host,
                        if l.connected { "connected" } else { "down" },
                        since.unwrap_or_default(),
                        l.version.unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(0)
}
