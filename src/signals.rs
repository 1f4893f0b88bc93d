//! Signals that end a run early: SIGINT (Ctrl-C), SIGTERM (what `timeout`, CI cancellation,
//! `docker stop` and Kubernetes send) and SIGHUP (the terminal went away). Each one removes
//! the temporary files being filled and cancels open upload sessions (by cancelling the
//! run's `regtool::Cancel`), then exits with 128 + the signal number, as a shell reports a
//! process killed by it.
//!
//! The signals are read by signal-hook's iterator on a thread of their own: unlike the
//! `ctrlc` crate, it says which signal arrived, and nothing runs inside a signal handler.
//! The first signal starts the cleanup on another thread, so that a second one is still
//! heard: it exits at once, for a user who will not wait.

use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// How long cleanup may take in all: cancelling uploads needs answers from a registry that
/// may not give them, and someone is waiting for the prompt (or the container to stop).
pub const CLEANUP_BUDGET: Duration = Duration::from_secs(3);

/// Starts listening; the first signal cancels `cancel`. A failure to install the handlers
/// only loses the cleanup: the signals then end the process as they would any other.
pub fn install(cancel: regtool::Cancel) {
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut cleaning = false;
            for signal in signals.forever() {
                if cleaning {
                    std::process::exit(128 + signal);
                }
                cleaning = true;
                let cancel = cancel.clone();
                let _ = std::thread::Builder::new()
                    .name("cleanup".into())
                    .spawn(move || clean_up_and_exit(&cancel, signal));
            }
        });
}

fn clean_up_and_exit(cancel: &regtool::Cancel, signal: i32) -> ! {
    crate::output::stderr_line(format_args!("regtool: {}", describe(signal)));
    let unfinished = cancel.cancel(CLEANUP_BUDGET);
    if unfinished > 0 {
        crate::output::stderr_line(format_args!(
            "regtool: gave up cleaning up after {} s: {unfinished} upload session(s) may stay open until the registry expires them",
            CLEANUP_BUDGET.as_secs()
        ));
    }
    std::process::exit(128 + signal)
}

fn describe(signal: i32) -> &'static str {
    match signal {
        SIGTERM => "terminated",
        SIGHUP => "hung up",
        _ => "interrupted",
    }
}
