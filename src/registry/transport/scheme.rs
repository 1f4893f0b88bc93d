//! The scheme a registry is spoken to with: https, or plain HTTP when the user asked for it or
//! when a loopback registry does not speak TLS (its answer to our TLS hello is not TLS).
//!
//! What a loopback registry taught is remembered for the next processes: a marker file
//! (`plain-http/<host>` in the cache directory the caller gives), so that a script calling
//! regtool twenty times pays the https attempt once, not twenty times (a connection, a TLS
//! hello and the registry's refusal: about 1 ms of a 4 ms call). A recalled plain HTTP is a
//! guess until the registry answers: if the first request fails, or gets the 400 a TLS server
//! gives a plain-HTTP request, the marker is dropped and the scheme learnt again from https.

use std::io;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Cause, Error};
use crate::registry::options::Options;
use crate::registry::transport::wire::proxied;

/// What a failed https attempt means for the scheme.
#[derive(Debug, PartialEq, Eq)]
pub enum Fallback {
    /// A loopback registry that does not speak TLS: plain HTTP from now on.
    PlainHttp,
    /// A server that answers TLS in plain HTTP: said at once, never retried.
    Refuse,
}

/// The scheme in use for one registry: settled from the start (https; http when asked), or,
/// for a loopback registry not reached through a proxy, by the first answer (through a proxy,
/// plain HTTP would cross the proxy's network: https only).
pub struct Scheme {
    settled: Mutex<Option<&'static str>>,
    /// The marker that says this loopback registry spoke plain HTTP to an earlier process
    /// (None: the scheme is not learnt, or no cache directory was given).
    marker: Option<PathBuf>,
    /// Plain HTTP came from the marker, and no answer has confirmed it yet.
    recalled: AtomicBool,
}

impl Scheme {
    /// The scheme rule for the registry `opts` describes.
    pub fn new(opts: &Options) -> Scheme {
        let learnt = !opts.insecure
            && opts.host.is_loopback()
            && !proxied(&format!("https://{}/", opts.host));
        let marker = match (learnt, &opts.auth.cache_dir) {
            (true, Some(dir)) => Some(dir.join("plain-http").join(opts.host.as_str())),
            _ => None,
        };
        let recalled = marker.as_ref().is_some_and(|m| m.exists());
        let scheme = if opts.insecure || recalled {
            Some("http")
        } else if learnt {
            None
        } else {
            Some("https")
        };
        Scheme {
            settled: Mutex::new(scheme),
            marker,
            recalled: AtomicBool::new(recalled),
        }
    }

    /// Settles on plain HTTP, for the requests that follow and for the next processes. A
    /// marker that cannot be written costs the next process an https attempt, nothing more.
    fn settle_plain(&self) {
        self.settle("http");
        if let Some(marker) = &self.marker
            && let Some(dir) = marker.parent()
        {
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .and_then(|()| std::fs::File::create(marker));
        }
    }

    /// Called with the first answer to a registry request (`failed`: no answer, or a 400):
    /// whether plain HTTP was only recalled and this answer refutes it, the registry speaking
    /// TLS now. Then the marker is gone, the scheme is to be learnt again, and the caller
    /// sends the request again. Any other first answer confirms the recalled scheme.
    pub fn recall_refuted(&self, failed: bool) -> bool {
        if !self.recalled.swap(false, Ordering::SeqCst) || !failed {
            return false;
        }
        if let Some(marker) = &self.marker {
            let _ = std::fs::remove_file(marker);
        }
        if let Ok(mut g) = self.settled.lock() {
            *g = None;
        }
        true
    }

    /// The scheme to use, and whether it is settled.
    pub fn get(&self) -> (&'static str, bool) {
        match self.settled.lock().ok().and_then(|g| *g) {
            Some(s) => (s, true),
            None => ("https", false),
        }
    }

    /// Keeps `scheme` for the requests that follow.
    pub fn settle(&self, scheme: &'static str) {
        if let Ok(mut g) = self.settled.lock() {
            *g = Some(scheme);
        }
    }

    /// What a failed attempt on `url` says about the scheme (`registry_path`: the request
    /// was for a path on the registry, not for a URL elsewhere): that a loopback registry does
    /// not speak TLS (plain HTTP is settled on, and the request goes again), that a server
    /// answers TLS in plain HTTP (not a failure that waiting cures), or nothing.
    pub fn after_failure(
        &self,
        registry_path: bool,
        url: &str,
        e: &ureq::Error,
    ) -> Option<Fallback> {
        let tried_https = url.starts_with("https://");
        let (scheme, settled) = self.get();
        // Another thread may have settled on http while this https attempt failed.
        if registry_path && tried_https && tls_mismatch(e) && (!settled || scheme == "http") {
            self.settle_plain();
            return Some(Fallback::PlainHttp);
        }
        (tried_https && answered_in_plain_text(e)).then_some(Fallback::Refuse)
    }

    /// Whether the scheme is still to be learned (a loopback registry not yet answered).
    pub fn unsettled(&self) -> bool {
        self.settled.lock().is_ok_and(|g| g.is_none())
    }
}

/// Whether a failed first https attempt looks like a plain-HTTP server on the other end: its
/// answer to our ClientHello is not a TLS record. A certificate that does not verify, or a
/// server that wants a client certificate, is a TLS failure, never a reason to drop to HTTP.
fn tls_mismatch(e: &ureq::Error) -> bool {
    match e {
        // A server that hangs up on a ClientHello it cannot parse.
        ureq::Error::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => true,
        e => answered_in_plain_text(e),
    }
}

/// Whether the answer to our ClientHello was not a TLS record at all (an HTTP server says
/// `HTTP/1.1 400 ...`), which rustls reports as a corrupt message.
fn answered_in_plain_text(e: &ureq::Error) -> bool {
    let not_tls = |r: &rustls::Error| matches!(r, rustls::Error::InvalidMessage(_));
    match e {
        ureq::Error::Rustls(r) => not_tls(r),
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .is_some_and(not_tls),
        _ => false,
    }
}

/// A registry on another machine that answers TLS with plain HTTP: said at once, not retried.
pub fn plain_http_error(host: &str) -> Error {
    Error::unavailable(format!(
        "TLS failure with {host}: it answers in plain HTTP, not TLS"
    ))
    .with_cause(Cause::PlainHttpAnswer {
        host: host.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hung_up() -> ureq::Error {
        ureq::Error::Io(io::Error::from(io::ErrorKind::UnexpectedEof))
    }

    #[test]
    fn a_loopback_registry_that_hangs_up_on_tls_gets_plain_http_once() {
        let scheme = Scheme {
            settled: Mutex::new(None),
            marker: None,
            recalled: AtomicBool::new(false),
        };
        let url = "https://127.0.0.1:5000/v2/";
        assert_eq!(
            scheme.after_failure(false, url, &hung_up()),
            None,
            "not a registry path"
        );
        assert_eq!(
            scheme.after_failure(true, url, &hung_up()),
            Some(Fallback::PlainHttp)
        );
        assert_eq!(scheme.get(), ("http", true));
        // A settled https scheme never falls back.
        let scheme = Scheme {
            settled: Mutex::new(Some("https")),
            marker: None,
            recalled: AtomicBool::new(false),
        };
        assert_eq!(scheme.after_failure(true, url, &hung_up()), None);
        assert_eq!(scheme.get(), ("https", true));
    }

    #[test]
    fn plain_http_is_remembered_for_a_loopback_registry_until_refuted() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = Options::new("127.0.0.1:5000".parse().unwrap());
        opts.auth.cache_dir = Some(dir.path().join("c"));
        let first = Scheme::new(&opts);
        assert_eq!(first.get(), ("https", false), "learnt, nothing remembered");
        let url = "https://127.0.0.1:5000/v2/";
        assert_eq!(
            first.after_failure(true, url, &hung_up()),
            Some(Fallback::PlainHttp)
        );
        let marker = dir.path().join("c/plain-http/127.0.0.1:5000");
        assert!(marker.exists());
        assert!(!first.recall_refuted(true), "learnt here, not recalled");
        // The next process starts with plain HTTP; an answer confirms it.
        let next = Scheme::new(&opts);
        assert_eq!(next.get(), ("http", true));
        assert!(!next.recall_refuted(false));
        assert!(!next.recall_refuted(true), "confirmed already");
        assert!(marker.exists());
        // A registry that speaks TLS now refutes it: learnt again, the marker gone.
        let later = Scheme::new(&opts);
        assert!(later.recall_refuted(true));
        assert_eq!(later.get(), ("https", false));
        assert!(!marker.exists());
        // Nothing is remembered for a registry elsewhere, nor when plain HTTP was asked for.
        let mut remote = Options::new("reg.example:5000".parse().unwrap());
        remote.auth.cache_dir = opts.auth.cache_dir.clone();
        assert_eq!(Scheme::new(&remote).marker, None);
        opts.insecure = true;
        assert_eq!(Scheme::new(&opts).marker, None);
    }
}
