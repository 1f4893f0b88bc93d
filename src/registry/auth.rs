//! Authentication state for one registry: the credentials the user gave and the
//! `Authorization` value currently in use. On a 401 the challenge decides (PROTOCOL.md rules
//! 13-14): `Basic` sends the credentials, `Bearer` fetches a token from the realm for the
//! challenged scope.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, Kind, Result};
use crate::registry::headers::Challenge;
use crate::registry::url;

/// What the user configured.
#[derive(Clone, Default)]
pub struct Credentials {
    pub username: Option<String>,
    pub password: Option<String>,
    /// A whole `Authorization` value, sent as is from the first request on.
    pub authorization: Option<String>,
}

impl Credentials {
    fn basic(&self) -> Option<String> {
        let user = self.username.as_deref()?;
        let pass = self.password.as_deref().unwrap_or("");
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        ))
    }
}

/// Fetches a token URL with an optional Basic `Authorization` value; returns the body.
pub type TokenFetch<'a> = dyn Fn(&str, Option<&str>) -> Result<Vec<u8>> + 'a;

pub struct Auth {
    creds: Credentials,
    /// The header sent with every request to the registry's own origin.
    current: Mutex<Option<String>>,
    /// Bearer tokens by (realm, service, scope), so that a scope asked for twice is fetched once.
    tokens: Mutex<HashMap<String, String>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

impl Auth {
    pub fn new(creds: Credentials) -> Auth {
        let current = Mutex::new(creds.authorization.clone());
        Auth {
            creds,
            current,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn has_credentials(&self) -> bool {
        self.creds.username.is_some() || self.creds.authorization.is_some()
    }

    /// The `Authorization` value to send to the registry, if any.
    pub fn header(&self) -> Option<String> {
        self.current.lock().map(|g| g.clone()).unwrap_or(None)
    }

    fn set(&self, value: String) {
        if let Ok(mut g) = self.current.lock() {
            *g = Some(value);
        }
    }

    /// Answers a 401's challenges. Returns true when the request should be sent again with the
    /// new header; false when nothing we hold can answer them.
    pub fn respond(&self, challenges: &[Challenge], fetch: &TokenFetch<'_>) -> Result<bool> {
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer")
            && let Some(realm) = bearer.param("realm")
        {
            let mut token_url = realm.to_string();
            if let Some(service) = bearer.param("service") {
                token_url = url::add_query(&token_url, "service", service);
            }
            if let Some(scope) = bearer.param("scope") {
                for s in scope.split(' ').filter(|s| !s.is_empty()) {
                    token_url = url::add_query(&token_url, "scope", s);
                }
            }
            let cached = self
                .tokens
                .lock()
                .ok()
                .and_then(|t| t.get(&token_url).cloned());
            let token = match cached {
                Some(t) if Some(format!("Bearer {t}")) != self.header() => t,
                _ => {
                    let basic = self.creds.basic();
                    let body = fetch(&token_url, basic.as_deref())?;
                    let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
                        Error::new(
                            Kind::Denied,
                            format!("token server answered with malformed JSON: {e}"),
                        )
                    })?;
                    let token = answer
                        .token
                        .or(answer.access_token)
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| {
                            Error::new(Kind::Denied, "token server answered without a token")
                        })?;
                    if let Ok(mut t) = self.tokens.lock() {
                        t.insert(token_url, token.clone());
                    }
                    token
                }
            };
            self.set(format!("Bearer {token}"));
            return Ok(true);
        }
        if challenges.iter().any(|c| c.scheme == "basic")
            && let Some(basic) = self.creds.basic()
            && self.header().as_deref() != Some(basic.as_str())
        {
            self.set(basic);
            return Ok(true);
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::headers::parse_challenges;

    fn creds() -> Credentials {
        Credentials {
            username: Some("fred".into()),
            password: Some("pa:ss".into()),
            authorization: None,
        }
    }

    #[test]
    fn basic_challenge_sends_credentials_once() {
        let auth = Auth::new(creds());
        let ch = parse_challenges(&["Basic realm=\"r\""]);
        let no_fetch =
            |_: &str, _: Option<&str>| -> Result<Vec<u8>> { panic!("no token fetch for Basic") };
        assert!(auth.respond(&ch, &no_fetch).unwrap());
        assert_eq!(auth.header().unwrap(), "Basic ZnJlZDpwYTpzcw==");
        // Refused again with the same credentials: nothing more to try.
        assert!(!auth.respond(&ch, &no_fetch).unwrap());
        assert!(
            !Auth::new(Credentials::default())
                .respond(&ch, &no_fetch)
                .unwrap()
        );
    }

    #[test]
    fn bearer_challenge_fetches_a_token_for_the_scope() {
        let auth = Auth::new(creds());
        let ch = parse_challenges(&[
            r#"Bearer realm="http://127.0.0.1:1/token?a=b",service="reg",scope="repository:fred/x:pull,push""#,
        ]);
        let fetch = |url: &str, basic: Option<&str>| -> Result<Vec<u8>> {
            assert_eq!(
                url,
                "http://127.0.0.1:1/token?a=b&service=reg&scope=repository%3Afred%2Fx%3Apull%2Cpush"
            );
            assert!(basic.unwrap().starts_with("Basic "));
            Ok(br#"{"access_token":"tok"}"#.to_vec())
        };
        assert!(auth.respond(&ch, &fetch).unwrap());
        assert_eq!(auth.header().unwrap(), "Bearer tok");
        let bad = |_: &str, _: Option<&str>| -> Result<Vec<u8>> { Ok(b"{}".to_vec()) };
        assert_eq!(
            Auth::new(creds()).respond(&ch, &bad).unwrap_err().kind,
            Kind::Denied
        );
    }
}
