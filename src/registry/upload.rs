//! Blob uploads (OCI distribution spec "Pushing blobs", PROTOCOL.md rules 3-5): POST for a
//! session, then either one PUT `?digest=` carrying the whole blob with an exact
//! Content-Length, or PATCH chunks (`Content-Range: start-end`, inclusive, no `bytes ` prefix)
//! followed by an empty PUT `?digest=`. Every step uses the newest `Location`; a failed upload
//! cancels its session.

use std::io::Read;
use std::sync::{Arc, Mutex};

use ureq::http::Method;

use crate::cleanup;
use crate::error::{Error, Result};
use crate::oci::digest::HashingReader;
use crate::oci::{Algorithm, Digest};
use crate::registry::http::{Body, Http, Request, header};
use crate::registry::scope::Scope;
use crate::registry::url;

pub struct Upload<'a> {
    http: &'a Http,
    repo: String,
    /// The newest Location, absolute.
    location: String,
    /// The same, for the interrupt handler's cancel action (registered while we live).
    shared: Arc<Mutex<String>>,
    _interrupt: cleanup::Guard,
    chunk_size: Option<u64>,
    offset: u64,
}

/// Best-effort DELETE of an upload session we will not finish.
pub fn cancel(http: &Http, repo: &str, location: &str) {
    let _ = http.send(Request::new(Method::DELETE, location).scope(Scope::push(repo)));
}

impl<'a> Upload<'a> {
    /// Opens an upload session. This request also settles authentication, so that the
    /// streamed requests after it (which cannot be replayed) are sent with credentials.
    pub fn start(http: &'a Http, repo: &str, chunk_size: Option<u64>) -> Result<Upload<'a>> {
        let what = format!("starting an upload to {repo}");
        let resp = http.call(
            Request::new(Method::POST, format!("/v2/{repo}/blobs/uploads/"))
                .scope(Scope::push(repo)),
            &[202],
            &what,
        )?;
        let location = header(&resp, "location")
            .ok_or_else(|| Error::data(format!("{what}: the registry sent no Location")))?;
        // OCI-Chunk-Min-Length (distribution spec v1.1): chunks smaller than this are refused.
        let min = header(&resp, "oci-chunk-min-length").and_then(|v| v.trim().parse::<u64>().ok());
        let chunk_size = match (chunk_size, min) {
            (Some(c), Some(m)) => Some(c.max(m)),
            (c, _) => c,
        };
        let location = url::resolve(
            &http.absolute(&format!("/v2/{repo}/blobs/uploads/")),
            &location,
        );
        let shared = Arc::new(Mutex::new(location.clone()));
        let interrupt = cleanup::on_interrupt(http.canceller(shared.clone(), &Scope::push(repo)));
        Ok(Upload {
            location,
            shared,
            _interrupt: interrupt,
            http,
            repo: repo.to_string(),
            chunk_size,
            offset: 0,
        })
    }

    /// Uploads a blob of known digest and size.
    pub fn finish_known(
        mut self,
        digest: &Digest,
        size: u64,
        content: &mut dyn Read,
    ) -> Result<()> {
        let result = match self.chunk_size {
            None => self.put(digest, Body::Stream(content, Some(size))),
            Some(chunk) => self
                .patch_buffered(&mut content.take(size), chunk)
                .and_then(|()| self.check_length(size))
                .and_then(|()| self.put(digest, Body::Empty)),
        };
        self.cancel_on_error(result)
    }

    /// Uploads a stream of unknown length, hashing while it goes: one chunked PATCH (or
    /// PATCHes of REGTOOL_CHUNK_SIZE), then PUT `?digest=` with no body.
    pub fn finish_stream(
        mut self,
        content: &mut dyn Read,
        algorithm: Algorithm,
    ) -> Result<(Digest, u64)> {
        let mut hashing = HashingReader::new(content, algorithm);
        let sent = match self.chunk_size {
            None => self.patch(Body::Stream(&mut hashing, None), None),
            Some(chunk) => self.patch_buffered(&mut hashing, chunk),
        };
        let (digest, size) = hashing.finish();
        let result = sent.and_then(|()| self.put(&digest, Body::Empty));
        self.cancel_on_error(result).map(|()| (digest, size))
    }

    fn cancel_on_error<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            cancel(self.http, &self.repo, &self.location);
        }
        result
    }

    fn check_length(&self, size: u64) -> Result<()> {
        if self.offset == size {
            Ok(())
        } else {
            Err(Error::data(format!(
                "input ended {} bytes early (did the file change during the push?)",
                size - self.offset
            )))
        }
    }

    /// Chunked uploads: each chunk is read into memory first, so that its length is known and
    /// it can be sent again to the same Location after a 401 (a token that expired during a
    /// long upload, PROTOCOL.md rule 16). Memory is one chunk.
    fn patch_buffered(&mut self, content: &mut dyn Read, chunk: u64) -> Result<()> {
        let mut buf =
            Vec::with_capacity(usize::try_from(chunk).unwrap_or(usize::MAX).min(64 << 20));
        loop {
            buf.clear();
            content
                .take(chunk)
                .read_to_end(&mut buf)
                .map_err(|e| crate::error::from_io("reading the input", e))?;
            if buf.is_empty() {
                return Ok(());
            }
            let len = buf.len() as u64;
            self.patch(Body::Bytes(&buf), Some(len))?;
            if len < chunk {
                return Ok(());
            }
        }
    }

    fn patch(&mut self, body: Body<'_>, len: Option<u64>) -> Result<()> {
        let what = format!("uploading to {}", self.repo);
        let mut req = Request::new(Method::PATCH, self.location.clone())
            .scope(Scope::push(&self.repo))
            .header("content-type", "application/octet-stream");
        if let Some(len) = len {
            req = req.header(
                "content-range",
                format!("{}-{}", self.offset, self.offset + len - 1),
            );
        }
        let resp = self.http.call(req.body(body), &[202, 204], &what)?;
        self.follow(&resp);
        // Track the offset ourselves and check the registry agrees (2.8.2 does not enforce order).
        let reported = header(&resp, "range").and_then(|r| range_end(&r));
        match (len, reported) {
            (Some(len), Some(end)) if end != self.offset + len => {
                return Err(Error::data(format!(
                    "{what}: the registry has {end} bytes, expected {}",
                    self.offset + len
                )));
            }
            (Some(len), _) => self.offset += len,
            (None, Some(end)) => self.offset = end,
            (None, None) => {}
        }
        Ok(())
    }

    fn put(&mut self, digest: &Digest, body: Body<'_>) -> Result<()> {
        let what = format!("uploading {digest} to {}", self.repo);
        let target = url::add_query(&self.location, "digest", &digest.to_string());
        let req = Request::new(Method::PUT, target)
            .scope(Scope::push(&self.repo))
            .header("content-type", "application/octet-stream")
            .body(body);
        let resp = self.http.call(req, &[201, 204], &what)?;
        self.follow(&resp);
        Ok(())
    }

    /// Moves to the newest Location; 2.8.2 rejects a stale one (PROTOCOL.md rule 3).
    fn follow(&mut self, resp: &crate::registry::http::Response) {
        if let Some(loc) = header(resp, "location") {
            self.location = url::resolve(&self.location, &loc);
            if let Ok(mut shared) = self.shared.lock() {
                shared.clone_from(&self.location);
            }
        }
    }
}

/// Parses a `Range: 0-<end>` upload-progress header into the next offset.
pub fn range_end(value: &str) -> Option<u64> {
    let v = value.trim().trim_start_matches("bytes=");
    let (start, end) = v.split_once('-')?;
    if start.trim() != "0" {
        return None;
    }
    end.trim()
        .parse::<u64>()
        .ok()
        .and_then(|e| e.checked_add(1))
}

#[cfg(test)]
mod tests {
    #[test]
    fn range_headers_give_the_next_offset() {
        assert_eq!(super::range_end("0-1023"), Some(1024));
        assert_eq!(super::range_end("bytes=0-0"), Some(1));
        for bad in ["", "5-9", "0-", "0-x", "garbage", "0-18446744073709551615"] {
            assert_eq!(super::range_end(bad), None, "{bad}");
        }
    }
}
