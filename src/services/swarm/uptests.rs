//! Scheduled uptests (VR's hourly `uptest_all_procs`): every running proc of every host is tested
//! where it runs; failures go to the deployment log as one `scheduled,failed` entry, and the run is kept
//! for `vr uptests`. The same schedule drops port locks a stopped vrd left behind.

use std::sync::Arc;
use std::time::Duration;

use super::{SwarmError, Swarms};
use crate::model::deploy::Kind;
use crate::model::supervision::ProcState;
use crate::model::uptest::{UptestFailure, UptestRun};

/// VR's interval for scheduled uptests.
pub const UPTEST_INTERVAL: Duration = Duration::from_secs(3600);
/// Port locks older than this were left by a dispatch that never finished (VR: 7 days).
const STALE_PORT_LOCK_SECS: i64 = 7 * 24 * 3600;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl Swarms {
    /// Tests every running proc of every reachable host (swarms' or not).
    pub async fn uptest_all(&self) -> Result<UptestRun, SwarmError> {
        let start = now();
        let mut failures = Vec::new();
        let mut tested = 0;
        for host in self.hosts().await? {
            let listed = match self.agent(&host) {
                Ok(agent) => agent.procs().await.map(|procs| (agent, procs)),
                Err(e) => Err(e),
            };
            let (agent, procs) = match listed {
                Ok(found) => found,
                Err(e) => {
                    failures.push(failure(&host.name, "-", e.to_string()));
                    continue;
                }
            };
            for proc in procs.into_iter().filter(|p| p.state == ProcState::Running) {
                tested += 1;
                match agent.uptest(&proc.name).await {
                    Ok(results) if results.iter().all(|r| r.passed) => {}
                    Ok(results) => failures.push(UptestFailure {
                        host: host.name.clone(),
                        proc: proc.name.clone(),
                        results: results.into_iter().filter(|r| !r.passed).collect(),
                    }),
                    // A proc that went away meanwhile is not a failure (VR's ignore_missing_procs).
                    Err(crate::services::hosts::HostError::NoProc { .. }) => tested -= 1,
                    Err(e) => failures.push(failure(&host.name, &proc.name, e.to_string())),
                }
            }
        }
        let run = UptestRun { start, end: now(), procs: tested, failures };
        self.count_failures(&run).await;
        self.report(&run).await;
        *self.latest_uptests.lock().unwrap_or_else(|p| p.into_inner()) = Some(run.clone());
        Ok(run)
    }

    /// The newest run.
    pub fn latest_uptests(&self) -> Option<UptestRun> {
        self.latest_uptests.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Counts the failed procs in the metrics, by the swarm that owns each ("-": none does, or
    /// the host could not be reached).
    async fn count_failures(&self, run: &UptestRun) {
        if run.failures.is_empty() {
            return;
        }
        let records = self.state.swarm_procs(None).await.unwrap_or_default();
        for f in &run.failures {
            let owner = records.iter().find(|r| r.host == f.host && r.proc == f.proc);
            crate::services::metrics::metrics().uptests_failed(owner.map_or("-", |r| r.swarm.as_str()), 1);
        }
    }

    async fn report(&self, run: &UptestRun) {
        let trace = super::progress::Trace::new(None, self.state.clone(), self.live.clone());
        if run.failures.is_empty() {
            trace
                .step(
                    &["scheduled", "uptest", "done"],
                    format!("Scheduled uptests passed on {} procs", run.procs),
                )
                .await;
            return;
        }
        let lines: Vec<String> = run
            .failures
            .iter()
            .flat_map(|f| {
                f.results
                    .iter()
                    .map(move |r| format!("{}@{}: {} failed:\n{}", f.proc, f.host, r.name, r.output))
            })
            .collect();
        trace
            .step(
                &["scheduled", "failed", "done"],
                format!("scheduled uptest failures\n{}", lines.join("\n")),
            )
            .await;
    }

    /// Runs the uptests and the port-lock sweep every `every`, until vrd stops.
    pub fn spawn_schedule(self: &Arc<Self>, every: Duration) {
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(swarms) = this.upgrade() else { return };
                if !swarms.leads() {
                    continue;
                }
                if let Err(e) = swarms.uptest_all().await {
                    tracing::error!(error = %e, "scheduled uptests failed");
                }
                match swarms.state.prune_port_locks(STALE_PORT_LOCK_SECS).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(locks = n, "dropped port locks older than 7 days"),
                    Err(e) => tracing::error!(error = %e, "failed to prune port locks"),
                }
            }
        });
    }

    /// Whether any swarm is defined (the schedule has nothing to do otherwise).
    pub async fn any_swarm(&self) -> Result<bool, SwarmError> {
        Ok(!self.state.list_definitions(Kind::Swarm).await?.is_empty())
    }
}

fn failure(host: &str, proc: &str, output: String) -> UptestFailure {
    UptestFailure {
        host: host.to_string(),
        proc: proc.to_string(),
        results: vec![crate::model::uptest::UptestResult { name: "uptester".into(), output, passed: false }],
    }
}
