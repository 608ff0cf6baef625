//! Bounded waiting on a condition: the fixtures' (and tests') replacement for fixed sleeps.
//!
//! Every helper polls a condition until it holds or a timeout passes, then panics naming what
//! was awaited. Polling starts at 1 ms and backs off to 50 ms, so fast conditions return fast
//! and slow ones do not burn a core.

use std::future::Future;
use std::time::{Duration, Instant};

const FIRST_PAUSE: Duration = Duration::from_millis(1);
const MAX_PAUSE: Duration = Duration::from_millis(50);

fn next_pause(pause: Duration) -> Duration {
    (pause * 2).min(MAX_PAUSE)
}

fn timed_out(what: &str, timeout: Duration) -> ! {
    panic!("timed out after {timeout:?} waiting for {what}")
}

/// Polls `f` until it returns `Some`, and returns that value; `None` once `timeout` has passed.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = FIRST_PAUSE;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = next_pause(pause);
    }
}

/// Blocks until `cond` holds; panics with "timed out after … waiting for {what}" otherwise.
///
/// Blocks the calling thread: from an async test prefer [`until_async`].
pub fn until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    if poll(timeout, || cond().then_some(())).is_none() {
        timed_out(what, timeout);
    }
}

/// Blocks until `f` returns `Some` and returns its value; panics naming `what` on timeout.
pub fn until_some<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    poll(timeout, f).unwrap_or_else(|| timed_out(what, timeout))
}

/// Async [`until`]: awaits until the (possibly async) condition holds; panics naming `what`
/// on timeout. Sleeps with tokio's timer, so the runtime keeps serving other tasks.
pub async fn until_async<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = FIRST_PAUSE;
    loop {
        if cond().await {
            return;
        }
        let now = Instant::now();
        if now >= deadline {
            timed_out(what, timeout);
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = next_pause(pause);
    }
}
