//! The registry backend of [`Store`]: the distribution API (OCI distribution spec v1.1) over
//! `http::Http` (the layered HTTP stack, internal).

pub mod auth;
pub(crate) mod errors;
pub mod headers;
pub(crate) mod http;
pub mod options;
pub mod scope;
pub mod tls;
pub(crate) mod transport;
pub mod upload;
pub(crate) mod url;

use std::io::Read;

use ::ureq::http::Method;

use self::http::{Http, Request, header, read_limited};
pub use self::options::{Log, LogSink, Options};
use self::scope::Scope;
use crate::cancel::Cancel;
use crate::error::{Error, Kind, Result};
use crate::oci::{Algorithm, Digest, Reference, Repository, media};
use crate::store::{BlobStream, Fetched, Location, Mount, Store};

/// Files from this size on are hashed while they are uploaded ([`Store::push_file`]);
/// smaller ones are hashed first (8 MiB hash in about 5 ms).
pub const RACE_MIN: u64 = 8 << 20;

/// A [`Store`] on a registry, through the OCI distribution API.
pub struct Registry {
    http: Http,
    chunk_size: Option<u64>,
    cancel: Cancel,
}

impl Registry {
    /// The hasher of [`Store::push_file`]: reads the file at positions, telling `lead` how
    /// far it got, then asks the repository for the blob; the digest, and whether the
    /// repository has it. Its verdict goes to `lead` whatever happens, so the upload never
    /// waits for a hasher that failed.
    fn hash_ahead(
        &self,
        repo: &Repository,
        file: &dyn crate::store::ReadAt,
        size: u64,
        algorithm: Algorithm,
        lead: &upload::Lead,
    ) -> Result<(Digest, bool)> {
        let hashed = (|| {
            let mut hasher = algorithm.hasher();
            let mut buf = vec![0u8; crate::oci::digest::COPY_BUFFER];
            let mut pos = 0u64;
            // One byte past the size is enough to see that the file grew.
            while pos <= size {
                self.cancel.check()?;
                let want = (size + 1 - pos).min(buf.len() as u64) as usize;
                let n = file
                    .read_at(&mut buf[..want], pos)
                    .map_err(|e| crate::error::from_io("reading the file", e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                pos += n as u64;
                if !lead.advance(pos.min(size)) {
                    return Err(Error::other("the upload was given up"));
                }
            }
            if pos != size {
                return Err(Error::data("the file changed while it was read"));
            }
            let digest = hasher.finish();
            let has = self.has_blob(repo, &digest, size)?;
            Ok((digest, has))
        })();
        lead.decide(match &hashed {
            Ok((digest, true)) => upload::Verdict::Skip(digest.clone()),
            Ok((digest, false)) => upload::Verdict::Upload(digest.clone()),
            Err(_) => upload::Verdict::Stop,
        });
        hashed
    }

    /// A client for the registry `opts` describes; never cancelled (see [`Registry::with_cancel`]).
    pub fn new(opts: &Options) -> Registry {
        Registry {
            http: Http::new(opts),
            chunk_size: opts.chunk_size,
            cancel: Cancel::new(),
        }
    }

    /// The same registry, its uploads stopping (and their sessions cancelled) when `cancel`
    /// is cancelled.
    pub fn with_cancel(mut self, cancel: Cancel) -> Registry {
        self.http = self.http.with_cancel(cancel.clone());
        self.cancel = cancel;
        self
    }

    /// A bearer token for `scope`; None when the registry does not use tokens.
    pub fn mint_token(&self, scope: &Scope) -> Result<Option<String>> {
        self.http.mint(scope)
    }

    /// GETs every page of a paginated list (docs/registry-notes.md §8), collecting `field` of each.
    fn paginate(
        &self,
        first: String,
        field: &str,
        scope: Scope,
        what: &str,
    ) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut next = Some(first);
        let mut seen = std::collections::HashSet::new();
        let mut pages = 0;
        // Every page is bounded, and so is their sum: a registry that pages on forever with
        // fresh links must not fill our memory.
        let mut budget = MAX_LISTING;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > 100_000 {
                return Err(Error::data(format!(
                    "{what}: the registry's pagination does not end"
                )));
            }
            let mut resp = self.http.call(
                Request::new(Method::GET, url.clone()).scope(scope.clone()),
                &[200],
                what,
            )?;
            let links = http::header_all(&resp, "link");
            let body = read_limited(&mut resp, budget).map_err(|e| match e.kind {
                Kind::Data => Error::data(format!(
                    "{what}: the registry's answer is larger than {} MiB",
                    MAX_LISTING >> 20
                )),
                _ => e.context(what),
            })?;
            budget -= body.len() as u64;
            let value: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| Error::data(format!("{what}: malformed answer: {e}")))?;
            match value.get(field) {
                Some(serde_json::Value::Array(items)) => {
                    out.extend(items.iter().filter_map(|v| v.as_str().map(str::to_string)))
                }
                Some(serde_json::Value::Null) | None => {}
                Some(_) => {
                    return Err(Error::data(format!(
                        "{what}: malformed answer: {field} is not a list"
                    )));
                }
            }
            let refs: Vec<&str> = links.iter().map(String::as_str).collect();
            // A Link target is relative to the page that carried it. It must stay on the
            // registry (a hostile Link would send us elsewhere) and must not go round in circles.
            let here = self.http.absolute(&url);
            next = headers::next_link(&refs).map(|target| url::resolve(&here, &target));
            if let Some(n) = &next {
                if url::origin(n) != url::origin(&here) {
                    return Err(Error::data(format!(
                        "{what}: the registry's next page is on another host"
                    )));
                }
                if !seen.insert(n.clone()) {
                    return Err(Error::data(format!(
                        "{what}: the registry's pagination goes round in circles"
                    )));
                }
            }
        }
        Ok(out)
    }
}

/// The most a paginated list (tags, catalog) may take, all pages together.
const MAX_LISTING: u64 = 64 << 20;

fn manifest_request<'a>(method: Method, repo: &str, reference: &Reference) -> Request<'a> {
    Request::new(method, format!("/v2/{repo}/manifests/{reference}"))
        .scope(Scope::pull(repo))
        .header("accept", media::MANIFEST_ACCEPT)
}

/// The `Docker-Content-Digest` of a response, if present and well-formed.
fn content_digest(resp: &http::Response) -> Option<Digest> {
    header(resp, "docker-content-digest").and_then(|v| v.trim().parse().ok())
}

impl Store for Registry {
    fn location(&self) -> Location {
        Location::Registry(self.http.host().clone())
    }

    fn registry(&self) -> Option<&Registry> {
        Some(self)
    }

    fn blob_size(&self, repo: &Repository, digest: &Digest) -> Result<Option<u64>> {
        let repo = repo.as_str();
        let what = format!("checking {digest} in {repo}");
        let req = Request::new(Method::HEAD, format!("/v2/{repo}/blobs/{digest}"))
            .scope(Scope::pull(repo));
        let resp = self.http.send(req)?;
        match resp.status().as_u16() {
            200 => {
                let len = header(&resp, "content-length").and_then(|v| v.parse().ok());
                len.map(Some).ok_or_else(|| {
                    Error::data(format!("{what}: the registry sent no Content-Length"))
                })
            }
            404 => Ok(None),
            status => Err(errors::from_status(status, b"", &what)),
        }
    }

    fn open_blob(&self, repo: &Repository, digest: &Digest) -> Result<BlobStream<'_>> {
        let repo = repo.as_str();
        let what = format!("pulling {digest} from {repo}");
        let resp = self.http.call(
            Request::new(Method::GET, format!("/v2/{repo}/blobs/{digest}"))
                .scope(Scope::pull(repo)),
            &[200],
            &what,
        )?;
        let size = header(&resp, "content-length").and_then(|v| v.parse().ok());
        let reader = resp.into_body().into_with_config().limit(u64::MAX).reader();
        let host = self.http.host().to_string();
        Ok(BlobStream {
            size,
            reader: Box::new(self.cancel.reader(NetReader {
                inner: reader,
                host,
            })),
        })
    }

    fn open_blob_at(
        &self,
        repo: &Repository,
        digest: &Digest,
        offset: u64,
    ) -> Result<BlobStream<'_>> {
        if offset == 0 {
            return self.open_blob(repo, digest);
        }
        // docs/registry-notes.md §20: resume with Range only on a 206 whose Content-Range starts
        // where we are; a 200 is the whole blob again, so its first bytes are dropped.
        let what = format!("resuming {digest} from {repo} at byte {offset}");
        let req = Request::new(Method::GET, format!("/v2/{repo}/blobs/{digest}"))
            .scope(Scope::pull(repo.as_str()))
            .header("range", format!("bytes={offset}-"));
        let resp = self.http.call(req, &[200, 206], &what)?;
        let partial = resp.status().as_u16() == 206;
        if partial
            && header(&resp, "content-range").and_then(|v| headers::content_range_start(&v))
                != Some(offset)
        {
            return Err(Error::unavailable(format!(
                "{what}: the registry answered with another range"
            )));
        }
        let size = header(&resp, "content-length").and_then(|v| v.parse::<u64>().ok());
        let reader = resp.into_body().into_with_config().limit(u64::MAX).reader();
        let mut reader: Box<dyn Read + Send> = Box::new(self.cancel.reader(NetReader {
            inner: reader,
            host: self.http.host().to_string(),
        }));
        if partial {
            return Ok(BlobStream { size, reader });
        }
        crate::store::skip(&mut reader, offset)?;
        Ok(BlobStream {
            size: size.map(|s| s.saturating_sub(offset)),
            reader,
        })
    }

    fn put_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        content: &mut dyn Read,
    ) -> Result<()> {
        let repo = repo.as_str();
        upload::Upload::start(&self.http, repo, self.chunk_size, &self.cancel)?
            .finish_known(digest, size, content)
    }

    fn put_blob_file(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        file: &dyn crate::store::ReadAt,
    ) -> Result<()> {
        let repo = repo.as_str();
        upload::Upload::start(&self.http, repo, self.chunk_size, &self.cancel)?
            .finish_file(digest, size, file)
    }

    /// A file smaller than [`RACE_MIN`] is hashed, then uploaded if the repository lacks it
    /// (its hash takes milliseconds; a blob the repository has then costs one HEAD, and no
    /// session to open and cancel). A larger one is hashed and uploaded at once, on two
    /// threads: the upload (POST, then one
    /// streaming PATCH, or chunks) reads only what the hash has read; once the hash is done,
    /// a HEAD decides: the closing PUT `?digest=`, or (the repository has the blob) a DELETE
    /// of the session, whose body ends at once. The cost is the longer of hashing and
    /// uploading, not both; what goes up of a blob the repository has is what the upload
    /// could send while the hash ran ahead of it (docs/design.md). A failed upload still
    /// waits for the hash: a repository that has the blob needs no upload (and no push
    /// permission).
    fn push_file(
        &self,
        repo: &Repository,
        hash: &dyn crate::store::ReadAt,
        upload: &dyn crate::store::ReadAt,
        size: u64,
        algorithm: Algorithm,
    ) -> Result<(Digest, bool)> {
        if size < RACE_MIN {
            return crate::store::hash_then_put(self, repo, hash, upload, size, algorithm);
        }
        let lead = upload::Lead::new();
        std::thread::scope(|s| {
            let hasher = s.spawn(|| self.hash_ahead(repo, hash, size, algorithm, &lead));
            let uploaded =
                upload::Upload::start(&self.http, repo.as_str(), self.chunk_size, &self.cancel)
                    .and_then(|u| u.finish_file_hashing(size, upload, &lead));
            if let Err(e) = &uploaded
                && e.kind == Kind::Interrupted
            {
                lead.abandon();
                return uploaded;
            }
            let hashed = hasher
                .join()
                .unwrap_or_else(|_| Err(Error::other("hashing the file failed")));
            match (hashed, uploaded) {
                (Err(e), _) => Err(e),
                (Ok((digest, true)), _) => Ok((digest, false)),
                (Ok(_), done) => done,
            }
        })
    }

    fn put_blob_stream(
        &self,
        repo: &Repository,
        content: &mut dyn Read,
        algorithm: Algorithm,
    ) -> Result<(Digest, u64)> {
        let repo = repo.as_str();
        upload::Upload::start(&self.http, repo, self.chunk_size, &self.cancel)?
            .finish_stream(content, algorithm)
    }

    fn mount_blob(&self, repo: &Repository, from: &Repository, digest: &Digest) -> Result<Mount> {
        let (repo, from_name) = (repo.as_str(), from.as_str());
        let what = format!("mounting {digest} from {from} into {repo}");
        let url = format!(
            "/v2/{repo}/blobs/uploads/?mount={}&from={}",
            url::encode(&digest.to_string()),
            url::encode(from_name)
        );
        let resp = self.http.call(
            Request::new(Method::POST, url).scope(Scope::mount(repo, from_name)),
            &[201, 202],
            &what,
        )?;
        if resp.status().as_u16() == 201 {
            return Ok(Mount::Mounted);
        }
        // 202: the registry opened an ordinary upload session instead (docs/registry-notes.md §6).
        // Never leave it dangling.
        if let Some(location) = header(&resp, "location") {
            upload::cancel(
                &self.http,
                repo,
                &url::resolve(&self.http.absolute("/v2/"), &location),
            );
        }
        if self.blob_size(from, digest)?.is_none() {
            return Err(Error::not_found(format!(
                "{what}: {from} has no blob {digest}"
            )));
        }
        Ok(Mount::Declined)
    }

    fn delete_blob(&self, repo: &Repository, digest: &Digest) -> Result<()> {
        let repo = repo.as_str();
        let what = format!("deleting {digest} from {repo}");
        self.http.call(
            Request::new(Method::DELETE, format!("/v2/{repo}/blobs/{digest}"))
                .scope(Scope::delete(repo)),
            &[200, 202, 204],
            &what,
        )?;
        Ok(())
    }

    fn get_manifest(&self, repo: &Repository, reference: &Reference) -> Result<Fetched> {
        let repo = repo.as_str();
        let what = format!("getting manifest {reference} from {repo}");
        let mut resp = self.http.call(
            manifest_request(Method::GET, repo, reference),
            &[200],
            &what,
        )?;
        let media_type = header(&resp, "content-type");
        let header_digest = content_digest(&resp);
        let bytes = read_limited(&mut resp, media::MAX_MANIFEST).map_err(|e| e.context(&what))?;
        // Verify against what we asked for, not against the header (docs/registry-notes.md §2).
        let digest = match reference {
            Reference::Digest(wanted) => {
                let actual = Digest::of(wanted.algorithm(), &bytes);
                if actual != *wanted {
                    return Err(Error::data(format!(
                        "{what}: digest mismatch: content is {actual}"
                    )));
                }
                wanted.clone()
            }
            Reference::Tag(_) => Digest::sha256(&bytes),
        };
        if let Some(h) = header_digest
            && h.algorithm() == digest.algorithm()
            && h != digest
        {
            return Err(Error::data(format!(
                "{what}: the registry says {h} but the content is {digest}"
            )));
        }
        Ok(Fetched {
            bytes,
            media_type,
            digest,
        })
    }

    fn resolve(&self, repo: &Repository, reference: &Reference) -> Result<Digest> {
        let what = format!("resolving {reference} in {repo}");
        let resp = self
            .http
            .send(manifest_request(Method::HEAD, repo.as_str(), reference))?;
        match resp.status().as_u16() {
            200 => {
                if let Reference::Digest(d) = reference {
                    return Ok(d.clone());
                }
                if let Some(d) =
                    content_digest(&resp).filter(|d| d.algorithm() == Algorithm::Sha256)
                {
                    return Ok(d);
                }
            }
            404 => return Err(Error::not_found(format!("{what}: no such manifest"))),
            401 | 403 => return Err(errors::from_status(resp.status().as_u16(), b"", &what)),
            _ => {}
        }
        // No usable HEAD answer: GET and hash.
        Ok(self.get_manifest(repo, reference)?.digest)
    }

    fn put_manifest(
        &self,
        repo: &Repository,
        reference: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest> {
        let repo = repo.as_str();
        let what = format!("putting manifest {reference} in {repo}");
        if bytes.len() as u64 > media::MAX_MANIFEST {
            return Err(Error::data(format!(
                "{what}: manifest is larger than 4 MiB"
            )));
        }
        let req = Request::new(Method::PUT, format!("/v2/{repo}/manifests/{reference}"))
            .scope(Scope::push(repo))
            .header("content-type", media_type)
            .body(http::Body::Bytes(bytes));
        let resp = self.http.call(req, &[200, 201, 202], &what)?;
        let digest = Digest::sha256(bytes);
        if let Some(h) = content_digest(&resp)
            && h.algorithm() == Algorithm::Sha256
            && h != digest
        {
            return Err(Error::data(format!(
                "{what}: the registry stored {h}, expected {digest}"
            )));
        }
        Ok(digest)
    }

    fn delete_manifest(&self, repo: &Repository, digest: &Digest) -> Result<()> {
        let repo = repo.as_str();
        let what = format!("deleting manifest {digest} from {repo}");
        self.http.call(
            Request::new(Method::DELETE, format!("/v2/{repo}/manifests/{digest}"))
                .scope(Scope::delete(repo)),
            &[200, 202, 204],
            &what,
        )?;
        Ok(())
    }

    fn list_tags(&self, repo: &Repository) -> Result<Vec<String>> {
        let repo = repo.as_str();
        self.paginate(
            format!("/v2/{repo}/tags/list"),
            "tags",
            Scope::pull(repo),
            &format!("listing aliases of {repo}"),
        )
    }

    fn retry_policy(&self) -> Option<crate::retry::RetryPolicy> {
        Some(self.http.retry_policy())
    }

    fn list_repos(&self) -> Result<Vec<String>> {
        let catalog = |first: &str| {
            self.paginate(
                first.to_string(),
                "repositories",
                Scope::catalog(),
                "listing repositories",
            )
        };
        // Large pages save requests, but distribution refuses an `n` above its
        // `catalog.maxentries` with 400 PAGINATION_NUMBER_INVALID (the only usage error a
        // catalog request can get): then let the registry choose the page size and follow
        // its Link headers.
        catalog("/v2/_catalog?n=1000")
            .or_else(|e| match e.kind {
                Kind::Usage => catalog("/v2/_catalog"),
                _ => Err(e),
            })
            .map_err(|e| {
                if e.kind == Kind::NotFound {
                    e.with_hint("the registry does not offer a catalog")
                } else {
                    e
                }
            })
    }
}

/// A response body whose read failures are reported as the registry being unavailable (69),
/// not as a local I/O error: a reset, a stall past the idle timeout, a truncated body.
struct NetReader<R> {
    inner: R,
    host: String,
}

impl<R: Read> Read for NetReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::Interrupted {
                return e;
            }
            let why = crate::error::io_reason(&e);
            Error::unavailable(format!(
                "{}: connection lost while reading: {why}",
                self.host
            ))
            .into()
        })
    }
}
