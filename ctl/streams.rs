//! The commands answered with a stream of replies: `status --watch`, `up --wait`, `logs`.
//! Each ends at the daemon's closing `ok` (success) or `error` (exit 1); `--watch` and
//! `logs -f` otherwise run until Ctrl-C, which ends the process and with it the stream.

use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, interval_at, timeout_at};

use pairtun::control::{ClientError, ResponseStream};
use pairtun::protocol::Request;
use pairtun::protocol::Response;
use pairtun::tunnel::{TunnelState, TunnelStatus};

use crate::commands::Ctx;
use crate::failure::Failure;
use crate::{human, render};

/// Clears a terminal and puts the cursor top left, for redrawing the watch table in place.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// Replies as a channel. `ResponseStream::next` loses a half-read line when its future is
/// dropped, so it runs to completion in its own task and `select!` waits on the channel.
fn replies(mut stream: ResponseStream) -> mpsc::Receiver<Result<Response, ClientError>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(reply) = stream.next().await {
            if tx.send(reply).await.is_err() {
                return;
            }
        }
    });
    rx
}

async fn open(
    ctx: &Ctx,
    request: &Request,
) -> Result<mpsc::Receiver<Result<Response, ClientError>>, Failure> {
    let stream = ctx.connect().await?.stream(request).await?;
    Ok(replies(stream))
}

/// The end of a stream: `ok` succeeds, `error` fails, and a connection that breaks first fails.
fn finish(ctx: &Ctx, reply: Option<Result<Response, ClientError>>) -> Result<(), Failure> {
    match reply {
        // Not printed with --json: a stream's lines keep one shape, and the exit status
        // already says it ended well.
        Some(Ok(Response::Ok { .. })) => Ok(()),
        Some(Ok(reply @ Response::Error { .. })) => Err(ctx.out.error_reply(&reply)),
        Some(Ok(other)) => Err(Failure::unexpected(&other)),
        Some(Err(e)) => Err(e.into()),
        None => Err(ClientError::Closed("").into()),
    }
}

/// `status --watch`. On a terminal the table is redrawn in place, and once a second besides,
/// so SINCE and the retry countdown keep moving between changes; elsewhere each change is
/// appended (blank-line separated), or one JSON object per line with `--json`.
pub async fn watch(ctx: &Ctx, name: Option<String>) -> Result<(), Failure> {
    let mut replies = open(ctx, &Request::Watch { name }).await?;
    let out = ctx.out;
    let live = out.tty && !out.json;
    // The first tick a second from now: the first status is drawn as it arrives.
    let second = Duration::from_secs(1);
    let mut tick = interval_at(tokio::time::Instant::now() + second, second);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last: Option<(Vec<TunnelStatus>, Instant)> = None;
    let mut previous: Option<String> = None;
    loop {
        tokio::select! {
            reply = replies.recv() => match reply {
                Some(Ok(Response::Status { tunnels })) if out.json => out.bytes(&render::status_json(&tunnels))?,
                Some(Ok(Response::Status { tunnels })) => {
                    let table = render::table(&tunnels, SystemTime::now(), out.colour);
                    // A change that does not show (a counter below the table's precision)
                    // would only repeat the table in a log file.
                    if live || previous.as_deref() != Some(table.as_str()) {
                        let gap = if live { CLEAR } else if previous.is_some() { "\n" } else { "" };
                        out.text(&format!("{gap}{table}"))?;
                    }
                    previous = Some(table);
                    last = Some((tunnels, Instant::now()));
                }
                end => return finish(ctx, end),
            },
            _ = tick.tick(), if live => {
                if let Some((tunnels, received)) = &last {
                    let aged = counted_down(tunnels, received.elapsed());
                    out.text(&format!("{CLEAR}{}", render::table(&aged, SystemTime::now(), out.colour)))?;
                }
            }
        }
    }
}

/// The statuses as they read `elapsed` after they arrived: retry countdowns move on.
fn counted_down(tunnels: &[TunnelStatus], elapsed: Duration) -> Vec<TunnelStatus> {
    let elapsed = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    let mut aged = tunnels.to_vec();
    for t in &mut aged {
        t.retry_in_ms = t.retry_in_ms.map(|ms| ms.saturating_sub(elapsed));
    }
    aged
}

/// What `up --wait` prints a line for when it changes (not the countdown, which always does).
fn progress_key(t: &TunnelStatus) -> (TunnelState, Option<u32>, Vec<Option<String>>) {
    let errors = t.forwards.iter().map(|f| f.error.clone()).collect();
    (t.state, t.attempt, errors)
}

/// `up NAME --wait[=TIMEOUT]`: one line per state change until the tunnel is up (exit 0),
/// fails (the daemon's error, exit 1) or `timeout` passes (exit 1, naming the last state).
pub async fn up_wait(ctx: &Ctx, name: String, timeout: Duration) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + timeout;
    let request = Request::Up {
        name: name.clone(),
        wait: true,
    };
    let mut replies = open(ctx, &request).await?;
    let out = ctx.out;
    let mut last: Option<(TunnelStatus, Instant)> = None;
    loop {
        let Ok(reply) = timeout_at(deadline, replies.recv()).await else {
            let (waited, state) = (humantime::format_duration(timeout), last_state(&last));
            let message = format!("{name}: not up within {waited}; last state: {state}");
            return Err(Failure::Request(message));
        };
        let status = match reply {
            Some(Ok(Response::Status { tunnels })) => tunnels.into_iter().find(|t| t.name == name),
            Some(Ok(Response::Ok { .. })) if !is_up(last.as_ref().map(|(t, _)| t)) => {
                // The daemon also ends the stream with `ok` when it stops waiting for its own
                // reasons (the tunnel was dropped, its wait limit passed): not proof of `up`.
                let state = last_state(&last);
                let message = format!("{name}: pairtund stopped waiting; last state: {state}");
                return Err(Failure::Request(message));
            }
            end => return finish(ctx, end),
        };
        let Some(status) = status else { continue };
        if out.json {
            out.bytes(&render::status_json(std::slice::from_ref(&status)))?;
        } else if last.as_ref().map(|(t, _)| progress_key(t)) != Some(progress_key(&status)) {
            out.line(&format!("{name}: {}", human::state_line(&status)))?;
        }
        last = Some((status, Instant::now()));
    }
}

/// The last state seen, its countdown as it stands now rather than when it arrived.
fn last_state(last: &Option<(TunnelStatus, Instant)>) -> String {
    let Some((status, received)) = last else {
        return "unknown".to_owned();
    };
    let aged = counted_down(std::slice::from_ref(status), received.elapsed());
    aged.first()
        .map_or_else(|| "unknown".to_owned(), human::state_line)
}

/// Whether the last status seen shows a connected tunnel. `degraded` counts: the daemon
/// decided on `up` and a forward failed between its check and its status snapshot.
fn is_up(last: Option<&TunnelStatus>) -> bool {
    last.is_some_and(|t| matches!(t.state, TunnelState::Up | TunnelState::Degraded))
}

/// `logs [NAME] [-f]`: recent events, then new ones with `-f`.
pub async fn logs(ctx: &Ctx, name: Option<String>, follow: bool) -> Result<(), Failure> {
    let mut replies = open(ctx, &Request::Logs { name, follow }).await?;
    let out = ctx.out;
    loop {
        match replies.recv().await {
            Some(Ok(Response::Log { event })) if out.json => out.json_line(&event)?,
            Some(Ok(Response::Log { event })) => out.line(&render::log_line(&event, out.colour))?,
            end => return finish(ctx, end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{backoff, degraded, failed, up};

    #[test]
    fn countdowns_age_without_going_negative() {
        let aged = counted_down(&[backoff(), up()], Duration::from_millis(1_500));
        assert_eq!(aged[0].retry_in_ms, Some(1_700));
        assert_eq!(aged[1].retry_in_ms, None);
        let aged = counted_down(&[backoff()], Duration::from_secs(60));
        assert_eq!(aged[0].retry_in_ms, Some(0));
    }

    #[test]
    fn progress_lines_follow_state_and_attempt_not_the_countdown() {
        let mut later = backoff();
        later.retry_in_ms = Some(1_000);
        assert_eq!(progress_key(&backoff()), progress_key(&later));
        later.attempt = Some(4);
        assert_ne!(progress_key(&backoff()), progress_key(&later));
        assert_ne!(progress_key(&backoff()), progress_key(&up()));
    }

    #[test]
    fn only_a_connected_tunnel_counts_as_up() {
        assert!(is_up(Some(&up())) && is_up(Some(&degraded())));
        assert!(!is_up(Some(&backoff())) && !is_up(Some(&failed())) && !is_up(None));
    }
}
