//! `vr logs [-f] --swarm NAME`: the logs of every proc of a swarm, on every host and of every
//! release, as one stream. Each line is printed with its proc after the timestamp. Without `-f`
//! the lines are merged by time; with `-f` each proc is followed and lines print as they come,
//! and the swarm's procs are looked up again every 2 s, so a redeploy's new procs join the
//! stream from their first line.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jsonrpsee::core::client::Client;

use super::client::{connect, explain};
use crate::api::VrdClient;

/// How often `-f` looks for the swarm's new procs.
const RELIST: Duration = Duration::from_secs(2);

/// A log line with its proc after the timestamp (the first word).
fn tagged(proc: &str, line: &str) -> String {
    match line.split_once(' ') {
        Some((time, rest)) => format!("{time} {proc}| {rest}"),
        None => format!("{line} {proc}|"),
    }
}

async fn swarm_procs(client: &Client, swarm: &str) -> anyhow::Result<Vec<String>> {
    let records = client.swarms_procs(Some(swarm.to_string())).await.map_err(explain)?;
    Ok(records.into_iter().map(|r| r.proc).collect())
}

/// Prints the swarm's logs (merged by time), or follows them.
pub async fn run(
    socket: &Path,
    swarm: String,
    follow: bool,
    since: Option<String>,
    tail: Option<usize>,
) -> anyhow::Result<i32> {
    let client = Arc::new(connect(socket).await?);
    let procs = swarm_procs(&client, &swarm).await?;
    if procs.is_empty() && !follow {
        anyhow::bail!("swarm {swarm} has no procs now: `vr swarms list` shows the swarms, `vr swarm {swarm} VERSION` deploys it");
    }
    if !follow {
        let mut lines = Vec::new();
        for proc in &procs {
            for line in client.logs_read(proc.clone(), since.clone(), tail).await.map_err(explain)? {
                lines.push(tagged(proc, &line.line));
            }
        }
        // Timestamps are RFC 3339 in UTC: text order is time order.
        lines.sort();
        for line in lines {
            say!("{line}")?;
        }
        return Ok(0);
    }
    follow_swarm(client, swarm, procs, since, tail).await
}

async fn follow_swarm(
    client: Arc<Client>,
    swarm: String,
    first: Vec<String>,
    since: Option<String>,
    tail: Option<usize>,
) -> anyhow::Result<i32> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(256);
    let mut followed = BTreeSet::new();
    for proc in first {
        followed.insert(proc.clone());
        spawn_follow(&client, proc, since.clone(), tail, tx.clone());
    }
    let mut relist = tokio::time::interval(RELIST);
    let mut looked = now_rfc3339();
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some(line) => say!("{line}")?,
                None => return Ok(0),
            },
            _ = relist.tick() => {
                let at = now_rfc3339();
                for proc in swarm_procs(&client, &swarm).await? {
                    if followed.insert(proc.clone()) {
                        // From the last look on: a new proc's first lines are not lost.
                        spawn_follow(&client, proc, Some(looked.clone()), None, tx.clone());
                    }
                }
                looked = at;
            }
        }
    }
}

fn spawn_follow(
    client: &Arc<Client>,
    proc: String,
    since: Option<String>,
    tail: Option<usize>,
    tx: tokio::sync::mpsc::Sender<String>,
) {
    let client = Arc::clone(client);
    tokio::spawn(async move {
        let mut sub = match client.logs_follow(proc.clone(), since, tail).await {
            Ok(sub) => sub,
            Err(e) => {
                let _ = tx.send(format!("-- {proc}: {}", explain(e))).await;
                return;
            }
        };
        while let Some(Ok(line)) = sub.next().await {
            if tx.send(tagged(&proc, &line.line)).await.is_err() {
                return;
            }
        }
    });
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_gets_its_proc_after_its_timestamp() {
        assert_eq!(
            tagged("hello-v1-prod-abcdef12-web-5001", "2026-12-03T07:00:00.123Z hi there"),
            "2026-12-03T07:00:00.123Z hello-v1-prod-abcdef12-web-5001| hi there"
        );
        assert_eq!(tagged("p", "bare"), "bare p|");
    }
}
