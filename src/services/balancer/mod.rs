//! Load balancers: Velociraptor's balancer interface (get_nodes, add_nodes, delete_nodes,
//! delete_pool_if_empty) and its backends. A *pool* is a named set of *nodes* (`host:port`); a
//! swarm routes its uptested procs into its pool on the balancer it names.
//!
//! [`Balancers`] is the one way in: it holds the configured backends by name and serialises every
//! change of one pool behind that pool's lock, so two dispatches (or a dispatch and a destroy)
//! changing one pool can't lose each other's update, which VR's unlocked read-modify-write did.
//! Backends may therefore assume one writer per pool; file-writing backends still write each file
//! atomically (temp file, fsync, rename) so a crash never leaves half a file for nginx to read.

mod builtin;
mod check;
pub(crate) mod command;
mod dummy;
pub mod exec;
mod fenced;
pub(crate) mod files;
pub mod haproxy;
pub mod nginx;
pub mod remote;
pub mod varnish;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::model::balancer::{self as config, BalancerConfig};
use crate::services::state::{State, StateError};

/// A node: `host:port`.
pub type Node = String;

/// Why a balancer call failed; the message says which balancer, which pool, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum BalancerError {
    /// No balancer of that name is configured.
    #[error("there is no balancer named '{name}'; configured: {known}; add a [balancers.{name}] table to vrd's config file")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The configured names, comma-separated.
        known: String,
    },
    /// The pool or a node is not acceptable to this backend.
    #[error("{0}")]
    Invalid(String),
    /// A file could not be read or written.
    #[error("failed to {what} {path}: {cause}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: std::path::PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// A command the backend runs (nginx -t, a reload, varnishadm, an exec plug-in) failed.
    #[error("{what} failed: {output}")]
    Command {
        /// What was being done, with the command.
        what: String,
        /// Its output (trimmed), or why it could not run.
        output: String,
    },
    /// The balancer's control interface (a socket, an API) could not be reached or refused.
    #[error("{0}")]
    Unreachable(String),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
}

/// One backend. Implementations need not lock: [`Balancers`] calls them one at a time per pool.
#[async_trait]
pub trait Balancer: Send + Sync {
    /// The pool's nodes; empty when the pool does not exist.
    async fn get_nodes(&self, pool: &str) -> Result<BTreeSet<Node>, BalancerError>;
    /// Adds nodes, creating the pool when needed; nodes already there are fine.
    async fn add_nodes(&self, pool: &str, nodes: &BTreeSet<Node>) -> Result<(), BalancerError>;
    /// Removes nodes; missing nodes and a missing pool are fine.
    async fn delete_nodes(&self, pool: &str, nodes: &BTreeSet<Node>) -> Result<(), BalancerError>;
    /// Removes the pool when it has no nodes left (a no-op where pools cost nothing).
    async fn delete_pool_if_empty(&self, pool: &str) -> Result<(), BalancerError>;
    /// Makes the pool hold exactly `wanted`: by default the missing nodes are added first, then
    /// the rest removed, and the pool dropped when it ends up empty.
    async fn set_nodes(&self, pool: &str, wanted: &BTreeSet<Node>) -> Result<Routed, BalancerError> {
        let before = self.get_nodes(pool).await?;
        let added: BTreeSet<Node> = wanted.difference(&before).cloned().collect();
        let removed: BTreeSet<Node> = before.difference(wanted).cloned().collect();
        if !added.is_empty() {
            self.add_nodes(pool, &added).await?;
        }
        if !removed.is_empty() {
            self.delete_nodes(pool, &removed).await?;
        }
        if wanted.is_empty() {
            self.delete_pool_if_empty(pool).await?;
        }
        Ok(Routed { before, added, removed })
    }
    /// Brings the copies of its pools kept elsewhere up to date: on `host`, or everywhere
    /// (a no-op for backends that keep their pools in one place).
    async fn resync(&self, host: Option<&str>) -> Result<(), BalancerError> {
        let _ = host;
        Ok(())
    }
}

/// What a [`Balancers::route`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routed {
    /// The nodes before.
    pub before: BTreeSet<Node>,
    /// Nodes added.
    pub added: BTreeSet<Node>,
    /// Nodes removed.
    pub removed: BTreeSet<Node>,
}

/// Everything a backend may need when it is built.
#[derive(Clone)]
pub struct Context {
    /// vrd's state, for backends that keep their node sets there.
    pub state: State,
}

/// What `remote` balancers need besides the state: the way to the hosts they live on.
#[derive(Clone)]
pub struct FleetContext {
    /// vrd's state (host definitions, pools and their generations).
    pub state: State,
    /// The agents of the fleet's hosts.
    pub hosts: Arc<dyn crate::services::hosts::HostDirectory>,
}

/// The longest [`Balancers::resync_host`] waits.
pub const RESYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// One lock per (balancer, pool), made on first use.
type PoolLocks = Mutex<HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>>;

/// The configured balancers by name, with one lock per (balancer, pool).
pub struct Balancers {
    backends: BTreeMap<String, Arc<dyn Balancer>>,
    kinds: BTreeMap<String, &'static str>,
    /// Shared with the registry [`Balancers::with_remotes`] makes, so both lock a pool alike.
    locks: Arc<PoolLocks>,
}

impl Balancers {
    /// Builds every configured backend of this host (plus the default builtin router, see
    /// [`config::with_default`]); `remote` ones are left to [`Balancers::with_remotes`].
    pub async fn start(
        configs: &BTreeMap<String, BalancerConfig>,
        ctx: &Context,
    ) -> Result<Balancers, BalancerError> {
        let mut backends = BTreeMap::new();
        let mut kinds = BTreeMap::new();
        for (name, cfg) in config::with_default(configs.clone()) {
            if matches!(cfg, BalancerConfig::Remote(_)) {
                continue;
            }
            let backend = build(&name, &cfg, ctx).await?;
            kinds.insert(name.clone(), cfg.kind());
            backends.insert(name, backend);
        }
        Ok(Balancers { kinds, ..Balancers::from_backends(backends) })
    }

    /// This host's balancers plus the configured `remote` ones: the registry swarms route
    /// through. This host's backends (and their pool locks) are shared, not built again.
    pub fn with_remotes(
        &self,
        configs: &BTreeMap<String, BalancerConfig>,
        fleet: &FleetContext,
    ) -> Result<Balancers, BalancerError> {
        let mut all = Balancers {
            backends: self.backends.clone(),
            kinds: self.kinds.clone(),
            locks: Arc::clone(&self.locks),
        };
        for (name, cfg) in configs {
            let BalancerConfig::Remote(remote) = cfg else { continue };
            remote.check(name).map_err(BalancerError::Invalid)?;
            let backend = remote::Remote::start(name, remote, fleet.clone());
            all.kinds.insert(name.clone(), cfg.kind());
            all.backends.insert(name.clone(), backend);
        }
        Ok(all)
    }

    /// A registry of ready-made backends (tests, and [`Balancers::start`]).
    pub fn from_backends(backends: BTreeMap<String, Arc<dyn Balancer>>) -> Balancers {
        Balancers { backends, kinds: BTreeMap::new(), locks: Arc::default() }
    }

    /// Brings every copy of the pools kept on `host` up to date (a host that is back; see
    /// `remote`), waiting at most [`RESYNC_WAIT`]: the caller (the watcher) must never hang on a
    /// host. Failures are logged; the periodic resend finishes what is left.
    pub async fn resync_host(&self, host: &str) {
        let all = async {
            for (name, backend) in &self.backends {
                if let Err(e) = backend.resync(Some(host)).await {
                    tracing::warn!(balancer = %name, host, error = %e, "failed to bring a host's pools up to date");
                }
            }
        };
        if tokio::time::timeout(RESYNC_WAIT, all).await.is_err() {
            tracing::warn!(
                host,
                "bringing a host's pools up to date takes long; the periodic resend goes on with it"
            );
        }
    }

    /// Each configured balancer's name and kind.
    pub fn kinds(&self) -> Vec<(String, String)> {
        self.backends
            .keys()
            .map(|n| (n.clone(), self.kinds.get(n).copied().unwrap_or("custom").to_string()))
            .collect()
    }

    /// The configured names.
    pub fn names(&self) -> Vec<String> {
        self.backends.keys().cloned().collect()
    }

    /// Checks that `name` is configured.
    pub fn check(&self, name: &str) -> Result<(), BalancerError> {
        self.backend(name).map(|_| ())
    }

    fn backend(&self, name: &str) -> Result<Arc<dyn Balancer>, BalancerError> {
        self.backends
            .get(name)
            .cloned()
            .ok_or_else(|| BalancerError::Unknown { name: name.to_string(), known: self.names().join(", ") })
    }

    /// Holds the pool's lock for the caller's critical section.
    async fn lock(&self, balancer: &str, pool: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(locks.entry((balancer.to_string(), pool.to_string())).or_default())
        };
        lock.lock_owned().await
    }

    /// The pool's nodes.
    pub async fn nodes(&self, balancer: &str, pool: &str) -> Result<BTreeSet<Node>, BalancerError> {
        let backend = self.backend(balancer)?;
        let _guard = self.lock(balancer, pool).await;
        backend.get_nodes(pool).await
    }

    /// Makes the pool hold exactly `wanted`: adds what is missing first, then removes the rest, so
    /// a pool being replaced never passes through empty. Drops the pool when it ends up empty.
    pub async fn route(
        &self,
        balancer: &str,
        pool: &str,
        wanted: &BTreeSet<Node>,
    ) -> Result<Routed, BalancerError> {
        let backend = self.backend(balancer)?;
        let _guard = self.lock(balancer, pool).await;
        let started = std::time::Instant::now();
        let routed = backend.set_nodes(pool, wanted).await;
        self.measured(balancer, started);
        routed
    }

    /// Adds nodes to the pool.
    pub async fn add(&self, balancer: &str, pool: &str, nodes: &BTreeSet<Node>) -> Result<(), BalancerError> {
        let backend = self.backend(balancer)?;
        let _guard = self.lock(balancer, pool).await;
        let started = std::time::Instant::now();
        let added = backend.add_nodes(pool, nodes).await;
        self.measured(balancer, started);
        added
    }

    /// Removes nodes from the pool, and the pool when it is left empty.
    pub async fn remove(
        &self,
        balancer: &str,
        pool: &str,
        nodes: &BTreeSet<Node>,
    ) -> Result<(), BalancerError> {
        let backend = self.backend(balancer)?;
        let _guard = self.lock(balancer, pool).await;
        let started = std::time::Instant::now();
        backend.delete_nodes(pool, nodes).await?;
        let removed = backend.delete_pool_if_empty(pool).await;
        self.measured(balancer, started);
        removed
    }

    /// Records how long a change of one of `balancer`'s pools took (its lock already held), by
    /// the balancer's kind.
    fn measured(&self, balancer: &str, started: std::time::Instant) {
        let kind = self.kinds.get(balancer).copied().unwrap_or("custom");
        crate::services::metrics::metrics().balancer_changed(kind, started.elapsed());
    }
}

/// Builds one backend from its settings.
async fn build(name: &str, cfg: &BalancerConfig, ctx: &Context) -> Result<Arc<dyn Balancer>, BalancerError> {
    Ok(match cfg {
        BalancerConfig::Dummy(_) => Arc::new(dummy::Dummy::new(name, ctx.state.clone())),
        BalancerConfig::Builtin(c) => Arc::new(builtin::Builtin::start(name, c, ctx.state.clone()).await?),
        BalancerConfig::Nginx(c) => Arc::new(nginx::Nginx::new(name, c)?),
        BalancerConfig::Varnish(c) => Arc::new(varnish::Varnish::new(name, c)?),
        BalancerConfig::Exec(c) => Arc::new(exec::Exec::new(name, c)?),
        BalancerConfig::Haproxy(c) => Arc::new(haproxy::Haproxy::new(name, c)?),
        BalancerConfig::Remote(_) => unreachable!("remote balancers are made by Balancers::with_remotes"),
    })
}

#[cfg(test)]
mod tests;
