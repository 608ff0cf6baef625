//! The readiness probe: sshd is ready when its port greets with `SSH-2.0-`. The probe then
//! closes politely and waits for the sshd process that served it to exit, so that its log
//! lines are written before `start()`/`restart()` return (a `log_mark()` taken then sees only
//! what the test caused).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use crate::support::process;

const IDENT: &[u8] = b"SSH-2.0-pairtun-readiness-probe\r\n";
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the probe gives sshd to answer, and then to close and clean up.
const STEP: Duration = Duration::from_secs(2);

/// A connection on which sshd has sent its banner.
pub(super) struct Probe {
    stream: TcpStream,
}

impl Probe {
    /// Connects to `addr` and reads the banner; `None` if sshd does not greet (yet).
    pub(super) fn greet(addr: SocketAddr) -> Option<Probe> {
        let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).ok()?;
        stream.set_read_timeout(Some(STEP)).ok()?;
        let mut banner = [0u8; 8];
        stream.read_exact(&mut banner).ok()?;
        (&banner == b"SSH-2.0-").then_some(Probe { stream })
    }

    /// Closes the probe connection with FIN (sshd logs `Connection closed by … [preauth]`)
    /// and waits, within bounds and without failing, until the descendant of `listener` that
    /// served it has exited.
    pub(super) fn finish(mut self, listener: u32) {
        let (Ok(ours), Ok(theirs)) = (self.stream.local_addr(), self.stream.peer_addr()) else {
            return;
        };
        let servers = process::tcp_socket_holders(
            &process::descendants(listener),
            theirs.port(),
            ours.port(),
        );
        let _ = self.stream.write_all(IDENT);
        let _ = self.stream.shutdown(Shutdown::Write);
        // Read what sshd still sends (its KEXINIT) until it closes: unread data would turn
        // our close into an RST. Bounded by the read timeout and a cap on reads.
        let mut buf = [0u8; 4096];
        for _ in 0..64 {
            if matches!(self.stream.read(&mut buf), Ok(0) | Err(_)) {
                break;
            }
        }
        process::wait_exited(&servers, STEP);
    }
}
