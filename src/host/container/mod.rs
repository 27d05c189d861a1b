//! One container, straight from the kernel: the launch plan (data), the launcher that applies it
//! (`vrd init`), and the pieces it needs (mounts, the image's users).

pub mod child;
pub mod kept_ns;
pub mod launcher;
pub mod log;
pub mod mounts;
pub mod overlay;
pub mod passwd;
pub mod plan;
pub mod spare;
pub mod spawner;
