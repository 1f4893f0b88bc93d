//! The one place where error kinds become exit statuses and messages become stderr lines
//! (the README's "Exit status" and regtool(1)).

use std::io::Write;

use regtool::error::{Cause, Error, Kind};
use regtool::text::sanitize;

pub const USAGE: i32 = 64;

/// The documented statuses, for `--help`, the man page and the README.
pub const STATUSES: &[(i32, &str)] = &[
    (
        0,
        "success (also when the reader of stdout goes away early, as with | head)",
    ),
    (1, "any other failure, including a closed stdout (>&-)"),
    (
        2,
        "not found: blob, manifest, alias, repository or local file",
    ),
    (13, "authentication or authorisation refused"),
    (64, "usage error: wrong arguments"),
    (
        65,
        "data error: digest mismatch, malformed manifest or input",
    ),
    (
        69,
        "registry unavailable: connection refused, TLS failure, 5xx after retries",
    ),
    (75, "temporary failure: rate limited (429) after retries"),
    (78, "configuration error: a bad environment variable"),
    (
        129,
        "hung up (SIGHUP): temporary files removed, open uploads cancelled",
    ),
    (
        130,
        "interrupted (SIGINT, Ctrl-C): temporary files removed, open uploads cancelled",
    ),
    (
        143,
        "terminated (SIGTERM, as timeout, docker stop and Kubernetes send): cleaned up as for 130",
    ),
];

pub fn code(kind: Kind) -> i32 {
    match kind {
        Kind::Closed => 0,
        Kind::Other => 1,
        Kind::NotFound => 2,
        Kind::Denied => 13,
        Kind::Usage => USAGE,
        Kind::Data => 65,
        Kind::Unavailable => 69,
        Kind::RateLimited => 75,
        Kind::Config => 78,
        Kind::Interrupted => 130,
    }
}

/// Prints `regtool: <message>` and an optional `hint:` line; returns the exit status.
pub fn report(err: &Error) -> i32 {
    if err.kind != Kind::Closed {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "regtool: {}", sanitize(&err.message, 1000));
        if let Some(hint) = hint(err) {
            let _ = writeln!(stderr, "hint: {}", sanitize(&hint, 1000));
        }
    }
    code(err.kind)
}

/// The error's own hint, else the next step for its cause in terms of the variables that
/// configure regtool (the library cannot name them).
fn hint(err: &Error) -> Option<String> {
    if let Some(hint) = &err.hint {
        return Some(hint.clone());
    }
    let text = match err.cause.as_ref()? {
        Cause::CredentialsRefused => "check REGTOOL_USERNAME and REGTOOL_PASSWORD",
        Cause::TokenCredentialsRefused => {
            "check REGTOOL_USERNAME and REGTOOL_PASSWORD (or the stored credentials)"
        }
        Cause::CredentialsWanted => {
            "the registry wants credentials: set REGTOOL_USERNAME and REGTOOL_PASSWORD"
        }
        Cause::AccessTokenRefused => "check REGTOOL_ACCESS_TOKEN",
        Cause::ConnectionRefused => "is the registry running, and is REGTOOL_HOST right?",
        Cause::Timeout => "raise REGTOOL_TIMEOUT if the registry is slow",
        Cause::TlsUntrusted { ca_given: true } => {
            "the certificate is neither in REGTOOL_TLSVERIFY nor signed by a CA in it: check that the file holds the registry's certificate or its CA"
        }
        Cause::TlsUntrusted { ca_given: false } => {
            "set REGTOOL_TLSVERIFY to the CA bundle that signed the registry's certificate (or to the certificate itself)"
        }
        Cause::TlsSelfSigned => {
            "if you trust it, name that certificate in REGTOOL_TLSVERIFY (a file holding its PEM)"
        }
        Cause::PlainHttpAnswer { host } => {
            return Some(format!(
                "if {host} only serves plain HTTP, set REGTOOL_INSECURE={host} (or REGTOOL_INSECURE=1 when it is REGTOOL_HOST); credentials then travel in clear text"
            ));
        }
        Cause::PlainHttpRefused { host } => {
            return Some(format!(
                "use https, or allow plain HTTP for that host: REGTOOL_INSECURE={host}"
            ));
        }
        Cause::HelperTimeout => {
            "is it waiting for a keychain to be unlocked? REGTOOL_TIMEOUT sets how long to wait"
        }
        Cause::CompressionUnsupported => "use REGTOOL_COMPRESSION=gzip, or an OCI image",
        Cause::PlatformNeeded => "set REGTOOL_PLATFORM, like linux/amd64",
        _ => return None,
    };
    Some(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Statuses that only a signal gives (128 + its number, src/signals.rs), not an error kind.
    const SIGNAL_ONLY: [i32; 2] = [129, 143];

    #[test]
    fn the_documented_table_matches_the_mapping() {
        let mapped: Vec<i32> = [
            Kind::Closed,
            Kind::Other,
            Kind::NotFound,
            Kind::Denied,
            Kind::Usage,
            Kind::Data,
            Kind::Unavailable,
            Kind::RateLimited,
            Kind::Config,
            Kind::Interrupted,
        ]
        .into_iter()
        .map(code)
        .collect();
        let documented: Vec<i32> = STATUSES
            .iter()
            .map(|s| s.0)
            .filter(|s| !SIGNAL_ONLY.contains(s))
            .collect();
        assert_eq!(mapped, documented);
    }

    #[test]
    fn signal_statuses_are_128_plus_the_signal() {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let documented: Vec<i32> = STATUSES.iter().map(|s| s.0).collect();
        for signal in [SIGHUP, SIGINT, SIGTERM] {
            assert!(documented.contains(&(128 + signal)), "{signal}");
        }
    }

    #[test]
    fn a_cause_gets_a_hint_naming_the_variable_and_an_own_hint_wins() {
        let e = Error::unavailable("x").with_cause(Cause::Timeout);
        assert_eq!(
            hint(&e).as_deref(),
            Some("raise REGTOOL_TIMEOUT if the registry is slow")
        );
        let e = Error::unavailable("x").with_cause(Cause::PlainHttpRefused {
            host: "h:80".into(),
        });
        assert_eq!(
            hint(&e).as_deref(),
            Some("use https, or allow plain HTTP for that host: REGTOOL_INSECURE=h:80")
        );
        let e = e.with_hint("mine");
        assert_eq!(hint(&e).as_deref(), Some("mine"));
        let e = Error::unavailable("x")
            .with_hint("old")
            .with_cause(Cause::Timeout);
        assert_eq!(
            hint(&e).as_deref(),
            Some("raise REGTOOL_TIMEOUT if the registry is slow")
        );
        assert_eq!(hint(&Error::other("x")), None);
    }

    #[test]
    fn every_kind_has_its_documented_status() {
        let table = [
            (Kind::Closed, 0),
            (Kind::Other, 1),
            (Kind::NotFound, 2),
            (Kind::Denied, 13),
            (Kind::Usage, 64),
            (Kind::Data, 65),
            (Kind::Unavailable, 69),
            (Kind::RateLimited, 75),
            (Kind::Config, 78),
            (Kind::Interrupted, 130),
        ];
        for (kind, status) in table {
            assert_eq!(code(kind), status, "{kind:?}");
        }
    }
}
