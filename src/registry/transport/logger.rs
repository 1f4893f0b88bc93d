//! The debug log of requests, retries and scheme changes, written to the caller's
//! [`LogSink`] (the library never prints).

use crate::registry::options::LogSink;

/// Writes debug lines when asked to; the text is only built when it is written.
#[derive(Clone)]
pub struct Logger {
    debug: bool,
    sink: LogSink,
}

impl Logger {
    /// Logs to `sink` when `debug` is on.
    pub fn new(debug: bool, sink: LogSink) -> Logger {
        Logger { debug, sink }
    }

    /// Logs `text()`, made only when debugging.
    pub fn log(&self, text: impl FnOnce() -> String) {
        if self.debug {
            self.sink.debug(&text());
        }
    }

    /// The sink, for warnings (they are written whether debugging or not).
    pub fn sink(&self) -> &LogSink {
        &self.sink
    }
}
