//! Recent daemon events for `pairtunctl logs`: a tracing layer that keeps the last INFO-and-up
//! events in memory and broadcasts new ones to followers.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::protocol::LogEvent;

/// How many events are kept.
const KEEP: usize = 1_000;

/// The in-memory event log.
pub struct EventLog {
    recent: Mutex<VecDeque<LogEvent>>,
    live: broadcast::Sender<LogEvent>,
}

impl EventLog {
    /// The process-wide log (one daemon per process).
    pub fn global() -> &'static EventLog {
        static LOG: OnceLock<EventLog> = OnceLock::new();
        LOG.get_or_init(|| EventLog {
            recent: Mutex::new(VecDeque::with_capacity(KEEP)),
            live: broadcast::Sender::new(256),
        })
    }

    /// Kept events, oldest first, of tunnel `name` (or all).
    pub fn recent(&self, name: Option<&str>) -> Vec<LogEvent> {
        let Ok(recent) = self.recent.lock() else {
            return Vec::new();
        };
        recent
            .iter()
            .filter(|e| matches(e, name))
            .cloned()
            .collect()
    }

    /// New events from now on (a slow follower misses events rather than slowing the daemon).
    pub fn follow(&self) -> broadcast::Receiver<LogEvent> {
        self.live.subscribe()
    }

    pub(super) fn push(&self, event: LogEvent) {
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == KEEP {
                recent.pop_front();
            }
            recent.push_back(event.clone());
        }
        let _ = self.live.send(event);
    }
}

/// Whether `event` belongs to tunnel `name` (`None`: every event).
pub fn matches(event: &LogEvent, name: Option<&str>) -> bool {
    name.is_none_or(|n| event.tunnel.as_deref() == Some(n))
}

/// The layer feeding [`EventLog::global`].
pub struct EventLayer;

impl<S: Subscriber> Layer<S> for EventLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        // pairtun's own events only: russh's are protocol detail, not user-facing history.
        if level > Level::INFO || !event.metadata().target().starts_with("pairtun") {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        EventLog::global().push(LogEvent {
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            tunnel: fields.tunnel,
            level: level.as_str().to_ascii_lowercase(),
            message: fields.text,
        });
    }
}

/// Renders an event as `message key=value …`, pulling out the tunnel name.
#[derive(Default)]
struct Fields {
    tunnel: Option<String>,
    text: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {
                let rest = std::mem::take(&mut self.text);
                self.text = format!("{value:?}{rest}");
            }
            "tunnel" => self.tunnel = Some(format!("{value:?}").trim_matches('"').to_owned()),
            name => {
                let _ = write!(self.text, " {name}={value:?}");
            }
        }
    }
}
