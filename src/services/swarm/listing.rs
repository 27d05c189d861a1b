//! The fleet in one listing: every joined host is asked for its procs at once and given at most
//! [`LISTING_DEADLINE`]; a host that cannot answer (down, suspect, hung) shows the procs its
//! swarms recorded there as `UNKNOWN`, with why, instead of holding the listing (VR's dashboard
//! hung on one dead host and silently dropped its procs from the counts).

use std::time::Duration;

use futures::future::join_all;

use super::{SwarmError, Swarms};
use crate::api::ProcInfo;
use crate::model::deploy::records::SwarmProcRecord;
use crate::model::deploy::HostSpec;
use crate::model::names::ProcName;

/// How long a listing waits for one host.
pub const LISTING_DEADLINE: Duration = Duration::from_secs(2);

/// The state name of a proc whose host cannot say.
pub const UNKNOWN: &str = "UNKNOWN";

/// A row for a recorded proc of a host that did not answer.
fn unknown(record: &SwarmProcRecord, why: &str) -> ProcInfo {
    let n = ProcName::parse_lenient(&record.proc);
    ProcInfo {
        name: record.proc.clone(),
        id: format!("{}-{}", record.host, record.proc),
        host: record.host.clone(),
        statename: UNKNOWN.into(),
        state: -1,
        desired: "running".into(),
        pid: None,
        exitstatus: None,
        oom_killed: false,
        spawnerr: Some(why.to_string()),
        start_time: None,
        stop_time: None,
        app_name: n.app,
        version: n.version,
        config_name: n.config,
        hash: n.hash,
        proc_name: n.proc,
        port: record.port,
        volumes: false,
    }
}

impl Swarms {
    /// The log of a proc that runs on a joined host (`None`: no joined host runs it, as far as
    /// the swarms' records say).
    pub async fn joined_proc_logs(
        &self,
        proc: &str,
        since: Option<String>,
        tail: Option<usize>,
    ) -> Result<Option<Vec<String>>, SwarmError> {
        let records = self.state.swarm_procs(None).await?;
        let Some(record) = records.iter().find(|r| r.proc == proc) else {
            return self.gone_proc_logs(proc, since, tail).await;
        };
        let hosts = self.hosts().await?;
        let Some(host) = hosts.iter().find(|h| h.name == record.host && h.peer.is_some()) else {
            return Ok(None);
        };
        Ok(Some(self.hosts.agent(host)?.logs(proc, since, tail).await?))
    }

    /// The kept log of a proc no swarm records any more (retired or destroyed): every joined
    /// host is asked at once (each for at most [`LISTING_DEADLINE`]); the first that has it wins.
    async fn gone_proc_logs(
        &self,
        proc: &str,
        since: Option<String>,
        tail: Option<usize>,
    ) -> Result<Option<Vec<String>>, SwarmError> {
        let hosts: Vec<HostSpec> = self.hosts().await?.into_iter().filter(|h| h.peer.is_some()).collect();
        let asks = hosts.iter().filter_map(|h| self.hosts.agent(h).ok()).map(|agent| {
            let since = since.clone();
            async move { tokio::time::timeout(LISTING_DEADLINE, agent.logs(proc, since, tail)).await }
        });
        Ok(join_all(asks).await.into_iter().find_map(|answer| answer.ok().and_then(Result::ok)))
    }

    /// The agents of the joined hosts that are linked now, by host name.
    pub async fn joined_agents(
        &self,
    ) -> Result<Vec<(String, std::sync::Arc<dyn crate::services::hosts::HostAgent>)>, SwarmError> {
        let hosts = self.hosts().await?;
        Ok(hosts
            .iter()
            .filter(|h| h.peer.is_some())
            .filter_map(|h| Some((h.name.clone(), self.hosts.agent(h).ok()?)))
            .collect())
    }

    /// Flags the rows of procs whose swarm binds volumes: the watcher never moves those off a
    /// lost host, so a listing says which they are (the same rule, from the swarms' definitions).
    pub async fn flag_volumes(&self, rows: &mut [ProcInfo]) -> Result<(), SwarmError> {
        let with_volumes: std::collections::BTreeSet<String> = self
            .state
            .list_definitions(crate::model::deploy::Kind::Swarm)
            .await?
            .into_iter()
            .filter_map(|d| match d {
                crate::model::deploy::Definition::Swarm(s) if !s.volumes.is_empty() => Some(s.name),
                _ => None,
            })
            .collect();
        if with_volumes.is_empty() {
            return Ok(());
        }
        let records = self.state.swarm_procs(None).await?;
        let flagged: std::collections::BTreeSet<(&str, &str)> = records
            .iter()
            .filter(|r| with_volumes.contains(&r.swarm))
            .map(|r| (r.host.as_str(), r.proc.as_str()))
            .collect();
        for row in rows {
            row.volumes = flagged.contains(&(row.host.as_str(), row.name.as_str()));
        }
        Ok(())
    }

    /// The procs of every joined host (the caller lists the ones this vrd runs itself).
    pub async fn joined_procs(&self) -> Result<Vec<ProcInfo>, SwarmError> {
        let hosts: Vec<HostSpec> = self.hosts().await?.into_iter().filter(|h| h.peer.is_some()).collect();
        let records = self.state.swarm_procs(None).await?;
        let asks = hosts.iter().map(|host| async {
            let answer = match self.hosts.agent(host) {
                Ok(agent) => match tokio::time::timeout(LISTING_DEADLINE, agent.proc_infos()).await {
                    Ok(Ok(procs)) => Ok(procs),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!(
                        "host {} did not answer within {} s",
                        host.name,
                        LISTING_DEADLINE.as_secs()
                    )),
                },
                Err(e) => Err(e.to_string()),
            };
            answer.unwrap_or_else(|why| {
                let why = format!("{} ({})", why, self.hosts.health(host).as_str());
                records.iter().filter(|r| r.host == host.name).map(|r| unknown(r, &why)).collect()
            })
        });
        Ok(join_all(asks).await.into_iter().flatten().collect())
    }
}
