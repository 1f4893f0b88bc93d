//! The one error type of the library. Every failure is a value with a [`Kind`] that the
//! binary maps to an exit status in one place (`src/exit.rs`), a one-line message, and an
//! optional hint that names the obvious next step.

use std::fmt;

/// What went wrong, in the categories a script can act on (see the README's "Exit status").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Blob, manifest, alias or repository does not exist.
    NotFound,
    /// Authentication or authorisation refused.
    Denied,
    /// Wrong arguments.
    Usage,
    /// Digest mismatch, malformed manifest or input.
    Data,
    /// Registry unreachable: connection refused, TLS failure, 5xx after retries.
    Unavailable,
    /// Rate limited after retries.
    RateLimited,
    /// Bad configuration: a setting, or a file it names (a credentials file, a helper).
    Config,
    /// Interrupted by a signal.
    Interrupted,
    /// The reader of our output went away (`| head`): not a failure.
    Closed,
    /// Anything else.
    Other,
}

/// Why an operation failed, when the caller may have a next step to suggest that the library
/// cannot name (the binary names its environment variables in a hint; see `src/exit.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// The registry refused the credentials it was shown.
    CredentialsRefused,
    /// The token server refused the credentials (given or stored).
    TokenCredentialsRefused,
    /// The registry wants credentials, and none were given or stored.
    CredentialsWanted,
    /// The Azure AD access token could not be exchanged for a refresh token.
    AccessTokenRefused,
    /// Nothing listens on the registry's port.
    ConnectionRefused,
    /// The registry stopped answering for longer than the idle timeout.
    Timeout,
    /// The registry's certificate is not trusted; `ca_given`: extra CA certificates were given,
    /// and the certificate is not among them nor signed by one of them.
    TlsUntrusted {
        /// Extra CA certificates were given.
        ca_given: bool,
    },
    /// The registry's certificate is self-signed (a CA certificate used as the server's own),
    /// and no extra CA certificates were given.
    TlsSelfSigned,
    /// `host` answers TLS in plain HTTP.
    PlainHttpAnswer {
        /// The registry's host.
        host: String,
    },
    /// Credentials would travel in clear text to `host`, which is not allowed plain HTTP.
    PlainHttpRefused {
        /// Where the credentials would go.
        host: String,
    },
    /// A credential helper did not answer within the timeout.
    HelperTimeout,
    /// The layer compression asked for does not fit the image (zstd in a Docker image).
    CompressionUnsupported,
    /// A multi-platform index, and no platform was chosen.
    PlatformNeeded,
}

/// A library error: a kind, a one-line message, and maybe a hint and a cause.
#[derive(Debug, Clone)]
pub struct Error {
    /// What went wrong, for the caller to act on.
    pub kind: Kind,
    /// One line saying what failed and why.
    pub message: String,
    /// What to try next, when there is something to say.
    pub hint: Option<String>,
    /// Set where the next step depends on how the caller configures the library; a hint given
    /// here still wins over what the caller would say about the cause.
    pub cause: Option<Cause>,
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with `message`, no hint and no cause.
    pub fn new(kind: Kind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            hint: None,
            cause: None,
        }
    }
    /// A [`Kind::NotFound`] error.
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(Kind::NotFound, message)
    }
    /// A [`Kind::Usage`] error: the caller asked for something invalid.
    pub fn usage(message: impl Into<String>) -> Error {
        Error::new(Kind::Usage, message)
    }
    /// A [`Kind::Data`] error: content that is malformed or does not match its digest.
    pub fn data(message: impl Into<String>) -> Error {
        Error::new(Kind::Data, message)
    }
    /// A [`Kind::Config`] error about the setting `var`.
    pub fn config(var: &str, message: impl fmt::Display) -> Error {
        Error::new(Kind::Config, format!("{var}: {message}"))
    }
    /// A [`Kind::Other`] error.
    pub fn other(message: impl Into<String>) -> Error {
        Error::new(Kind::Other, message)
    }
    /// A [`Kind::Unavailable`] error: the registry could not be reached or did not answer.
    pub fn unavailable(message: impl Into<String>) -> Error {
        Error::new(Kind::Unavailable, message)
    }

    /// The same error with a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Error {
        self.hint = Some(hint.into());
        self
    }

    /// Says why; drops an earlier hint, since the caller's advice on the cause replaces it.
    pub fn with_cause(mut self, cause: Cause) -> Error {
        self.hint = None;
        self.cause = Some(cause);
        self
    }

    /// Prefixes the message with what was being done: `pulling sha256:...: <message>`.
    pub fn context(mut self, what: impl fmt::Display) -> Error {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// An I/O error on a local file, classified: a missing file is not-found, a refused one
    /// is reported as such but is not an authorisation error against a registry.
    pub fn io(what: impl fmt::Display, err: &std::io::Error) -> Error {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => Kind::NotFound,
            std::io::ErrorKind::Interrupted => Kind::Interrupted,
            _ => Kind::Other,
        };
        Error::new(kind, format!("{what}: {}", io_reason(err)))
    }
}

/// The reason of an I/O error without Rust's "(os error N)" suffix.
pub fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Lets an `Error` travel through `io::Read`/`io::Write` and come out with its kind intact.
impl From<Error> for std::io::Error {
    fn from(err: Error) -> std::io::Error {
        std::io::Error::other(err)
    }
}

/// Recovers a library error that was wrapped into an `io::Error` by a reader or writer.
pub fn from_io(what: impl fmt::Display, err: std::io::Error) -> Error {
    if err.get_ref().is_none() {
        return Error::io(what, &err);
    }
    let kind = err.kind();
    match err.into_inner().map(|inner| inner.downcast::<Error>()) {
        Some(Ok(inner)) => *inner,
        Some(Err(other)) => Error::io(what, &std::io::Error::new(kind, other)),
        None => Error::io(what, &std::io::Error::from(kind)),
    }
}

/// A failed write to an output: a broken pipe is the reader's choice (`| head`), reported as
/// [`Kind::Closed`] (not a failure); anything else is [`from_io`] with `what`.
pub fn from_write(what: impl fmt::Display, err: std::io::Error) -> Error {
    if err.kind() == std::io::ErrorKind::BrokenPipe {
        return Error::new(Kind::Closed, "output closed");
    }
    from_io(what, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_pipe_is_a_closed_output() {
        let closed = from_write("writing", std::io::ErrorKind::BrokenPipe.into());
        assert_eq!(closed.kind, Kind::Closed);
        let full = from_write("writing x", std::io::Error::from_raw_os_error(28));
        assert_eq!(full.kind, Kind::Other);
        assert!(full.message.starts_with("writing x: "), "{}", full.message);
    }

    #[test]
    fn io_errors_are_classified_and_trimmed() {
        let e = Error::io("reading a.bin", &std::io::Error::from_raw_os_error(2));
        assert_eq!(e.kind, Kind::NotFound);
        assert_eq!(e.message, "reading a.bin: No such file or directory");
    }

    #[test]
    fn library_errors_survive_a_trip_through_io() {
        let io: std::io::Error = Error::data("digest mismatch").into();
        let back = from_io("copying", io);
        assert_eq!(back.kind, Kind::Data);
        assert_eq!(back.message, "digest mismatch");
    }
}
