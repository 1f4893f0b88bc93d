//! One registry's HTTP transport: the ureq agent, the scheme (https, or http when asked or
//! when a loopback registry does not speak TLS), authentication on 401, redirects followed by
//! hand with `Authorization` kept to the registry's own origin (PROTOCOL.md rule 7), and
//! retries of replayable requests on transient failures (rule 19).

use std::io::{self, Read};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use ureq::http::{self, Method};
use ureq::{Agent, SendBody};

use crate::config::RegistryOptions;
use crate::error::{Error, Kind, Result};
use crate::registry::auth::{Auth, TokenCall};
use crate::registry::errors::from_status;
use crate::registry::headers::parse_challenges;
use crate::registry::scope::Scope;
use crate::registry::url;
use crate::secret::Secret;

pub type Response = http::Response<ureq::Body>;

/// A request body.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A stream sent once: with a length it goes out with that exact Content-Length (a short
    /// stream is an error, not a hang); without one, chunked.
    Stream(&'a mut dyn Read, Option<u64>),
    /// `len` bytes of a regular file from `start`, read with positional reads each time the
    /// request is sent, so it can be sent again (after a 401, a 307) without holding it.
    File(&'a dyn crate::store::ReadAt, u64, u64),
}

impl Body<'_> {
    fn replayable(&self) -> bool {
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

pub struct Request<'a> {
    pub method: Method,
    /// A path (`/v2/...`) on the registry, or an absolute URL (a Location or Link target).
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body<'a>,
    /// The token scope the request needs (PROTOCOL.md rule 15).
    pub scope: Scope,
    pub retry: Retry,
}

impl<'a> Request<'a> {
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
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub fn body(mut self, body: Body<'a>) -> Self {
        self.body = body;
        self
    }
}

pub struct Http {
    wire: Wire,
    host: String,
    scheme: Mutex<Option<&'static str>>,
    auth: Auth,
    retries: u32,
    debug: bool,
    /// REGTOOL_TLSVERIFY named certificates (for the hint of a certificate failure).
    trusts_given_certs: bool,
}

/// The one way out for every request (to the registry, to a token realm, and the DELETE an
/// interrupted upload sends), so that one check guards every credential: a request carrying
/// one (an `Authorization` header, or a token request whose form holds a refresh or access
/// token) goes in clear text only to this machine or to a host the user allowed plain HTTP.
#[derive(Clone)]
struct Wire {
    agent: Agent,
    /// `host[:port]` entries allowed plain HTTP (see [`listed`]).
    plain_http: std::sync::Arc<[String]>,
}

impl Wire {
    fn run(
        &self,
        req: http::Request<SendBody<'_>>,
        secret_body: bool,
    ) -> Result<Response, ureq::Error> {
        if secret_body || req.headers().contains_key(http::header::AUTHORIZATION) {
            cleartext_check(&req.uri().to_string(), &self.plain_http)
                .map_err(|e| ureq::Error::Io(e.into()))?;
        }
        self.agent.run(req)
    }
}

/// Credentials may cross the network only encrypted, unless they stay on this machine or the
/// user allowed plain HTTP for the host they go to.
fn cleartext_check(target: &str, plain_http: &[String]) -> Result<()> {
    let Some((scheme, authority)) = url::origin(target) else {
        return Err(Error::new(
            Kind::Denied,
            format!(
                "refusing to send credentials to {:?}: not an http(s) URL",
                crate::text::sanitize(target, 100)
            ),
        ));
    };
    if scheme == "https" || is_loopback(&authority) || listed(plain_http, &authority) {
        return Ok(());
    }
    let host = authority.strip_suffix(":80").unwrap_or(&authority);
    Err(Error::new(
        Kind::Denied,
        format!(
            "refusing to send credentials in clear text to {}",
            crate::text::sanitize(&url::redact(target), 100)
        ),
    )
    .with_hint(format!(
        "use https, or allow plain HTTP for that host: REGTOOL_INSECURE={}",
        crate::text::sanitize(host, 100)
    )))
}

/// `(host, port)` of a `host[:port]` (IPv6 in brackets).
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => (&authority[..=end], authority[end + 1..].strip_prefix(':')),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

/// Whether `authority` (`host[:port]`; no port means 80, plain HTTP's) is one of `hosts`:
/// an entry with a port names that port only, an entry without one the host on any port.
pub fn listed(hosts: &[String], authority: &str) -> bool {
    let (name, port) = split_authority(authority);
    hosts.iter().any(|entry| {
        let (e_name, e_port) = split_authority(entry);
        e_name.eq_ignore_ascii_case(name) && e_port.is_none_or(|p| p == port.unwrap_or("80"))
    })
}

/// Whether a `host[:port]` is on this machine (loopback may fall back to plain HTTP).
pub fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Http {
    pub fn new(opts: &RegistryOptions) -> Http {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("regtool/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(opts.timeout))
            .timeout_per_read(Some(opts.timeout))
            .timeout_per_write(Some(opts.timeout))
            .max_idle_connections_per_host(opts.jobs + 2)
            .build();
        // TLS through regtool's own connector (registry/tls.rs): ureq's cannot take a verifier.
        let agent = Agent::with_parts(
            config,
            opts.tls.connector(),
            ureq::unversioned::resolver::DefaultResolver::default(),
        );
        let mut plain_http = opts.insecure_hosts.clone();
        if opts.insecure {
            plain_http.push(opts.host.clone());
        }
        let scheme = if opts.insecure {
            Some("http")
        } else if is_loopback(&opts.host) {
            None
        } else {
            Some("https")
        };
        Http {
            wire: Wire {
                agent,
                plain_http: plain_http.into(),
            },
            host: opts.host.clone(),
            scheme: Mutex::new(scheme),
            auth: Auth::new(&opts.host, opts.auth.clone()),
            retries: opts.retries,
            debug: opts.debug,
            trusts_given_certs: !opts.tls.extra_roots.is_empty(),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// REGTOOL_RETRIES: how many times a failed request is tried again.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    fn scheme(&self) -> (&'static str, bool) {
        match self.scheme.lock().ok().and_then(|g| *g) {
            Some(s) => (s, true),
            None => ("https", false),
        }
    }

    fn settle_scheme(&self, scheme: &'static str) {
        if let Ok(mut g) = self.scheme.lock() {
            *g = Some(scheme);
        }
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
        let ours = url::origin(&format!("{}://{}/", self.scheme().0, self.host));
        ours.is_some() && url::origin(target) == ours
    }

    fn log(&self, text: impl FnOnce() -> String) {
        if self.debug {
            eprintln!("regtool: debug: {}", text());
        }
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
        let (mut attempt, mut redirects, mut authed) = (0u32, 0u32, false);
        let started = std::time::Instant::now();
        // Retries stop at REGTOOL_RETRIES, or once waiting would pass the budget.
        let may_retry = |attempt: u32, wait: Duration| {
            attempt < self.retries && started.elapsed() + wait < RETRY_BUDGET
        };
        loop {
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
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    let (scheme, settled) = self.scheme();
                    // Another thread may have settled on http while this https attempt failed.
                    let tried_https = url.starts_with("https://");
                    if path.starts_with('/')
                        && tried_https
                        && tls_mismatch(&e)
                        && (!settled || scheme == "http")
                    {
                        // PROTOCOL/CLI: a loopback registry that does not speak TLS gets plain HTTP.
                        self.log(|| format!("{} does not speak TLS; using http", self.host));
                        self.settle_scheme("http");
                        url = self.absolute(&path);
                        continue;
                    }
                    // Not a failure that waiting cures: the server speaks plain HTTP.
                    if tried_https && answered_in_plain_text(&e) {
                        return Err(plain_http_error(&self.host));
                    }
                    let unsent = never_sent(&e);
                    let err = self.transport_error(e);
                    let wait = backoff(attempt + 1, None);
                    if err.kind == Kind::Unavailable
                        && body.replayable()
                        && (retry == Retry::Idempotent || unsent)
                        && may_retry(attempt, wait)
                    {
                        attempt += 1;
                        self.log(|| format!("{err}; retry {attempt} of {}", self.retries));
                        std::thread::sleep(wait);
                        continue;
                    }
                    return Err(err);
                }
            };
            if path.starts_with('/') && self.scheme.lock().is_ok_and(|g| g.is_none()) {
                self.settle_scheme("https");
            }
            let status = resp.status().as_u16();
            self.log(|| format!("{method} {} -> {status}", url::redact(&url)));
            match status {
                301 | 302 | 303 | 307 | 308 => {
                    let Some(location) = header(&resp, "location") else {
                        return Ok(resp);
                    };
                    redirects += 1;
                    if redirects > 10 {
                        return Err(Error::unavailable(format!(
                            "{method} {}: more than 10 redirects",
                            url::redact(&url)
                        )));
                    }
                    // 303, and 301/302 after a POST, turn into a GET without body (RFC 9110 15.4).
                    if status == 303 || (matches!(status, 301 | 302) && method == Method::POST) {
                        method = if method == Method::HEAD {
                            Method::HEAD
                        } else {
                            Method::GET
                        };
                        body = Body::Empty;
                    } else if !body.replayable() {
                        return Err(Error::unavailable(format!(
                            "{method} {}: redirected after the body was sent",
                            url::redact(&url)
                        )));
                    }
                    url = url::resolve(&url, &location);
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
                    let wait = backoff(attempt + 1, header(&resp, "retry-after").as_deref());
                    if !may_retry(attempt, wait) {
                        return Ok(resp);
                    }
                    attempt += 1;
                    self.log(|| {
                        format!(
                            "HTTP {status}; retry {attempt} of {} in {wait:?}",
                            self.retries
                        )
                    });
                    std::thread::sleep(wait);
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
        let mut builder = http::Request::builder().method(method.clone()).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        if let Some(auth) = authorization {
            builder = builder.header("authorization", auth);
        }
        let needs_length = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
        match body {
            Body::Empty => {
                if needs_length {
                    builder = builder.header("content-length", "0");
                }
                self.wire.run(builder.body(SendBody::none())?, false)
            }
            Body::Bytes(bytes) => {
                let mut reader: &[u8] = bytes;
                builder = builder.header("content-length", bytes.len().to_string());
                self.wire
                    .run(builder.body(SendBody::from_reader(&mut reader))?, false)
            }
            Body::Stream(reader, Some(len)) => {
                let mut exact = ExactReader {
                    inner: &mut **reader,
                    remaining: *len,
                };
                builder = builder.header("content-length", len.to_string());
                self.wire
                    .run(builder.body(SendBody::from_reader(&mut exact))?, false)
            }
            Body::Stream(reader, None) => self
                .wire
                .run(builder.body(SendBody::from_reader(&mut **reader))?, false),
            Body::File(file, start, len) => {
                let mut exact = ExactReader {
                    inner: &mut crate::store::FileRange::new(*file, *start, *len),
                    remaining: *len,
                };
                builder = builder.header("content-length", len.to_string());
                self.wire
                    .run(builder.body(SendBody::from_reader(&mut exact))?, false)
            }
        }
    }

    /// An action that DELETEs a URL (an upload session) for the interrupt handler, and gives
    /// the status and (the start of) the body of the answer, None when there was none: it
    /// carries its own agent and the current credentials, and never fetches a token.
    pub fn canceller(
        &self,
        scope: &Scope,
    ) -> impl Fn(&str) -> Option<(u16, Vec<u8>)> + Send + Sync + 'static {
        let no_fetch = |_: &TokenCall| -> Result<(u16, Vec<u8>)> {
            Err(Error::other("no token requests while interrupted"))
        };
        let authorization = self.auth.header(scope, &no_fetch).ok().flatten();
        let wire = self.wire.clone();
        move |url: &str| {
            let mut builder = http::Request::builder().method(Method::DELETE).uri(url);
            if let Some(a) = &authorization {
                builder = builder.header("authorization", a.expose());
            }
            let req = builder.body(SendBody::none()).ok()?;
            let mut resp = wire.run(req, false).ok()?;
            let body = read_limited(&mut resp, 4096).unwrap_or_default();
            Some((resp.status().as_u16(), body))
        }
    }

    /// Sends a request to a token endpoint for the auth module: GET with optional Basic
    /// credentials, or an OAuth2 form POST. Never carries the registry's own credentials.
    fn token_call(&self, call: &TokenCall) -> Result<(u16, Vec<u8>)> {
        if url::origin(&call.url).is_none() {
            return Err(Error::new(
                Kind::Denied,
                format!(
                    "token realm {:?} is not an http(s) URL",
                    crate::text::sanitize(&call.url, 100)
                ),
            ));
        }
        let method = if call.post_form.is_some() {
            Method::POST
        } else {
            Method::GET
        };
        let mut builder = http::Request::builder()
            .method(method.clone())
            .uri(&call.url);
        if let Some(b) = &call.basic {
            builder = builder.header("authorization", b.expose());
        }
        let sent = match &call.post_form {
            Some(form) => {
                let mut body: &[u8] = form.expose().as_bytes();
                builder = builder
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("content-length", body.len().to_string());
                builder
                    .body(SendBody::from_reader(&mut body))
                    .map_err(ureq::Error::from)
                    .and_then(|r| self.wire.run(r, true))
            }
            None => builder
                .body(SendBody::none())
                .map_err(ureq::Error::from)
                .and_then(|r| self.wire.run(r, false)),
        };
        let mut resp = sent.map_err(|e| self.transport_error(e).context("fetching a token"))?;
        let status = resp.status().as_u16();
        self.log(|| format!("{method} {} -> {status}", url::redact(&call.url)));
        Ok((status, read_limited(&mut resp, 1 << 20)?))
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

    fn transport_error(&self, e: ureq::Error) -> Error {
        let host = &self.host;
        match e {
            ureq::Error::Io(io) => {
                if io.get_ref().is_some_and(|inner| inner.is::<Error>()) {
                    return crate::error::from_io("sending", io);
                }
                if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    return tls_error(host, tls, self.trusts_given_certs);
                }
                match io.kind() {
                    io::ErrorKind::ConnectionRefused => {
                        Error::unavailable(format!("cannot connect to {host}: connection refused"))
                            .with_hint("is the registry running, and is REGTOOL_HOST right?")
                    }
                    io::ErrorKind::TimedOut => Error::unavailable(format!("{host}: timed out")),
                    _ => Error::unavailable(format!("{host}: {}", crate::error::io_reason(&io))),
                }
            }
            ureq::Error::Timeout(t) => Error::unavailable(format!("{host}: timed out ({t})"))
                .with_hint("raise REGTOOL_TIMEOUT if the registry is slow"),
            ureq::Error::HostNotFound => Error::unavailable(format!("cannot resolve {host}")),
            ureq::Error::ConnectionFailed => {
                Error::unavailable(format!("cannot connect to {host}"))
            }
            ureq::Error::Rustls(tls) => tls_error(host, &tls, self.trusts_given_certs),
            e @ ureq::Error::Tls(_) => Error::unavailable(format!("TLS failure with {host}: {e}")),
            e => Error::unavailable(format!("{host}: {e}")),
        }
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
            err = err.with_hint(
                "the registry wants credentials: set REGTOOL_USERNAME and REGTOOL_PASSWORD",
            );
        }
        Err(err)
    }
}

/// `given`: REGTOOL_TLSVERIFY is set, so the hint must not ask for it again.
fn tls_error(host: &str, e: &rustls::Error, given: bool) -> Error {
    let err = Error::unavailable(format!("TLS failure with {host}: {e}"));
    match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName) => err
            .with_hint(format!(
                "the certificate does not name {host}: connect by a name it lists"
            )),
        rustls::Error::InvalidCertificate(_) if given => err.with_hint(
            "the certificate is neither in REGTOOL_TLSVERIFY nor signed by a CA in it: check that the file holds the registry's certificate or its CA",
        ),
        rustls::Error::InvalidCertificate(_) => err.with_hint(
            "set REGTOOL_TLSVERIFY to the CA bundle that signed the registry's certificate (or to the certificate itself)",
        ),
        _ => err,
    }
}

/// Whether a request certainly never reached the server: the connection was never made.
fn never_sent(e: &ureq::Error) -> bool {
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

/// Whether a failed first https attempt looks like a plain-HTTP server on the other end: its
/// answer to our ClientHello is not a TLS record. A certificate that does not verify, or a
/// server that wants a client certificate, is a TLS failure, never a reason to drop to HTTP.
fn tls_mismatch(e: &ureq::Error) -> bool {
    match e {
        // A server that hangs up on a ClientHello it cannot parse.
        ureq::Error::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => true,
        e => answered_in_plain_text(e),
    }
}

/// Whether the answer to our ClientHello was not a TLS record at all (an HTTP server says
/// `HTTP/1.1 400 ...`), which rustls reports as a corrupt message.
fn answered_in_plain_text(e: &ureq::Error) -> bool {
    let not_tls = |r: &rustls::Error| matches!(r, rustls::Error::InvalidMessage(_));
    match e {
        ureq::Error::Rustls(r) => not_tls(r),
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .is_some_and(not_tls),
        _ => false,
    }
}

/// A registry on another machine that answers TLS with plain HTTP: said at once, not retried.
fn plain_http_error(host: &str) -> Error {
    Error::unavailable(format!(
        "TLS failure with {host}: it answers in plain HTTP, not TLS"
    ))
    .with_hint(format!(
        "if {host} only serves plain HTTP, set REGTOOL_INSECURE={host} (or REGTOOL_INSECURE=1 when it is REGTOOL_HOST); credentials then travel in clear text"
    ))
}

/// How long one request may spend waiting between retries, whatever REGTOOL_RETRIES says.
const RETRY_BUDGET: Duration = Duration::from_secs(300);

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

/// Yields exactly `remaining` bytes of `inner`, and fails (instead of letting the HTTP client
/// wait forever for the promised Content-Length) when `inner` ends early.
struct ExactReader<'a> {
    inner: &'a mut dyn Read,
    remaining: u64,
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(Error::data(format!(
                "input ended {} bytes early (did the file change during the push?)",
                self.remaining
            ))
            .into());
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "registry.example",
            "10.0.0.1:5000",
            "[::2]:1",
            "localhost.example",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn credentials_go_in_clear_text_only_where_allowed() {
        let allowed = ["auth.example".to_string(), "reg.example:5000".to_string()];
        for ok in [
            "https://anywhere.example/token",
            "http://127.0.0.1:9/token",
            "http://localhost/x",
            "http://auth.example:8080/token",
            "http://reg.example:5000/v2/",
        ] {
            assert!(cleartext_check(ok, &allowed).is_ok(), "{ok}");
        }
        for refused in [
            "http://other.example/token?scope=x",
            "http://reg.example/v2/",
            "http://reg.example:5001/v2/",
            "ftp://x/",
        ] {
            let e = cleartext_check(refused, &allowed).unwrap_err();
            assert_eq!(e.kind, Kind::Denied, "{refused}");
            assert!(e.message.starts_with("refusing to send credentials"), "{e}");
            assert!(!e.message.contains("scope=x"), "{e}");
        }
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
    }

    #[test]
    fn exact_reader_refuses_short_input() {
        let mut data: &[u8] = b"abc";
        let mut r = ExactReader {
            inner: &mut data,
            remaining: 5,
        };
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert_eq!(crate::error::from_io("x", err).kind, Kind::Data);
        let mut data: &[u8] = b"abcdef";
        let mut r = ExactReader {
            inner: &mut data,
            remaining: 4,
        };
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abcd");
    }
}
