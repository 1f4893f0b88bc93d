//! Redirects, followed by hand (ureq's own following is off): at most ten, a 303 (and a 301 or
//! 302 after a POST) turns into a GET without body (RFC 9110 §15.4), a 307 or 308 repeats the
//! method and body, and the registry's credentials go only to its own origin
//! (docs/registry-notes.md §7): the façade asks [`same_origin`] before each attempt.

use ureq::http::Method;

use crate::error::{Error, Result};
use crate::registry::http::Body;
use crate::registry::url;

/// The most redirects one request follows.
const MAX_REDIRECTS: u32 = 10;

/// Whether a status is a redirect this layer follows.
pub fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// The redirects one request has followed.
#[derive(Default)]
pub struct Redirects {
    followed: u32,
}

impl Redirects {
    /// Follows a redirect answer from `url` to `location`: the next URL, after turning the
    /// method and body into what the status asks for. Fails after too many redirects, or when
    /// the body cannot be sent again.
    pub fn follow(
        &mut self,
        status: u16,
        location: &str,
        method: &mut Method,
        body: &mut Body<'_>,
        url: &str,
    ) -> Result<String> {
        self.followed += 1;
        if self.followed > MAX_REDIRECTS {
            return Err(Error::unavailable(format!(
                "{method} {}: more than {MAX_REDIRECTS} redirects",
                url::redact(url)
            )));
        }
        if status == 303 || (matches!(status, 301 | 302) && *method == Method::POST) {
            if *method != Method::HEAD {
                *method = Method::GET;
            }
            *body = Body::Empty;
        } else if !body.replayable() {
            return Err(Error::unavailable(format!(
                "{method} {}: redirected after the body was sent",
                url::redact(url)
            )));
        }
        Ok(url::resolve(url, location))
    }
}

/// Whether `target` has the origin (scheme, host and port) of `ours`: only then does it get
/// the registry's credentials (object stores reject a second credential, and a changed scheme
/// could put them in clear text).
pub fn same_origin(ours: &str, target: &str) -> bool {
    let ours = url::origin(ours);
    ours.is_some() && url::origin(target) == ours
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_303_becomes_a_get_without_body_and_a_307_keeps_both() {
        let mut r = Redirects::default();
        let (mut method, mut body) = (Method::POST, Body::Bytes(b"x"));
        let next = r
            .follow(303, "/b", &mut method, &mut body, "https://h/a")
            .unwrap();
        assert_eq!(
            (next.as_str(), method.clone()),
            ("https://h/b", Method::GET)
        );
        assert!(matches!(body, Body::Empty));
        let (mut method, mut body) = (Method::PUT, Body::Bytes(b"x"));
        r.follow(307, "https://s3/x", &mut method, &mut body, "https://h/a")
            .unwrap();
        assert_eq!(method, Method::PUT);
        assert!(matches!(body, Body::Bytes(b"x")));
    }

    #[test]
    fn a_streamed_body_cannot_follow_and_loops_end() {
        let mut data: &[u8] = b"abc";
        let (mut method, mut body) = (Method::PUT, Body::Stream(&mut data, None));
        let e = Redirects::default()
            .follow(307, "/b", &mut method, &mut body, "https://h/a")
            .unwrap_err();
        assert!(
            e.message.contains("redirected after the body was sent"),
            "{e}"
        );
        let mut r = Redirects::default();
        let mut method = Method::GET;
        for _ in 0..MAX_REDIRECTS {
            r.follow(302, "/a", &mut method, &mut Body::Empty, "https://h/a")
                .unwrap();
        }
        let e = r
            .follow(302, "/a", &mut method, &mut Body::Empty, "https://h/a")
            .unwrap_err();
        assert!(e.message.contains("more than 10 redirects"), "{e}");
    }

    #[test]
    fn origins_differ_by_scheme_host_or_port() {
        assert!(same_origin("https://h:5000/", "https://h:5000/v2/x"));
        assert!(!same_origin("https://h:5000/", "http://h:5000/v2/x"));
        assert!(!same_origin("https://h:5000/", "https://s3.example/x"));
        assert!(!same_origin("https://h:5000/", "https://h:5001/x"));
    }
}
