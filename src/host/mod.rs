//! The host layer: everything that touches this machine's kernel on behalf of one container or
//! artifact (cgroups, images and builds on disk, the container launcher). Uses `sys` and `model`.

pub mod cgroup;
pub mod container;
pub mod image;
pub mod network;
pub mod perms;
pub mod procfs;
