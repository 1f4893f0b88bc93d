//! Turning a registry's error response into an [`Error`]: by HTTP status first, then by the
//! distribution error code (docs/registry-notes.md §9), with the server's text sanitised.

use serde::Deserialize;

use std::io;

use crate::error::{Cause, Error, Kind};
use crate::text::sanitize;

#[derive(Deserialize)]
struct Body {
    errors: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The error for a response with an unexpected status. `what` says what was being done.
pub fn from_status(status: u16, body: &[u8], what: &str) -> Error {
    let parsed: Option<Body> = serde_json::from_slice(body).ok();
    let entry = parsed.as_ref().and_then(|b| b.errors.first());
    let code = entry.map(|e| e.code.as_str()).unwrap_or("");
    let reason = match entry {
        Some(e) if !e.message.is_empty() => format!("{} ({})", e.message, e.code),
        Some(e) => e.code.clone(),
        None => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() || text.len() > 200 || text.starts_with('<') {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {text}")
            }
        }
    };
    let kind = match (status, code) {
        (404, _) => Kind::NotFound,
        (
            _,
            "BLOB_UNKNOWN"
            | "MANIFEST_UNKNOWN"
            | "NAME_UNKNOWN"
            | "MANIFEST_BLOB_UNKNOWN"
            | "BLOB_UPLOAD_UNKNOWN",
        ) => Kind::NotFound,
        (401 | 403, _) => Kind::Denied,
        (429, _) => Kind::RateLimited,
        (500..=599, _) => Kind::Unavailable,
        (
            _,
            "DIGEST_INVALID"
            | "MANIFEST_INVALID"
            | "SIZE_INVALID"
            | "BLOB_UPLOAD_INVALID"
            | "MANIFEST_UNVERIFIED",
        ) => Kind::Data,
        (_, "NAME_INVALID" | "TAG_INVALID" | "PAGINATION_NUMBER_INVALID") => Kind::Usage,
        _ => Kind::Other,
    };
    let err = Error::new(kind, format!("{what}: {}", sanitize(&reason, 300)));
    match (status, kind) {
        (405, _) => {
            err.with_hint("the registry does not allow this operation (deletes are often disabled)")
        }
        (_, Kind::Denied) => err.with_cause(Cause::CredentialsRefused),
        _ => err,
    }
}

/// The error for a request that got no answer (a transport failure). `trusts_given_certs`:
/// extra CA certificates were given (for the hint of a certificate failure).
pub fn from_transport(e: ureq::Error, host: &str, trusts_given_certs: bool) -> Error {
    match e {
        ureq::Error::Io(io) => {
            if io.get_ref().is_some_and(|inner| inner.is::<Error>()) {
                return crate::error::from_io("sending", io);
            }
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return tls_error(host, tls, trusts_given_certs);
            }
            match io.kind() {
                io::ErrorKind::ConnectionRefused => {
                    Error::unavailable(format!("cannot connect to {host}: connection refused"))
                        .with_cause(Cause::ConnectionRefused)
                }
                io::ErrorKind::TimedOut => Error::unavailable(format!("{host}: timed out")),
                _ => Error::unavailable(format!("{host}: {}", crate::error::io_reason(&io))),
            }
        }
        ureq::Error::Timeout(t) => {
            Error::unavailable(format!("{host}: timed out ({t})")).with_cause(Cause::Timeout)
        }
        ureq::Error::HostNotFound => Error::unavailable(format!("cannot resolve {host}")),
        ureq::Error::ConnectionFailed => Error::unavailable(format!("cannot connect to {host}")),
        ureq::Error::Rustls(tls) => tls_error(host, &tls, trusts_given_certs),
        e @ ureq::Error::Tls(_) => Error::unavailable(format!("TLS failure with {host}: {e}")),
        e => Error::unavailable(format!("{host}: {e}")),
    }
}

/// `given`: extra CA certificates were given (the caller's hint must not ask for them again).
/// A certificate problem is said in words; a hint about trust only comes with a refusal of
/// trust (an expired certificate the user named is trusted, and still refused).
fn tls_error(host: &str, e: &rustls::Error, given: bool) -> Error {
    use rustls::CertificateError as C;
    let failed = |why: String| Error::unavailable(format!("TLS failure with {host}: {why}"));
    let rustls::Error::InvalidCertificate(problem) = e else {
        return failed(e.to_string());
    };
    let date = |t: &rustls::pki_types::UnixTime| {
        crate::image::append::rfc3339(i64::try_from(t.as_secs()).unwrap_or(i64::MAX))
    };
    match problem {
        C::NotValidForName | C::NotValidForNameContext { .. } => failed(e.to_string()).with_hint(
            format!("the certificate does not name {host}: connect by a name it lists"),
        ),
        C::Expired => failed("the server's certificate has expired".into()),
        C::ExpiredContext { not_after, .. } => failed(format!(
            "the server's certificate expired on {}",
            date(not_after)
        )),
        C::NotValidYet => failed("the server's certificate is not valid yet".into()),
        C::NotValidYetContext { not_before, .. } => failed(format!(
            "the server's certificate is not valid before {}",
            date(not_before)
        )),
        _ if crate::registry::tls::ca_as_end_entity(e) => {
            let err = failed(
                "the server's certificate is self-signed (a CA certificate used as its own)".into(),
            );
            if given {
                err.with_cause(Cause::TlsUntrusted { ca_given: true })
            } else {
                err.with_cause(Cause::TlsSelfSigned)
            }
        }
        _ => failed(e.to_string()).with_cause(Cause::TlsUntrusted { ca_given: given }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_status_then_code() {
        let e = from_status(
            404,
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
            "getting @x",
        );
        assert_eq!(e.kind, Kind::NotFound);
        assert_eq!(e.message, "getting @x: manifest unknown (MANIFEST_UNKNOWN)");
        assert_eq!(
            from_status(
                400,
                br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN"}]}"#,
                "x"
            )
            .kind,
            Kind::NotFound
        );
        assert_eq!(
            from_status(400, br#"{"errors":[{"code":"DIGEST_INVALID"}]}"#, "x").kind,
            Kind::Data
        );
        assert_eq!(from_status(401, b"", "x").kind, Kind::Denied);
        assert_eq!(from_status(503, b"busy", "x").message, "x: HTTP 503: busy");
        assert_eq!(from_status(429, b"", "x").kind, Kind::RateLimited);
        assert!(from_status(405, b"", "x").hint.is_some());
        assert_eq!(
            from_status(404, b"404 page not found\n", "x").message,
            "x: HTTP 404: 404 page not found"
        );
    }

    #[test]
    fn server_text_is_sanitised() {
        let e = from_status(400, b"\x1b]0;pwned\x07", "x");
        assert!(!e.message.contains('\x1b'));
    }

    #[test]
    fn certificate_problems_are_worded_and_only_trust_gets_a_trust_hint() {
        use rustls::CertificateError as C;
        let invalid = |c: C| rustls::Error::InvalidCertificate(c);
        let day = rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            1_577_923_200,
        ));
        for given in [true, false] {
            let e = tls_error("h:1", &invalid(C::Expired), given);
            assert_eq!(
                e.message,
                "TLS failure with h:1: the server's certificate has expired"
            );
            assert_eq!((e.cause, e.hint), (None, None));
            let e = tls_error(
                "h:1",
                &invalid(C::ExpiredContext {
                    time: day,
                    not_after: day,
                }),
                given,
            );
            assert_eq!(
                e.message,
                "TLS failure with h:1: the server's certificate expired on 2020-01-02T00:00:00Z"
            );
            assert_eq!(e.cause, None);
            let e = tls_error(
                "h:1",
                &invalid(C::NotValidYetContext {
                    time: day,
                    not_before: day,
                }),
                given,
            );
            assert!(
                e.message
                    .ends_with("is not valid before 2020-01-02T00:00:00Z")
            );
            assert_eq!(e.cause, None);
        }
        let ca = invalid(C::Other(rustls::OtherError(std::sync::Arc::new(
            webpki::Error::CaUsedAsEndEntity,
        ))));
        let e = tls_error("h:1", &ca, false);
        assert_eq!(
            e.message,
            "TLS failure with h:1: the server's certificate is self-signed (a CA certificate \
             used as its own)"
        );
        assert_eq!(e.cause, Some(Cause::TlsSelfSigned));
        let e = tls_error("h:1", &ca, true);
        assert_eq!(e.cause, Some(Cause::TlsUntrusted { ca_given: true }));
        let e = tls_error("h:1", &invalid(C::UnknownIssuer), false);
        assert_eq!(e.cause, Some(Cause::TlsUntrusted { ca_given: false }));
    }
}
