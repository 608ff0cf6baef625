//! Configuration: raw TOML → validated [`Config`] (SPEC §2).

mod model;

pub use model::*;
