//! pairtun: keep SSH port forwards up all day.

pub mod config;
pub mod error;
