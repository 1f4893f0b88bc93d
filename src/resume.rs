//! Downloads that survive a broken connection (PROTOCOL.md rule 20): when reading a blob
//! fails with the registry unavailable (a reset, a stall past REGTOOL_TIMEOUT, a cut), the
//! blob is opened again from the byte reached and reading goes on, so the caller sees one
//! uninterrupted stream and verifies every byte as before. Bytes already delivered are never
//! delivered twice (a registry that answers a Range request with the whole blob has its first
//! bytes dropped).

use std::io::{self, Read};

use crate::error::{Error, Kind};
use crate::oci::Digest;
use crate::registry::transport::retry::backoff;
use crate::store::Store;

pub struct Resuming<'a> {
    store: &'a dyn Store,
    repo: String,
    digest: Digest,
    offset: u64,
    inner: Box<dyn Read + Send + 'a>,
    retries: u32,
    attempt: u32,
}

impl<'a> Resuming<'a> {
    pub fn new(
        store: &'a dyn Store,
        repo: &str,
        digest: &Digest,
        inner: Box<dyn Read + Send + 'a>,
        retries: u32,
    ) -> Resuming<'a> {
        Resuming {
            store,
            repo: repo.to_string(),
            digest: digest.clone(),
            offset: 0,
            inner,
            retries,
            attempt: 0,
        }
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
    /// short (digest-mismatched) blob. When every attempt fails, the last failure is the
    /// answer. Each reopen is one request with its own retries, so `retries` here counts
    /// broken streams, not failed requests.
    fn reopen(&mut self, mut last: io::Error) -> io::Result<()> {
        while self.attempt < self.retries {
            self.attempt += 1;
            std::thread::sleep(backoff(self.attempt, None));
            match self
                .store
                .open_blob_at(&self.repo, &self.digest, self.offset)
            {
                Ok(blob) => {
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

/// Runs `op` again (after a backoff) while it fails with the registry unavailable, at most
/// `retries` more times. For steps that cannot be replayed request by request, like a blob
/// upload whose body was half sent: the caller's `op` starts over from a new upload session
/// with its source opened again.
pub fn again<T>(
    retries: u32,
    mut op: impl FnMut() -> crate::error::Result<T>,
) -> crate::error::Result<T> {
    let mut attempt = 0;
    loop {
        match op() {
            Err(e) if e.kind == Kind::Unavailable && attempt < retries => {
                attempt += 1;
                std::thread::sleep(backoff(attempt, None));
            }
            other => return other,
        }
    }
}
