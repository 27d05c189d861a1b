//! The fleet API: adding hosts (join tokens), their links, and revoking a deleted host.

use jsonrpsee::core::RpcResult;

use super::rpc::{error, RpcHandler};
use crate::api::{codes, HostJoin, HostLink};
use crate::model::deploy::{Definition, Kind};
use crate::services::peer::enroll::{self, EnrollError};

fn enroll_error(e: EnrollError) -> jsonrpsee::types::ErrorObjectOwned {
    match e {
        EnrollError::Invalid(m) => error(codes::INVALID, m),
        EnrollError::State(s) => super::deploy_calls::state_error(s),
    }
}

impl RpcHandler {
    fn join_info(&self, host: &str, token: String) -> RpcResult<HostJoin> {
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
    ) -> RpcResult<HostJoin> {
        self.join_info(&name, String::new())?;
        let squad = squad.unwrap_or_else(|| crate::model::deploy::DEFAULT_SQUAD.to_string());
        let state = self.daemon.supervisor.state();
        let token = enroll::add_host(state, &name, &address, &squad).await.map_err(enroll_error)?;
        self.join_info(&name, token)
    }

    pub(super) async fn host_token(&self, name: String) -> RpcResult<HostJoin> {
        self.join_info(&name, String::new())?;
        let token = enroll::token_for(self.daemon.supervisor.state(), &name).await.map_err(enroll_error)?;
        self.join_info(&name, token)
    }

    pub(super) async fn host_links(&self) -> RpcResult<Vec<HostLink>> {
        let peers = &self.daemon.fleet.peers;
        let secs = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
        };
        let linked = peers.list();
        let state = self.daemon.supervisor.state();
        let defs = state.list_definitions(Kind::Host).await.map_err(super::deploy_calls::state_error)?;
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
                since: link.map(|l| l.since).or_else(|| peers.lost_since(&h.name)).map(secs),
                version: link.map(|l| l.version.clone()),
            });
        }
        Ok(links)
    }

    /// A deleted host's certificate is refused from now on, and its link cut.
    pub(super) async fn revoke_host(&self, name: &str) -> RpcResult<()> {
        self.daemon
            .supervisor
            .state()
            .revoke_host(name.to_string())
            .await
            .map_err(super::deploy_calls::state_error)?;
        self.daemon.fleet.peers.cut(name);
        Ok(())
    }
}
