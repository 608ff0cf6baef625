//! Accept loops that survive running out of file descriptors: a failed `accept()` (typically
//! `EMFILE`/`ENFILE` at `RLIMIT_NOFILE`) pauses the loop for a growing delay instead of retrying
//! at once — the pending connection stays queued, so an immediate retry would spin — and is
//! logged once per episode, not once per attempt.

use std::io;
use std::time::Duration;

/// First pause after a failed accept.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// Longest pause: how long a listener may stay deaf after descriptors have freed up.
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// The state of one accept loop: whether it is in a failure episode, and how long to pause next.
#[derive(Debug)]
pub struct AcceptBackoff {
    /// What accepts, for the log (`control socket`, a forward's spec).
    listener: String,
    /// Failures in the current episode; 0 when accepting normally.
    failures: u64,
    /// The next pause.
    pause: Duration,
}

impl AcceptBackoff {
    /// A loop for `listener`, not failing.
    pub fn new(listener: impl Into<String>) -> Self {
        AcceptBackoff {
            listener: listener.into(),
            failures: 0,
            pause: FIRST_PAUSE,
        }
    }

    /// Records a failed accept and returns how long to pause before the next one: 50 ms,
    /// doubling up to 1 s. The first failure of an episode is logged; the rest are counted.
    pub fn failed(&mut self, error: &io::Error) -> Duration {
        if self.failures == 0 {
            tracing::warn!(
                listener = %self.listener,
                %error,
                "accept failed; pausing new connections until it succeeds again"
            );
        }
        self.failures += 1;
        let pause = self.pause;
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        pause
    }

    /// Records a successful accept, ending an episode (logged with its failure count).
    pub fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(listener = %self.listener, failures = self.failures, "accepting again");
            self.failures = 0;
            self.pause = FIRST_PAUSE;
        }
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit: a daemon that holds many
/// connections should not run out of descriptors at a conservative default (often 1024) the
/// administrator allows it to exceed. Failure only costs headroom, so it is logged and ignored.
pub fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let raised = getrlimit(Resource::RLIMIT_NOFILE).and_then(|(soft, hard)| {
        // macOS refuses a soft limit above OPEN_MAX (EINVAL), and launchd's hard limit is
        // usually unlimited.
        #[cfg(target_vendor = "apple")]
        let target = hard.min(10_240);
        #[cfg(not(target_vendor = "apple"))]
        let target = hard;
        if soft < target {
            setrlimit(Resource::RLIMIT_NOFILE, target, hard)?;
        }
        Ok((soft, target))
    });
    match raised {
        Ok((soft, hard)) => {
            tracing::debug!(soft, hard, "file descriptor limit raised to the hard limit")
        }
        Err(error) => tracing::debug!(%error, "cannot raise the file descriptor limit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_to_a_second_and_reset_on_success() {
        let mut backoff = AcceptBackoff::new("test");
        let emfile = io::Error::from_raw_os_error(24);
        let pauses: Vec<_> = (0..8).map(|_| backoff.failed(&emfile)).collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(
            pauses,
            [50, 100, 200, 400, 800, 1000, 1000, 1000].map(ms).to_vec()
        );
        assert_eq!(backoff.failures, 8);
        backoff.succeeded();
        assert_eq!(backoff.failures, 0);
        assert_eq!(backoff.failed(&emfile), ms(50), "a new episode starts over");
    }
}
