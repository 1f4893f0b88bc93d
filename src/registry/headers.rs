//! Parsers for the response headers a registry client depends on: `WWW-Authenticate`
//! (RFC 7235 section 4.1: several challenges, quoted strings with escapes, any case) and
//! `Link` (RFC 8288, for pagination).

use std::collections::BTreeMap;

/// One authentication challenge: a scheme (lower-cased) and its parameters (names lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme, lower-cased (`basic`, `bearer`).
    pub scheme: String,
    /// Its parameters by lower-cased name.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// The parameter `name` (lower case), if present.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses every challenge of one or more `WWW-Authenticate` header values. Malformed parts
/// are skipped rather than failing the whole header: the caller decides whether a usable
/// challenge is left.
pub fn parse_challenges(values: &[&str]) -> Vec<Challenge> {
    let mut out = Vec::new();
    for value in values {
        let mut p = Parser {
            s: value.as_bytes(),
            i: 0,
        };
        loop {
            p.skip_ws_commas();
            let Some(scheme) = p.token() else { break };
            let mut ch = Challenge {
                scheme: scheme.to_ascii_lowercase(),
                params: BTreeMap::new(),
            };
            // Parameters: name = value pairs, separated by commas, until the next scheme.
            loop {
                let save = p.i;
                p.skip_ws_commas();
                let Some(name) = p.token() else {
                    p.i = save;
                    break;
                };
                p.skip_ws();
                if !p.eat(b'=') {
                    // A bare token: the next challenge's scheme (or a token68, which we ignore).
                    p.i = save;
                    break;
                }
                p.skip_ws();
                let value = if p.peek() == Some(b'"') {
                    p.quoted()
                } else {
                    p.token().map(str::to_string)
                };
                match value {
                    Some(v) => {
                        ch.params.insert(name.to_ascii_lowercase(), v);
                    }
                    None => p.skip_to_comma(),
                }
            }
            out.push(ch);
            if p.i >= p.s.len() {
                break;
            }
        }
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    fn skip_ws_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }
    fn skip_to_comma(&mut self) {
        while !matches!(self.peek(), None | Some(b',')) {
            self.i += 1;
        }
    }
    /// An RFC 7230 token (plus `/` so that token68 values do not derail the parse).
    fn token(&mut self) -> Option<&'a str> {
        let start = self.i;
        while let Some(b) = self.peek() {
            if b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b) {
                self.i += 1;
            } else {
                break;
            }
        }
        let s: &'a [u8] = self.s;
        if self.i == start {
            None
        } else {
            std::str::from_utf8(&s[start..self.i]).ok()
        }
    }
    /// A quoted string with backslash escapes; None when unterminated.
    fn quoted(&mut self) -> Option<String> {
        self.i += 1;
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    if let Some(next) = self.peek() {
                        out.push(next);
                        self.i += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        None
    }
}

/// The target of the `rel="next"` link among `Link` header values, if any.
pub fn next_link(values: &[&str]) -> Option<String> {
    for value in values {
        let mut rest = *value;
        while let Some(start) = rest.find('<') {
            let after = &rest[start + 1..];
            let end = after.find('>')?;
            let target = &after[..end];
            let params_end = after[end..]
                .find('<')
                .map(|i| end + i)
                .unwrap_or(after.len());
            let params = &after[end + 1..params_end];
            let is_next = params.split(';').any(|p| {
                let p = p.trim().trim_end_matches(',').trim();
                let Some((k, v)) = p.split_once('=') else {
                    return false;
                };
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            });
            if is_next && !target.is_empty() {
                return Some(target.to_string());
            }
            rest = &after[params_end..];
        }
    }
    None
}

/// The first byte of a `Content-Range: bytes <start>-<end>/<total|*>` answer.
pub fn content_range_start(value: &str) -> Option<u64> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, _total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let (start, end) = (
        start.trim().parse::<u64>().ok()?,
        end.trim().parse::<u64>().ok()?,
    );
    (start <= end).then_some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_distribution_bearer_challenge() {
        let c = parse_challenges(&[
            r#"Bearer realm="https://auth.example/token",service="registry",scope="repository:fred/logs:pull,push""#,
        ]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.example/token"));
        assert_eq!(c[0].param("scope"), Some("repository:fred/logs:pull,push"));
    }

    #[test]
    fn parses_several_challenges_escapes_and_case() {
        let c = parse_challenges(&[
            r#"Newauth realm="apps", type=1, title="Login to \"apps\"", BASIC Realm="simple""#,
        ]);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "newauth");
        assert_eq!(c[0].param("title"), Some(r#"Login to "apps""#));
        assert_eq!(c[0].param("type"), Some("1"));
        assert_eq!(c[1].scheme, "basic");
        assert_eq!(c[1].param("realm"), Some("simple"));
        let two = parse_challenges(&["Basic realm=a", "bearer realm=\"r\""]);
        assert_eq!(
            two.iter().map(|c| c.scheme.as_str()).collect::<Vec<_>>(),
            ["basic", "bearer"]
        );
    }

    #[test]
    fn survives_garbage() {
        for junk in [
            "",
            ",,,",
            "=",
            "Bearer realm=\"unterminated",
            "Bearer ===",
            "\"\"",
            "Basic realm=,",
        ] {
            let _ = parse_challenges(&[junk]);
        }
        assert_eq!(
            parse_challenges(&["Bearer realm=\"unterminated"])[0].param("realm"),
            None
        );
    }

    #[test]
    fn content_ranges() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes 0-0/*"), Some(0));
        for bad in [
            "",
            "bytes",
            "bytes 5-1/9",
            "bytes x-1/2",
            "items 1-2/3",
            "bytes 1-2",
        ] {
            assert_eq!(content_range_start(bad), None, "{bad}");
        }
    }

    #[test]
    fn finds_next_links() {
        assert_eq!(
            next_link(&[r#"</v2/_catalog?last=b&n=2>; rel="next""#]),
            Some("/v2/_catalog?last=b&n=2".into())
        );
        assert_eq!(
            next_link(&[r#"<a>; rel="prev", <b>; rel="next""#]),
            Some("b".into())
        );
        assert_eq!(next_link(&[r#"<a>; REL=next"#]), Some("a".into()));
        assert_eq!(next_link(&[r#"<a>; rel="last""#]), None);
        assert_eq!(next_link(&["<unterminated; rel=next"]), None);
        assert_eq!(next_link(&["garbage"]), None);
    }
}
