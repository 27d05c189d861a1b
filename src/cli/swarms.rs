//! VR's deployment commands: `vr swarm FILTER TAG|-`, `vr list-swarms`, `vr rollback`,
//! `vr swarms releases`, `vr deploy RELEASE HOST PORT PROC`, `vr compare-releases A B`,
//! `vr build APP TAG`, `vr rebuild-all FILTER`, `vr uptests`, `vr deploys`. Dispatches are followed
//! live: each step as it happens (with the compile output of a build a step starts, indented under
//! it), then a one-line outcome; the exit code says whether all succeeded.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::anyhow;
use futures::future;
use futures::stream::{self, StreamExt};
use jsonrpsee::core::client::Client;
use serde_json::Value;

use super::client::{connect, explain};
use crate::api::{DeployLogEntry, Dispatched, Kind, SwarmChanges, VrdClient};

/// `vr swarm FILTER TAG|-`: sets the version of every matching swarm ('-' keeps each one's) and
/// the other `changes`, and dispatches them; follows them unless `detach`.
pub async fn swarm(
    socket: &Path,
    filter: String,
    mut changes: SwarmChanges,
    exclude: Option<String>,
    detach: bool,
) -> anyhow::Result<i32> {
    changes.version = changes.version.filter(|tag| tag != "-");
    let client = connect(socket).await?;
    let started = client.swarms_dispatch(filter, changes, exclude, false).await.map_err(explain)?;
    finish(&client, started, detach).await
}

/// `vr rebuild-all FILTER`: a new build for every distinct app and version among the matching
/// swarms, then their dispatch.
pub async fn rebuild_all(socket: &Path, filter: String, detach: bool) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    let started =
        client.swarms_dispatch(filter, SwarmChanges::default(), None, true).await.map_err(explain)?;
    finish(&client, started, detach).await
}

/// `vr rollback SWARM [NUMBER]`.
pub async fn rollback(
    socket: &Path,
    swarm: String,
    number: Option<u64>,
    detach: bool,
) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    let started = client.swarms_rollback(swarm, number).await.map_err(explain)?;
    finish(&client, vec![started], detach).await
}

/// `vr build APP TAG`.
pub async fn build(socket: &Path, app: String, tag: String, detach: bool) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    let started = client.apps_build(app, tag).await.map_err(explain)?;
    finish(&client, vec![started], detach).await
}

async fn finish(client: &Client, started: Vec<Dispatched>, detach: bool) -> anyhow::Result<i32> {
    if detach {
        for d in &started {
            say!("{} {}", d.swarm, d.trace)?;
        }
        return Ok(0);
    }
    follow(client, started).await
}

/// What following a dispatch shows: its steps, and the compile output of a build it started.
enum Shown {
    Step(DeployLogEntry),
    Output(String),
}

type Shows<'a> = stream::LocalBoxStream<'a, anyhow::Result<Shown>>;

/// A dispatch's steps; after the step that starts a build, that build's output until it ends.
async fn dispatch_stream(client: &Client, trace: String) -> anyhow::Result<Shows<'_>> {
    let steps = client.deploys_follow(Some(trace), 0).await.map_err(explain)?;
    let shows = steps.flat_map(move |entry| match entry {
        Ok(e) => {
            let build = e.build;
            let step = stream::once(future::ready(Ok(Shown::Step(e))));
            match build {
                Some(id) => step.chain(build_output(client, id)).boxed_local(),
                None => step.boxed_local(),
            }
        }
        Err(e) => {
            stream::once(future::ready(Err(anyhow!("the deployment log stream broke: {e}")))).boxed_local()
        }
    });
    Ok(shows.boxed_local())
}

/// Build `id`'s compile output as it is written; a build whose output can't be followed only
/// says so (the dispatch goes on).
fn build_output(client: &Client, id: u64) -> Shows<'_> {
    stream::once(client.builds_follow(id))
        .flat_map(move |sub| match sub {
            Ok(lines) => lines
                .map(|l| {
                    l.map(|l| Shown::Output(l.line)).map_err(|e| anyhow!("the build's log stream broke: {e}"))
                })
                .boxed_local(),
            Err(e) => {
                let note = format!("(the output of build {id} can't be followed: {})", explain(e));
                stream::once(future::ready(Ok(Shown::Output(note)))).boxed_local()
            }
        })
        .boxed_local()
}

/// Prints every step of the dispatches as it happens, and the compile output of the builds they
/// start, indented under the step; returns 0 when all finished well.
pub async fn follow(client: &Client, started: Vec<Dispatched>) -> anyhow::Result<i32> {
    let mut streams = Vec::new();
    for d in &started {
        streams.push(dispatch_stream(client, d.trace.clone()).await?);
    }
    let mut all = stream::select_all(streams);
    let mut failed = BTreeSet::new();
    let mut ended = Vec::new();
    while let Some(shown) = all.next().await {
        let entry = match shown? {
            Shown::Output(line) => {
                say!("    | {line}")?;
                continue;
            }
            Shown::Step(entry) => entry,
        };
        print_entry(&entry)?;
        if entry.is_failure() {
            failed.insert(entry.trace.clone());
        }
        if entry.is_last() {
            ended.push(entry);
            // Each stream ends with its dispatch's last entry; stop once all have ended.
            if ended.len() == started.len() {
                break;
            }
        }
    }
    for e in &ended {
        eprintln!("vr: {}", e.message.lines().next().unwrap_or(""));
    }
    Ok(if failed.is_empty() && ended.len() == started.len() { 0 } else { 1 })
}

fn print_entry(e: &DeployLogEntry) -> std::io::Result<()> {
    let when = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(e.time.max(0) as u64),
    );
    let who = e.swarm.as_deref().unwrap_or("-");
    let mark = if e.is_failure() { "FAILED " } else { "" };
    say!("{when} {who:<20} {mark}{}", e.message)?;
    Ok(())
}

/// `vr list-swarms [FILTER]`.
pub async fn list_swarms(socket: &Path, filter: Option<String>) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    let matching = filter
        .map(|f| regex_lite::Regex::new(&format!("^(?:{f})")))
        .transpose()
        .map_err(|e| anyhow!("FILTER is not a regular expression: {e}"))?;
    let procs = client.swarms_procs(None).await.map_err(explain)?;
    say!(
        "{:<28} {:<14} {:<12} {:<8} {:<8} {:<10} {:>4} {:<16} PROCS",
        "NAME",
        "APP",
        "VERSION",
        "CONFIG",
        "PROC",
        "SQUAD",
        "SIZE",
        "POOL"
    )?;
    for v in client.objects_list(Kind::Swarm).await.map_err(explain)? {
        let name = v.get("name").and_then(Value::as_str).unwrap_or("");
        let display = format!(
            "{}-{}-{}",
            v.get("app").and_then(Value::as_str).unwrap_or(""),
            v.get("config_name").and_then(Value::as_str).unwrap_or(""),
            v.get("proc_name").and_then(Value::as_str).unwrap_or("")
        );
        if matching.as_ref().is_some_and(|m| !m.is_match(name) && !m.is_match(&display)) {
            continue;
        }
        let running = procs.iter().filter(|p| p.swarm == name).count();
        say!("{} {running}", super::objects::swarm_line(&v))?;
    }
    Ok(0)
}

/// `vr swarms releases SWARM`.
pub async fn releases(socket: &Path, swarm: String, json: bool) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    let releases = client.swarms_releases(swarm).await.map_err(explain)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&releases)?)?;
        return Ok(0);
    }
    say!("{:>4} {:>6} {:<8} {:<12} {:>6} {:<20}", "NO", "ID", "HASH", "VERSION", "BUILD", "CREATED")?;
    for r in releases {
        let when = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(r.created.max(0) as u64),
        );
        let version = r.release.spec.pointer("/build/version").and_then(Value::as_str).unwrap_or("-");
        say!(
            "{:>4} {:>6} {:<8} {:<12} {:>6} {when}",
            r.number,
            r.release.id,
            r.release.hash,
            version,
            r.release.build
        )?;
    }
    Ok(0)
}

/// `vr deploy RELEASE HOST PORT PROC [-c CONFIG]`.
pub async fn deploy(
    socket: &Path,
    release: u64,
    host: String,
    port: u16,
    proc_name: String,
    config: String,
) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    let info = client.releases_deploy(release, host, port, proc_name, config).await.map_err(explain)?;
    eprintln!("vr: deployed {} on {}", info.name, info.host);
    Ok(0)
}

/// `vr compare-releases A B`: what differs between two releases' config, env and the rest.
pub async fn compare(socket: &Path, a: u64, b: u64) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    let ra = client.releases_show(a).await.map_err(explain)?;
    let rb = client.releases_show(b).await.map_err(explain)?;
    let lines = diff(&flatten(&ra.spec), &flatten(&rb.spec));
    if lines.is_empty() {
        say!("releases {a} and {b} are the same")?;
    }
    for line in lines {
        say!("{line}")?;
    }
    Ok(0)
}

/// `path: value` lines of a JSON value, leaves only, sorted.
fn flatten(v: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&p, x, out);
                }
            }
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out.sort();
    out
}

fn diff(a: &[(String, String)], b: &[(String, String)]) -> Vec<String> {
    let keys: BTreeSet<&String> = a.iter().chain(b).map(|(k, _)| k).collect();
    let get = |s: &[(String, String)], k: &str| s.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
    let mut lines = Vec::new();
    for k in keys {
        match (get(a, k), get(b, k)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => lines.push(format!("~ {k}: {x} -> {y}")),
            (Some(x), None) => lines.push(format!("- {k}: {x}")),
            (None, Some(y)) => lines.push(format!("+ {k}: {y}")),
            (None, None) => {}
        }
    }
    lines
}

/// `vr balancers list|nodes`.
pub async fn balancers(socket: &Path, action: super::BalancersAction) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    match action {
        super::BalancersAction::List => {
            for (name, kind) in client.balancers_list().await.map_err(explain)? {
                say!("{name:<20} {kind}")?;
            }
        }
        super::BalancersAction::Nodes { balancer, pool } => {
            for node in client.balancers_nodes(balancer, pool).await.map_err(explain)? {
                say!("{node}")?;
            }
        }
    }
    Ok(0)
}

/// `vr uptests [--run]`: the newest run's failures (after running one now with `--run`).
pub async fn uptests(socket: &Path, run: bool) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    let latest = if run {
        Some(client.uptests_run().await.map_err(explain)?)
    } else {
        client.uptests_latest().await.map_err(explain)?
    };
    let Some(run) = latest else {
        say!("no uptest run yet: `vr uptests --run` runs one now")?;
        return Ok(0);
    };
    say!("{} procs tested, {} failed", run.procs, run.failures.len())?;
    for f in &run.failures {
        for r in &f.results {
            say!("{}@{}: {} failed:\n{}", f.proc, f.host, r.name, r.output)?;
        }
    }
    Ok(if run.failures.is_empty() { 0 } else { 1 })
}

/// `vr deploys [--trace T] [-f] [--after ID]`: the deployment log.
pub async fn deploys(socket: &Path, trace: Option<String>, follow: bool, after: u64) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    if follow {
        let mut sub = client.deploys_follow(trace, after).await.map_err(explain)?;
        while let Some(e) = sub.next().await {
            print_entry(&e.map_err(|e| anyhow!("the deployment log stream broke: {e}"))?)?;
        }
        return Ok(0);
    }
    for e in client.deploys_log(trace, after, 10_000).await.map_err(explain)? {
        print_entry(&e)?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn compare_lists_changed_added_and_removed_leaves() {
        let a = flatten(&json!({"config": {"a": 1, "b": 2}, "env": {"X": "1"}, "run_as": "nobody"}));
        let b = flatten(&json!({"config": {"a": 1, "b": 3, "c": 4}, "env": {}, "run_as": "nobody"}));
        assert_eq!(diff(&a, &b), ["~ config.b: 2 -> 3", "+ config.c: 4", "+ env: {}", "- env.X: \"1\""]);
    }
}
