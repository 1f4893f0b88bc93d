//! One registry's HTTP client, the façade the rest of the code calls (`send`, `call`,
//! `mint`, `canceller`). It puts a request through the layers: the scheme
//! (`transport/scheme.rs`), authentication on 401 (`auth/`), redirects followed by hand with
//! `Authorization` kept to the registry's own origin (`transport/redirect.rs`,
//! docs/registry-notes.md §7), retries of replayable requests on transient failures from the
//! operation's budget (`crate::retry`, §19), the debug log, and the wire
//! (`transport/wire.rs`).

use std::io::Read;
use std::time::Instant;

use ureq::http::{self, Method};

use crate::cancel::Cancel;
use crate::error::{Cause, Error, Kind, Result};
use crate::oci::Host;
use crate::registry::auth::{Auth, TokenCall};
use crate::registry::errors::{from_status, from_transport};
use crate::registry::headers::parse_challenges;
use crate::registry::options::{LogSink, Options};
use crate::registry::scope::Scope;
use crate::registry::transport::logger::Logger;
use crate::registry::transport::redirect::{Redirects, is_redirect, same_origin};
use crate::registry::transport::scheme::{Fallback, Scheme, plain_http_error};
use crate::registry::transport::token::TokenClient;
use crate::registry::transport::wire::Wire;
use crate::registry::transport::wire::never_sent;
use crate::registry::url;
use crate::retry::{Budget, RetryPolicy};
use crate::secret::Secret;

/// A registry's answer, its body still to read.
pub type Response = http::Response<ureq::Body>;

/// A request body.
pub enum Body<'a> {
    /// No body.
    Empty,
    /// Bytes held in memory.
    Bytes(&'a [u8]),
    /// A stream sent once: with a length it goes out with that exact Content-Length (a short
    /// stream is an error, not a hang); without one, chunked.
    Stream(&'a mut dyn Read, Option<u64>),
    /// `len` bytes of a regular file from `start`, read with positional reads each time the
    /// request is sent, so it can be sent again (after a 401, a 307) without holding it.
    File(&'a dyn crate::store::ReadAt, u64, u64),
}

impl Body<'_> {
    pub(crate) fn replayable(&self) -> bool {
        !matches!(self, Body::Stream(..))
    }
}

/// When [`Http::send`] may send a request again by itself after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// After any transient failure: idempotent requests (the default).
    Idempotent,
    /// Only when the request never left: upload data, whose sender asks the registry where
    /// the upload stands before sending more.
    Unsent,
}

/// A request to the registry, before authentication and retries.
pub struct Request<'a> {
    /// The HTTP method.
    pub method: Method,
    /// A path (`/v2/...`) on the registry, or an absolute URL (a Location or Link target).
    pub url: String,
    /// Headers besides `Authorization` (added by the auth layer).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Body<'a>,
    /// The token scope the request needs (docs/registry-notes.md §15).
    pub scope: Scope,
    /// Whether it may be sent again after a failure.
    pub retry: Retry,
}

impl<'a> Request<'a> {
    /// A body-less request, idempotent, with no scope.
    pub fn new(method: Method, url: impl Into<String>) -> Request<'a> {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Body::Empty,
            scope: Scope::default(),
            retry: Retry::Idempotent,
        }
    }
    /// With this retry rule.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }
    /// With the token scope it needs.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }
    /// With one more header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    /// With this body.
    pub fn body(mut self, body: Body<'a>) -> Self {
        self.body = body;
        self
    }
}

/// The HTTP stack for one registry: scheme, authentication, redirects and retries.
pub struct Http {
    wire: Wire,
    host: Host,
    scheme: Scheme,
    auth: Auth,
    retry: RetryPolicy,
    log: Logger,
    /// Extra CA certificates were given (for the hint of a certificate failure).
    trusts_given_certs: bool,
    /// Ends a wait between retries early (see [`Http::with_cancel`]); a default one is never
    /// cancelled.
    cancel: Cancel,
    /// Whether `cancel` was given (only then do operations adopt it).
    cancel_given: bool,
}

impl Http {
    /// The stack for the registry `opts` describes.
    pub fn new(opts: &Options) -> Http {
        Http {
            wire: Wire::new(opts),
            host: opts.host.clone(),
            scheme: Scheme::new(opts),
            auth: Auth::new(opts.host.as_str(), opts.auth.clone()),
            retry: RetryPolicy::new(opts.retries),
            log: Logger::new(opts.debug, opts.log.clone()),
            trusts_given_certs: !opts.tls.extra_roots.is_empty(),
            cancel: Cancel::new(),
            cancel_given: false,
        }
    }

    /// The same stack, its waits between retries ending (with [`Kind::Interrupted`]) as soon
    /// as `cancel` is cancelled.
    pub fn with_cancel(mut self, cancel: Cancel) -> Http {
        self.cancel = cancel;
        self.cancel_given = true;
        self
    }

    /// The registry's host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The retry policy (`Options::retries` retries per operation, within a total time).
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    fn scheme(&self) -> (&'static str, bool) {
        self.scheme.get()
    }

    fn settle_scheme(&self, scheme: &'static str) {
        self.scheme.settle(scheme);
    }

    /// The absolute URL of a registry path, with the scheme in use.
    pub fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') {
            format!("{}://{}{url}", self.scheme().0, self.host)
        } else {
            url.to_string()
        }
    }

    fn same_origin(&self, target: &str) -> bool {
        same_origin(&format!("{}://{}/", self.scheme().0, self.host), target)
    }

    fn log(&self, text: impl FnOnce() -> String) {
        self.log.log(text);
    }

    /// Where warnings go (the caller's [`crate::registry::options::Log`]).
    pub fn sink(&self) -> &LogSink {
        self.log.sink()
    }

    /// Sends a request and returns the response whatever its status, after authentication,
    /// redirects and retries. Only transport failures are errors here.
    pub fn send(&self, req: Request<'_>) -> Result<Response> {
        let Request {
            mut method,
            url: path,
            headers,
            mut body,
            scope,
            retry,
        } = req;
        let transport = |call: &TokenCall| self.token_call(call);
        let mut url = self.absolute(&path);
        let (mut redirects, mut authed) = (Redirects::default(), false);
        // Retries draw from the operation's budget (one of their own for a lone request).
        let budget = Budget::current_or(self.retry);
        // The operation waits no longer than the registry: resumed downloads and upload
        // sessions wait on this budget too.
        if self.cancel_given {
            budget.cancel_by_default(&self.cancel);
        }
        loop {
            let attempt_started = Instant::now();
            // Credentials go only to the registry's own origin: never to a redirect target on
            // another host (S3 and CDNs reject a second auth mechanism) nor over a changed scheme.
            let authorization = match self.same_origin(&url) {
                true => self.auth.header(&scope, &transport)?,
                false => None,
            };
            let sent = self.once(
                &method,
                &url,
                &headers,
                authorization.as_ref().map(Secret::expose),
                &mut body,
            );
            // Plain HTTP recalled from an earlier process is checked by the first answer.
            let answered_400 = sent.as_ref().map_or(true, |r| r.status() == 400);
            if path.starts_with('/')
                && body.replayable()
                && self.scheme.recall_refuted(answered_400)
            {
                self.log(|| format!("{} does not answer plain HTTP; trying https", self.host));
                url = self.absolute(&path);
                continue;
            }
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    match self.scheme.after_failure(path.starts_with('/'), &url, &e) {
                        Some(Fallback::PlainHttp) => {
                            self.log(|| format!("{} does not speak TLS; using http", self.host));
                            url = self.absolute(&path);
                            continue;
                        }
                        Some(Fallback::Refuse) => {
                            return Err(plain_http_error(&self.failed_host(&url)));
                        }
                        None => {}
                    }
                    let unsent = never_sent(&e);
                    let err = self.transport_error(e, &url);
                    if err.kind == Kind::Unavailable
                        && body.replayable()
                        && (retry == Retry::Idempotent || unsent)
                        && let Some(wait) = budget.next(None, attempt_started.elapsed())
                    {
                        self.log(|| {
                            format!("{err}; retry {} of {}", budget.used(), budget.retries())
                        });
                        self.cancel.sleep(wait)?;
                        continue;
                    }
                    return Err(err);
                }
            };
            if path.starts_with('/') && self.scheme.unsettled() {
                self.settle_scheme("https");
            }
            let status = resp.status().as_u16();
            self.log(|| format!("{method} {} -> {status}", url::redact(&url)));
            match status {
                s if is_redirect(s) => {
                    let Some(location) = header(&resp, "location") else {
                        return Ok(resp);
                    };
                    url = redirects.follow(status, &location, &mut method, &mut body, &url)?;
                }
                // A challenge from a host the registry redirected us to is not the registry's:
                // answering it would send the user's credentials to a realm that host chose.
                401 if !self.same_origin(&url) => {
                    return Err(Error::new(
                        Kind::Denied,
                        format!(
                            "{} (where the registry redirected the request) answered 401; the registry's credentials go to the registry alone",
                            self.failed_host(&url)
                        ),
                    ));
                }
                401 if !authed && body.replayable() => {
                    let values = header_all(&resp, "www-authenticate");
                    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
                    let challenges = parse_challenges(&refs);
                    if !self.auth.challenged(
                        &challenges,
                        &scope,
                        authorization.as_ref().map(Secret::expose),
                        &transport,
                    )? {
                        return Ok(resp);
                    }
                    authed = true;
                }
                408 | 429 | 500 | 502 | 503 | 504
                    if body.replayable() && retry != Retry::Unsent =>
                {
                    let retry_after = header(&resp, "retry-after");
                    let lost = attempt_started.elapsed();
                    let Some(wait) = budget.next(retry_after.as_deref(), lost) else {
                        return Ok(resp);
                    };
                    self.log(|| {
                        format!(
                            "HTTP {status}; retry {} of {} in {wait:?}",
                            budget.used(),
                            budget.retries()
                        )
                    });
                    self.cancel.sleep(wait)?;
                }
                _ => return Ok(resp),
            }
        }
    }

    fn once(
        &self,
        method: &Method,
        url: &str,
        headers: &[(&'static str, String)],
        authorization: Option<&str>,
        body: &mut Body<'_>,
    ) -> Result<Response, ureq::Error> {
        self.wire.send(method, url, headers, authorization, body)
    }

    /// An action that DELETEs a URL (an upload session) when the upload is cancelled: see
    /// `transport::cancel::canceller`.
    pub fn canceller(
        &self,
        scope: &Scope,
    ) -> impl Fn(&str) -> Option<(u16, Vec<u8>)> + Send + Sync + 'static {
        let ours = format!("{}://{}/", self.scheme().0, self.host);
        crate::registry::transport::cancel::canceller(&self.wire, &self.auth, scope, ours)
    }

    /// Sends a request to a token endpoint for the auth module: GET with optional Basic
    /// credentials, or an OAuth2 form POST. Never carries the registry's own credentials.
    fn token_call(&self, call: &TokenCall) -> Result<(u16, Vec<u8>)> {
        TokenClient {
            wire: &self.wire,
            host: self.host.as_str(),
            trusts_given_certs: self.trusts_given_certs,
            logger: self.log.clone(),
            retry: self.retry,
            cancel: &self.cancel,
        }
        .call(call)
    }

    /// Mints a token for `scope` (`regtool auth`): learns from GET /v2/ whether the registry
    /// uses bearer tokens at all. None when it does not.
    pub fn mint(&self, scope: &Scope) -> Result<Option<String>> {
        let transport = |call: &TokenCall| self.token_call(call);
        let resp = self.send(Request::new(Method::GET, "/v2/"))?;
        let status = resp.status().as_u16();
        if !matches!(status, 200 | 401) {
            return Err(from_status(status, b"", "checking the registry"));
        }
        if status == 401 {
            // The probe carried no usable credentials; the challenge still names the realm.
            let values = header_all(&resp, "www-authenticate");
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            if !parse_challenges(&refs).iter().any(|c| c.scheme == "bearer") {
                return Err(from_status(401, b"", "checking the registry"));
            }
        }
        self.auth.mint(scope, &transport)
    }

    /// The error for a failed attempt on `url`, naming the host that failed: the registry, or
    /// the host a redirect sent us to (a registry's answer may well point at a blob store that
    /// is down, and the registry is not the one to blame nor to check).
    fn transport_error(&self, e: ureq::Error, url: &str) -> Error {
        let host = self.failed_host(url);
        let err = from_transport(e, &host, self.trusts_given_certs);
        if host == self.host.as_str() {
            return err;
        }
        match err.cause {
            // Its hint is about the registry's own address.
            Some(Cause::ConnectionRefused) => Error { cause: None, ..err }.with_hint(format!(
                "the registry redirected the request to {host}, which does not answer"
            )),
            _ => err,
        }
    }

    /// The host an attempt on `url` went to, as messages name it: the registry's own, or
    /// (after a redirect elsewhere) the target's authority, sanitised (a server chose it).
    fn failed_host(&self, url: &str) -> String {
        if self.same_origin(url) {
            return self.host.to_string();
        }
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        crate::text::sanitize(authority, 100)
    }

    /// Sends a request and fails unless the status is one of `ok`. `what` names the operation.
    pub fn call(&self, req: Request<'_>, ok: &[u16], what: &str) -> Result<Response> {
        let mut resp = self.send(req)?;
        let status = resp.status().as_u16();
        if ok.contains(&status) {
            return Ok(resp);
        }
        let body = read_limited(&mut resp, 64 * 1024).unwrap_or_default();
        let mut err = from_status(status, &body, what);
        if status == 401 && !self.auth.has_credentials() {
            err = err.with_cause(Cause::CredentialsWanted);
        }
        Err(err)
    }
}

/// Every value of a header that may repeat (`WWW-Authenticate`, `Link`), as text.
pub fn header_all(resp: &Response, name: &str) -> Vec<String> {
    resp.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect()
}

/// A header value as text.
pub fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Reads a whole (small) response body, refusing more than `limit` bytes.
pub fn read_limited(resp: &mut Response, limit: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    resp.body_mut()
        .as_reader()
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            Error::unavailable(format!(
                "reading a response: {}",
                crate::error::io_reason(&e)
            ))
        })?;
    if out.len() as u64 > limit {
        return Err(Error::data(format!("response larger than {limit} bytes")));
    }
    Ok(out)
}
