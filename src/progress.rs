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

/// One bar per blob a copy streams (`regtool::image::copy::Watch`), labelled by its digest,
/// cleared when the blob is done; a resumed or retried blob keeps its bar.
pub struct BlobBars<'a> {
    bars: &'a Bars,
    shown: std::sync::Mutex<std::collections::HashMap<String, ProgressBar>>,
}

impl<'a> BlobBars<'a> {
    pub fn new(bars: &'a Bars) -> BlobBars<'a> {
        BlobBars {
            bars,
            shown: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }
}

impl regtool::image::copy::Watch for BlobBars<'_> {
    fn watch<'r>(
        &self,
        blob: &regtool::oci::Descriptor,
        reader: Box<dyn std::io::Read + Send + 'r>,
    ) -> Box<dyn std::io::Read + Send + 'r> {
        let key = blob.digest.to_string();
        let bar = match self.shown.lock() {
            Ok(mut shown) => shown
                .entry(key.clone())
                .or_insert_with(|| self.bars.bar(&key, Some(blob.size)))
                .clone(),
            Err(_) => return reader,
        };
        bar.set_position(0);
        Box::new(bar.wrap_read(reader))
    }

    fn done(&self, blob: &regtool::oci::Descriptor) {
        let bar = self
            .shown
            .lock()
            .ok()
            .and_then(|mut shown| shown.remove(&blob.digest.to_string()));
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
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
