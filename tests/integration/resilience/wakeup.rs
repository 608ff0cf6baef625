//! Wake from sleep and network changes (SPEC §4 "Reconnect"): every tunnel is checked at once
//! instead of waiting for keepalives or a backoff step. The clock and the network events come
//! through `pairtun::wakeup`'s seams; the relay, the dead path and the session are real.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pairtun::daemon::Daemon;
use pairtun::error::ErrorClass;
use pairtun::tunnel::{ForwardState, TunnelState};
use pairtun::wakeup::{self, ManualClock, Sources, Wakeup};
use tokio::sync::mpsc;

use super::{UP_WITHIN, addr, behind_proxy};
use crate::harness::{Relay, StateLog, local_spec, start_daemon, wait_for, wait_up};
use crate::support::echo::{EchoServer, roundtrip_async};
use crate::support::sshd::free_port;
use crate::support::wait::until_async;

/// Keepalives that would take 90 s to declare a path dead, and a backoff that would wait a
/// minute: what the wake-up must beat.
fn slow(toml: String) -> String {
    toml.replace(
        "keepalive_interval = \"1s\"",
        "keepalive_interval = \"30s\"",
    )
    .replace(
        "initial = \"200ms\", max = \"2s\"",
        "initial = \"60s\", max = \"60s\"",
    )
}

/// The daemon's wake-up sources, driven by the test.
struct Seam {
    clock: ManualClock,
    clock_events: mpsc::Sender<()>,
    network: mpsc::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Seam {
    fn attach(daemon: &Arc<Daemon>) -> Seam {
        let clock = ManualClock::default();
        let (clock_events, clock_rx) = mpsc::channel(1);
        let (network, network_rx) = mpsc::channel(1);
        let sources = Sources {
            clock: Box::new(clock.clone()),
            clock_events: Some(clock_rx),
            network: Some(network_rx),
        };
        let daemon = daemon.clone();
        let task = tokio::spawn(wakeup::watch(sources, move |why| daemon.wakeup(why)));
        Seam {
            clock,
            clock_events,
            network,
            task,
        }
    }

    /// The machine slept this long; the kernel announces the resume as a clock step.
    async fn sleep_and_resume(&self, slept: Duration) {
        self.clock.suspend(slept);
        self.clock_events.send(()).await.unwrap();
    }
}

impl Drop for Seam {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The path died while the laptop slept (a stranded connection: silent, while new ones work).
/// After the wake the session is checked and replaced within seconds, not the 90 s the
/// keepalives would take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_from_sleep_replaces_a_dead_session_at_once() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let proxy = behind_proxy(&relay);
    let echo = EchoServer::start();
    let port = free_port();
    let toml = relay.tunnel_via(
        "laptop",
        proxy.port(),
        vec![local_spec(port, echo.port())],
        vec![],
        "",
    );
    let daemon = Arc::new(start_daemon(relay.dir.path(), &slow(toml)));
    let seam = Seam::attach(&daemon);
    wait_up(&daemon, "laptop", UP_WITHIN).await;

    let log = StateLog::record(&daemon, "laptop");
    proxy.strand();
    seam.sleep_and_resume(Duration::from_secs(600)).await;
    let woke = Instant::now();
    let p = wait_for(
        &daemon,
        "laptop",
        Duration::from_secs(15),
        "up on session 2",
        |p| p.state == TunnelState::Up && p.session == 2,
    )
    .await;
    let back = woke.elapsed();
    assert_eq!(p.forwards[0].state, ForwardState::Up);
    roundtrip_async(addr(port), b"after-wake", Duration::from_secs(5))
        .await
        .expect("traffic flows after the wake");
    eprintln!("wake → up on a new session: {back:?}");
    // The stale session was given WAKEUP_PROBE (3 s) to answer, not the keepalive bound.
    assert!(back < Duration::from_secs(10), "took {back:?}");
    let why = log
        .stop()
        .into_iter()
        .find_map(|p| p.last_error)
        .expect("the replaced session left a reason");
    assert_eq!(why.class, ErrorClass::Timeout, "{why:?}");
    assert!(
        why.message.contains("no keepalive reply")
            && why.message.contains("woke from sleep after 600s"),
        "{why:?}"
    );
}

/// Down relay, a minute-long backoff: a network change retries at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_change_retries_now_instead_of_waiting_out_the_backoff() {
    let Some(mut relay) = Relay::start(&[]) else {
        return;
    };
    relay.sshd.stop();
    let toml = relay.tunnel("roam", vec![local_spec(free_port(), 9)], vec![]);
    let daemon = Arc::new(start_daemon(relay.dir.path(), &slow(toml)));
    let seam = Seam::attach(&daemon);
    let p = wait_for(&daemon, "roam", UP_WITHIN, "backing off", |p| {
        p.state == TunnelState::Backoff
    })
    .await;
    let error = p.last_error.as_ref().expect("backoff has a reason");
    assert_eq!(error.class, ErrorClass::Network, "{p:#?}");
    let due = daemon.status(Some("roam")).unwrap()[0].retry_in_ms;
    assert!(due.is_some_and(|ms| ms > 30_000), "retry due in {due:?} ms");

    relay.sshd.restart();
    seam.network.send(()).await.unwrap();
    let changed = Instant::now();
    wait_up(&daemon, "roam", Duration::from_secs(10)).await;
    eprintln!("network change → up: {:?}", changed.elapsed());
}

/// An attempt stuck on a path that died (its handshake parked at the proxy) is not waited out
/// to `connect_timeout` and then a minute's backoff: a network change starts it over (or, if
/// it had only just begun, retries as soon as it fails).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_change_during_a_hanging_attempt_retries_now() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let proxy = behind_proxy(&relay);
    proxy.blackhole(); // the first attempt's connection is parked: its handshake hangs
    let toml = relay.tunnel_via(
        "roam",
        proxy.port(),
        vec![local_spec(free_port(), 9)],
        vec![],
        "",
    );
    let daemon = Arc::new(start_daemon(relay.dir.path(), &slow(toml)));
    let seam = Seam::attach(&daemon);
    let parked = || async { proxy.connections() > 0 };
    until_async("an attempt parked at the proxy", UP_WITHIN, parked).await;
    let p = &daemon.status(Some("roam")).unwrap()[0];
    assert_eq!(p.state, TunnelState::Connecting, "{p:#?}");
    proxy.strand(); // the old path is dead for good,
    proxy.heal(); // and a new one works
    seam.network.send(()).await.unwrap();
    let changed = Instant::now();
    // Without the wake-up: connect_timeout (5 s), then a 60 s backoff step.
    wait_up(&daemon, "roam", Duration::from_secs(15)).await;
    eprintln!(
        "network change during an attempt → up: {:?}",
        changed.elapsed()
    );
}

/// A network change on a healthy path costs one keepalive round trip, not the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_change_keeps_a_session_that_still_answers() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let toml = relay.tunnel("steady", vec![local_spec(free_port(), 9)], vec![]);
    let daemon = start_daemon(relay.dir.path(), &slow(toml));
    wait_up(&daemon, "steady", UP_WITHIN).await;
    for _ in 0..3 {
        daemon.wakeup(Wakeup::NetworkChanged);
        // Messages are handled in order: the probe is answered after the check is done.
        assert!(
            daemon.probe(Duration::from_secs(10)).await,
            "supervisor answers"
        );
    }
    let status = &daemon.status(Some("steady")).unwrap()[0];
    assert_eq!(
        (status.state, status.session),
        (TunnelState::Up, 1),
        "{status:#?}"
    );
}

/// A dummy network link that exists while this value lives (created with `ip link`).
#[cfg(target_os = "linux")]
struct DummyLink(String);

#[cfg(target_os = "linux")]
impl DummyLink {
    /// `None` when links cannot be created here (no iproute2, not root).
    fn create() -> Option<DummyLink> {
        let name = format!("ptw{}", std::process::id() % 1_000_000);
        let made = std::process::Command::new("ip")
            .args(["link", "add", &name, "type", "dummy"])
            .status()
            .is_ok_and(|s| s.success());
        made.then_some(DummyLink(name))
    }
}

#[cfg(target_os = "linux")]
impl Drop for DummyLink {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .status();
    }
}

/// The real source: a link appearing is a netlink event the daemon sees. (A dummy link has no
/// address and carries no traffic.)
#[cfg(target_os = "linux")]
#[tokio::test]
async fn netlink_reports_a_link_change() {
    let mut events = Sources::system()
        .network
        .expect("a netlink route socket opens");
    let Some(_link) = DummyLink::create() else {
        eprintln!("skipping: cannot create a dummy link (needs iproute2 and root)");
        return;
    };
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event within 5 s")
        .expect("the source is open");
}

/// The real clock source: a step of the wall clock — what the kernel reports a resume as — is
/// a clock event. Stepping the clock (here: to the time it already reads) needs CAP_SYS_TIME
/// and nudges the machine's clock by microseconds, so this runs only when asked:
/// `PAIRTUN_TEST_STEP_CLOCK=1 cargo test --test integration clock_step`.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_wall_clock_step_is_a_clock_event() {
    use nix::time::{ClockId, clock_gettime, clock_settime};
    if std::env::var_os("PAIRTUN_TEST_STEP_CLOCK").is_none() {
        eprintln!("skipping: set PAIRTUN_TEST_STEP_CLOCK=1 to step the system clock");
        return;
    }
    let mut events = Sources::system()
        .clock_events
        .expect("a clock event source");
    let now = clock_gettime(ClockId::CLOCK_REALTIME).expect("read the wall clock");
    clock_settime(ClockId::CLOCK_REALTIME, now).expect("step the wall clock (needs CAP_SYS_TIME)");
    // Within a second: well before the 5 s periodic check a fallback would make.
    tokio::time::timeout(Duration::from_secs(1), events.recv())
        .await
        .expect("an event within 1 s")
        .expect("the source is open");
}
