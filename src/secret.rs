//! [`Secret`]: a string that must never reach a terminal or a log by accident. Passwords,
//! tokens, `Authorization` values and what credential helpers answer are held in it, so that
//! `{:?}` of any configuration or credential type shows `<redacted>` instead. The value is
//! read only through [`Secret::expose`], which makes every use visible in review.

use serde::{Deserialize, Serialize};

/// A string shown as `<redacted>` by `Debug`; read only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Holds `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send or print it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_string())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(<redacted>)");
        assert_eq!(s.expose(), "hunter2");
        // Serialized as the bare string: the token cache file keeps its format.
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
    }
}
