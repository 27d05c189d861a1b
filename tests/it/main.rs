//! The one integration test binary (matklad's layout): root tests that start real daemons and real
//! containers, and the tidy checks that keep the house rules from drifting.

#![allow(clippy::unwrap_used)] // Test helpers panic with the failure; that is the report.

mod balancer_concurrency;
mod balancer_files;
mod balancer_haproxy;
mod builder;
mod buildpack_habits;
mod container;
mod coordinators;
mod dashboard;
mod empty_pools;
mod fleet;
mod fleet_bench;
mod fleet_routing;
mod harness;
mod host_limits;
mod hostile;
mod https;
mod imager;
mod jobs;
mod journald;
mod load;
mod metrics;
mod netns;
mod pg;
mod private_network;
mod privilege;
mod proxies;
mod runner;
mod seccomp;
mod selinux;
mod stacks;
mod supervision;
mod swarm_fixture;
mod swarms;
mod systemd_watchdog;
mod tidy;
mod users;
mod zero_downtime;
