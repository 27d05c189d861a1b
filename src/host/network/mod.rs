//! Private networks (`network: private`): a proc's own network namespace, kept between its runs
//! like its mount namespace, with one veth on the host's bridge, an address leased from the
//! bridge's subnet, outbound traffic masqueraded, and its port published on the host by its
//! launcher ([`publish`]). The launcher builds it (single-threaded, as root, in vrd's mount
//! namespace) on the proc's first run; setup and teardown release it.
//!
//! What the app no longer shares with the host: its interfaces and routes, /proc/net (every
//! socket of the host), abstract Unix sockets, and ports (it binds $PORT in its own namespace,
//! so a root app binding 80 takes nothing from the host).

mod kept;
mod leases;
mod links;
mod nat;
pub mod publish;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use kept::{address_of, ensure, release, Attached};

use crate::model::network::Subnet;

/// What a launcher needs to give a proc's container its private network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivatePlan {
    /// Where the proc's namespace is bound (in the proc dir); its address is noted beside it.
    pub netns: PathBuf,
    /// The host's bridge.
    pub bridge: String,
    /// The bridge's subnet.
    pub subnet: Subnet,
    /// The directory of address leases.
    pub leases: PathBuf,
    /// The port published on the host and forwarded to the same port of the container.
    pub publish: Option<u16>,
}
