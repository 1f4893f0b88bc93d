//! Progress bars on stderr (indicatif), shown as `REGTOOL_PROGRESS` says: always, never, or
//! when stderr is a terminal. Bars wrap readers and writers; the library never sees them.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use regtool::config::Progress;

pub struct Bars {
    multi: Option<MultiProgress>,
}

impl Bars {
    pub fn new(setting: Progress) -> Bars {
        let show = match setting {
            Progress::Always => true,
            Progress::Never => false,
            Progress::Auto => std::io::stderr().is_terminal(),
        };
        let multi =
            show.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8)));
        Bars { multi }
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
