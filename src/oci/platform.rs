//! Platforms (`os/arch[/variant]`) as users name them and index entries carry
//! them, with the variant defaults containerd applies (`linux/arm64` is `linux/arm64/v8`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An image's platform (OCI image-spec index "platform").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Platform {
    /// The operating system, like `linux`.
    pub os: String,
    /// The CPU architecture, like `amd64`.
    pub architecture: String,
    /// The CPU variant, like `v8` for arm64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The variant, or the one implied when none is written (containerd's normalisation).
    fn effective_variant(&self) -> Option<&str> {
        match (self.variant.as_deref(), self.architecture.as_str()) {
            (Some(v), _) => Some(v),
            (None, "arm64") => Some("v8"),
            (None, "arm") => Some("v7"),
            (None, _) => None,
        }
    }

    /// Checks a platform an index declares before it becomes a printed key: every part must
    /// be what [`Platform`]'s parser accepts (letters, digits, `_ . -`), so that a hostile
    /// index cannot put terminal escapes, newlines or extra `/` into the output.
    pub fn check(&self) -> Result<()> {
        let parts = std::iter::once(&self.os)
            .chain(std::iter::once(&self.architecture))
            .chain(self.variant.as_ref());
        for part in parts {
            if !part_ok(part) {
                return Err(Error::data(format!(
                    "the index declares an invalid platform {:?}",
                    self.to_string()
                )));
            }
        }
        Ok(())
    }

    /// Whether an index entry for `self` satisfies a request for `wanted`.
    pub fn satisfies(&self, wanted: &Platform) -> bool {
        self.os == wanted.os
            && self.architecture == wanted.architecture
            && (wanted.variant.is_none() || self.effective_variant() == wanted.effective_variant())
    }
}

impl FromStr for Platform {
    type Err = Error;
    fn from_str(text: &str) -> Result<Platform> {
        let parts: Vec<&str> = text.split('/').collect();
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| part_ok(p)) {
            return Err(Error::usage(format!(
                "invalid platform {text:?}: expected os/arch[/variant], like linux/amd64"
            )));
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

/// One part of a platform: letters, digits, `_`, `.` and `-`.
fn part_ok(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn variants_default_as_containerd_does() {
        assert!(p("linux/arm64/v8").satisfies(&p("linux/arm64")));
        assert!(p("linux/arm64").satisfies(&p("linux/arm64/v8")));
        assert!(!p("linux/arm/v6").satisfies(&p("linux/arm/v7")));
        assert!(p("linux/arm/v6").satisfies(&p("linux/arm")));
        assert!(!p("linux/amd64").satisfies(&p("linux/arm64")));
        assert!(!p("windows/amd64").satisfies(&p("linux/amd64")));
    }

    #[test]
    fn rejects_malformed_platforms() {
        for bad in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "linux/arm/v7/x",
            "linux/am d64",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad:?}");
        }
        assert_eq!(p("linux/arm/v7").to_string(), "linux/arm/v7");
    }

    #[test]
    fn declared_platforms_are_checked_before_printing() {
        assert!(p("linux/arm64/v8").check().is_ok());
        for (os, arch, variant) in [
            ("linux\u{1b}[31m", "amd64", None),
            ("linux", "amd64\n", None),
            ("linux/x", "amd64", None),
            ("linux", "arm", Some("")),
            ("", "amd64", None),
        ] {
            let bad = Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.map(str::to_string),
            };
            let err = bad.check().unwrap_err();
            assert_eq!(err.kind, crate::error::Kind::Data, "{bad:?}");
        }
    }
}
