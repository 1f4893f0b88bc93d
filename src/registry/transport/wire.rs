//! The wire: one attempt of one request through the ureq agent. It is the one way out for
//! every request (to the registry, to a token realm, and the DELETE an interrupted upload
//! sends), so that one check guards every credential.

use std::io::{self, Read};

use ureq::http::{self, Method};
use ureq::{Agent, SendBody};

use crate::error::{Cause, Error, Kind, Result};
use crate::oci::Host;
use crate::registry::http::{Body, Response};
use crate::registry::options::Options;
use crate::registry::transport::useragent::USER_AGENT;
use crate::registry::url;

/// The one way out for every request (to the registry, to a token realm, and the DELETE an
/// interrupted upload sends), so that one check guards every credential: a request carrying
/// one (an `Authorization` header, or a token request whose form holds a refresh or access
/// token) goes in clear text only to this machine or to a host the user allowed plain HTTP.
#[derive(Clone)]
pub struct Wire {
    agent: Agent,
    /// The hosts allowed plain HTTP (see [`Host::listed_in`]).
    plain_http: std::sync::Arc<[Host]>,
}

impl Wire {
    /// The agent for the registry `opts` describes (TLS, timeouts, pool size).
    pub fn new(opts: &Options) -> Wire {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(USER_AGENT)
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
        Wire {
            agent,
            plain_http: plain_http.into(),
        }
    }

    /// Sends one request once, following no redirect; credentials never go in clear text to a
    /// host not allowed plain HTTP.
    pub fn run(
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

    /// Sends one request with `body` (and `authorization`, when given) once.
    pub fn send(
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
                self.run(builder.body(SendBody::none())?, false)
            }
            Body::Bytes(bytes) => {
                let mut reader: &[u8] = bytes;
                builder = builder.header("content-length", bytes.len().to_string());
                self.run(builder.body(SendBody::from_reader(&mut reader))?, false)
            }
            Body::Stream(reader, Some(len)) => {
                let mut exact = ExactReader {
                    inner: &mut **reader,
                    remaining: *len,
                };
                builder = builder.header("content-length", len.to_string());
                self.run(builder.body(SendBody::from_reader(&mut exact))?, false)
            }
            Body::Stream(reader, None) => {
                self.run(builder.body(SendBody::from_reader(&mut **reader))?, false)
            }
            Body::File(file, start, len) => {
                let mut exact = ExactReader {
                    inner: &mut crate::store::FileRange::new(*file, *start, *len),
                    remaining: *len,
                };
                builder = builder.header("content-length", len.to_string());
                self.run(builder.body(SendBody::from_reader(&mut exact))?, false)
            }
        }
    }
}

/// Credentials may cross the network only encrypted, unless they stay on this machine or the
/// user allowed plain HTTP for the host they go to.
fn cleartext_check(target: &str, plain_http: &[Host]) -> Result<()> {
    let Some((scheme, authority)) = url::origin(target) else {
        return Err(Error::new(
            Kind::Denied,
            format!(
                "refusing to send credentials to {:?}: not an http(s) URL",
                crate::text::sanitize(target, 100)
            ),
        ));
    };
    // The authority of a URL that parsed is a host (a bad one, as from `x.y?z`, is allowed
    // nothing: it cannot be on this machine nor in the list).
    // A proxied request leaves this machine whatever its destination is called (the proxy
    // may relay it anywhere, and "localhost" inside a tunnel is the proxy's): no exemption.
    let allowed = |h: &Host| (h.is_loopback() && !proxied(target)) || h.listed_in(plain_http, 80);
    if scheme == "https" || Host::parse(&authority).is_ok_and(|h| allowed(&h)) {
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
    .with_cause(Cause::PlainHttpRefused {
        host: crate::text::sanitize(host, 100),
    }))
}

/// Whether a request to `target` goes through a proxy: the one the agent takes from the
/// environment (ALL_PROXY, HTTPS_PROXY, HTTP_PROXY), unless NO_PROXY names the target.
pub fn proxied(target: &str) -> bool {
    let Ok(uri) = target.parse::<http::Uri>() else {
        return false;
    };
    ureq::Proxy::try_from_env().is_some_and(|p| !p.is_no_proxy(&uri))
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
    fn credentials_go_in_clear_text_only_where_allowed() {
        let allowed = [
            Host::parse("auth.example").unwrap(),
            Host::parse("reg.example:5000").unwrap(),
        ];
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
