//! The little URL handling a registry client needs: splitting an origin off, resolving a
//! `Location` or `Link` target against the URL of the response that carried it (RFC 3986
//! section 5, reduced to the forms registries send), and adding a query parameter.

use crate::oci::Host;

/// `(scheme, authority)` of an absolute http(s) URL, with the authority lower-cased and the
/// default port made explicit so that `https://h` and `https://h:443` compare equal.
pub fn origin(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let mut authority = rest[..end].to_ascii_lowercase();
    if let Some(at) = authority.rfind('@') {
        authority = authority[at + 1..].to_string();
    }
    // An authority that is no host has no origin (and so is the same as nothing).
    let host = Host::parse(&authority).ok()?;
    let port = host
        .port()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let name = match host.name().contains(':') {
        true => format!("[{}]", host.name()),
        false => host.name().to_string(),
    };
    Some((scheme, format!("{name}:{port}")))
}

/// Resolves `target` (absolute, scheme-relative, absolute-path or relative-path) against `base`.
/// The query string of `target` is kept as is: distribution carries upload state in it.
pub fn resolve(base: &str, target: &str) -> String {
    if target.starts_with("http://") || target.starts_with("https://") {
        return target.to_string();
    }
    let Some((scheme, rest)) = base.split_once("://") else {
        return target.to_string();
    };
    if let Some(t) = target.strip_prefix("//") {
        return format!("{scheme}://{t}");
    }
    let end = rest.find('/').unwrap_or(rest.len());
    let root = format!("{scheme}://{}", &rest[..end]);
    if target.starts_with('/') {
        return format!("{root}{target}");
    }
    // Relative path: replace the last segment of the base path.
    let path = &rest[end..];
    let path = &path[..path.find(['?', '#']).unwrap_or(path.len())];
    let dir = &path[..path.rfind('/').map(|i| i + 1).unwrap_or(0)];
    let dir = if dir.is_empty() { "/" } else { dir };
    format!("{root}{dir}{target}")
}

/// Appends `key=value` (value percent-encoded) with `?` or `&` as the URL needs.
pub fn add_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={}", encode(value))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URL with its query string replaced by `?…` and any user info in its authority by
/// `…@`, for logs and messages: distribution's `_state`, signed redirect URLs and a
/// `user:password@` that a server's Location may carry have no place in a terminal.
pub fn redact(url: &str) -> String {
    let url = match url.find(['?', '#']) {
        Some(i) => format!("{}?…", &url[..i]),
        None => url.to_string(),
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return url;
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://…@{}", &rest[at + 1..]),
        None => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_queries_fragments_and_user_info() {
        assert_eq!(
            redact("https://u:p@cdn.example/x/y?sig=1"),
            "https://…@cdn.example/x/y?…"
        );
        assert_eq!(redact("https://h/x#frag"), "https://h/x?…");
        assert_eq!(redact("https://h/a@b"), "https://h/a@b");
        assert_eq!(redact("/v2/x?last=a@b"), "/v2/x?…");
    }

    #[test]
    fn origins_compare_with_default_ports() {
        assert_eq!(
            origin("https://Reg.example/v2/"),
            Some(("https".into(), "reg.example:443".into()))
        );
        assert_eq!(
            origin("http://127.0.0.1:5000/v2?x"),
            Some(("http".into(), "127.0.0.1:5000".into()))
        );
        assert_eq!(
            origin("https://[::1]/v2"),
            Some(("https".into(), "[::1]:443".into()))
        );
        assert_eq!(
            origin("https://u:p@h:8443/x"),
            Some(("https".into(), "h:8443".into()))
        );
        assert_eq!(origin("/v2/"), None);
        assert_eq!(origin("https://a b/v2/"), None);
        assert_eq!(origin("https://[::1/v2/"), None);
        assert_eq!(origin("https://h:0/v2/"), None);
    }

    #[test]
    fn locations_resolve_like_rfc3986() {
        let base = "http://127.0.0.1:5000/v2/fred/blobs/uploads/?x=1";
        assert_eq!(
            resolve(base, "https://s3/blob?sig=a"),
            "https://s3/blob?sig=a"
        );
        assert_eq!(resolve(base, "//cdn:81/a"), "http://cdn:81/a");
        assert_eq!(
            resolve(base, "/v2/fred/blobs/uploads/u1?_state=abc"),
            "http://127.0.0.1:5000/v2/fred/blobs/uploads/u1?_state=abc"
        );
        assert_eq!(
            resolve(base, "u2?_state=z"),
            "http://127.0.0.1:5000/v2/fred/blobs/uploads/u2?_state=z"
        );
        assert_eq!(resolve("http://h", "a"), "http://h/a");
    }

    #[test]
    fn queries_are_added_and_encoded() {
        assert_eq!(
            add_query("http://h/u?_state=a", "digest", "sha256:ab"),
            "http://h/u?_state=a&digest=sha256%3Aab"
        );
        assert_eq!(
            add_query("http://h/u", "scope", "repository:a/b:pull"),
            "http://h/u?scope=repository%3Aa%2Fb%3Apull"
        );
        assert_eq!(redact("http://h/u?_state=secret"), "http://h/u?…");
    }
}
