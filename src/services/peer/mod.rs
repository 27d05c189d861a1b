//! Peer mode: many hosts under one coordinating vrd. `pki` is the fleet's CA and certificates.
//! See ARCHITECTURE.md "The fleet".

pub mod client;
pub mod coordinators;
pub mod directory;
pub mod enroll;
pub mod events;
pub mod identity;
pub mod link;
pub mod pki;
pub mod remote;
pub mod served;
pub mod tls;
