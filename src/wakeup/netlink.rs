//! Linux network changes: an `rtnetlink` socket subscribed to link, address and route events.
//! The messages are classified by type; a link message is also checked for a wireless
//! attribute (a Wi-Fi card's periodic event, not a change), nothing else is interpreted.

use std::io;

use netlink_sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket, protocols::NETLINK_ROUTE};
use nix::libc;
use tokio::sync::mpsc;

/// Multicast groups whose messages mean the network may have changed.
const GROUPS: libc::c_int = libc::RTMGRP_LINK
    | libc::RTMGRP_IPV4_IFADDR
    | libc::RTMGRP_IPV6_IFADDR
    | libc::RTMGRP_IPV4_ROUTE
    | libc::RTMGRP_IPV6_ROUTE;

/// Message types that are a change (the groups above also carry other types).
const CHANGES: [u16; 6] = [
    libc::RTM_NEWLINK,
    libc::RTM_DELLINK,
    libc::RTM_NEWADDR,
    libc::RTM_DELADDR,
    libc::RTM_NEWROUTE,
    libc::RTM_DELROUTE,
];

/// A subscribed netlink route socket.
pub struct RouteEvents {
    socket: TokioSocket,
}

impl RouteEvents {
    /// Opens and subscribes the socket. Must be called within a tokio runtime.
    pub fn open() -> io::Result<RouteEvents> {
        let mut socket = TokioSocket::new(NETLINK_ROUTE)?;
        socket
            .socket_mut()
            .bind(&SocketAddr::new(0, GROUPS as u32))?;
        Ok(RouteEvents { socket })
    }

    /// Forwards one `()` per datagram holding a change, on a task that ends when the receiver
    /// is dropped or the socket fails.
    pub fn spawn(self) -> mpsc::Receiver<()> {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(64 * 1024);
            loop {
                buf.clear();
                let changed = match self.socket.recv(&mut buf).await {
                    Ok(()) => holds_change(&buf),
                    // The kernel dropped messages because we read too slowly: something changed.
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "netlink socket failed; network changes are no longer watched");
                        return;
                    }
                };
                if changed && !super::notify(&tx) {
                    return;
                }
            }
        });
        rx
    }
}

/// Whether a netlink datagram holds at least one link/address/route change. Walks the
/// `nlmsghdr` chain (length `u32`, type `u16`, native endian, 4-byte aligned); a malformed
/// chain ends the walk. A wireless event (a `RTM_NEWLINK` carrying `IFLA_WIRELESS`: scan
/// results, signal changes, sent every few seconds by a Wi-Fi card in use) is not a change.
pub(super) fn holds_change(mut datagram: &[u8]) -> bool {
    const HEADER: usize = 16;
    while datagram.len() >= HEADER {
        let len = u32::from_ne_bytes([datagram[0], datagram[1], datagram[2], datagram[3]]) as usize;
        let kind = u16::from_ne_bytes([datagram[4], datagram[5]]);
        let message = datagram.get(..len).unwrap_or(datagram);
        if CHANGES.contains(&kind) && !(kind == libc::RTM_NEWLINK && is_wireless_event(message)) {
            return true;
        }
        if len < HEADER {
            return false;
        }
        let aligned = len.div_ceil(4) * 4;
        datagram = datagram.get(aligned..).unwrap_or_default();
    }
    false
}

/// Whether a `RTM_NEWLINK` message (header included) carries an `IFLA_WIRELESS` attribute: the
/// attributes (`rtattr`: length `u16`, type `u16`, 4-byte aligned) follow the 16-byte header
/// and the 16-byte `ifinfomsg`. A malformed attribute ends the walk.
fn is_wireless_event(message: &[u8]) -> bool {
    const ATTRIBUTES: usize = 16 + 16;
    /// Attribute type bits that are flags (`NLA_F_NESTED`, `NLA_F_NET_BYTEORDER`).
    const TYPE_MASK: u16 = 0x3fff;
    let mut rest = message.get(ATTRIBUTES..).unwrap_or_default();
    while rest.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & TYPE_MASK;
        if kind == libc::IFLA_WIRELESS {
            return true;
        }
        if len < 4 {
            return false;
        }
        rest = rest.get(len.div_ceil(4) * 4..).unwrap_or_default();
    }
    false
}
