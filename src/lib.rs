//! pairtun: keep SSH port forwards up all day.

pub mod backoff;
pub mod config;
pub mod daemon;
pub mod error;
pub mod logging;
pub mod net;
pub mod ssh;
pub mod tunnel;
