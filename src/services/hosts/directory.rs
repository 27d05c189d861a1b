//! The host directory of a vrd without peers: its own machine (a host definition without `peer`)
//! is this vrd's supervisor; a host served by a peer vrd cannot be reached yet.

use std::sync::Arc;

use super::local::LocalHost;
use super::{HostAgent, HostDirectory, HostError};
use crate::model::deploy::HostSpec;
use crate::services::builds::BuildStore;
use crate::services::supervisor::Supervisor;

/// This vrd's hosts: only itself.
pub struct LocalDirectory {
    supervisor: Supervisor,
    store: BuildStore,
    balancers: Option<Arc<crate::services::balancer::Balancers>>,
}

impl LocalDirectory {
    /// The directory whose local host is `supervisor`, with artifacts from `store`.
    pub fn new(supervisor: Supervisor, store: BuildStore) -> LocalDirectory {
        LocalDirectory { supervisor, store, balancers: None }
    }

    /// The same directory; its host routes pool changes into `balancers`.
    pub fn with_balancers(mut self, balancers: Arc<crate::services::balancer::Balancers>) -> LocalDirectory {
        self.balancers = Some(balancers);
        self
    }
}

impl HostDirectory for LocalDirectory {
    fn agent(&self, host: &HostSpec) -> Result<Arc<dyn HostAgent>, HostError> {
        match &host.peer {
            None => {
                let local = LocalHost::new(&host.name, self.supervisor.clone(), self.store.clone(), None);
                Ok(Arc::new(match &self.balancers {
                    Some(b) => local.with_balancers(Arc::clone(b)),
                    None => local,
                }))
            }
            Some(peer) => Err(HostError::Unreachable {
                host: host.name.clone(),
                why: format!("it is served by the peer vrd at {peer}, and this vrd has no peer mode yet"),
            }),
        }
    }
}
