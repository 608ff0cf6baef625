//! pairtun: keep SSH port forwards up all day.

#![forbid(unsafe_code)]

pub mod accept;
pub mod backoff;
pub mod config;
pub mod control;
pub mod daemon;
pub mod doctor;
pub mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod invite;
pub mod logging;
pub mod net;
pub mod protocol;
pub mod ssh;
pub mod tunnel;
pub mod wakeup;
