//! pairtun's integration tests: one binary (one link step) with shared fixtures in `support`.

mod auth;
mod binary;
mod control;
mod fixtures;
mod harness;
mod reach;
mod resilience;
mod secrets;
mod service;
mod support;
mod tunnels;
