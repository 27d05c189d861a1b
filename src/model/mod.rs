//! Plain, validated data shared by every layer: names, proc.yaml, image.yaml, limits. No I/O here.

pub mod audit;
pub mod balancer;
pub mod build_data;
pub mod build_record;
pub mod deploy;
pub mod exit;
pub mod image_data;
pub mod image_record;
pub mod limits;
pub mod names;
pub mod network;
pub mod proc_data;
pub mod procfile;
pub mod slugignore;
pub mod supervision;
pub mod typed;
pub mod uptest;
pub mod users;
pub mod yaml;
