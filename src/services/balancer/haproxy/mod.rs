//! The haproxy balancer: a pool is the backend `<backend_prefix><pool>` of a running haproxy, its
//! nodes are the servers vr named there (see `names`). The running haproxy is the truth, read and
//! changed through its runtime API without a reload; after each change the backend's server lines
//! are written to `config_file` (see `cfg`), so a restart brings back exactly the same servers.
//!
//! Only a pool whose backend the running haproxy lacks costs a reload: its section is written to
//! the config file, checked with `haproxy -c` (the old file comes back when that fails), and
//! `reload_cmd` runs. Removing an emptied pool's section needs no reload: the running haproxy just
//! keeps an empty backend until its next one.
//!
//! The registry locks one pool at a time, but all pools of a haproxy share its config file, and a
//! reload drops every runtime change not yet saved there. So each change of the runtime and the
//! file together (and each reload) holds this balancer's `edit` lock; only the wait while removed
//! servers drain does not, so one pool's drain does not hold up the others.

mod cfg;
mod file;
mod names;
mod parse;
mod remove;
mod runtime;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use self::names::Target;
use self::runtime::Runtime;
use super::{Balancer, BalancerError, Node};
use crate::model::balancer::HaproxyConfig;

/// How long a reloaded haproxy may take to show a new backend, and a host name to resolve.
const SETTLE: Duration = Duration::from_secs(15);

/// One haproxy, reached through its admin socket and its config file.
pub struct Haproxy {
    name: String,
    cfg: HaproxyConfig,
    runtime: Runtime,
    /// Held while the running haproxy and the config file are brought back in step.
    edit: tokio::sync::Mutex<()>,
}

impl Haproxy {
    /// The haproxy balancer called `name`.
    pub fn new(name: &str, cfg: &HaproxyConfig) -> Result<Haproxy, BalancerError> {
        names::check_prefix(name, &cfg.backend_prefix)?;
        if cfg.reload_cmd.is_empty() {
            return Err(BalancerError::Invalid(format!(
                "balancer '{name}': reload_cmd is empty; give the command that makes haproxy reread its \
                 config, e.g. [\"systemctl\", \"reload\", \"haproxy\"]"
            )));
        }
        let runtime = Runtime::new(name, &cfg.admin_socket);
        Ok(Haproxy { name: name.to_string(), cfg: cfg.clone(), runtime, edit: tokio::sync::Mutex::new(()) })
    }

    fn backend(&self, pool: &str) -> Result<String, BalancerError> {
        names::check_pool(&self.name, pool)?;
        Ok(format!("{}{pool}", self.cfg.backend_prefix))
    }

    fn targets<'a>(&self, nodes: impl Iterator<Item = &'a Node>) -> Result<Vec<Target>, BalancerError> {
        nodes.map(|n| names::parse_node(&self.name, n)).collect()
    }

    /// vr's servers of `backend` by node, or `None` when the running haproxy has no such backend.
    async fn servers(&self, backend: &str) -> Result<Option<BTreeMap<Node, String>>, BalancerError> {
        let names = self.runtime.servers(backend).await?;
        Ok(names.map(|all| all.into_iter().filter_map(|s| Some((names::node_of_server(&s)?, s))).collect()))
    }

    /// Adds the servers haproxy's backend lacks, then saves what it has.
    async fn add_to_running(
        &self,
        pool: &str,
        backend: &str,
        current: &BTreeMap<Node, String>,
        targets: &[Target],
    ) -> Result<(), BalancerError> {
        let mut added = Ok(());
        for target in targets.iter().filter(|t| !current.contains_key(&t.node)) {
            added = self.add_server(backend, target).await;
            if added.is_err() {
                break;
            }
        }
        let saved = self.save_running(pool, backend).await;
        added.and(saved)
    }

    /// Adds one server and puts it in service; removes it again when that fails.
    async fn add_server(&self, backend: &str, target: &Target) -> Result<(), BalancerError> {
        let (addr, server) = (self.resolve(target).await?, target.server_name());
        self.runtime.add_server(backend, &server, addr).await?;
        let enabled = match self.runtime.enable_health(backend, &server).await {
            Ok(()) => self.runtime.set_state(backend, &server, "ready").await,
            Err(e) => Err(e),
        };
        if enabled.is_err() {
            let _ = self.runtime.del_server(backend, &server).await;
        }
        enabled
    }

    /// The node's address: haproxy's dynamic servers take no host name to resolve.
    async fn resolve(&self, target: &Target) -> Result<SocketAddr, BalancerError> {
        let failed = |why: String| {
            BalancerError::Invalid(format!(
                "balancer '{}': cannot resolve node '{}': {why}; haproxy's runtime API needs its address",
                self.name, target.node
            ))
        };
        let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
        match tokio::time::timeout(SETTLE, lookup).await {
            Ok(Ok(mut addrs)) => addrs.next().ok_or_else(|| failed("no address".into())),
            Ok(Err(e)) => Err(failed(e.to_string())),
            Err(_) => Err(failed(format!("no answer within {SETTLE:?}"))),
        }
    }

    /// Writes a new backend section into the config file, checks it, reloads haproxy, and waits
    /// until the running haproxy has the backend.
    async fn add_backend(&self, pool: &str, backend: &str, targets: &[Target]) -> Result<(), BalancerError> {
        let before = self.write_servers(pool, backend, targets).await?;
        let what =
            format!("balancer '{}': reloading haproxy for new backend {backend} (reload_cmd)", self.name);
        if let Err(failed) = file::run(&self.cfg.reload_cmd, what).await {
            return Err(self.put_back(&before, failed).await);
        }
        self.wait_for_backend(backend).await
    }

    async fn wait_for_backend(&self, backend: &str) -> Result<(), BalancerError> {
        let deadline = Instant::now() + SETTLE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.runtime.servers(backend).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(BalancerError::Unreachable(format!(
            "balancer '{}': reload_cmd ran and {} holds backend {backend}, but haproxy at {} still lacks it after \
             {SETTLE:?}; check haproxy's log, and that reload_cmd reloads the haproxy listening on admin_socket",
            self.name,
            self.cfg.config_file.display(),
            self.cfg.admin_socket.display()
        )))
    }

    /// Saves the running backend's servers as the pool's server lines in the config file.
    async fn save_running(&self, pool: &str, backend: &str) -> Result<(), BalancerError> {
        let Some(current) = self.servers(backend).await? else { return Ok(()) };
        let saved = self.write_servers(pool, backend, &self.targets(current.keys())?).await;
        saved.map(drop).map_err(|e| {
            BalancerError::Invalid(format!(
                "{e}\nPool '{pool}' is changed in the running haproxy all the same; once the file is fixed, the \
                 pool's next change saves it"
            ))
        })
    }

    /// Makes the pool's server lines in the config file those of `targets`, checked by haproxy;
    /// returns the text before, to put back if what follows fails.
    async fn write_servers(
        &self,
        pool: &str,
        backend: &str,
        targets: &[Target],
    ) -> Result<String, BalancerError> {
        let before = file::read(&self.cfg.config_file).await?;
        let lines: Vec<String> =
            targets.iter().map(|t| cfg::server_line(&t.server_name(), &t.node)).collect();
        let after = cfg::set_servers(&before, pool, backend, &lines).map_err(|why| self.bad_markers(why))?;
        self.replace(&before, &after).await?;
        Ok(before)
    }

    /// Writes `after` over `before` and has haproxy check it; puts `before` back when refused.
    async fn replace(&self, before: &str, after: &str) -> Result<(), BalancerError> {
        if before == after {
            return Ok(());
        }
        file::write(&self.cfg.config_file, after).await?;
        match file::check(&self.name, &self.cfg.config_file).await {
            Ok(()) => Ok(()),
            Err(refused) => Err(self.put_back(before, refused).await),
        }
    }

    /// Writes the previous text back after `error`, and says whether that worked.
    async fn put_back(&self, before: &str, error: BalancerError) -> BalancerError {
        let path = self.cfg.config_file.display();
        match file::write(&self.cfg.config_file, before).await {
            Ok(()) => {
                BalancerError::Invalid(format!("{error}\n(vr put the previous {path} back, unchanged)"))
            }
            Err(also) => BalancerError::Invalid(format!(
                "{error}\nand putting the previous {path} back failed too: {also}; fix that file by hand"
            )),
        }
    }

    fn bad_markers(&self, why: String) -> BalancerError {
        BalancerError::Invalid(format!(
            "balancer '{}': cannot edit {}: {why}",
            self.name,
            self.cfg.config_file.display()
        ))
    }
}

#[async_trait]
impl Balancer for Haproxy {
    async fn get_nodes(&self, pool: &str) -> Result<BTreeSet<Node>, BalancerError> {
        let backend = self.backend(pool)?;
        Ok(self.servers(&backend).await?.map(|s| s.into_keys().collect()).unwrap_or_default())
    }

    async fn add_nodes(&self, pool: &str, nodes: &BTreeSet<Node>) -> Result<(), BalancerError> {
        let backend = self.backend(pool)?;
        let targets = self.targets(nodes.iter())?;
        if targets.is_empty() {
            return Ok(());
        }
        let _edit = self.edit.lock().await;
        match self.servers(&backend).await? {
            Some(current) => self.add_to_running(pool, &backend, &current, &targets).await,
            None => self.add_backend(pool, &backend, &targets).await,
        }
    }

    async fn delete_nodes(&self, pool: &str, nodes: &BTreeSet<Node>) -> Result<(), BalancerError> {
        let backend = self.backend(pool)?;
        self.targets(nodes.iter())?;
        let doomed = |current: &BTreeMap<Node, String>| -> Vec<String> {
            nodes.iter().filter_map(|n| current.get(n).cloned()).collect()
        };
        let Some(current) = self.servers(&backend).await? else { return Ok(()) };
        let draining = doomed(&current);
        if draining.is_empty() {
            return Ok(());
        }
        let drain = Duration::from_secs(self.cfg.drain_secs);
        remove::drain(&self.runtime, &backend, &draining, drain).await?;
        let _edit = self.edit.lock().await;
        // Looked up again: another pool's reload may have run meanwhile.
        let current = self.servers(&backend).await?.unwrap_or_default();
        let removed = remove::remove_all(&self.runtime, &backend, &doomed(&current)).await;
        let saved = self.save_running(pool, &backend).await;
        removed.and(saved)
    }

    async fn delete_pool_if_empty(&self, pool: &str) -> Result<(), BalancerError> {
        let backend = self.backend(pool)?;
        let _edit = self.edit.lock().await;
        if self.servers(&backend).await?.is_some_and(|s| !s.is_empty()) {
            return Ok(());
        }
        let before = file::read(&self.cfg.config_file).await?;
        let Some(after) = cfg::remove_if_empty(&before, pool).map_err(|why| self.bad_markers(why))? else {
            return Ok(());
        };
        // A frontend naming the backend makes haproxy refuse the file without it: then the empty
        // section stays, which serves nothing and harms nothing.
        if let Err(kept) = self.replace(&before, &after).await {
            tracing::warn!(balancer = %self.name, pool, "kept the empty backend {backend}: {kept}");
        }
        Ok(())
    }
}
