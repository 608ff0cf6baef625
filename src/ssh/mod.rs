//! The SSH engine on russh: dialling, host-key verification, authentication, and the handler
//! that routes relay-initiated channels.

mod auth;
mod classify;
mod connect;
mod handler;
pub mod host_key_order;
pub mod known_hosts;
mod session;

pub use classify::session_error;
pub use connect::{
    Connected, Handle, client_config, connect, disconnect, disconnect_all, phase_timeout,
};
pub use handler::{ClientHandler, HostKeyCheck};
pub use session::{Route, RouteKey, SessionShared};
