//! The fleet API: adding hosts (join tokens), their links, and revoking a deleted host.

use super::error::{enroll_error, error, state_error, OpResult};
use super::Ops;
use crate::api::{codes, CoordinatorView, HostJoin, HostLink, HostRow, LeaderView};
use crate::model::deploy::{Definition, Kind};
use crate::services::peer::enroll;

impl Ops {
    fn join_info(&self, host: &str, token: String) -> OpResult<HostJoin> {
        let fleet = &self.daemon.fleet;
        let (Some(coordinator), Some(advertise)) = (&fleet.coordinator, &fleet.advertise) else {
            return Err(error(
                codes::INVALID,
                "this vrd does not coordinate hosts: set peer_listen (and peer_advertise, the address hosts dial) in its config",
            ));
        };
        let pin = coordinator.pin();
        let command = format!("vrd join {advertise} --token {token} --ca-sha256 {pin} --host-name {host}");
        Ok(HostJoin {
            host: host.to_string(),
            token,
            ca_sha256: pin,
            coordinator: advertise.clone(),
            command,
        })
    }

    pub(super) async fn add_host(
        &self,
        name: String,
        address: String,
        squad: Option<String>,
    ) -> OpResult<HostJoin> {
        self.join_info(&name, String::new())?;
        let squad = squad.unwrap_or_else(|| crate::model::deploy::DEFAULT_SQUAD.to_string());
        let state = self.daemon.supervisor.state();
        let token = enroll::add_host(state, &name, &address, &squad).await.map_err(enroll_error)?;
        self.join_info(&name, token)
    }

    pub(super) async fn host_token(&self, name: String) -> OpResult<HostJoin> {
        self.join_info(&name, String::new())?;
        let token = enroll::token_for(self.daemon.supervisor.state(), &name).await.map_err(enroll_error)?;
        self.join_info(&name, token)
    }

    pub(super) async fn leader(&self) -> OpResult<LeaderView> {
        let state = self.daemon.supervisor.state();
        let held = state.lease_holder().await.map_err(state_error)?;
        let model = match state.engine() {
            crate::services::state::sql::EngineKind::Sqlite => "sqlite",
            crate::services::state::sql::EngineKind::Postgres => "postgresql",
        };
        Ok(LeaderView {
            model: model.to_string(),
            this: self.daemon.host.clone(),
            leads: self.daemon.leadership.leads(),
            holder: held.as_ref().map(|h| h.holder.clone()),
            address: held.as_ref().and_then(|h| h.address.clone()),
            epoch: held.as_ref().map(|h| h.epoch),
            expires_in_ms: held.map(|h| h.expires_in_ms),
            coordinators: state
                .coordinators()
                .await
                .map_err(state_error)?
                .into_iter()
                .map(|c| CoordinatorView { name: c.name, address: c.address, ca_sha256: c.ca_sha256 })
                .collect(),
        })
    }

    pub(super) async fn host_links(&self) -> OpResult<Vec<HostLink>> {
        let peers = &self.daemon.fleet.peers;
        let linked = peers.list();
        let state = self.daemon.supervisor.state();
        let defs = state.list_definitions(Kind::Host).await.map_err(state_error)?;
        let now = std::time::SystemTime::now();
        let mut links = Vec::new();
        for def in defs {
            let Definition::Host(h) = def else { continue };
            if h.peer.is_none() {
                continue;
            }
            let link = linked.iter().find(|l| l.name == h.name);
            links.push(HostLink {
                host: h.name.clone(),
                connected: link.is_some(),
                state: peers.health(&h.name, now).as_str().to_string(),
                since: link.map(|l| l.since).or_else(|| peers.lost_since(&h.name)).map(unix_secs),
                version: link.map(|l| l.version.clone()),
            });
        }
        Ok(links)
    }

    /// Every host with its state, last heartbeat, procs and version. Joined hosts are asked for
    /// their procs at once, each for at most the listing's deadline.
    pub(super) async fn list_hosts(&self) -> OpResult<Vec<HostRow>> {
        let state = self.daemon.supervisor.state();
        let defs = state.list_definitions(Kind::Host).await.map_err(state_error)?;
        let local = self.daemon.supervisor.list().await.map_err(super::error::supervisor_error)?;
        let joined = self.daemon.swarms.joined_procs().await.map_err(super::error::swarm_error)?;
        let peers = &self.daemon.fleet.peers;
        let linked = peers.list();
        let now = std::time::SystemTime::now();
        let mut rows = Vec::new();
        for def in defs {
            let Definition::Host(h) = def else { continue };
            let link = linked.iter().find(|l| l.name == h.name);
            let (state, procs, version) = match &h.peer {
                None => {
                    let here = if h.name == self.daemon.host { local.len() } else { 0 };
                    ("local".to_string(), Some(here as u64), Some(env!("CARGO_PKG_VERSION").to_string()))
                }
                Some(_) => {
                    let mine = joined.iter().filter(|p| p.host == h.name);
                    let unknown =
                        mine.clone().any(|p| p.statename == crate::services::swarm::listing::UNKNOWN);
                    let count = (!unknown && link.is_some()).then(|| mine.count() as u64);
                    (peers.health(&h.name, now).as_str().to_string(), count, link.map(|l| l.version.clone()))
                }
            };
            rows.push(HostRow {
                squad: h.squad.clone().unwrap_or_else(|| crate::model::deploy::DEFAULT_SQUAD.to_string()),
                address: h.node_address().to_string(),
                joined: h.peer.is_some(),
                active: h.active,
                draining: h.draining,
                state,
                last_heartbeat: peers.last_heard(&h.name).map(unix_secs),
                procs,
                version,
                host: h.name,
            });
        }
        Ok(rows)
    }

    /// A deleted host's certificate is refused from now on, and its link cut.
    pub(super) async fn revoke_host(&self, name: &str) -> OpResult<()> {
        self.daemon.supervisor.state().revoke_host(name.to_string()).await.map_err(state_error)?;
        self.daemon.fleet.peers.cut(name);
        Ok(())
    }
}

fn unix_secs(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
