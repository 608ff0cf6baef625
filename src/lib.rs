//! pairtun: keep SSH port forwards up all day.

#![deny(unsafe_code)] // allowed in one place: `ticker::fd` (a syscall-level registration)

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
pub mod ticker;
pub mod tunnel;
pub mod wakeup;
