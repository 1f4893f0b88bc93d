//! Progress bars on stderr (indicatif), shown as `REGTOOL_PROGRESS` says: always, never, or
//! when stderr is a terminal. Bars wrap readers and writers; the library never sees them.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use crate::settings::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

pub struct Bars {
    multi: Option<MultiProgress>,
}

impl Bars {
    pub fn new(setting: Progress) -> Bars {
        let tty = std::io::stderr().is_terminal();
        let target = match (setting, tty) {
            (Progress::Never, _) | (Progress::Auto, false) => None,
            (_, true) => Some(ProgressDrawTarget::stderr_with_hz(8)),
            // indicatif draws nothing on a non-terminal; REGTOOL_PROGRESS=1 asks for it anyway
            // (a CI log, a terminal multiplexer that hides itself).
            (Progress::Always, false) => {
                Some(ProgressDrawTarget::term_like_with_hz(Box::new(Stderr), 2))
            }
        };
        Bars {
            multi: target.map(MultiProgress::with_draw_target),
        }
    }

    /// A bar for one transfer; hidden when progress is off. `total` is None for streams.
    pub fn bar(&self, label: &str, total: Option<u64>) -> ProgressBar {
        let Some(multi) = &self.multi else {
            return ProgressBar::hidden();
        };
        let bar = match total {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template(
                    "{prefix:20} {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template(
                    "{prefix:20} {spinner} {bytes} {binary_bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        let bar = multi.add(bar);
        bar.set_prefix(short(label));
        bar.enable_steady_tick(Duration::from_millis(250));
        bar
    }
}

/// Labels are digests or file names: keep the start, which is what tells them apart.
fn short(label: &str) -> String {
    let clean = regtool::text::sanitize(label, 19);
    clean.trim_end_matches('…').to_string()
}

/// stderr as an ANSI terminal of 80 columns, whatever it really is.
#[derive(Debug)]
struct Stderr;

impl TermLike for Stderr {
    fn width(&self) -> u16 {
        80
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            write!(std::io::stderr(), "\x1b[{n}A")
        } else {
            Ok(())
        }
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            write!(std::io::stderr(), "\x1b[{n}B")
        } else {
            Ok(())
        }
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            write!(std::io::stderr(), "\x1b[{n}C")
        } else {
            Ok(())
        }
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            write!(std::io::stderr(), "\x1b[{n}D")
        } else {
            Ok(())
        }
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        writeln!(std::io::stderr(), "{s}")
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        write!(std::io::stderr(), "{s}")
    }
    fn clear_line(&self) -> std::io::Result<()> {
        write!(std::io::stderr(), "\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
