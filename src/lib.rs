//! vr: a Heroku-style PaaS in one static daemon (`vrd`) and a thin client (`vr`).
//!
//! # Layout
//!
//! Dependencies run one way: `bin → daemon → services → host → sys`, and `model` (plain validated
//! data, no I/O) may be used from everywhere. `api` is the wire contract between `vr` and `vrd` and
//! sits beside `model`. `cli` is the client side and talks to `vrd` only through `api`.
//! ARCHITECTURE.md has the map; `tests/it/tidy.rs` enforces the layering.

pub mod api;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod host;
pub mod model;
pub mod services;
#[allow(unsafe_code)]
pub mod sys;
