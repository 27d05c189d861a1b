//! `vr builds list|show|log|gc`: the builds vrd recorded, their kept compile logs (followed live
//! with `-f`), and garbage collection of their artifacts and of stack images (VR's rule: older
//! than 30 days and not among the newest 10 successful builds of the app; never what a proc or a
//! swarm uses, never a stack's active image).

use clap::Subcommand;

use super::client::{connect, explain};
use crate::api::{BuildInfo, VrdClient};

/// `vr builds` actions.
#[derive(Debug, Subcommand)]
pub enum BuildsAction {
    /// List recorded builds, oldest first.
    List {
        /// Only this app's builds.
        app: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show one build.
    Show {
        /// The build id (from `vr builds list`).
        id: u64,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print a build's kept compile log.
    Log {
        /// The build id (from `vr builds list`).
        id: u64,
        /// Follow the log while the build runs; ends when the build ends.
        #[arg(short, long)]
        follow: bool,
    },
    /// Remove the artifacts and logs of builds older than 30 days that are not among the 10
    /// newest successful builds of their app, the tarballs and logs of stack images older than 30
    /// days that are not active nor among the 10 newest of their stack, and store files nothing
    /// references. What a proc or a swarm's current release uses is always kept.
    Gc {
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// The age limit in days (VR's: 30).
        #[arg(long, hide = true)]
        max_age_days: Option<u64>,
        /// How many successful builds of each app to keep (VR's: 10).
        #[arg(long, hide = true)]
        keep: Option<usize>,
    },
}

/// Unix seconds as RFC 3339, or `-`.
pub fn time(secs: i64) -> String {
    match u64::try_from(secs) {
        Ok(s) => humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s))
            .to_string(),
        Err(_) => "-".into(),
    }
}

fn duration(b: &BuildInfo) -> String {
    match b.ended {
        Some(end) => format!("{}s", end.saturating_sub(b.started)),
        None => "-".into(),
    }
}

fn status(b: &BuildInfo) -> String {
    match &b.step {
        Some(step) => format!("{} ({step})", b.status),
        None => b.status.clone(),
    }
}

fn print_list(builds: &[BuildInfo]) -> std::io::Result<()> {
    say!(
        "{:<6} {:<20} {:<12} {:<20} {:<20} {:>8} MD5",
        "ID",
        "APP",
        "VERSION",
        "STATUS",
        "STARTED",
        "DURATION"
    )?;
    for b in builds {
        say!(
            "{:<6} {:<20} {:<12} {:<20} {:<20} {:>8} {}",
            b.id,
            b.app_name,
            b.version,
            status(b),
            time(b.started),
            duration(b),
            b.build_md5.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}

fn print_one(b: &BuildInfo) -> std::io::Result<()> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    say!("id:         {}", b.id)?;
    say!("app:        {}", b.app_name)?;
    say!("version:    {}", b.version)?;
    say!("status:     {}", status(b))?;
    say!("app_commit: {}", opt(&b.app_commit))?;
    say!("buildpacks: {}", if b.buildpacks.is_empty() { "-".into() } else { b.buildpacks.join(" ") })?;
    say!("started:    {}", time(b.started))?;
    say!("duration:   {}", duration(b))?;
    say!("build_md5:  {}", opt(&b.build_md5))?;
    say!(
        "artifact:   {}",
        b.artifact.as_deref().map(|a| format!("sha256:{a}")).unwrap_or_else(|| "-".into())
    )?;
    say!("log:        {}", opt(&b.log_path))?;
    if let Some(error) = &b.error {
        say!("error:      {error}")?;
    }
    Ok(())
}

/// Runs a `vr builds` action.
pub async fn run(socket: &std::path::Path, action: BuildsAction) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    match action {
        BuildsAction::List { app, json } => {
            let builds = client.builds_list(app).await.map_err(explain)?;
            if json {
                say!("{}", serde_json::to_string_pretty(&builds)?)?;
            } else {
                print_list(&builds)?;
            }
        }
        BuildsAction::Show { id, json } => {
            let build = client.builds_show(id).await.map_err(explain)?;
            if json {
                say!("{}", serde_json::to_string_pretty(&build)?)?;
            } else {
                print_one(&build)?;
            }
        }
        BuildsAction::Log { id, follow: true } => {
            let mut lines = client.builds_follow(id).await.map_err(explain)?;
            while let Some(line) = lines.next().await {
                say!("{}", line.map_err(|e| anyhow::anyhow!("the build's log stream broke: {e}"))?.line)?;
            }
        }
        BuildsAction::Log { id, follow: false } => {
            let log = client.builds_log(id).await.map_err(explain)?;
            say_raw!("{log}")?;
        }
        BuildsAction::Gc { dry_run, max_age_days, keep } => {
            let report = client.builds_gc(dry_run, max_age_days, keep).await.map_err(explain)?;
            for line in &report.removed {
                say!("{line}")?;
            }
            if report.removed.is_empty() {
                say!("nothing to remove")?;
            }
        }
    }
    Ok(0)
}
