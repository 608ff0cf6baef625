//! Reconnect delays: the one place that knows about the `backoff` crate.
//!
//! `backoff` 0.4 is flagged unmaintained (RUSTSEC-2025-0012); keeping it behind this small type
//! means swapping it (for `backon`, or twenty lines of our own) touches nothing else.
//! Two of its defaults would be bugs in a daemon and are overridden here: `max_elapsed_time`
//! (15 minutes, after which it gives up for good) and jitter applied after the cap (delays up
//! to `max × (1 + jitter)`).

use std::time::Duration;

use backoff::backoff::Backoff as _;
use backoff::exponential::ExponentialBackoff;
use backoff::{ExponentialBackoffBuilder, SystemClock};

use crate::config::BackoffConfig;

/// Jittered exponential delays within `[initial, max]` that never give up.
#[derive(Debug)]
pub struct Backoff {
    inner: ExponentialBackoff<SystemClock>,
    config: BackoffConfig,
}

impl Backoff {
    /// A fresh sequence starting at `config.initial`.
    pub fn new(config: BackoffConfig) -> Self {
        let inner = ExponentialBackoffBuilder::new()
            .with_initial_interval(config.initial)
            .with_multiplier(config.multiplier)
            .with_randomization_factor(config.jitter)
            .with_max_interval(config.max)
            // Never give up: a pairing tunnel must come back whenever the relay does.
            .with_max_elapsed_time(None)
            .build();
        Backoff { inner, config }
    }

    /// The next delay; always within `[initial, max]`.
    pub fn next_delay(&mut self) -> Duration {
        let raw = self.inner.next_backoff().unwrap_or(self.config.max);
        raw.clamp(self.config.initial, self.config.max)
    }

    /// The largest delay (used for failures that only a slow retry may fix, like auth).
    pub fn max(&self) -> Duration {
        self.config.max
    }

    /// Back to the first step, after a healthy session or an explicit `up`.
    pub fn reset(&mut self) {
        self.inner.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(initial: u64, max: u64, jitter: f64) -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_millis(initial),
            max: Duration::from_millis(max),
            multiplier: 2.0,
            jitter,
        }
    }

    #[test]
    fn delays_stay_within_bounds_and_never_end() {
        let cfg = config(1_000, 60_000, 0.5);
        let mut b = Backoff::new(cfg);
        // Far more steps than the crate's 15-minute give-up would allow at 60 s each.
        for _ in 0..1_000 {
            let d = b.next_delay();
            assert!(
                d >= cfg.initial && d <= cfg.max,
                "delay {d:?} out of bounds"
            );
        }
    }

    #[test]
    fn grows_then_caps_at_max() {
        let mut b = Backoff::new(config(100, 1_000, 0.0));
        let delays: Vec<_> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1_000, 1_000]);
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(config(100, 1_000, 0.0));
        for _ in 0..5 {
            b.next_delay();
        }
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut b = Backoff::new(config(10_000, 10_000_000, 0.2));
        let first: Vec<_> = (0..20)
            .map(|_| {
                b.reset();
                b.next_delay()
            })
            .collect();
        assert!(first.iter().any(|d| *d != first[0]), "no jitter: {first:?}");
        assert!(first.iter().all(|d| d.as_millis() <= 12_000));
    }
}
