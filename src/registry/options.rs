//! How to talk to one registry, as typed values: the caller (the `regtool` binary maps its
//! environment variables onto these) has read every file and parsed every setting, so nothing
//! here is a variable name or a path to read, and the library never prints: diagnostics go to
//! the [`Log`] the caller passes.

use std::sync::Arc;
use std::time::Duration;

use crate::oci::Host;
use crate::registry::auth::AuthConfig;
use crate::registry::tls::TlsOptions;

/// Where the library's diagnostics go, since it never writes to stderr itself.
pub trait Log: Send + Sync {
    /// One request or response line, secrets redacted; only called when
    /// [`Options::debug`] is on.
    fn debug(&self, line: &str);
    /// Something that went wrong without failing the operation (an upload session that could
    /// not be cancelled), worth telling the user.
    fn warning(&self, line: &str);
}

/// A shared [`Log`]; the default drops everything.
#[derive(Clone, Default)]
pub struct LogSink(Option<Arc<dyn Log>>);

impl LogSink {
    /// A sink that forwards to `log`.
    pub fn new(log: Arc<dyn Log>) -> LogSink {
        LogSink(Some(log))
    }
    /// Forwards a debug line, if anyone listens.
    pub fn debug(&self, line: &str) {
        if let Some(log) = &self.0 {
            log.debug(line);
        }
    }
    /// Forwards a warning, if anyone listens.
    pub fn warning(&self, line: &str) {
        if let Some(log) = &self.0 {
            log.warning(line);
        }
    }
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "LogSink"
        } else {
            "Silent"
        })
    }
}

/// Two loggers are the same when they are the same sink.
impl PartialEq for LogSink {
    fn eq(&self, other: &LogSink) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        }
    }
}

/// How to talk to a registry.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The registry.
    pub host: Host,
    /// Plain HTTP to this registry, credentials included.
    pub insecure: bool,
    /// Other `host[:port]`s allowed plain HTTP with credentials (an http token realm); an
    /// entry without a port allows the host on any port.
    pub insecure_hosts: Vec<Host>,
    /// Credentials and the token cache.
    pub auth: AuthConfig,
    /// Extra trusted certificates, a client certificate, verification.
    pub tls: TlsOptions,
    /// Upload in chunks of this many bytes; None: one request per blob.
    pub chunk_size: Option<u64>,
    /// Retries per operation after a transient failure (see `crate::retry`).
    pub retries: u32,
    /// Idle timeout for connecting and for each read or write.
    pub timeout: Duration,
    /// Log each request and response status to [`Options::log`].
    pub debug: bool,
    /// Concurrent transfers the caller runs (sizes the connection pool).
    pub jobs: usize,
    /// Where debug lines and warnings go (nowhere by default).
    pub log: LogSink,
}

impl Options {
    /// Defaults for a host: HTTPS (loopback may fall back to HTTP), no credentials, 5
    /// retries, a 60 s idle timeout, 4 jobs, nothing logged.
    pub fn new(host: Host) -> Options {
        Options {
            host,
            insecure: false,
            insecure_hosts: Vec::new(),
            auth: AuthConfig::default(),
            tls: TlsOptions::default(),
            chunk_size: None,
            retries: 5,
            timeout: Duration::from_secs(60),
            debug: false,
            jobs: 4,
            log: LogSink::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Recorded(Mutex<Vec<String>>);

    impl Log for Recorded {
        fn debug(&self, line: &str) {
            self.0.lock().unwrap().push(format!("debug {line}"));
        }
        fn warning(&self, line: &str) {
            self.0.lock().unwrap().push(format!("warning {line}"));
        }
    }

    #[test]
    fn diagnostics_go_to_the_callers_sink_and_nowhere_by_default() {
        let log = Arc::new(Recorded::default());
        let sink = LogSink::new(log.clone());
        sink.debug("GET /v2/ -> 200");
        sink.warning("cancelling failed");
        assert_eq!(
            *log.0.lock().unwrap(),
            ["debug GET /v2/ -> 200", "warning cancelling failed"]
        );
        // The default drops them (and prints nothing: the library never does).
        LogSink::default().warning("dropped");
        assert_eq!(format!("{:?}", LogSink::default()), "Silent");
        assert_eq!(sink.clone(), sink);
        assert_ne!(sink, LogSink::new(Arc::new(Recorded::default())));
    }
}
