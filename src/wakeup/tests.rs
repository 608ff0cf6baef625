use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::*;

fn detector(clock: &ManualClock) -> SuspendDetector {
    SuspendDetector::new(Box::new(clock.clone()), SUSPEND_THRESHOLD)
}

#[test]
fn time_passing_awake_is_not_a_suspend() {
    let clock = ManualClock::default();
    let mut d = detector(&clock);
    for _ in 0..10 {
        clock.advance(Duration::from_secs(3600));
        assert_eq!(d.check(), None);
    }
}

#[test]
fn a_jump_of_the_total_clock_is_reported_once_with_its_length() {
    let clock = ManualClock::default();
    let mut d = detector(&clock);
    clock.advance(Duration::from_secs(5));
    clock.suspend(Duration::from_secs(600));
    assert_eq!(d.check(), Some(Duration::from_secs(600)));
    clock.advance(Duration::from_secs(5));
    assert_eq!(d.check(), None, "the same sleep is not reported twice");
}

#[test]
fn drift_below_the_threshold_is_ignored_but_adds_nothing_later() {
    let clock = ManualClock::default();
    let mut d = detector(&clock);
    clock.suspend(SUSPEND_THRESHOLD - Duration::from_millis(1));
    assert_eq!(d.check(), None);
    clock.suspend(SUSPEND_THRESHOLD - Duration::from_millis(1));
    assert_eq!(
        d.check(),
        None,
        "drift is measured between checks, not summed"
    );
    clock.suspend(SUSPEND_THRESHOLD);
    assert_eq!(d.check(), Some(SUSPEND_THRESHOLD));
}

#[test]
fn the_system_clock_reads_and_reports_no_suspend_between_two_reads() {
    let mut d = SuspendDetector::new(Box::new(SystemClock), SUSPEND_THRESHOLD);
    assert_eq!(d.check(), None);
}

/// Runs `watch` on the manual clock, `clock_events` and `network`, collecting what it reports.
fn spawn_watch(
    clock: &ManualClock,
    clock_events: Option<mpsc::Receiver<()>>,
    network: Option<mpsc::Receiver<()>>,
) -> (Arc<Mutex<Vec<Wakeup>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let sources = Sources {
        clock: Box::new(clock.clone()),
        clock_events,
        network,
    };
    let task = tokio::spawn(watch(sources, move |w| sink.lock().unwrap().push(w)));
    (seen, task)
}

#[tokio::test]
async fn a_clock_event_compares_the_clocks_and_reports_the_sleep() {
    let clock = ManualClock::default();
    let (events, rx) = mpsc::channel(1);
    let (seen, task) = spawn_watch(&clock, Some(rx), None);
    // A resume: the kernel reports it as a clock step; the clocks tell how long it slept.
    clock.suspend(Duration::from_secs(90));
    events.send(()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Wakeup::Resumed {
            slept: Duration::from_secs(90)
        }]
    );
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_network_events_is_one_change_reported_once_it_settles() {
    let clock = ManualClock::default();
    let (tx, rx) = mpsc::channel(1);
    let (seen, task) = spawn_watch(&clock, None, Some(rx));
    for _ in 0..5 {
        tx.send(()).await.unwrap();
        tokio::time::sleep(NETWORK_SETTLE / 2).await;
    }
    assert!(seen.lock().unwrap().is_empty(), "reported before settling");
    tokio::time::sleep(NETWORK_SETTLE * 2).await;
    assert_eq!(*seen.lock().unwrap(), vec![Wakeup::NetworkChanged]);
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_network_that_never_settles_is_still_reported() {
    let clock = ManualClock::default();
    let (tx, rx) = mpsc::channel(1);
    let (seen, task) = spawn_watch(&clock, None, Some(rx));
    let mut sent = 0;
    while seen.lock().unwrap().is_empty() && sent < 100 {
        tx.send(()).await.unwrap();
        sent += 1;
        tokio::time::sleep(NETWORK_SETTLE / 2).await;
    }
    assert_eq!(*seen.lock().unwrap(), vec![Wakeup::NetworkChanged]);
    assert!(sent <= 20, "reported only after {sent} events");
    task.abort();
}

#[cfg(target_os = "linux")]
mod netlink {
    use super::super::netlink::holds_change;
    use nix::libc;

    fn message(kind: u16, payload: usize) -> Vec<u8> {
        let len = 16 + payload;
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.resize(len.div_ceil(4) * 4, 0);
        m
    }

    #[test]
    fn address_route_and_link_changes_count() {
        for kind in [libc::RTM_NEWADDR, libc::RTM_DELROUTE, libc::RTM_NEWLINK] {
            assert!(holds_change(&message(kind, 8)), "{kind}");
        }
    }

    #[test]
    fn a_change_after_other_messages_counts() {
        let mut d = message(libc::RTM_NEWNEIGH, 13);
        d.extend(message(libc::RTM_NEWADDR, 0));
        assert!(holds_change(&d));
    }

    /// A `RTM_NEWLINK` with an `ifinfomsg` and the given attributes (type, payload length).
    fn link_message(attributes: &[(u16, usize)]) -> Vec<u8> {
        let mut body = vec![0u8; 16]; // ifinfomsg
        for &(kind, payload) in attributes {
            let len = 4 + payload;
            body.extend_from_slice(&(len as u16).to_ne_bytes());
            body.extend_from_slice(&kind.to_ne_bytes());
            body.resize(body.len() + payload.div_ceil(4) * 4, 0);
        }
        let mut m = message(libc::RTM_NEWLINK, body.len());
        m[16..].copy_from_slice(&body);
        m
    }

    #[test]
    fn a_wireless_event_is_not_a_change_but_a_link_change_beside_it_is() {
        let wireless = link_message(&[(libc::IFLA_IFNAME, 6), (libc::IFLA_WIRELESS, 21)]);
        assert!(!holds_change(&wireless));
        let carrier = link_message(&[(libc::IFLA_IFNAME, 6), (libc::IFLA_OPERSTATE, 1)]);
        assert!(holds_change(&carrier));
        let mut both = wireless.clone();
        both.extend(carrier);
        assert!(holds_change(&both));
        // Only a link message is judged by its attributes.
        let mut address = link_message(&[(libc::IFLA_WIRELESS, 4)]);
        address[4..6].copy_from_slice(&libc::RTM_NEWADDR.to_ne_bytes());
        assert!(holds_change(&address));
    }

    #[test]
    fn a_malformed_link_message_still_counts_as_a_change() {
        let mut zero_length_attribute =
            link_message(&[(libc::IFLA_IFNAME, 4), (libc::IFLA_WIRELESS, 4)]);
        zero_length_attribute[32..34].copy_from_slice(&0u16.to_ne_bytes());
        assert!(holds_change(&zero_length_attribute));
        let mut truncated = link_message(&[(libc::IFLA_IFNAME, 4)]);
        truncated.truncate(20);
        assert!(holds_change(&truncated));
        let mut overlong = link_message(&[(libc::IFLA_IFNAME, 4)]);
        overlong[32..34].copy_from_slice(&u16::MAX.to_ne_bytes());
        assert!(holds_change(&overlong));
    }

    #[test]
    fn other_and_malformed_datagrams_do_not() {
        assert!(!holds_change(&message(libc::RTM_NEWNEIGH, 4)));
        assert!(!holds_change(&[]));
        assert!(!holds_change(&[0xff; 15]));
        let mut short = message(libc::RTM_NEWNEIGH, 0);
        short[0] = 3; // length below the header size: stop, do not loop
        short.extend(message(libc::RTM_NEWADDR, 0));
        assert!(!holds_change(&short));
        let mut huge = message(libc::RTM_NEWNEIGH, 0);
        huge[..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(!holds_change(&huge));
    }
}
