//! The nginx balancer: VR's `<include_dir>/<pool>.conf` upstream file per pool, written
//! atomically, checked with `test_cmd` and loaded with `reload_cmd`. When either command fails the
//! previous file is put back, so the files on disk are always the ones nginx last accepted.
//!
//! One deviation from VR: a pool with no nodes keeps its `upstream` block with one placeholder
//! server marked `down`. VR wrote an empty block, which nginx refuses ("no servers are inside
//! upstream"), so emptying a pool (a swarm at size 0, deleting a swarm, destroying its last proc)
//! failed and left procs running; removing the file instead breaks the server block that proxies
//! to the pool (the seed's setup: "host not found in upstream"). A `down` server is never used,
//! so clients get 502 at once, and the pool reads back as empty. `delete_pool_if_empty` removes
//! the file only when nginx accepts its removal (no server block names the pool).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::LazyLock;

use async_trait::async_trait;
use regex::Regex;

use super::command::{self, CONTROL_TIMEOUT};
use super::files::{self, Snapshot};
use super::{check, Balancer, BalancerError, Node};
use crate::host::procfs;
use crate::model::balancer::NginxConfig;

/// How long vrd waits for nginx to run a reloaded configuration.
const SWITCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// VR's patterns, kept as they were so files VR wrote read the same.
static UPSTREAM: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"upstream +(.*?) +\{").expect("a constant pattern"));
static SERVER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"server +(.*?);").expect("a constant pattern"));

/// The line of an empty pool (see the module comment); never read back as a node.
const PLACEHOLDER: &str = "  # vr: this pool has no nodes; the one below is never used (clients get 502)\n  server 127.0.0.1:9 down;";

/// VR's upstream block, byte for byte: a newline, `upstream <pool> {`, one `  server host:port;`
/// line per node, `}`.
pub fn render(pool: &str, nodes: &BTreeSet<Node>) -> String {
    let lines: Vec<String> = nodes.iter().map(|n| format!("  server {n};")).collect();
    let body = if lines.is_empty() { PLACEHOLDER.to_string() } else { lines.join("\n") };
    format!("\nupstream {pool} {{\n{body}\n}}\n")
}

/// The pool name and nodes of an upstream file, read with VR's patterns; `None` when the text
/// holds no `upstream` block at all.
pub fn parse(text: &str) -> Option<(String, BTreeSet<Node>)> {
    let pool = UPSTREAM.captures(text)?.get(1)?.as_str().to_string();
    let nodes = SERVER
        .captures_iter(text)
        .filter_map(|c| c.get(1))
        .map(|m| m.as_str())
        .filter(|server| !server.ends_with(" down"))
        .map(str::to_string);
    Some((pool, nodes.collect()))
}

/// One `[balancers.NAME]` of kind nginx.
pub struct Nginx {
    name: String,
    cfg: NginxConfig,
    /// `nginx -t` checks every pool's file at once, so a broken write of one pool would fail (and
    /// be blamed on) a concurrent change of another: changes go one at a time per balancer.
    writing: tokio::sync::Mutex<()>,
}

impl Nginx {
    /// The balancer called `name`; refuses empty commands.
    pub fn new(name: &str, cfg: &NginxConfig) -> Result<Nginx, BalancerError> {
        for (key, argv) in [("test_cmd", &cfg.test_cmd), ("reload_cmd", &cfg.reload_cmd)] {
            if argv.is_empty() {
                return Err(BalancerError::Invalid(format!(
                    "balancer '{name}': {key} is empty; give the program and its arguments, e.g. \
                     [\"nginx\", \"-t\"]"
                )));
            }
        }
        Ok(Nginx { name: name.to_string(), cfg: cfg.clone(), writing: tokio::sync::Mutex::default() })
    }

    fn path(&self, pool: &str) -> PathBuf {
        self.cfg.include_dir.join(format!("{pool}.conf"))
    }

    fn nodes_in(&self, pool: &str, text: Option<&str>) -> Result<BTreeSet<Node>, BalancerError> {
        let Some(text) = text else { return Ok(BTreeSet::new()) };
        let (_, nodes) = parse(text).ok_or_else(|| {
            BalancerError::Invalid(format!(
                "balancer '{}': {} holds no `upstream` block; vr owns <pool>.conf files in {}: move \
                 that file away or pick another include_dir",
                self.name,
                self.path(pool).display(),
                self.cfg.include_dir.display()
            ))
        })?;
        Ok(nodes)
    }

    /// Makes the pool's file hold exactly `change(current nodes)` and has nginx load it.
    async fn change(
        &self,
        pool: &str,
        change: impl FnOnce(&mut BTreeSet<Node>),
    ) -> Result<(), BalancerError> {
        check::pool_name(&self.name, pool)?;
        let _one_at_a_time = self.writing.lock().await;
        let snapshot = Snapshot::take(&self.path(pool)).await?;
        let mut nodes = self.nodes_in(pool, snapshot.before())?;
        change(&mut nodes);
        let wanted = render(pool, &nodes);
        if Some(wanted.as_str()) == snapshot.before() {
            return Ok(());
        }
        files::put(&self.path(pool), Some(&wanted)).await?;
        if let Err(e) = self.test_and_reload(pool).await {
            return Err(files::restore_all(&[snapshot], e).await);
        }
        Ok(())
    }

    /// Removes an empty pool's file if nginx accepts that; keeps it (and says why in the log)
    /// when nginx's config still names the pool.
    async fn remove_if_empty(&self, pool: &str) -> Result<(), BalancerError> {
        check::pool_name(&self.name, pool)?;
        let _one_at_a_time = self.writing.lock().await;
        let snapshot = Snapshot::take(&self.path(pool)).await?;
        if snapshot.before().is_none() || !self.nodes_in(pool, snapshot.before())?.is_empty() {
            return Ok(());
        }
        files::put(&self.path(pool), None).await?;
        if let Err(e) = self.test_and_reload(pool).await {
            snapshot.restore().await?;
            tracing::info!(balancer = %self.name, pool, error = %e, "kept the empty pool's file: nginx's configuration still names the pool");
        }
        Ok(())
    }

    async fn test_and_reload(&self, pool: &str) -> Result<(), BalancerError> {
        let step = |argv: &[String]| {
            format!(
                "balancer '{}': `{}` after changing pool '{pool}' ({}; the previous file is back in \
                 place, fix what nginx reports and retry)",
                self.name,
                command::shown(argv),
                self.path(pool).display()
            )
        };
        command::run(&step(&self.cfg.test_cmd), &self.cfg.test_cmd, None, CONTROL_TIMEOUT).await?;
        let master = self.master();
        let before: BTreeSet<i32> = master.map(procfs::children).unwrap_or_default().into_iter().collect();
        command::run(&step(&self.cfg.reload_cmd), &self.cfg.reload_cmd, None, CONTROL_TIMEOUT).await?;
        match master {
            Some(master) => self.wait_switched(master, &before).await?,
            None => tracing::warn!(
                balancer = %self.name,
                pid_file = %self.cfg.pid_file.display(),
                "cannot read nginx's pid file, so vrd cannot wait for nginx to switch; set pid_file"
            ),
        }
        tracing::info!(balancer = %self.name, pool, "nginx reloaded");
        Ok(())
    }

    /// nginx's master pid, from `pid_file`.
    fn master(&self) -> Option<i32> {
        std::fs::read_to_string(&self.cfg.pid_file).ok()?.trim().parse().ok()
    }

    /// `nginx -s reload` only signals the master. Waits until it has started new workers and
    /// every old one stopped accepting (it then calls itself "worker process is shutting down"
    /// and finishes the requests it holds), so the change is live when vrd says "routed".
    async fn wait_switched(&self, master: i32, before: &BTreeSet<i32>) -> Result<(), BalancerError> {
        let accepting = |pid: i32| {
            procfs::cmdline(pid).is_some_and(|l| l.contains("worker process") && !l.contains("shutting down"))
        };
        let deadline = std::time::Instant::now() + SWITCH_TIMEOUT;
        loop {
            let fresh = procfs::children(master).into_iter().any(|c| !before.contains(&c) && accepting(c));
            if fresh && !before.iter().any(|&old| accepting(old)) {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(BalancerError::Command {
                    what: format!("balancer '{}': waiting for nginx (master {master}) to switch", self.name),
                    output: format!(
                        "nginx had not started new workers {} s after the reload; check its error log",
                        SWITCH_TIMEOUT.as_secs()
                    ),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

#[async_trait]
impl Balancer for Nginx {
    async fn get_nodes(&self, pool: &str) -> Result<BTreeSet<Node>, BalancerError> {
        check::pool_name(&self.name, pool)?;
        let text = files::read_optional(&self.path(pool)).await?;
        self.nodes_in(pool, text.as_deref())
    }

    async fn add_nodes(&self, pool: &str, nodes: &BTreeSet<Node>) -> Result<(), BalancerError> {
        check::nodes(&self.name, pool, nodes)?;
        self.change(pool, |all| all.extend(nodes.iter().cloned())).await
    }

    async fn delete_nodes(&self, pool: &str, nodes: &BTreeSet<Node>) -> Result<(), BalancerError> {
        self.change(pool, |all| all.retain(|n| !nodes.contains(n))).await
    }

    async fn delete_pool_if_empty(&self, pool: &str) -> Result<(), BalancerError> {
        self.remove_if_empty(pool).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(list: &[&str]) -> BTreeSet<Node> {
        list.iter().map(|n| (*n).to_string()).collect()
    }

    #[test]
    fn renders_vr_upstream_text_byte_for_byte() {
        let text = render("web", &nodes(&["10.0.0.1:5001", "10.0.0.2:5002"]));
        assert_eq!(text, "\nupstream web {\n  server 10.0.0.1:5001;\n  server 10.0.0.2:5002;\n}\n");
        let empty = render("web", &BTreeSet::new());
        assert!(empty.starts_with("\nupstream web {\n") && empty.contains("\n  server 127.0.0.1:9 down;\n}"));
        assert_eq!(parse(&empty), Some(("web".to_string(), BTreeSet::new())), "the placeholder is no node");
    }

    #[test]
    fn parses_back_what_it_wrote_and_what_vr_wrote() {
        let written = nodes(&["a:1", "b:2"]);
        assert_eq!(parse(&render("my-pool", &written)), Some(("my-pool".to_string(), written)));
        // VR's empty pool, and a hand-spaced file.
        assert_eq!(parse("\nupstream web {\n\n}\n"), Some(("web".to_string(), BTreeSet::new())));
        let spaced = "upstream  api  {\n    server   h:80;\nserver h:81 weight=2;\n}";
        assert_eq!(parse(spaced), Some(("api".to_string(), nodes(&["h:80", "h:81 weight=2"]))));
        assert_eq!(parse("server a:1;"), None);
    }

    fn balancer_testing_with(dir: &std::path::Path, test: &str) -> Nginx {
        let cfg = NginxConfig {
            include_dir: dir.to_path_buf(),
            test_cmd: vec![test.to_string()],
            reload_cmd: vec!["true".to_string()],
            ..NginxConfig::default()
        };
        Nginx::new("web", &cfg).unwrap()
    }

    fn balancer(dir: &std::path::Path) -> Nginx {
        balancer_testing_with(dir, "true")
    }

    #[tokio::test]
    async fn an_emptied_pool_keeps_a_valid_upstream_and_a_stranger_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let b = balancer(dir.path());
        b.add_nodes("app", &nodes(&["h:1", "h:2"])).await.unwrap();
        assert_eq!(b.get_nodes("app").await.unwrap(), nodes(&["h:1", "h:2"]));
        b.delete_nodes("app", &nodes(&["h:1", "h:2", "h:3"])).await.unwrap();
        let text = std::fs::read_to_string(dir.path().join("app.conf")).unwrap();
        assert!(text.contains("upstream app {") && text.contains(" down;"), "{text}");
        assert_eq!(b.get_nodes("app").await.unwrap(), BTreeSet::new());
        b.delete_pool_if_empty("app").await.unwrap();
        assert!(!dir.path().join("app.conf").exists(), "nginx accepted the removal");
        std::fs::write(dir.path().join("mine.conf"), "server { listen 80; }").unwrap();
        let err = b.add_nodes("mine", &nodes(&["h:1"])).await.unwrap_err().to_string();
        assert!(err.contains("mine.conf") && err.contains("upstream"), "{err}");
        let err = b.add_nodes("../x", &nodes(&["h:1"])).await.unwrap_err().to_string();
        assert!(err.contains("pool name"), "{err}");
        let err = b.add_nodes("app", &nodes(&["h:1;evil"])).await.unwrap_err().to_string();
        assert!(err.contains("host:port"), "{err}");
    }

    #[tokio::test]
    async fn an_empty_pool_nginx_still_names_keeps_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let b = balancer(dir.path());
        b.add_nodes("app", &nodes(&["h:1"])).await.unwrap();
        b.delete_nodes("app", &nodes(&["h:1"])).await.unwrap();
        // `nginx -t` now refuses anything: as it refuses a config whose server block names a
        // pool that has no upstream.
        let refusing = balancer_testing_with(dir.path(), "false");
        refusing.delete_pool_if_empty("app").await.unwrap();
        assert!(dir.path().join("app.conf").exists(), "the placeholder upstream stays");
        assert_eq!(refusing.get_nodes("app").await.unwrap(), BTreeSet::new());
    }

    #[test]
    fn empty_commands_are_refused_at_startup() {
        let cfg = NginxConfig { test_cmd: vec![], ..NginxConfig::default() };
        let err = Nginx::new("web", &cfg).err().unwrap().to_string();
        assert!(err.contains("test_cmd"), "{err}");
    }
}
