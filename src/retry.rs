//! The one retry policy (docs/registry-notes.md §19), shared by every layer that tries again:
//! requests in the registry's transport, token calls, download resumption, upload session
//! loops and image copies. It knows nothing of HTTP (which failures are worth a retry is the
//! transport's business), so the backend-neutral [`crate::store::Store`] can name it.
//!
//! A [`RetryPolicy`] says how many retries an *operation* may make and how long it may spend
//! failing; a [`Budget`] is one operation's account against it. Everything done for the
//! operation draws from the same budget, so layers that each retry do not multiply: a blob copy
//! under a permanent 503 makes at most `retries + 1` attempts in all, whether the retry is
//! the transport's, a resumed download's or a new upload session's.
//!
//! The operation's budget reaches the requests made for it through [`Budget::enter`]: the
//! requests are made deep inside the `Store` methods, which have no place for it. A request
//! made outside any operation gets a budget of its own.
//!
//! The waits between attempts end early when the operation is cancelled: a budget made with
//! [`Budget::with_cancel`] waits on that [`Cancel`] ([`Budget::wait`]), and the registry's
//! transport waits on its own, so that an interrupt never has to sit out a backoff.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::cancel::Cancel;
use crate::error::Result;

/// How long an operation may spend failing (waiting between attempts, and in attempts that
/// failed), whatever the number of retries allows.
pub const TOTAL: Duration = Duration::from_secs(300);

/// The longest `Retry-After` honoured: a server asking for more gets this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How failed operations are tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt, for the whole operation.
    pub retries: u32,
    /// The time an operation may spend failing.
    pub total: Duration,
}

impl RetryPolicy {
    /// `retries` retries per operation, within [`TOTAL`].
    pub fn new(retries: u32) -> RetryPolicy {
        RetryPolicy {
            retries,
            total: TOTAL,
        }
    }

    /// A new operation's budget.
    pub fn budget(self) -> Budget {
        Budget(Arc::new(Mutex::new(Account {
            policy: self,
            used: 0,
            spent: Duration::ZERO,
            cancel: None,
        })))
    }
}

struct Account {
    policy: RetryPolicy,
    /// Retries taken.
    used: u32,
    /// Time spent failing.
    spent: Duration,
    /// The operation's cancellation, which ends a wait early.
    cancel: Option<Cancel>,
}

/// One operation's account of retries and time, shared (it is a handle) by every layer
/// working for the operation, on any thread.
#[derive(Clone)]
pub struct Budget(Arc<Mutex<Account>>);

thread_local! {
    static CURRENT: RefCell<Option<Budget>> = const { RefCell::new(None) };
}

impl Budget {
    /// Takes one retry after a failure that cost `lost` (the failed attempt's time, when it
    /// moved nothing): the wait before the retry (the server's `Retry-After` when it sent a
    /// usable one, else exponential backoff with jitter), or None when the retries or the time
    /// are spent. The caller sleeps.
    pub fn next(&self, retry_after: Option<&str>, lost: Duration) -> Option<Duration> {
        let Ok(mut account) = self.0.lock() else {
            return None;
        };
        let wait = backoff(account.used + 1, retry_after);
        let spent = account.spent + lost;
        if account.used >= account.policy.retries || spent + wait > account.policy.total {
            account.spent = spent;
            return None;
        }
        account.used += 1;
        account.spent = spent + wait;
        Some(wait)
    }

    /// Gives back `retries` retries and `time` of failing that one layer took, when what they
    /// were spent on made progress after all (a chunked upload whose registry took more
    /// bytes since: each failure is then a new one, not the same one again).
    pub fn refund(&self, retries: u32, time: Duration) {
        if let Ok(mut account) = self.0.lock() {
            account.used = account.used.saturating_sub(retries);
            account.spent = account.spent.saturating_sub(time);
        }
    }

    /// The same budget, its waits ending early (with [`crate::Kind::Interrupted`]) once
    /// `cancel` is cancelled.
    pub fn with_cancel(self, cancel: Cancel) -> Budget {
        if let Ok(mut account) = self.0.lock() {
            account.cancel = Some(cancel);
        }
        self
    }

    /// Gives the budget `cancel` unless it has one: a registry does so for the operations its
    /// requests serve, so that a caller who cancels the registry ends their waits too.
    pub fn cancel_by_default(&self, cancel: &Cancel) {
        if let Ok(mut account) = self.0.lock() {
            account.cancel.get_or_insert_with(|| cancel.clone());
        }
    }

    /// Waits `wait` (what [`Budget::next`] gave) before the retry, or less: an error of kind
    /// [`crate::Kind::Interrupted`] as soon as the operation's cancel (if it has one) fires.
    pub fn wait(&self, wait: Duration) -> Result<()> {
        let cancel = self.0.lock().ok().and_then(|a| a.cancel.clone());
        match cancel {
            Some(cancel) => cancel.sleep(wait),
            None => {
                std::thread::sleep(wait);
                Ok(())
            }
        }
    }

    /// Retries taken so far.
    pub fn used(&self) -> u32 {
        self.0.lock().map_or(0, |a| a.used)
    }

    /// The retries the policy allows.
    pub fn retries(&self) -> u32 {
        self.0.lock().map_or(0, |a| a.policy.retries)
    }

    /// Runs `f` with this budget as the current operation's on this thread: every retry made
    /// inside (by the transport, an upload, a resumed download) draws from it.
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        let outer = CURRENT.with(|c| c.replace(Some(self.clone())));
        let _restore = Restore(outer);
        f()
    }

    /// The budget of the operation running on this thread, if any.
    pub fn current() -> Option<Budget> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// The current operation's budget, or a new one from `policy` (an operation of its own).
    pub fn current_or(policy: RetryPolicy) -> Budget {
        Budget::current().unwrap_or_else(|| policy.budget())
    }
}

/// Puts the outer operation's budget back, even when `f` panics.
struct Restore(Option<Budget>);

impl Drop for Restore {
    fn drop(&mut self) {
        let outer = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = outer);
    }
}

/// The delay before retry `attempt`: `Retry-After` when the server sent a usable one (delay
/// seconds or an HTTP date, RFC 9110 §10.2.3; capped at a minute), else exponential backoff
/// from 250 ms with jitter, capped at 8 s.
pub fn backoff(attempt: u32, retry_after: Option<&str>) -> Duration {
    if let Some(wait) = retry_after.and_then(retry_after_delay) {
        return wait.min(MAX_RETRY_AFTER);
    }
    let base = 250u64.saturating_mul(1 << attempt.min(5)).min(8_000);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = u64::from(nanos) % (base / 2 + 1);
    Duration::from_millis(base / 2 + jitter)
}

/// A `Retry-After` value as a delay from now: delay seconds, or an IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`); a date in the past is no delay.
fn retry_after_delay(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = http_date(value)?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the epoch of an IMF-fixdate (RFC 9110 §5.6.7), the form servers send.
fn http_date(value: &str) -> Option<u64> {
    let rest = value.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let (day, year): (u64, u64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || year < 1970 || *h > 23 || *m > 59 || *s > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (year >= 1970).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_waits_on_its_cancel_and_adopts_one_only_when_it_has_none() {
        let (mine, other) = (Cancel::new(), Cancel::new());
        let budget = RetryPolicy::new(1).budget().with_cancel(mine.clone());
        budget.cancel_by_default(&other);
        other.cancel(Duration::from_secs(1));
        assert!(
            budget.wait(Duration::from_millis(1)).is_ok(),
            "its own cancel"
        );
        mine.cancel(Duration::from_secs(1));
        let e = budget.wait(Duration::from_secs(600)).unwrap_err();
        assert_eq!(e.kind, crate::Kind::Interrupted);
        let adopted = RetryPolicy::new(1).budget();
        adopted.cancel_by_default(&other);
        assert!(adopted.wait(Duration::from_secs(600)).is_err());
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        assert_eq!(backoff(1, Some("3")), Duration::from_secs(3));
        assert_eq!(backoff(1, Some("9999")), Duration::from_secs(60));
        let d = backoff(3, None);
        assert!(
            d >= Duration::from_millis(1000) && d <= Duration::from_millis(2000),
            "{d:?}"
        );
        // A date in the past is no wait; a garbled one falls back to backoff.
        assert_eq!(
            backoff(1, Some("Sun, 06 Nov 1994 08:49:37 GMT")),
            Duration::ZERO
        );
        let d = backoff(1, Some("tomorrow"));
        assert!(d >= Duration::from_millis(250), "{d:?}");
    }

    #[test]
    fn http_dates_are_read() {
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(1_835_438_400)
        );
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 UTC"), None);
        assert_eq!(http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        let soon = SystemTime::now() + Duration::from_secs(30);
        let secs = soon
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let date = format_date(secs);
        let d = retry_after_delay(&date).unwrap();
        assert!(
            d <= Duration::from_secs(30) && d >= Duration::from_secs(28),
            "{d:?}"
        );
    }

    /// An IMF-fixdate for a test (the weekday is not checked by the parser).
    fn format_date(secs: u64) -> String {
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (mut year, mut month, mut day) = (1970, 1, 1);
        while days_from_civil(year + 1, 1, 1) <= days {
            year += 1;
        }
        while month < 12 && days_from_civil(year, month + 1, 1) <= days {
            month += 1;
        }
        day += days - days_from_civil(year, month, 1);
        let names = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        format!(
            "Mon, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
            names[month as usize - 1],
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    }

    #[test]
    fn a_budget_counts_retries_for_the_whole_operation() {
        let budget = RetryPolicy::new(3).budget();
        let other = budget.clone();
        assert!(budget.next(None, Duration::ZERO).is_some());
        assert!(other.next(None, Duration::ZERO).is_some());
        assert!(budget.next(None, Duration::ZERO).is_some());
        assert_eq!(budget.used(), 3);
        assert_eq!(
            other.next(None, Duration::ZERO),
            None,
            "three retries in all"
        );
        assert_eq!(
            RetryPolicy::new(0).budget().next(None, Duration::ZERO),
            None
        );
    }

    #[test]
    fn a_refund_gives_back_retries_and_time_once() {
        let budget = RetryPolicy::new(1).budget();
        let wait = budget.next(None, Duration::ZERO).unwrap();
        assert_eq!(budget.next(None, Duration::ZERO), None);
        budget.refund(1, wait);
        assert_eq!(budget.used(), 0);
        assert!(budget.next(None, Duration::ZERO).is_some());
        // Never below nothing: a refund of more than was taken leaves the policy's retries.
        budget.refund(5, Duration::from_secs(999));
        assert!(budget.next(None, Duration::ZERO).is_some());
        assert_eq!(budget.next(None, Duration::ZERO), None);
    }

    #[test]
    fn a_budget_ends_when_its_time_is_spent() {
        let policy = RetryPolicy {
            retries: 100,
            total: Duration::from_secs(10),
        };
        let budget = policy.budget();
        assert_eq!(
            budget.next(Some("4"), Duration::ZERO),
            Some(Duration::from_secs(4))
        );
        // 4 s waited and 5 s lost in the failed attempt: a 2 s wait would pass 10 s.
        assert_eq!(budget.next(Some("2"), Duration::from_secs(5)), None);
        assert_eq!(budget.used(), 1);
        let budget = policy.budget();
        assert_eq!(
            budget.next(Some("11"), Duration::ZERO),
            None,
            "too long a wait"
        );
    }

    #[test]
    fn retry_after_sets_the_wait() {
        let budget = RetryPolicy::new(2).budget();
        assert_eq!(
            budget.next(Some(" 2 "), Duration::ZERO),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            budget.next(Some("600"), Duration::ZERO),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn entered_budgets_nest_and_are_restored() {
        assert!(Budget::current().is_none());
        let outer = RetryPolicy::new(1).budget();
        let inner = RetryPolicy::new(7).budget();
        outer.enter(|| {
            assert_eq!(Budget::current().map(|b| b.retries()), Some(1));
            inner.enter(|| assert_eq!(Budget::current().map(|b| b.retries()), Some(7)));
            assert_eq!(Budget::current_or(RetryPolicy::new(9)).retries(), 1);
        });
        assert!(Budget::current().is_none());
        assert_eq!(Budget::current_or(RetryPolicy::new(9)).retries(), 9);
    }
}
