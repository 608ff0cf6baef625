//! `pairtunctl`: controls a running `pairtund` (the control socket arrives in the next
//! milestone; until then this only says so).

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "pairtunctl: the control socket is not implemented yet; run `pairtund --config FILE` \
         in the foreground and stop it with Ctrl-C or SIGTERM"
    );
    ExitCode::from(3)
}
