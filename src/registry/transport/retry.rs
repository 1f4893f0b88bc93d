//! Retries: which failures may be retried, and the wait before each retry.

use std::io;
use std::time::{Duration, SystemTime};

/// How long one request may spend waiting between retries, whatever REGTOOL_RETRIES says.
pub const RETRY_BUDGET: Duration = Duration::from_secs(300);

/// The delay before retry `attempt`: `Retry-After` when the server sent a usable one (capped
/// at a minute), else exponential backoff from 250 ms with jitter, capped at 8 s.
pub fn backoff(attempt: u32, retry_after: Option<&str>) -> Duration {
    if let Some(secs) = retry_after.and_then(|v| v.trim().parse::<u64>().ok()) {
        return Duration::from_secs(secs.min(60));
    }
    let base = 250u64.saturating_mul(1 << attempt.min(5)).min(8_000);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = u64::from(nanos) % (base / 2 + 1);
    Duration::from_millis(base / 2 + jitter)
}

/// Whether a request certainly never reached the server: the connection was never made.
pub fn never_sent(e: &ureq::Error) -> bool {
    use ureq::Timeout;
    match e {
        ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::ConnectProxyFailed(_) => true,
        ureq::Error::Timeout(t) => matches!(t, Timeout::Resolve | Timeout::Connect),
        ureq::Error::Io(io) => io.kind() == io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_honoured_and_capped() {
        assert_eq!(backoff(1, Some("3")), Duration::from_secs(3));
        assert_eq!(backoff(1, Some("9999")), Duration::from_secs(60));
        let d = backoff(3, None);
        assert!(
            d >= Duration::from_millis(1000) && d <= Duration::from_millis(2000),
            "{d:?}"
        );
    }
}
