//! Blob uploads (OCI distribution spec "Pushing blobs"): POST for a session, then either one
//! PUT `?digest=` carrying the whole blob with an exact Content-Length, or PATCH chunks
//! (`Content-Range: start-end`, inclusive, no `bytes ` prefix) followed by an empty PUT
//! `?digest=`. Every step uses the newest `Location` (distribution signs the upload state into
//! it and refuses an older one).
//!
//! A request whose answer was lost (or a 416, or a `Range` that disagrees) is never sent
//! again blindly: the registry is first asked where the upload stands (OCI
//! distribution spec: `GET /v2/<name>/blobs/uploads/<reference>` answers 204 with
//! `Range: 0-<end>` and a `Location`), and sending goes on from there on the same session. A
//! request the registry (or a load balancer in front of it) refused with 408, 429 or 5xx took
//! nothing, and goes again as it was. Only when the registry says the session is gone
//! (404) does a file start over in a new one. All of this is one loop drawing from one retry
//! budget (the operation's: see `crate::retry`); the requests inside it are not retried
//! by the transport as well, unless they never left. A failure after the registry took more
//! bytes than at the one before gives back the retries taken since: the budget bounds
//! failures in a row, so a long chunked upload behind a flaky load balancer goes through.
//!
//! A file is read at positions, so any part of it can be sent again and nothing is held in
//! memory. A stream is read once: a chunk of it is kept (at most [`STREAM_CHUNK`] bytes) until
//! the registry has it, and what came before cannot be sent again. A session we give up is
//! cancelled (DELETE with its newest Location); a cancel that fails is said on stderr.

use std::io::Read;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use ureq::http::Method;

use crate::cancel::{self, Cancel};
use crate::error::{Error, Kind, Result};
use crate::oci::digest::Hasher;
use crate::oci::{Algorithm, Digest};
use crate::registry::errors::from_status;
use crate::registry::http::{Body, Http, Request, Response, Retry, header, read_limited};
use crate::registry::options::LogSink;
use crate::registry::scope::Scope;
use crate::registry::url;
use crate::retry::Budget;
use crate::store::ReadAt;

/// The most of a stream held in memory: a chunk from stdin larger than this is sent in
/// pieces of this size (a file is never held, whatever the chunk size).
pub const STREAM_CHUNK: u64 = 16 << 20;

/// Streams up to this size are read whole before they are sent, so that a failed request
/// can be sent again (a config, an alias manifest's blob).
const SMALL_STREAM: u64 = 1 << 20;

/// How long the cancel action waits for the request on the wire to end, so that it cancels
/// with the Location that request brings back.
const SETTLE: Duration = Duration::from_secs(3);

/// The PATCH size of a file uploaded while it is hashed, until the hash is done (see
/// `hashing_step`).
const HASHING_CHUNK: u64 = 8 << 20;

/// One blob upload in one session at a time.
pub struct Upload<'a> {
    http: &'a Http,
    repo: String,
    shared: Arc<Shared>,
    /// Checked before and after every request; cancelling it cancels the session.
    cancel: Cancel,
    _on_cancel: cancel::Guard,
    /// The chunk size as asked.
    asked_chunk: Option<u64>,
    /// The chunk size raised to the registry's OCI-Chunk-Min-Length (spec v1.1), below
    /// which it refuses chunks.
    chunk_size: Option<u64>,
    min_chunk: Option<u64>,
    /// The bytes the registry has.
    offset: u64,
    /// The retry budget: the operation's this upload is part of (a copy), else the upload's
    /// own (see `crate::retry`).
    budget: Budget,
    /// A closing PUT was sent: if the session is then gone, the blob may be in place.
    put_sent: bool,
    /// The hasher found the blob in the repository: the session is to be cancelled.
    skipped: bool,
    /// The most bytes the registry had at a failure, and the retries (and their waits)
    /// taken since it last had more: a failure after the registry took more bytes gives
    /// those back to the budget, so a long chunked upload behind a load balancer that fails
    /// now and then is not ended by failures it got past.
    progress: Progress,
}

/// See [`Upload::progress`].
#[derive(Default)]
struct Progress {
    high: u64,
    retries: u32,
    waited: Duration,
}

/// The status and (the start of) the body of an answer; None when there was none.
type Answer = Option<(u16, Vec<u8>)>;

/// What the cancel action shares with an upload: the newest Location (empty when there is
/// no session to cancel) and whether a request is on the wire.
struct Shared {
    state: Mutex<(String, bool)>,
    idle: Condvar,
}

impl Shared {
    fn set_location(&self, location: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.0 = location.to_string();
        }
    }

    fn set_busy(&self, busy: bool) {
        if let Ok(mut s) = self.state.lock() {
            s.1 = busy;
        }
        self.idle.notify_all();
    }

    /// The cancel action: lets the request on the wire end first (a stream from stdin ends
    /// its body when cancelled), so that the DELETE carries the Location that
    /// request brought back; distribution answers an older one with 404 and keeps the upload.
    fn cancel_session(&self, repo: &str, delete: &dyn Fn(&str) -> Answer, log: &LogSink) {
        let Ok(state) = self.state.lock() else { return };
        let Ok((state, _)) = self.idle.wait_timeout_while(state, SETTLE, |s| s.1) else {
            return;
        };
        let (location, settled) = (state.0.clone(), !state.1);
        drop(state);
        if is_session(&location) {
            report_cancel(repo, delete(&location), settled, log);
        }
    }
}

/// Whether a URL is an upload session's (`/v2/<name>/blobs/uploads/<reference>`): the only
/// kind a cancel may DELETE. The Location of a finished upload names the blob itself, and
/// deleting that would delete the blob.
fn is_session(location: &str) -> bool {
    let path = location.split(['?', '#']).next().unwrap_or("");
    path.contains("/blobs/uploads/")
}

/// Says on stderr when a session could not be cancelled. A 404 with nothing on the wire means
/// the session is gone already, unless distribution calls the URL stale
/// (BLOB_UPLOAD_INVALID): then it keeps the upload, and nobody can cancel it any more.
fn report_cancel(repo: &str, answer: Answer, settled: bool, log: &LogSink) {
    let why = match answer {
        Some((200..=299, _)) => return,
        Some((404, body)) if settled && !stale(&body) => return,
        Some((status, _)) => format!("HTTP {status}"),
        None => "no answer".to_string(),
    };
    log.warning(&format!(
        "cancelling an upload session in {repo} failed ({why}): the registry keeps the partial upload until it purges it"
    ));
}

/// Whether a 404's body is distribution's answer to an upload URL whose signed state is older
/// than the upload: the session lives on, but that URL can no longer reach it.
fn stale(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).contains("BLOB_UPLOAD_INVALID")
}

/// How one request of the upload ended, when it did not succeed.
enum Failure {
    /// Refused with 408, 429 or 5xx (and maybe a Retry-After): nothing was taken, the same
    /// request goes again.
    Refused(Error, Option<String>),
    /// The answer was lost, or disagrees with what was sent: ask where the upload stands.
    Unsure(Error),
    /// 404: the session is gone, or (`true`) its URL is stale.
    Lost(Error, bool),
    Fatal(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Fatal(e)
    }
}

type Step<T = ()> = std::result::Result<T, Failure>;

/// Where the registry says the upload stands.
enum Standing {
    At(u64),
    /// The session is gone (404).
    Gone,
    /// The session lives on, but our URL for it is stale (distribution's BLOB_UPLOAD_INVALID).
    Stale,
    /// The registry answered without a usable `Range`.
    Unknown,
}

/// What an upload reads.
enum Source<'s> {
    /// A regular file of known size: any part, any number of times; with a [`Lead`] when it
    /// is being hashed meanwhile (the upload then never reads past the hasher).
    File(&'s dyn ReadAt, u64, Option<&'s Lead>),
    Stream(Box<Stream<'s>>),
}

/// The hasher of a file uploaded while it is hashed, as the upload sees it: how far it has
/// read, and, once it is done, what the upload is to do. The upload reads only what the
/// hasher has read, so the hash is always done first, and a blob the repository turns out to
/// have is never uploaded in full: the upload's body ends at the next read after the verdict,
/// and the session is cancelled.
pub struct Lead {
    state: Mutex<LeadState>,
    moved: Condvar,
}

#[derive(Default)]
struct LeadState {
    hashed: u64,
    verdict: Option<Verdict>,
    abandoned: bool,
}

/// What the hasher decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The repository does not have the blob: finish the upload under this digest.
    Upload(Digest),
    /// The repository has it: cancel the upload.
    Skip(Digest),
    /// The hasher failed (it has the error): give the upload up.
    Stop,
}

impl Default for Lead {
    fn default() -> Lead {
        Lead::new()
    }
}

impl Lead {
    /// A hasher that has read nothing yet.
    pub fn new() -> Lead {
        Lead {
            state: Mutex::new(LeadState::default()),
            moved: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LeadState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The hasher has read `hashed` bytes. False when the upload gave up: stop hashing.
    pub fn advance(&self, hashed: u64) -> bool {
        let mut s = self.lock();
        s.hashed = hashed;
        self.moved.notify_all();
        !s.abandoned
    }

    /// The hasher is done.
    pub fn decide(&self, verdict: Verdict) {
        self.lock().verdict = Some(verdict);
        self.moved.notify_all();
    }

    /// The upload gave up: the hasher may stop.
    pub fn abandon(&self) {
        self.lock().abandoned = true;
    }

    /// Waits until the hasher has read past `pos` or decided; how far it has read, and its
    /// verdict if any.
    fn wait_past(&self, pos: u64) -> (u64, Option<Verdict>) {
        let guard = self.lock();
        let s = self
            .moved
            .wait_while(guard, |s| s.hashed <= pos && s.verdict.is_none())
            .unwrap_or_else(|p| p.into_inner());
        (s.hashed, s.verdict.clone())
    }

    /// Waits for the verdict.
    fn verdict(&self) -> Verdict {
        let guard = self.lock();
        let s = self
            .moved
            .wait_while(guard, |s| s.verdict.is_none())
            .unwrap_or_else(|p| p.into_inner());
        s.verdict.clone().unwrap_or(Verdict::Stop)
    }

    /// Whether the upload is to end what it sends now (the blob is there, or the hash failed).
    fn stopped(&self) -> bool {
        matches!(self.lock().verdict, Some(Verdict::Skip(_) | Verdict::Stop))
    }

    /// The digest to upload under, once the hasher decided so.
    fn digest(&self) -> Option<Digest> {
        match &self.lock().verdict {
            Some(Verdict::Upload(d)) => Some(d.clone()),
            _ => None,
        }
    }
}

/// A file read at positions from `pos`, never past what the hasher has read, ending early
/// once the hasher says to stop: the body of the streaming PATCH that sends the rest of a
/// file uploaded while it is hashed.
struct Trailing<'s> {
    file: &'s dyn ReadAt,
    pos: u64,
    end: u64,
    lead: &'s Lead,
}

impl Read for Trailing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.end || buf.is_empty() {
            return Ok(0);
        }
        let (hashed, verdict) = self.lead.wait_past(self.pos);
        if matches!(verdict, Some(Verdict::Skip(_) | Verdict::Stop)) || hashed <= self.pos {
            return Ok(0);
        }
        let want = (hashed.min(self.end) - self.pos).min(buf.len() as u64) as usize;
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A stream read once, hashed (when its digest is not known in advance) and counted as it
/// goes; `buf` keeps the chunk being sent, which starts at byte `buf_start`.
struct Stream<'s> {
    reader: &'s mut dyn Read,
    size: Option<u64>,
    hasher: Option<Hasher>,
    digest: Option<Digest>,
    read: u64,
    ended: bool,
    /// A failure of the input itself (a bad tar, a read error), kept while the request that
    /// carried it ends as if the input had ended: the registry then answers with a current
    /// Location and the session can be cancelled (distribution keeps a session whose request
    /// was cut, and refuses the cancel).
    failed: Option<std::io::Error>,
    buf: Vec<u8>,
    buf_start: u64,
}

impl Read for Stream<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = match self.reader.read(out) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                self.failed = Some(e);
                0
            }
        };
        if n == 0 && !out.is_empty() {
            self.ended = true;
        }
        if let Some(h) = &mut self.hasher {
            h.update(&out[..n]);
        }
        self.read += n as u64;
        Ok(n)
    }
}

impl<'s> Stream<'s> {
    fn new(reader: &'s mut dyn Read, size: Option<u64>, hasher: Option<Hasher>) -> Stream<'s> {
        Stream {
            reader,
            size,
            hasher,
            digest: None,
            read: 0,
            ended: false,
            failed: None,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    /// The digest: the one given, or the one computed once the stream has ended.
    fn digest(&mut self, given: Option<&Digest>) -> Result<Digest> {
        if let Some(d) = given.or(self.digest.as_ref()) {
            return Ok(d.clone());
        }
        let hasher = self
            .hasher
            .take()
            .ok_or_else(|| Error::other("a stream without a digest or a hasher"))?;
        let digest = hasher.finish();
        self.digest = Some(digest.clone());
        Ok(digest)
    }

    /// Reads the next `max` bytes (fewer at the end) into the buffer.
    fn refill(&mut self, max: u64) -> Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        self.buf_start = self.read;
        // A stream of announced size is read up to that size and no further.
        let max = self.size.map_or(max, |size| max.min(size - self.read));
        let got = self.take(max).read_to_end(&mut buf);
        self.buf = buf;
        got.map_err(|e| crate::error::from_io("reading the input", e))?;
        self.check_input()?;
        if (self.buf.len() as u64) < max || self.size == Some(self.read) {
            self.ended = true;
        }
        Ok(())
    }

    fn buf_end(&self) -> u64 {
        self.buf_start + self.buf.len() as u64
    }

    /// The input's own failure, if it had one.
    fn check_input(&mut self) -> Result<()> {
        match self.failed.take() {
            Some(e) => Err(crate::error::from_io("reading the input", e)),
            None => Ok(()),
        }
    }

    /// Checks a stream of announced size delivered exactly that.
    fn check_length(&self) -> Result<()> {
        match self.size {
            Some(size) if self.read != size => Err(Error::data(format!(
                "input ended {} bytes early (did the file change during the push?)",
                size.saturating_sub(self.read)
            ))),
            _ => Ok(()),
        }
    }
}

/// POSTs for a new session: its Location (absolute) and the registry's OCI-Chunk-Min-Length.
/// A POST whose answer was lost is sent again: the session it may have opened cannot be
/// cancelled (we never learnt its address) and is left to the registry's purge of stale
/// uploads, whether or not we try again, so trying again costs nothing more.
fn open_session(http: &Http, repo: &str) -> Result<(String, Option<u64>)> {
    let what = format!("starting an upload to {repo}");
    let path = format!("/v2/{repo}/blobs/uploads/");
    let resp = http.call(
        Request::new(Method::POST, path.clone()).scope(Scope::push(repo)),
        &[202],
        &what,
    )?;
    let location = header(&resp, "location")
        .ok_or_else(|| Error::data(format!("{what}: the registry sent no Location")))?;
    let min = header(&resp, "oci-chunk-min-length").and_then(|v| v.trim().parse::<u64>().ok());
    Ok((url::resolve(&http.absolute(&path), &location), min))
}

/// Best-effort DELETE of an upload session we will not finish; a failure is said on stderr.
/// Anything but an upload session's URL is left alone.
pub fn cancel(http: &Http, repo: &str, location: &str) {
    if !is_session(location) {
        return;
    }
    let answer = http
        .send(Request::new(Method::DELETE, location).scope(Scope::push(repo)))
        .ok()
        .map(|mut r| {
            let body = read_limited(&mut r, 4096).unwrap_or_default();
            (r.status().as_u16(), body)
        });
    report_cancel(repo, answer, true, http.sink());
}

/// [`cancel`], said on stderr only when it failed for another reason than a refusal (401,
/// 403): for a session given up because the blob is there, not because anything failed.
fn cancel_unless_denied(http: &Http, repo: &str, location: &str) {
    if !is_session(location) {
        return;
    }
    let answer = http
        .send(Request::new(Method::DELETE, location).scope(Scope::push(repo)))
        .map(|mut r| {
            let body = read_limited(&mut r, 4096).unwrap_or_default();
            (r.status().as_u16(), body)
        });
    match answer {
        Ok((401 | 403, _)) => {}
        Err(e) if e.kind == Kind::Denied => {}
        answer => report_cancel(repo, answer.ok(), true, http.sink()),
    }
}

impl<'a> Upload<'a> {
    /// Opens an upload session. This request also settles authentication, so that the
    /// streamed requests after it (which cannot be replayed) are sent with credentials.
    /// While it lives, cancelling `cancel` cancels the session.
    pub fn start(
        http: &'a Http,
        repo: &str,
        chunk_size: Option<u64>,
        cancel: &Cancel,
    ) -> Result<Upload<'a>> {
        cancel.check()?;
        let (location, min_chunk) = open_session(http, repo)?;
        let shared = Arc::new(Shared {
            state: Mutex::new((location, false)),
            idle: Condvar::new(),
        });
        let delete = http.canceller(&Scope::push(repo));
        let (name, handler, log) = (repo.to_string(), shared.clone(), http.sink().clone());
        let on_cancel = cancel.on_cancel(move || handler.cancel_session(&name, &delete, &log));
        let mut upload = Upload {
            http,
            repo: repo.to_string(),
            shared,
            cancel: cancel.clone(),
            _on_cancel: on_cancel,
            asked_chunk: chunk_size,
            chunk_size,
            min_chunk: None,
            offset: 0,
            budget: Budget::current_or(http.retry_policy()),
            put_sent: false,
            skipped: false,
            progress: Progress::default(),
        };
        upload.set_min_chunk(min_chunk);
        Ok(upload)
    }

    fn set_min_chunk(&mut self, min: Option<u64>) {
        self.min_chunk = min;
        self.chunk_size = match (self.asked_chunk, min) {
            (Some(c), Some(m)) => Some(c.max(m)),
            (c, _) => c,
        };
    }

    /// Starts over in a new session (the old one is gone).
    fn reopen(&mut self) -> Result<()> {
        let (location, min_chunk) = open_session(self.http, &self.repo)?;
        self.shared.set_location(&location);
        self.set_min_chunk(min_chunk);
        self.offset = 0;
        self.put_sent = false;
        Ok(())
    }

    fn location(&self) -> String {
        self.shared
            .state
            .lock()
            .map(|s| s.0.clone())
            .unwrap_or_default()
    }

    /// Uploads a regular file of known digest and size.
    pub fn finish_file(mut self, digest: &Digest, size: u64, file: &dyn ReadAt) -> Result<()> {
        let mut source = Source::File(file, size, None);
        let result = self.drive(&mut source, Some(digest));
        self.cancel_on_error(result).map(|_| ())
    }

    /// Uploads a regular file of known size while it is hashed (by the caller, on another
    /// thread, which reports to `lead`): PATCHes of `HASHING_CHUNK` while the hash runs and
    /// one streaming PATCH of the rest (or PATCHes of the chunk size), never past the hasher, then, on the hasher's verdict, the closing PUT
    /// `?digest=`, or (the repository has the blob) a DELETE of the session. True when the
    /// blob was uploaded, false when it was skipped. A [`Verdict::Stop`] is an error whose
    /// cause the hasher has.
    pub fn finish_file_hashing(
        mut self,
        size: u64,
        file: &dyn ReadAt,
        lead: &Lead,
    ) -> Result<(Digest, bool)> {
        let mut source = Source::File(file, size, Some(lead));
        let result = self.drive(&mut source, None);
        let done = self.cancel_on_error(result)?;
        if self.skipped {
            // distribution wants the delete right for this DELETE: a pusher without it
            // leaves the partial upload to the registry's purge, quietly (nothing of it
            // can ever be committed without the PUT).
            cancel_unless_denied(self.http, &self.repo, &self.location());
            return Ok((done, false));
        }
        Ok((done, true))
    }

    /// Uploads a stream of known digest and size (read once).
    pub fn finish_known(
        mut self,
        digest: &Digest,
        size: u64,
        content: &mut dyn Read,
    ) -> Result<()> {
        let mut source = Source::Stream(Box::new(Stream::new(content, Some(size), None)));
        let result = self.drive(&mut source, Some(digest));
        self.cancel_on_error(result).map(|_| ())
    }

    /// Uploads a stream of unknown length, hashing while it goes: one chunked PATCH (or
    /// PATCHes of the chunk size), then PUT `?digest=` with no body.
    pub fn finish_stream(
        mut self,
        content: &mut dyn Read,
        algorithm: Algorithm,
    ) -> Result<(Digest, u64)> {
        let mut source = Source::Stream(Box::new(Stream::new(
            content,
            None,
            Some(algorithm.hasher()),
        )));
        let result = self.drive(&mut source, None);
        let size = match &source {
            Source::Stream(s) => s.read,
            Source::File(_, size, _) => *size,
        };
        self.cancel_on_error(result).map(|d| (d, size))
    }

    /// Cancels the session after a failure, unless the upload was cancelled: its cancel
    /// action has the session in hand.
    fn cancel_on_error<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_err() && !self.cancel.is_cancelled() {
            cancel(self.http, &self.repo, &self.location());
        }
        result
    }

    /// The upload loop: one step (a PATCH, the closing PUT) at a time; after a recoverable
    /// failure, asks where the upload stands and goes on from there.
    fn drive(&mut self, source: &mut Source<'_>, digest: Option<&Digest>) -> Result<Digest> {
        loop {
            let standing = match self.step(source, digest) {
                Ok(Some(done)) => return Ok(done),
                Ok(None) => continue,
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Refused(e, after)) => {
                    self.spend(e, after.as_deref())?;
                    continue;
                }
                Err(Failure::Unsure(e)) => self.standing(e)?,
                Err(Failure::Lost(e, stale)) => {
                    self.spend(e, None)?;
                    if stale {
                        Standing::Stale
                    } else {
                        Standing::Gone
                    }
                }
            };
            if let Some(done) = self.resume(source, digest, standing)? {
                return Ok(done);
            }
        }
    }

    /// Sends the next request. Some(digest) once the blob is in place.
    fn step(&mut self, source: &mut Source<'_>, digest: Option<&Digest>) -> Step<Option<Digest>> {
        match source {
            Source::File(file, size, Some(lead)) => {
                let (file, size, lead) = (*file, *size, *lead);
                self.hashing_step(file, size, lead)
            }
            Source::File(file, size, None) => {
                let (file, size) = (*file, *size);
                let rest = size - self.offset;
                let body = match self.chunk_size {
                    Some(chunk) if rest > 0 => {
                        let len = chunk.min(rest);
                        self.patch(Body::File(file, self.offset, len), Some(len))?;
                        return Ok(None);
                    }
                    Some(_) => Body::Empty,
                    None => Body::File(file, self.offset, rest),
                };
                let digest = digest.ok_or_else(|| Error::other("no digest for a file"))?;
                self.put(digest, body, rest)?;
                Ok(Some(digest.clone()))
            }
            Source::Stream(stream) => self.stream_step(stream, digest),
        }
    }

    /// The next request of a file uploaded while it is hashed: more of the file while the
    /// hasher has not said to stop, then what its verdict says.
    fn hashing_step(&mut self, file: &dyn ReadAt, size: u64, lead: &Lead) -> Step<Option<Digest>> {
        let rest = size - self.offset;
        if rest > 0 && !lead.stopped() {
            match self.chunk_size {
                Some(chunk) => {
                    // A chunk has a fixed length: it goes once the hasher has read past it.
                    let len = chunk.min(rest);
                    let (hashed, _) = lead.wait_past(self.offset + len - 1);
                    if hashed >= self.offset + len {
                        self.patch(Body::File(file, self.offset, len), Some(len))?;
                        return Ok(None);
                    }
                }
                None => {
                    // While the hash runs, the file goes in PATCHes of HASHING_CHUNK: a
                    // registry answers each only after syncing it, so a blob the repository
                    // turns out to have costs at most one such chunk after the verdict, not
                    // everything sent meanwhile (docs/design.md, "Pushing files and the digest cache").
                    // Once the digest is known, the rest goes in one streaming PATCH.
                    if lead.digest().is_none() {
                        let len = self.min_chunk.unwrap_or(0).max(HASHING_CHUNK).min(rest);
                        let (hashed, _) = lead.wait_past(self.offset + len - 1);
                        if hashed >= self.offset + len && lead.digest().is_none() && !lead.stopped()
                        {
                            self.patch(Body::File(file, self.offset, len), Some(len))?;
                            return Ok(None);
                        }
                    }
                    if lead.stopped() {
                        return self.hashing_verdict(lead, size);
                    }
                    let before = self.offset;
                    let mut body = Trailing {
                        file,
                        pos: before,
                        end: size,
                        lead,
                    };
                    self.patch(Body::Stream(&mut body, None), None)?;
                    // A registry that says no Range took what it was sent.
                    if self.offset == before {
                        self.offset = body.pos;
                    }
                    return Ok(None);
                }
            }
        }
        self.hashing_verdict(lead, size)
    }

    /// What the hasher's verdict asks for once the file is sent or the hasher said to stop.
    fn hashing_verdict(&mut self, lead: &Lead, size: u64) -> Step<Option<Digest>> {
        let rest = size - self.offset;
        match lead.verdict() {
            Verdict::Upload(digest) if rest == 0 => {
                self.put(&digest, Body::Empty, 0)?;
                Ok(Some(digest))
            }
            Verdict::Upload(_) => Ok(None),
            Verdict::Skip(digest) => {
                self.skipped = true;
                Ok(Some(digest))
            }
            Verdict::Stop => Err(Failure::Fatal(Error::other(
                "the upload was given up: its file could not be hashed",
            ))),
        }
    }

    fn stream_step(
        &mut self,
        stream: &mut Stream<'_>,
        digest: Option<&Digest>,
    ) -> Step<Option<Digest>> {
        if !stream.ended && self.offset == stream.buf_end() {
            match self.buffer_size(stream.size) {
                Some(max) => stream.refill(max)?,
                // One pass: the whole stream in one request, never sent again.
                None => return self.one_pass(stream, digest).map(Some),
            }
        }
        // What is buffered and not yet at the registry: a PATCH, or (a whole small stream
        // without chunks) the closing PUT itself.
        let from = usize::try_from(self.offset - stream.buf_start).unwrap_or(usize::MAX);
        let len = stream.buf_end() - self.offset;
        let buf = std::mem::take(&mut stream.buf);
        let rest = buf.get(from..).unwrap_or(&[]);
        let sent = if len > 0 && (self.chunk_size.is_some() || !stream.ended) {
            self.patch(Body::Bytes(rest), Some(len)).map(|()| None)
        } else {
            let closing = stream
                .check_length()
                .and_then(|()| stream.digest(digest))
                .map_err(Failure::Fatal);
            closing.and_then(|d| self.put(&d, Body::Bytes(rest), len).map(|()| Some(d)))
        };
        stream.buf = buf;
        sent
    }

    /// How much of a stream to hold at a time, or None to send it in one pass: chunks of
    /// The chunk size up to [`STREAM_CHUNK`], a small stream of known size whole.
    /// A registry whose minimum chunk is larger than we hold gets the stream in one pass.
    fn buffer_size(&self, size: Option<u64>) -> Option<u64> {
        match (self.chunk_size, size) {
            (Some(chunk), _) => {
                let piece = chunk.min(STREAM_CHUNK);
                (self.min_chunk.unwrap_or(0) <= piece).then_some(piece)
            }
            (None, Some(size)) if size <= SMALL_STREAM => Some(size.max(1)),
            (None, _) => None,
        }
    }

    /// Sends a whole stream in one request: a PUT with its length, or a chunked PATCH then
    /// the closing PUT. A failure of the data request cannot be recovered.
    fn one_pass(&mut self, stream: &mut Stream<'_>, digest: Option<&Digest>) -> Step<Digest> {
        let fatal = |f: Failure| match f {
            Failure::Refused(e, _)
            | Failure::Unsure(e)
            | Failure::Lost(e, _)
            | Failure::Fatal(e) => Failure::Fatal(e),
        };
        if let (Some(size), Some(digest)) = (stream.size, digest) {
            let sent = self.put(digest, Body::Stream(stream, Some(size)), size);
            stream.check_input()?;
            sent.map_err(fatal)?;
            return Ok(digest.clone());
        }
        let sent = self.patch(Body::Stream(stream, None), None);
        stream.check_input()?;
        sent.map_err(fatal)?;
        // Everything read is at the registry; a failed closing PUT resumes from here.
        (stream.ended, stream.buf_start, self.offset) = (true, stream.read, stream.read);
        stream.buf.clear();
        stream.check_length()?;
        let digest = stream.digest(digest)?;
        self.put(&digest, Body::Empty, 0)?;
        Ok(digest)
    }

    /// Counts a failure against the upload's budget and waits before the next request; once
    /// the budget is spent, the failure is the upload's error. When the registry has more
    /// bytes than at the failure before (progress), the retries taken since are given back
    /// first: the budget bounds failures in a row, not failures in an upload of any length.
    fn spend(&mut self, failed: Error, retry_after: Option<&str>) -> Result<()> {
        if self.offset > self.progress.high {
            let p = std::mem::take(&mut self.progress);
            self.budget.refund(p.retries, p.waited);
            self.progress.high = self.offset;
        }
        let Some(wait) = self.budget.next(retry_after, Duration::ZERO) else {
            return Err(failed);
        };
        self.progress.retries += 1;
        self.progress.waited += wait;
        self.cancel.sleep(wait)?;
        Ok(())
    }

    /// Asks the registry where the upload stands, until it answers or the budget is spent.
    fn standing(&mut self, mut failed: Error) -> Result<Standing> {
        loop {
            self.spend(failed, None)?;
            match self.status() {
                Ok(standing) => return Ok(standing),
                Err(Failure::Refused(e, _) | Failure::Unsure(e)) => failed = e,
                Err(Failure::Lost(_, true)) => return Ok(Standing::Stale),
                Err(Failure::Lost(..)) => return Ok(Standing::Gone),
                Err(Failure::Fatal(e)) => return Err(e),
            }
        }
    }

    /// GET the upload URL: 204 with `Range: 0-<end>` and a fresh Location (distribution spec,
    /// "Get upload status"). distribution answers `0-0` for an empty upload, so that is read
    /// as nothing received.
    fn status(&mut self) -> Step<Standing> {
        let what = format!("asking {} where an upload stands", self.repo);
        let req = Request::new(Method::GET, self.location()).scope(Scope::push(&self.repo));
        let resp = self.exchange(req, &[200, 204], &what, false)?;
        let range = header(&resp, "range");
        Ok(match range.as_deref().map(str::trim) {
            Some("0-0") => Standing::At(0),
            Some(r) => range_end(r).map_or(Standing::Unknown, Standing::At),
            None => Standing::Unknown,
        })
    }

    /// Goes on from where the registry stands: the same session from its offset, or (a file)
    /// a new session when the old one is gone. A blob whose closing PUT was sent may be in
    /// place although the session is gone.
    fn resume(
        &mut self,
        source: &mut Source<'_>,
        digest: Option<&Digest>,
        standing: Standing,
    ) -> Result<Option<Digest>> {
        let what = format!("uploading to {}", self.repo);
        let sent = match source {
            Source::File(_, size, _) => *size,
            Source::Stream(s) => s.buf_end(),
        };
        if self.put_sent
            && matches!(standing, Standing::Gone)
            && let Some(done) = self.in_place(source, digest)?
        {
            return Ok(Some(done));
        }
        match (standing, source) {
            (Standing::At(at), _) if at > sent => Err(Error::data(format!(
                "{what}: the registry has {at} bytes, more than the {sent} sent"
            ))),
            (Standing::At(at), Source::File(..)) => {
                self.offset = at;
                Ok(None)
            }
            (Standing::At(at), Source::Stream(s)) if at >= s.buf_start => {
                self.offset = at;
                Ok(None)
            }
            (Standing::At(at), Source::Stream(s)) => Err(Error::unavailable(format!(
                "{what}: the registry lost part of the upload (it has {at} bytes, {} were sent) and the input cannot be read again",
                s.buf_start
            ))),
            (Standing::Gone, Source::File(..)) => {
                self.shared.set_location("");
                self.reopen().map(|()| None)
            }
            (Standing::Stale | Standing::Unknown, Source::File(..)) => {
                cancel(self.http, &self.repo, &self.location());
                self.reopen().map(|()| None)
            }
            (Standing::Gone, Source::Stream(_)) => {
                self.shared.set_location("");
                Err(Error::unavailable(format!(
                    "{what}: the registry dropped the upload session, and the input cannot be read again"
                )))
            }
            (Standing::Stale, Source::Stream(_)) => Err(Error::unavailable(format!(
                "{what}: the registry no longer accepts this upload's URL, and the input cannot be read again"
            ))),
            (Standing::Unknown, Source::Stream(_)) => Err(Error::unavailable(format!(
                "{what}: the registry did not say how much of the upload it has"
            ))),
        }
    }

    /// The digest, when the blob is in the repository with the size sent (the answer to a
    /// closing PUT was lost, and the session went with the upload's success).
    fn in_place(&self, source: &mut Source<'_>, digest: Option<&Digest>) -> Result<Option<Digest>> {
        let (digest, size) = match source {
            Source::File(_, size, lead) => match digest.cloned().or(lead.and_then(Lead::digest)) {
                Some(d) => (d, *size),
                None => return Ok(None),
            },
            Source::Stream(s) => (s.digest(digest)?, s.read),
        };
        let resp = self.http.send(
            Request::new(Method::HEAD, format!("/v2/{}/blobs/{digest}", self.repo))
                .scope(Scope::pull(&self.repo)),
        )?;
        let length = header(&resp, "content-length").and_then(|v| v.parse::<u64>().ok());
        Ok((resp.status().as_u16() == 200 && length == Some(size)).then_some(digest))
    }

    /// Sends one request of the upload and moves to the Location it brings back, sorting its
    /// failures for the upload loop; the transport sends none of them again by itself.
    /// A closing request (`closes`) that succeeds leaves no session to cancel: that is
    /// recorded before the cancel action may look, so it never DELETEs the finished blob.
    fn exchange(
        &mut self,
        req: Request<'_>,
        ok: &[u16],
        what: &str,
        closes: bool,
    ) -> Step<Response> {
        if let Err(e) = self.cancel.check() {
            return Err(Failure::Fatal(e));
        }
        self.shared.set_busy(true);
        let result = self.http.send(req.retry(Retry::Unsent));
        let outcome = match result {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                if ok.contains(&status) {
                    if closes {
                        self.shared.set_location("");
                    } else {
                        self.follow(&resp);
                    }
                    Ok(resp)
                } else {
                    let after = header(&resp, "retry-after");
                    let body = read_limited(&mut resp, 64 * 1024).unwrap_or_default();
                    let err = from_status(status, &body, what);
                    match status {
                        404 => Err(Failure::Lost(err, stale(&body))),
                        408 | 429 | 500..=599 => Err(Failure::Refused(err, after)),
                        416 => Err(Failure::Unsure(err)),
                        _ => Err(Failure::Fatal(err)),
                    }
                }
            }
            Err(e) if e.kind == Kind::Unavailable => Err(Failure::Unsure(e.context(what))),
            Err(e) => Err(Failure::Fatal(e)),
        };
        self.shared.set_busy(false);
        if let Err(e) = self.cancel.check() {
            return Err(Failure::Fatal(e));
        }
        outcome
    }

    fn patch(&mut self, body: Body<'_>, len: Option<u64>) -> Step {
        let what = format!("uploading to {}", self.repo);
        let mut req = Request::new(Method::PATCH, self.location())
            .scope(Scope::push(&self.repo))
            .header("content-type", "application/octet-stream");
        if let Some(len) = len {
            req = req.header(
                "content-range",
                format!("{}-{}", self.offset, self.offset + len - 1),
            );
        }
        let resp = self.exchange(req.body(body), &[202, 204], &what, false)?;
        // Track the offset ourselves and check the registry agrees.
        let reported = header(&resp, "range").and_then(|r| range_end(&r));
        match (len, reported) {
            (Some(len), Some(end)) if end != self.offset + len => {
                return Err(Failure::Unsure(Error::data(format!(
                    "{what}: the registry has {end} bytes, expected {}",
                    self.offset + len
                ))));
            }
            (Some(len), _) => self.offset += len,
            (None, Some(end)) => self.offset = end,
            (None, None) => {}
        }
        Ok(())
    }

    /// The closing PUT `?digest=`, carrying the last `len` bytes (maybe none).
    fn put(&mut self, digest: &Digest, body: Body<'_>, len: u64) -> Step {
        let what = format!("uploading {digest} to {}", self.repo);
        let target = url::add_query(&self.location(), "digest", &digest.to_string());
        let mut req = Request::new(Method::PUT, target)
            .scope(Scope::push(&self.repo))
            .header("content-type", "application/octet-stream");
        if len > 0 && self.offset > 0 {
            req = req.header(
                "content-range",
                format!("{}-{}", self.offset, self.offset + len - 1),
            );
        }
        self.put_sent = true;
        self.exchange(req.body(body), &[201, 204], &what, true)?;
        Ok(())
    }

    /// Moves to the newest Location; distribution rejects an older one.
    fn follow(&mut self, resp: &Response) {
        if let Some(loc) = header(resp, "location") {
            let newest = url::resolve(&self.location(), &loc);
            self.shared.set_location(&newest);
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
    fn only_upload_sessions_are_cancelled() {
        for session in [
            "http://r/v2/a/b/blobs/uploads/1f2e?_state=x",
            "/v2/a/blobs/uploads/abc",
        ] {
            assert!(super::is_session(session), "{session}");
        }
        for other in [
            "",
            "http://r/v2/a/blobs/sha256:0123",
            "/v2/a/blobs/sha256:0123?x=/blobs/uploads/",
        ] {
            assert!(!super::is_session(other), "{other}");
        }
    }

    #[test]
    fn range_headers_give_the_next_offset() {
        assert_eq!(super::range_end("0-1023"), Some(1024));
        assert_eq!(super::range_end("bytes=0-0"), Some(1));
        for bad in ["", "5-9", "0-", "0-x", "garbage", "0-18446744073709551615"] {
            assert_eq!(super::range_end(bad), None, "{bad}");
        }
    }
}
