//! Services: the daemon's capabilities, built on the host layer. Each is usable without RPC.

pub mod balancer;
pub mod builder;
pub mod builds;
pub mod hosts;
pub mod imager;
pub mod leadership;
pub mod logs;
pub mod metrics;
pub mod peer;
pub mod runner;
pub mod stacks;
pub mod state;
pub mod supervisor;
pub mod swarm;
pub mod users;
