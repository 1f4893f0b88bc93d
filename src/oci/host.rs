//! A registry host, `host[:port]`, parsed in this one place: from the registry setting, from the
//! first component of an image reference, from a token realm's replacement host, from the
//! list of hosts allowed plain HTTP, and from the authority of a URL a registry sent.
//!
//! The grammar is RFC 3986's authority (section 3.2) reduced to what a registry can be: a DNS
//! name or an IPv4 address or an IPv6 address in brackets (3.2.2), and a port from 1 to 65535
//! (3.2.3). No scheme, path, query, fragment or userinfo: a host holding any of them would
//! reshape the URLs built from it (`x.y?z` would become `https://x.y?z/v2/…`).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

/// Why a text is not a `host[:port]`, in words that follow "… in "TEXT"".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// `user:password@h`: user information (RFC 3986 3.2.1), which must never be echoed.
    Credentials,
    /// `https://h`: a URL, not a host.
    Scheme,
    /// `::1`: IPv6 must be in brackets, or its colons read as a port.
    UnbracketedIpv6,
    /// `h:5000/v2`: a path after the host.
    Path,
    /// `[::1` with no `]`.
    UnclosedBracket,
    /// A character outside a host name (`?`, `/`, `@`, space…), or an empty name.
    BadName,
    /// Not a number from 1 to 65535, or text after the `]` of an IPv6 address.
    BadPort,
}

impl HostError {
    /// The reason, as a noun phrase: "a URL scheme".
    pub fn reason(self) -> &'static str {
        match self {
            HostError::Credentials => "credentials in the host",
            HostError::Scheme => "a URL scheme",
            HostError::Path => "a path",
            HostError::UnbracketedIpv6 => "an IPv6 address without brackets",
            HostError::UnclosedBracket => "an unclosed [",
            HostError::BadName => "a bad host name",
            HostError::BadPort => "a bad port",
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// The authority part of `text`: after a `scheme://`, up to the first `/`.
fn authority(text: &str) -> &str {
    let rest = text.split_once("://").map_or(text, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// `text` as it may appear in a message: user information in its authority (what comes
/// before an `@`, a password perhaps) replaced by `…`, scheme included.
pub fn shown(text: &str) -> String {
    let auth = authority(text);
    match auth.rsplit_once('@') {
        Some((_, host)) => {
            let after = &text[text.find(auth).unwrap_or(0) + auth.len()..];
            format!("…@{host}{after}")
        }
        None => text.to_string(),
    }
}

/// A valid `host[:port]`. It keeps the text it was given (for messages and URLs) and compares
/// case-insensitively, as DNS names do.
#[derive(Debug, Clone)]
pub struct Host {
    text: String,
    /// The name without brackets: `::1` for `[::1]:5000`.
    name: String,
    port: Option<u16>,
}

impl Host {
    /// Parses `host[:port]`.
    pub fn parse(text: &str) -> Result<Host, HostError> {
        // Checked first: whatever else is wrong, the message must not show a password.
        if authority(text).contains('@') {
            return Err(HostError::Credentials);
        }
        if text.contains("://") {
            return Err(HostError::Scheme);
        }
        if text.contains('/') {
            return Err(HostError::Path);
        }
        let (name, port) = if let Some(rest) = text.strip_prefix('[') {
            let Some(end) = rest.find(']') else {
                return Err(HostError::UnclosedBracket);
            };
            if rest[..end].parse::<Ipv6Addr>().is_err() {
                return Err(HostError::BadName);
            }
            let after = &rest[end + 1..];
            if !after.is_empty() && !after.starts_with(':') {
                return Err(HostError::BadPort);
            }
            (&rest[..end], after.strip_prefix(':'))
        } else {
            if text.matches(':').count() > 1 {
                return Err(HostError::UnbracketedIpv6);
            }
            let (name, port) = match text.rsplit_once(':') {
                Some((n, p)) => (n, Some(p)),
                None => (text, None),
            };
            let name_char = |b: u8| b.is_ascii_alphanumeric() || b"-._".contains(&b);
            if name.is_empty() || !name.bytes().all(name_char) {
                return Err(HostError::BadName);
            }
            (name, port)
        };
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
                _ => return Err(HostError::BadPort),
            },
        };
        Ok(Host {
            text: text.to_string(),
            name: name.to_string(),
            port,
        })
    }

    /// `localhost`, this machine.
    pub fn localhost() -> Host {
        Host {
            text: "localhost".to_string(),
            name: "localhost".to_string(),
            port: None,
        }
    }

    /// The text as given: `Reg.example:5000`, `[::1]:5000`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The name without its port, and without brackets for IPv6.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The port, when the text names one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Whether the host is this machine (`localhost`, 127.0.0.0/8, `::1`): such a registry
    /// may fall back to plain HTTP, and credentials sent to it never cross a network.
    pub fn is_loopback(&self) -> bool {
        self.name.eq_ignore_ascii_case("localhost")
            || self.name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// Whether this host is one of `entries`, taking a missing port of `self` as
    /// `default_port`: an entry with a port names that port only, an entry without one the
    /// host on any port.
    pub fn listed_in(&self, entries: &[Host], default_port: u16) -> bool {
        let port = self.port.unwrap_or(default_port);
        entries
            .iter()
            .any(|e| e.name.eq_ignore_ascii_case(&self.name) && e.port.is_none_or(|p| p == port))
    }
}

impl PartialEq for Host {
    fn eq(&self, other: &Host) -> bool {
        self.text.eq_ignore_ascii_case(&other.text)
    }
}

impl Eq for Host {}

impl FromStr for Host {
    type Err = HostError;
    fn from_str(s: &str) -> Result<Host, HostError> {
        Host::parse(s)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Host {
        Host::parse(s).unwrap()
    }

    #[test]
    fn hosts_names_addresses_and_ports() {
        assert_eq!(h("reg.example").name(), "reg.example");
        assert_eq!(h("reg.example").port(), None);
        assert_eq!(h("reg.example:5000").port(), Some(5000));
        assert_eq!(h("127.0.0.1:5000").name(), "127.0.0.1");
        assert_eq!(h("[::1]:5000").name(), "::1");
        assert_eq!(h("[::1]:5000").port(), Some(5000));
        assert_eq!(h("[::1]").port(), None);
        assert_eq!(h("Reg.Example:5000").to_string(), "Reg.Example:5000");
        assert_eq!(h("Reg.Example:5000"), h("reg.example:5000"));
        assert_ne!(h("reg.example:5000"), h("reg.example"));
    }

    #[test]
    fn anything_but_host_and_port_is_refused() {
        for (bad, why) in [
            ("", HostError::BadName),
            ("https://reg.example", HostError::Scheme),
            ("::1", HostError::UnbracketedIpv6),
            ("::1:5000", HostError::UnbracketedIpv6),
            ("[::1", HostError::UnclosedBracket),
            ("[::1]x", HostError::BadPort),
            ("[nothex]:5000", HostError::BadName),
            ("x.y?z", HostError::BadName),
            ("x.y#z", HostError::BadName),
            ("reg.example/v2", HostError::Path),
            ("reg.example:5000/v2/", HostError::Path),
            ("user@reg.example", HostError::Credentials),
            ("fred:hunter2@127.0.0.1:5000", HostError::Credentials),
            ("https://fred:hunter2@reg.example", HostError::Credentials),
            ("http://reg.example:5000", HostError::Scheme),
            ("reg example", HostError::BadName),
            (":5000", HostError::BadName),
            ("reg.example:", HostError::BadPort),
            ("reg.example:0", HostError::BadPort),
            ("reg.example:65536", HostError::BadPort),
            ("reg.example:+80", HostError::BadPort),
            ("reg.example:http", HostError::BadPort),
        ] {
            assert_eq!(Host::parse(bad).unwrap_err(), why, "{bad:?}");
        }
    }

    #[test]
    fn credentials_are_never_shown() {
        assert_eq!(shown("fred:hunter2@127.0.0.1:5000"), "…@127.0.0.1:5000");
        assert_eq!(shown("https://fred:hunter2@reg.example"), "…@reg.example");
        assert_eq!(shown("fred:p@ss@h/r:a"), "…@h/r:a");
        assert_eq!(shown("h:5000/r@sha256:0"), "h:5000/r@sha256:0");
        assert_eq!(shown("http://h:5000"), "http://h:5000");
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for l in [
            "localhost",
            "LocalHost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(h(l).is_loopback(), "{l}");
        }
        for r in [
            "registry.example",
            "10.0.0.1:5000",
            "[::2]:1",
            "localhost.example",
        ] {
            assert!(!h(r).is_loopback(), "{r}");
        }
    }

    #[test]
    fn lists_name_hosts_on_any_port_or_on_one() {
        let list = [h("auth.example"), h("reg.example:5000"), h("[::2]:81")];
        assert!(h("auth.example:8080").listed_in(&list, 80));
        assert!(h("Auth.Example").listed_in(&list, 80));
        assert!(h("reg.example:5000").listed_in(&list, 80));
        assert!(!h("reg.example").listed_in(&list, 80));
        assert!(!h("reg.example:5001").listed_in(&list, 80));
        assert!(h("[::2]").listed_in(&list, 81));
        assert!(!h("other.example").listed_in(&list, 80));
    }
}
