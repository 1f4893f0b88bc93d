//! The call to a token endpoint (Docker token spec: GET with optional Basic credentials, or an
//! OAuth2 form POST), made for the authentication module through the wire, and tried again
//! on transient failures like any request.

use std::time::Instant;

use ureq::SendBody;
use ureq::http::{self, Method};

use crate::cancel::Cancel;
use crate::error::{Error, Kind, Result};
use crate::registry::auth::TokenCall;
use crate::registry::errors::from_transport;
use crate::registry::http::{header, read_limited};
use crate::registry::transport::logger::Logger;
use crate::registry::transport::wire::Wire;
use crate::registry::url;
use crate::retry::{Budget, RetryPolicy};

/// What a token call needs: the wire, the registry's name (for messages) and the log.
pub struct TokenClient<'a> {
    /// The connection the calls go through.
    pub wire: &'a Wire,
    /// The registry, for messages.
    pub host: &'a str,
    /// Whether extra CA certificates were given (for the untrusted-certificate cause).
    pub trusts_given_certs: bool,
    /// The debug log.
    pub logger: Logger,
    /// How often a failed call goes again.
    pub retry: RetryPolicy,
    /// Ends a wait between retries early.
    pub cancel: &'a Cancel,
}

impl TokenClient<'_> {
    /// Sends a request to a token endpoint for the auth module: GET with optional Basic
    /// credentials, or an OAuth2 form POST. Never carries the registry's own credentials.
    pub fn call(&self, call: &TokenCall) -> Result<(u16, Vec<u8>)> {
        if url::origin(&call.url).is_none() {
            return Err(Error::new(
                Kind::Denied,
                format!(
                    "token realm {:?} is not an http(s) URL",
                    crate::text::sanitize(&call.url, 100)
                ),
            ));
        }
        // Token calls draw from the operation's budget, like the requests they serve.
        let budget = Budget::current_or(self.retry);
        loop {
            let started = Instant::now();
            let (wait, failure) = match self.once(call) {
                Ok((status @ (408 | 429 | 500 | 502 | 503 | 504), retry_after, body)) => {
                    let wait = budget.next(retry_after.as_deref(), started.elapsed());
                    (wait, Ok((status, body)))
                }
                Ok((status, _, body)) => return Ok((status, body)),
                Err(e) if e.kind == Kind::Unavailable => {
                    (budget.next(None, started.elapsed()), Err(e))
                }
                Err(e) => return Err(e),
            };
            let Some(wait) = wait else {
                return failure;
            };
            self.logger.log(|| {
                format!(
                    "token request failed; retry {} of {} in {wait:?}",
                    budget.used(),
                    budget.retries()
                )
            });
            self.cancel.sleep(wait)?;
        }
    }

    /// One attempt: the status, the `Retry-After` and the body of the answer.
    fn once(&self, call: &TokenCall) -> Result<(u16, Option<String>, Vec<u8>)> {
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
        let mut resp = sent.map_err(|e| {
            from_transport(e, self.host, self.trusts_given_certs).context("fetching a token")
        })?;
        let status = resp.status().as_u16();
        self.logger
            .log(|| format!("{method} {} -> {status}", url::redact(&call.url)));
        let retry_after = header(&resp, "retry-after");
        Ok((status, retry_after, read_limited(&mut resp, 1 << 20)?))
    }
}
