//! Async code run off the test's own runtime: servers on a dedicated thread with their own
//! tokio runtime (so fixtures work, and stop on Drop, under `#[test]` and `#[tokio::test]`
//! alike), and [`block_on`] for the blocking wrappers of async helpers.

use std::future::Future;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

/// A future running on its own thread and runtime until this handle is dropped.
pub struct Background {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Starts a thread named `name` that runs `make()`'s future on a new current-thread
    /// runtime. `make` runs on that thread, inside the runtime (so it can register sockets).
    pub fn spawn<F, Fut>(name: &str, make: F) -> Background
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let rt = runtime();
                rt.block_on(async move {
                    tokio::select! {
                        () = make() => {}
                        _ = stopped => {}
                    }
                });
                // Dropping `rt` here cancels every task it still runs, closing their sockets.
            })
            .expect("spawn a fixture thread");
        Background {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Dropping the sender wakes `stopped`.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs `fut` to completion on a fresh thread with its own runtime and returns its output.
///
/// Blocks the calling thread, but is safe inside a tokio runtime (unlike `Runtime::block_on`).
pub fn block_on<Fut>(fut: Fut) -> Fut::Output
where
    Fut: Future + Send,
    Fut::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| runtime().block_on(fut))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
