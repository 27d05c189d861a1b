//! `vr stacks ...`: the definition commands, plus the images vrd builds for a stack:
//! `vr stacks build NAME` (follows the provisioning output live), `vr stacks images NAME`,
//! `vr stacks activate NAME IMAGE` (rollback) and `vr stacks log NAME IMAGE`.

use std::path::Path;

use anyhow::anyhow;
use clap::Subcommand;
use jsonrpsee::core::client::Client;

use super::client::{connect, explain};
use super::objects::{self, ObjectAction};
use crate::api::{ImageInfo, Kind, VrdClient};

/// `vr stacks` actions.
#[derive(Debug, Subcommand)]
pub enum StacksAction {
    /// The definition commands.
    #[command(flatten)]
    Object(ObjectAction),
    /// Build a new image of the stack (its base plus its provisioning script) and make it the
    /// stack's active image; running procs keep theirs. Follows the script's output live
    /// (interrupting vr stops following, not the build).
    Build {
        /// The stack.
        name: String,
        /// Print the new image's name and return at once.
        #[arg(long)]
        detach: bool,
    },
    /// The stack's images, oldest first; `*` marks the active one.
    Images {
        /// The stack.
        name: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Make an earlier image the stack's active image again (new builds and swarms use it).
    Activate {
        /// The stack.
        name: String,
        /// The image: its name (`web-3`) or number (`3`).
        image: String,
    },
    /// Print an image's build log (following it while the image is being built).
    Log {
        /// The stack.
        name: String,
        /// The image: its name or number.
        image: String,
    },
}

/// Runs a `vr stacks` action.
pub async fn run(socket: &Path, action: StacksAction) -> anyhow::Result<i32> {
    let action = match action {
        StacksAction::Object(action) => return objects::run(socket, Kind::Stack, action).await,
        other => other,
    };
    let client = connect(socket).await?;
    match action {
        StacksAction::Object(_) => Ok(0),
        StacksAction::Build { name, detach } => build(&client, name, detach).await,
        StacksAction::Images { name, json } => {
            let images = client.stacks_images(name).await.map_err(explain)?;
            if json {
                say!("{}", serde_json::to_string_pretty(&images)?)?;
            } else {
                print_images(&images)?;
            }
            Ok(0)
        }
        StacksAction::Activate { name, image } => {
            let active = client.stacks_activate(name.clone(), image).await.map_err(explain)?;
            eprintln!(
                "vr: stack {name} now builds and deploys on image {} (running procs keep theirs)",
                active.name
            );
            Ok(0)
        }
        StacksAction::Log { name, image } => {
            print_log(&client, name, image).await?;
            Ok(0)
        }
    }
}

async fn build(client: &Client, stack: String, detach: bool) -> anyhow::Result<i32> {
    let started = client.stacks_build(stack.clone()).await.map_err(explain)?;
    if detach {
        say!("{}", started.name)?;
        return Ok(0);
    }
    eprintln!("vr: building image {} of stack {stack}", started.name);
    print_log(client, stack.clone(), started.name.clone()).await?;
    let images = client.stacks_images(stack.clone()).await.map_err(explain)?;
    let Some(done) = images.iter().find(|i| i.id == started.id) else {
        return Err(anyhow!("image {} of stack {stack} is gone", started.name));
    };
    if done.active {
        eprintln!(
            "vr: image {} (md5 {}) is now the active image of stack {stack}",
            done.name,
            done.md5.as_deref().unwrap_or("-")
        );
        return Ok(0);
    }
    eprintln!(
        "vr: image {} {}: {}",
        done.name,
        done.status,
        done.error.as_deref().unwrap_or("see its log above")
    );
    Ok(1)
}

/// Prints the image's build log as it grows, until its build has ended.
async fn print_log(client: &Client, stack: String, image: String) -> anyhow::Result<()> {
    let mut lines = client.stacks_follow(stack, image).await.map_err(explain)?;
    while let Some(line) = lines.next().await {
        say!("{}", line.map_err(|e| anyhow!("the image's log stream broke: {e}"))?.line)?;
    }
    Ok(())
}

fn print_images(images: &[ImageInfo]) -> std::io::Result<()> {
    say!("  {:<24} {:<22} {:<20} {:>8} MD5", "IMAGE", "STATUS", "CREATED", "DURATION")?;
    for i in images {
        let status =
            if i.collected.is_some() { format!("{} (collected)", i.status) } else { i.status.clone() };
        let duration =
            i.ended.map_or_else(|| "-".to_string(), |e| format!("{}s", e.saturating_sub(i.created)));
        say!(
            "{} {:<24} {:<22} {:<20} {:>8} {}",
            if i.active { "*" } else { " " },
            i.name,
            status,
            super::builds::time(i.created),
            duration,
            i.md5.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}
