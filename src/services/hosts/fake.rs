//! A host for unprivileged tests (youki's `network/fake.rs` idea): it keeps procs in memory, writes
//! every call into a [`Journal`] it may share with a recording balancer (so a test can assert the
//! order of deploys, routes and destroys), and fails on demand: unreachable, failing uptests, a
//! deploy that fails after the first N.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use super::{HostAgent, HostDirectory, HostError, HostHealth, HostProc};
use crate::model::deploy::release::ProcOrder;
use crate::model::deploy::HostSpec;
use crate::model::supervision::ProcState;
use crate::model::uptest::UptestResult;

/// An ordered record of calls, shared by the fakes of one test.
#[derive(Debug, Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    /// Appends one entry.
    pub fn write(&self, entry: String) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(entry);
    }

    /// Everything written so far.
    pub fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The index of the first entry that starts with `prefix`.
    pub fn position(&self, prefix: &str) -> Option<usize> {
        self.entries().iter().position(|e| e.starts_with(prefix))
    }
}

/// How a fake host behaves now.
#[derive(Debug, Default)]
struct Behaviour {
    unreachable: bool,
    hanging: bool,
    failing_uptests: bool,
    deploys_left: Option<usize>,
    lost_replies: bool,
}

/// A pool of a fake host's balancer: its generation and nodes.
type FakePool = (u64, std::collections::BTreeSet<String>);

/// One fake machine.
pub struct FakeHost {
    name: String,
    journal: Journal,
    procs: Mutex<BTreeMap<String, ProcState>>,
    behaviour: Mutex<Behaviour>,
    /// Its balancers' pools: (balancer, pool) → (generation, nodes).
    pools: Mutex<BTreeMap<(String, String), FakePool>>,
}

impl FakeHost {
    /// A reachable host called `name` writing to `journal`.
    pub fn new(name: &str, journal: &Journal) -> Arc<FakeHost> {
        Arc::new(FakeHost {
            name: name.to_string(),
            journal: journal.clone(),
            procs: Mutex::default(),
            behaviour: Mutex::default(),
            pools: Mutex::default(),
        })
    }

    fn behaviour(&self) -> std::sync::MutexGuard<'_, Behaviour> {
        self.behaviour.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn procs_now(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ProcState>> {
        self.procs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The nodes and generation of a pool of its balancers.
    pub fn pool(&self, balancer: &str, pool: &str) -> (u64, std::collections::BTreeSet<String>) {
        let pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools.get(&(balancer.to_string(), pool.to_string())).cloned().unwrap_or_default()
    }

    /// Every call fails as `Unreachable` while set.
    pub fn set_unreachable(&self, on: bool) {
        self.behaviour().unreachable = on;
    }

    /// Every call waits forever while set (a host stopped with SIGSTOP: its link stays up).
    pub fn set_hanging(&self, on: bool) {
        self.behaviour().hanging = on;
    }

    /// Every proc's uptests fail while set.
    pub fn set_failing_uptests(&self, on: bool) {
        self.behaviour().failing_uptests = on;
    }

    /// The next `n` deploys succeed, later ones fail.
    pub fn fail_deploys_after(&self, n: usize) {
        self.behaviour().deploys_left = Some(n);
    }

    /// Deploys are carried out but their replies are lost (Unreachable) while set: a link that
    /// drops, or a coordinator killed, while the host deploys.
    pub fn set_losing_deploy_replies(&self, on: bool) {
        self.behaviour().lost_replies = on;
    }

    /// The procs it runs.
    pub fn proc_names(&self) -> Vec<String> {
        self.procs_now().keys().cloned().collect()
    }

    async fn reach(&self, call: &str) -> Result<(), HostError> {
        let hanging = self.behaviour().hanging;
        if hanging {
            std::future::pending::<()>().await;
        }
        if self.behaviour().unreachable {
            return Err(HostError::Unreachable {
                host: self.name.clone(),
                why: format!("{call}: a test cut it off"),
            });
        }
        Ok(())
    }

    fn failed(&self, message: String) -> HostError {
        HostError::Failed { host: self.name.clone(), message }
    }
}

#[async_trait]
impl HostAgent for FakeHost {
    fn name(&self) -> &str {
        &self.name
    }

    async fn procs(&self) -> Result<Vec<HostProc>, HostError> {
        self.reach("procs").await?;
        Ok(self
            .procs_now()
            .iter()
            .map(|(name, state)| HostProc { name: name.clone(), state: *state })
            .collect())
    }

    async fn proc_infos(&self) -> Result<Vec<crate::api::ProcInfo>, HostError> {
        self.reach("proc_infos").await?;
        let procs = self.procs_now().clone();
        Ok(procs
            .into_iter()
            .map(|(name, state)| {
                let n = crate::model::names::ProcName::parse_lenient(&name);
                crate::api::ProcInfo {
                    id: format!("{}-{name}", self.name),
                    name,
                    host: self.name.clone(),
                    statename: state.as_str().into(),
                    state: state.code(),
                    desired: "running".into(),
                    pid: None,
                    exitstatus: None,
                    oom_killed: false,
                    spawnerr: None,
                    start_time: None,
                    stop_time: None,
                    app_name: n.app,
                    version: n.version,
                    config_name: n.config,
                    hash: n.hash,
                    proc_name: n.proc,
                    port: n.port,
                    volumes: false,
                }
            })
            .collect())
    }

    async fn port_is_free(&self, _port: u16) -> Result<bool, HostError> {
        self.reach("port_is_free").await?;
        Ok(true)
    }

    async fn deploy(&self, order: &ProcOrder) -> Result<(), HostError> {
        self.reach("deploy").await?;
        let name = order.name().map_err(|e| self.failed(e.to_string()))?.to_string();
        if let Some(left) = &mut self.behaviour().deploys_left {
            if *left == 0 {
                return Err(self.failed(format!("deploy of {name} failed: the test said so")));
            }
            *left -= 1;
        }
        self.journal.write(format!("deploy {}:{name}", self.name));
        self.procs_now().insert(name.clone(), ProcState::Running);
        if self.behaviour().lost_replies {
            return Err(HostError::Unreachable {
                host: self.name.clone(),
                why: format!("deploy of {name}: the test lost the reply"),
            });
        }
        Ok(())
    }

    async fn wait_running(&self, proc: &str, _timeout: Duration) -> Result<(), HostError> {
        self.reach("wait_running").await?;
        match self.procs_now().get(proc) {
            Some(ProcState::Running) => Ok(()),
            Some(other) => Err(self.failed(format!("{proc} is {}", other.as_str()))),
            None => {
                Err(HostError::NoProc { host: self.name.clone(), proc: proc.into(), hint: String::new() })
            }
        }
    }

    async fn wait_listening(&self, _proc: &str, _port: u16, _timeout: Duration) -> Result<(), HostError> {
        self.reach("wait_listening").await
    }

    async fn uptest(&self, proc: &str) -> Result<Vec<UptestResult>, HostError> {
        self.reach("uptest").await?;
        self.journal.write(format!("uptest {}:{proc}", self.name));
        let passed = !self.behaviour().failing_uptests;
        Ok(vec![UptestResult { name: "01_fake".into(), output: String::new(), passed }])
    }

    async fn logs(
        &self,
        proc: &str,
        _since: Option<String>,
        _tail: Option<usize>,
    ) -> Result<Vec<String>, HostError> {
        self.reach("logs").await?;
        Ok(vec![format!("2026-01-01T00:00:00Z out {proc} on {}", self.name)])
    }

    async fn events(
        &self,
        _after: Option<u64>,
        _limit: usize,
    ) -> Result<crate::api::host::HostEvents, HostError> {
        self.reach("events").await?;
        Ok(crate::api::host::HostEvents { last: 0, events: Vec::new() })
    }

    async fn fetch(&self, artifact: &crate::model::deploy::release::ArtifactRef) -> Result<(), HostError> {
        self.reach("fetch").await?;
        self.journal.write(format!(
            "fetch {}:{}",
            self.name,
            &artifact.sha256[..8.min(artifact.sha256.len())]
        ));
        Ok(())
    }

    async fn route(
        &self,
        change: &crate::api::host::PoolChange,
    ) -> Result<crate::api::host::PoolApplied, HostError> {
        use crate::api::host::PoolApplied;
        self.reach("route").await?;
        let key = (change.balancer.clone(), change.pool.clone());
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        let (at, nodes) = pools.entry(key).or_default();
        if change.generation < *at {
            return Ok(PoolApplied::Newer { generation: *at });
        }
        if change.generation == *at {
            return Ok(PoolApplied::Current);
        }
        let added = change.nodes.difference(nodes).cloned().collect();
        let removed = nodes.difference(&change.nodes).cloned().collect();
        (*at, *nodes) = (change.generation, change.nodes.clone());
        let list: Vec<&str> = change.nodes.iter().map(String::as_str).collect();
        let entry = format!(
            "route {}:{}/{} {} [{}]",
            self.name,
            change.balancer,
            change.pool,
            change.generation,
            list.join(" ")
        );
        self.journal.write(entry);
        Ok(PoolApplied::Applied { added, removed })
    }

    async fn act(&self, proc: &str, action: crate::api::host::ProcAction) -> Result<(), HostError> {
        self.reach("act").await?;
        self.journal.write(format!("{action:?} {}:{proc}", self.name).to_lowercase());
        if self.procs_now().contains_key(proc) {
            Ok(())
        } else {
            Err(HostError::NoProc { host: self.name.clone(), proc: proc.into(), hint: String::new() })
        }
    }

    async fn destroy(&self, proc: &str) -> Result<(), HostError> {
        self.reach("destroy").await?;
        self.journal.write(format!("destroy {}:{proc}", self.name));
        match self.procs_now().remove(proc) {
            Some(_) => Ok(()),
            None => {
                Err(HostError::NoProc { host: self.name.clone(), proc: proc.into(), hint: String::new() })
            }
        }
    }
}

/// The fake hosts of a test, by name, with the health a test gives them.
#[derive(Default)]
pub struct FakeDirectory {
    /// The hosts.
    pub hosts: BTreeMap<String, Arc<FakeHost>>,
    /// Health by host name (up when not given).
    pub health: Mutex<BTreeMap<String, HostHealth>>,
}

impl FakeDirectory {
    /// Sets `host`'s health (and makes it unreachable unless it is up).
    pub fn set_health(&self, host: &str, health: HostHealth) {
        self.health.lock().unwrap_or_else(PoisonError::into_inner).insert(host.to_string(), health);
        if let Some(h) = self.hosts.get(host) {
            h.set_unreachable(health != HostHealth::Up);
        }
    }
}

impl HostDirectory for FakeDirectory {
    fn health(&self, host: &HostSpec) -> HostHealth {
        let health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        health.get(&host.name).copied().unwrap_or(HostHealth::Up)
    }

    fn agent(&self, host: &HostSpec) -> Result<Arc<dyn HostAgent>, HostError> {
        match self.hosts.get(&host.name) {
            Some(h) => Ok(Arc::clone(h) as Arc<dyn HostAgent>),
            None => Err(HostError::Unreachable {
                host: host.name.clone(),
                why: "no fake host of that name".into(),
            }),
        }
    }
}
