//! The debug log of requests, retries and scheme changes (REGTOOL_DEBUG).

/// Writes debug lines when asked to; the text is only built when it is written.
#[derive(Clone, Copy)]
pub struct Logger {
    debug: bool,
}

impl Logger {
    pub fn new(debug: bool) -> Logger {
        Logger { debug }
    }

    pub fn log(&self, text: impl FnOnce() -> String) {
        if self.debug {
            eprintln!("regtool: debug: {}", text());
        }
    }
}
