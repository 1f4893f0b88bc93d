//! Downloads that survive a broken connection (docs/registry-notes.md §20): when reading a blob
//! fails with the registry unavailable (a reset, a stall past the idle timeout, a cut), the
//! blob is opened again from the byte reached and reading goes on, so the caller sees one
//! uninterrupted stream and verifies every byte as before. Bytes already delivered are never
//! delivered twice (a registry that answers a Range request with the whole blob has its first
//! bytes dropped).

use std::io::{self, Read};
use std::time::Duration;

use crate::error::{Error, Kind};
use crate::oci::{Digest, Repository};
use crate::retry::Budget;
use crate::store::Store;

/// A blob stream that reopens the blob where it broke off, within a retry budget.
pub struct Resuming<'a> {
    store: &'a dyn Store,
    repo: Repository,
    digest: Digest,
    offset: u64,
    inner: Box<dyn Read + Send + 'a>,
    /// The operation's retry budget (see `crate::retry`).
    budget: Budget,
    /// The blob's whole size, when known: a reopened stream must offer what remains of it.
    size: Option<u64>,
}

impl<'a> Resuming<'a> {
    /// Wraps `inner`, the blob `digest` of `repo` in `store` opened from its start.
    pub fn new(
        store: &'a dyn Store,
        repo: &Repository,
        digest: &Digest,
        inner: Box<dyn Read + Send + 'a>,
        budget: Budget,
    ) -> Resuming<'a> {
        Resuming {
            store,
            repo: repo.clone(),
            digest: digest.clone(),
            offset: 0,
            inner,
            budget,
            size: None,
        }
    }

    /// Expects the blob to be `size` bytes long (from its manifest or the first answer): a
    /// reopened stream that announces another length than what remains is refused (a data
    /// error) before it is read.
    pub fn with_size(mut self, size: Option<u64>) -> Resuming<'a> {
        self.size = size;
        self
    }
}

fn unavailable(e: &io::Error) -> bool {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<Error>())
        .is_some_and(|err| err.kind == Kind::Unavailable)
}

impl Read for Resuming<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.offset += n as u64;
                Ok(n)
            }
            Err(e) if unavailable(&e) => {
                self.reopen(e)?;
                self.read(buf)
            }
            Err(e) => Err(e),
        }
    }
}

impl Resuming<'_> {
    /// Opens the blob again where reading stopped. The broken reader is never read again:
    /// a dead connection may well answer "end of stream", which would turn an outage into a
    /// short (digest-mismatched) blob. When the budget is spent, the last failure is the
    /// answer. A reopen is a retry of the operation, and the request it makes draws from the
    /// same budget (on whatever thread reads), so retries do not multiply.
    fn reopen(&mut self, mut last: io::Error) -> io::Result<()> {
        while let Some(wait) = self.budget.next(None, Duration::ZERO) {
            self.budget.wait(wait)?;
            let reopened = self.budget.enter(|| {
                self.store
                    .open_blob_at(&self.repo, &self.digest, self.offset)
            });
            match reopened {
                Ok(blob) => {
                    let remains = self.size.map(|s| s.saturating_sub(self.offset));
                    if let (Some(offered), Some(remains)) = (blob.size, remains)
                        && offered != remains
                    {
                        return Err(Error::data(format!(
                            "the registry offers {offered} bytes of {} from byte {}, {remains} remain",
                            self.digest, self.offset
                        ))
                        .into());
                    }
                    self.inner = blob.reader;
                    return Ok(());
                }
                Err(err) if err.kind == Kind::Unavailable => last = err.into(),
                Err(err) => return Err(err.into()),
            }
        }
        Err(last)
    }
}

/// Runs `op` as one operation of `budget` (every request inside draws from it), and again
/// (after a backoff) while it fails with the registry unavailable and the budget lasts. For
/// steps that cannot be replayed request by request, like a blob upload whose body was half
/// sent: the caller's `op` starts over from a new upload session with its source opened again.
pub fn again<T>(
    budget: &Budget,
    mut op: impl FnMut() -> crate::error::Result<T>,
) -> crate::error::Result<T> {
    loop {
        match budget.enter(&mut op) {
            Err(e) if e.kind == Kind::Unavailable => match budget.next(None, Duration::ZERO) {
                Some(wait) => budget.wait(wait)?,
                None => return Err(e),
            },
            other => return other,
        }
    }
}
