//! The control plane: the daemon's Unix socket ([`socket`]), the loop that serves it
//! ([`server`]) and the client `pairtunctl` uses ([`client`]). The messages themselves are in
//! [`crate::protocol`].

pub mod client;
pub(crate) mod frame;
pub mod server;
mod slots;
pub mod socket;

pub use client::{Client, ClientError, ResponseStream};
pub use server::{Handler, Limits, Reply, peer_allowed, serve};
pub use socket::{BindError, Listener, bind, default_socket_path, prepare_dir};

#[cfg(test)]
mod tests;
