//! pairtun's integration tests: one binary (one link step) with shared fixtures in `support`.

mod auth;
mod binary;
mod certs;
mod control;
mod fixtures;
mod harness;
mod host_keys;
mod limits;
mod reach;
mod resilience;
mod scale;
mod secrets;
mod service;
mod support;
mod tunnels;
