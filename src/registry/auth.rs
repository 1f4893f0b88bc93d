//! Authentication for one registry (PROTOCOL.md rules 13-18). The first 401 tells the scheme:
//! `Basic` sends the credentials; `Bearer` names a realm, and from then on every request
//! carries a token for exactly the scope it needs, fetched once per scope and cached (memory
//! and disk, see `token.rs`). Credentials come from the environment, else from docker's or
//! podman's stored credentials, looked up only when a registry asks for them.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use crate::credentials::{SharedSource, Stored};
use crate::error::{Cause, Error, Kind, Result};
use crate::registry::headers::Challenge;
use crate::registry::scope::Scope;
use crate::registry::token::{Cache, Realm, Token};
use crate::registry::url;
use crate::secret::Secret;

/// What the user configured for authentication.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthConfig {
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// A whole `Authorization` value, as dxf meant it: what a Basic registry or the token realm
    /// is shown. A `Bearer` value is a token, sent to the registry as is.
    pub authorization: Option<Secret>,
    /// A bearer token used as is until the registry refuses it.
    pub token: Option<Secret>,
    pub refresh_token: Option<Secret>,
    /// An Azure AD access token, exchanged for a refresh token.
    pub access_token: Option<Secret>,
    /// Replaces the host of the token realm.
    pub auth_host: Option<String>,
    /// Where stored credentials are looked up, when none are given here.
    pub sources: Option<SharedSource>,
    pub cache_dir: Option<std::path::PathBuf>,
}

/// A request to a token endpoint, made by the HTTP layer on our behalf. The form of a POST
/// holds a refresh or access token, so it is a secret as a whole.
#[derive(Debug)]
pub struct TokenCall {
    pub post_form: Option<Secret>,
    pub url: String,
    pub basic: Option<Secret>,
}

/// Sends a [`TokenCall`]; returns the status and body.
pub type Transport<'a> = dyn Fn(&TokenCall) -> Result<(u16, Vec<u8>)> + 'a;

#[derive(Clone)]
enum Mode {
    Unknown,
    Basic,
    Bearer(Realm),
}

struct State {
    mode: Mode,
    /// The given bearer token was refused once: renew with the other credentials from then on.
    static_refused: bool,
    /// A refresh token obtained by exchanging the given access token.
    exchanged: Option<Secret>,
}

pub struct Auth {
    host: String,
    cfg: AuthConfig,
    stored: OnceLock<Result<Option<Stored>>>,
    identity: OnceLock<String>,
    state: Mutex<State>,
    cache: Cache,
    /// One token request at a time, so concurrent transfers wanting the same scope share it.
    fetching: Mutex<()>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<Secret>,
    #[serde(default)]
    access_token: Option<Secret>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct ExchangeAnswer {
    refresh_token: Secret,
}

fn basic_header(user: &str, pass: &Secret) -> Secret {
    let pair = format!("{user}:{}", pass.expose());
    Secret::new(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    ))
}

fn bearer_header(token: &Secret) -> Secret {
    Secret::new(format!("Bearer {}", token.expose()))
}

fn form(pairs: &[(&str, &str)]) -> Secret {
    Secret::new(
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", url::encode(v)))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

impl Auth {
    pub fn new(host: &str, cfg: AuthConfig) -> Auth {
        let cache = Cache::new(cfg.cache_dir.clone());
        let mut auth = Auth {
            host: host.to_string(),
            cfg,
            stored: OnceLock::new(),
            identity: OnceLock::new(),
            state: Mutex::new(State {
                mode: Mode::Unknown,
                static_refused: false,
                exchanged: None,
            }),
            cache,
            fetching: Mutex::new(()),
        };
        // A realm learnt by an earlier process (the realm host override applies to it too).
        if let Some(mut realm) = auth.cache.realm(host) {
            realm.realm = auth.replace_auth_host(&realm.realm);
            auth.state
                .get_mut()
                .map(|s| s.mode = Mode::Bearer(realm))
                .ok();
        }
        auth
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Docker's or podman's credentials for this host, looked up once and only when the
    /// environment has none.
    fn stored(&self) -> Result<Option<Stored>> {
        if self.cfg.username.is_some()
            || self.cfg.authorization.is_some()
            || self.cfg.refresh_token.is_some()
            || self.cfg.access_token.is_some()
        {
            return Ok(None);
        }
        self.stored
            .get_or_init(|| match &self.cfg.sources {
                Some(source) => source.0.lookup(&self.host),
                None => Ok(None),
            })
            .clone()
    }

    /// User name and password, from the environment or stored.
    fn password_pair(&self) -> Result<Option<(String, Secret)>> {
        if let Some(user) = &self.cfg.username {
            return Ok(Some((
                user.clone(),
                self.cfg.password.clone().unwrap_or_default(),
            )));
        }
        Ok(self
            .stored()?
            .and_then(|s| Some((s.username?, s.password.unwrap_or_default()))))
    }

    /// What proves who we are to a Basic registry or a token realm: the user name and password
    /// (dxf gives them precedence), else the given `Authorization` value as is, else stored
    /// credentials.
    fn credentials_header(&self) -> Result<Option<Secret>> {
        if let (None, Some(a)) = (&self.cfg.username, &self.cfg.authorization) {
            return Ok(Some(a.clone()));
        }
        Ok(self.password_pair()?.map(|(u, p)| basic_header(&u, &p)))
    }

    /// A given `Authorization: Bearer ...` value is a token already: no realm would take it, so
    /// it goes to the registry as is (and cannot be renewed).
    fn given_bearer(&self) -> Option<&Secret> {
        self.cfg.authorization.as_ref().filter(|a| {
            let a = a.expose();
            a.get(..7)
                .is_some_and(|p| p.eq_ignore_ascii_case("bearer "))
        })
    }

    pub fn has_credentials(&self) -> bool {
        self.cfg.username.is_some()
            || self.cfg.authorization.is_some()
            || self.cfg.token.is_some()
            || self.cfg.refresh_token.is_some()
            || self.cfg.access_token.is_some()
            || self.stored().ok().flatten().is_some()
    }

    /// Who the tokens are for, as part of the cache key: a keyed hash, never the secret itself.
    /// Worked out once: every request's header asks for it.
    fn identity(&self) -> String {
        self.identity
            .get_or_init(|| self.work_out_identity())
            .clone()
    }

    fn work_out_identity(&self) -> String {
        let who = match (
            &self.cfg.username,
            &self.cfg.refresh_token,
            &self.cfg.access_token,
        ) {
            // The password is part of who: a wrong one must not reuse the right one's tokens.
            (Some(u), _, _) => format!(
                "user:{u}\0{}",
                self.cfg.password.as_ref().map_or("", Secret::expose)
            ),
            (None, Some(r), _) => format!("refresh:{}", r.expose()),
            (None, None, Some(a)) => format!("aad:{}", a.expose()),
            (None, None, None) if self.cfg.authorization.is_some() => {
                format!(
                    "authorization:{}",
                    self.cfg.authorization.as_ref().map_or("", Secret::expose)
                )
            }
            (None, None, None) => match self.stored().ok().flatten() {
                Some(Stored {
                    username: Some(u),
                    password,
                    ..
                }) => {
                    format!("user:{u}\0{}", password.unwrap_or_default().expose())
                }
                Some(Stored {
                    identity_token: Some(t),
                    ..
                }) => format!("refresh:{}", t.expose()),
                _ => return "anonymous".to_string(),
            },
        };
        self.cache.identity(who.as_bytes())
    }

    fn key(&self, realm: &Realm, scope: &Scope) -> String {
        format!(
            "{}|{}|{}|{}|{scope}",
            self.host,
            realm.realm,
            realm.service.as_deref().unwrap_or(""),
            self.identity()
        )
    }

    /// The `Authorization` value for a request needing `scope`, if any.
    pub fn header(&self, scope: &Scope, transport: &Transport<'_>) -> Result<Option<Secret>> {
        if let Some(bearer) = self.given_bearer() {
            return Ok(Some(bearer.clone()));
        }
        let (mode, static_refused) = {
            let s = self.state();
            (s.mode.clone(), s.static_refused)
        };
        if let (Some(t), false) = (&self.cfg.token, static_refused) {
            return Ok(Some(bearer_header(t)));
        }
        match mode {
            Mode::Unknown => Ok(None),
            Mode::Basic => self.credentials_header(),
            Mode::Bearer(realm) => Ok(Some(bearer_header(
                &self.token(&realm, scope, scope, transport)?.token,
            ))),
        }
    }

    /// Answers a 401. `sent` is the Authorization value the refused request carried. Returns
    /// true when the request should be sent again.
    pub fn challenged(
        &self,
        challenges: &[Challenge],
        scope: &Scope,
        sent: Option<&str>,
        transport: &Transport<'_>,
    ) -> Result<bool> {
        if self.given_bearer().is_some() {
            return Ok(false);
        }
        let static_token = self.cfg.token.as_ref().map(bearer_header);
        if sent.is_some() && sent == static_token.as_ref().map(Secret::expose) {
            self.state().static_refused = true;
        }
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer")
            && let Some(realm) = bearer.param("realm")
        {
            let realm = Realm {
                realm: self.replace_auth_host(realm),
                service: bearer.param("service").map(str::to_string),
            };
            let want = scope.union(&Scope::parse(bearer.param("scope").unwrap_or("")));
            let key = self.key(&realm, scope);
            // A cached token the registry refused is no good any more (revoked, clock skew).
            if let Some(cached) = self.cache.token(&key)
                && sent == Some(bearer_header(&cached.token).expose())
            {
                self.cache.forget(&key);
            }
            self.state().mode = Mode::Bearer(realm.clone());
            self.token(&realm, scope, &want, transport)?;
            return Ok(true);
        }
        if challenges.iter().any(|c| c.scheme == "basic")
            && let Some(header) = self.credentials_header()?
            && sent != Some(header.expose())
        {
            self.state().mode = Mode::Basic;
            return Ok(true);
        }
        Ok(false)
    }

    /// A token for `want`, cached under `scope` (what the caller will ask for next time).
    fn token(
        &self,
        realm: &Realm,
        scope: &Scope,
        want: &Scope,
        transport: &Transport<'_>,
    ) -> Result<Token> {
        let key = self.key(realm, scope);
        if let Some(t) = self.cache.token(&key) {
            return Ok(t);
        }
        let _one_at_a_time = self.fetching.lock();
        if let Some(t) = self.cache.token(&key) {
            return Ok(t);
        }
        let token = self.fetch(realm, want, transport)?;
        self.cache.put(&self.host, realm, &key, token.clone());
        Ok(token)
    }

    /// Mints a token for `scope` (the `auth` command): None when the registry does not use
    /// bearer tokens. The mode must have been learnt first (the caller GETs /v2/).
    pub fn mint(&self, scope: &Scope, transport: &Transport<'_>) -> Result<Option<String>> {
        let mode = self.state().mode.clone();
        match mode {
            Mode::Bearer(realm) => Ok(Some(
                self.token(&realm, scope, scope, transport)?
                    .token
                    .expose()
                    .to_string(),
            )),
            _ => Ok(None),
        }
    }

    fn replace_auth_host(&self, realm: &str) -> String {
        let Some(new_host) = &self.cfg.auth_host else {
            return realm.to_string();
        };
        match realm.split_once("://") {
            Some((scheme, rest)) => {
                let path = rest.find('/').map_or("", |i| &rest[i..]);
                format!("{scheme}://{new_host}{path}")
            }
            None => realm.to_string(),
        }
    }

    /// The refresh token to use: the given one, a stored identity token, or one
    /// exchanged for the given access token at the registry's /oauth2/exchange (ACR).
    fn refresh_token(&self, realm: &Realm, transport: &Transport<'_>) -> Result<Option<Secret>> {
        if let Some(r) = &self.cfg.refresh_token {
            return Ok(Some(r.clone()));
        }
        if let Some(aad) = &self.cfg.access_token {
            if let Some(r) = self.state().exchanged.clone() {
                return Ok(Some(r));
            }
            let scheme = realm.realm.split("://").next().unwrap_or("https");
            let call = TokenCall {
                url: format!("{scheme}://{}/oauth2/exchange", self.host),
                basic: None,
                post_form: Some(form(&[
                    ("grant_type", "access_token"),
                    ("service", &self.host),
                    ("access_token", aad.expose()),
                ])),
            };
            let (status, body) = transport(&call)?;
            if status != 200 {
                return Err(Error::new(
                    Kind::Denied,
                    format!("exchanging the access token at {}: HTTP {status}", call.url),
                )
                .with_cause(Cause::AccessTokenRefused));
            }
            let answer: ExchangeAnswer = serde_json::from_slice(&body).map_err(|e| {
                Error::new(
                    Kind::Denied,
                    format!("the token exchange answered with malformed JSON: {e}"),
                )
            })?;
            self.state().exchanged = Some(answer.refresh_token.clone());
            return Ok(Some(answer.refresh_token));
        }
        Ok(self.stored()?.and_then(|s| s.identity_token))
    }

    /// Asks the token server (PROTOCOL.md rule 14): OAuth2 POST with a refresh token, else GET
    /// with Basic credentials (or none, for anonymous access).
    fn fetch(&self, realm: &Realm, scope: &Scope, transport: &Transport<'_>) -> Result<Token> {
        let service = realm.service.as_deref().unwrap_or("");
        let call = match self.refresh_token(realm, transport)? {
            Some(refresh) => {
                let mut pairs = vec![
                    ("grant_type", "refresh_token"),
                    ("service", service),
                    ("client_id", "regtool"),
                    ("refresh_token", refresh.expose()),
                ];
                let scopes = scope.to_string();
                if !scope.is_empty() {
                    pairs.push(("scope", &scopes));
                }
                TokenCall {
                    url: realm.realm.clone(),
                    basic: None,
                    post_form: Some(form(&pairs)),
                }
            }
            None => {
                let mut target = realm.realm.clone();
                if realm.service.is_some() {
                    target = url::add_query(&target, "service", service);
                }
                for s in scope.parts() {
                    target = url::add_query(&target, "scope", s);
                }
                // A given Authorization value goes to the realm, as dxf sends its own.
                let basic = self.credentials_header()?;
                TokenCall {
                    url: target,
                    basic,
                    post_form: None,
                }
            }
        };
        let (status, body) = transport(&call)?;
        match status {
            200 => {}
            401 | 403 => {
                return Err(Error::new(
                    Kind::Denied,
                    format!("the token server refused the credentials for {scope}"),
                )
                .with_cause(Cause::TokenCredentialsRefused));
            }
            _ => {
                return Err(crate::registry::errors::from_status(
                    status,
                    &body,
                    "fetching a token",
                ));
            }
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            Error::new(
                Kind::Denied,
                format!("the token server answered with malformed JSON: {e}"),
            )
        })?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::new(Kind::Denied, "the token server answered without a token"))?;
        // The token spec's default lifetime is 60 s.
        Ok(Token::new(
            token,
            Duration::from_secs(answer.expires_in.unwrap_or(60).max(1)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::headers::parse_challenges;

    fn cfg() -> AuthConfig {
        AuthConfig {
            username: Some("fred".into()),
            password: Some("pa:ss".into()),
            ..AuthConfig::default()
        }
    }

    fn no_transport(_: &TokenCall) -> Result<(u16, Vec<u8>)> {
        panic!("no token request expected")
    }

    #[test]
    fn basic_challenge_sends_credentials_once() {
        let auth = Auth::new("h", cfg());
        let ch = parse_challenges(&["Basic realm=\"r\""]);
        assert!(
            auth.challenged(&ch, &Scope::default(), None, &no_transport)
                .unwrap()
        );
        let header = auth
            .header(&Scope::default(), &no_transport)
            .unwrap()
            .unwrap();
        assert_eq!(header.expose(), "Basic ZnJlZDpwYTpzcw==");
        assert!(
            !auth
                .challenged(&ch, &Scope::default(), Some(header.expose()), &no_transport)
                .unwrap()
        );
        assert!(
            !Auth::new("h", AuthConfig::default())
                .challenged(&ch, &Scope::default(), None, &no_transport)
                .unwrap()
        );
    }

    #[test]
    fn debug_output_never_shows_tokens_or_authorization() {
        let call = TokenCall {
            url: "https://auth.example/token".into(),
            basic: Some(basic_header("fred", &"secret-pw".into())),
            post_form: Some(form(&[("refresh_token", "secret-refresh")])),
        };
        let token = Token::new("secret-token".into(), Duration::from_secs(60));
        let answer = format!("{call:?} {token:?} {:?}", cfg());
        assert!(answer.contains("auth.example"), "{answer}");
        for secret in ["secret", "ZnJlZDpzZWNyZXQtcHc", "pa:ss"] {
            assert!(!answer.contains(secret), "{answer}");
        }
    }

    #[test]
    fn bearer_tokens_are_fetched_once_per_scope() {
        let auth = Auth::new("127.0.0.1:5000", cfg());
        let ch = parse_challenges(&[
            r#"Bearer realm="http://127.0.0.1:1/token?a=b",service="reg",scope="repository:fred/x:pull""#,
        ]);
        let calls = Mutex::new(Vec::new());
        let transport = |c: &TokenCall| -> Result<(u16, Vec<u8>)> {
            calls.lock().unwrap().push(c.url.clone());
            assert!(c.basic.as_ref().unwrap().expose().starts_with("Basic "));
            Ok((200, br#"{"access_token":"tok","expires_in":300}"#.to_vec()))
        };
        let pull = Scope::pull("fred/x");
        assert!(auth.challenged(&ch, &pull, None, &transport).unwrap());
        assert_eq!(
            auth.header(&pull, &transport).unwrap().unwrap().expose(),
            "Bearer tok"
        );
        assert_eq!(
            auth.header(&pull, &transport).unwrap().unwrap().expose(),
            "Bearer tok"
        );
        auth.header(&Scope::push("fred/x"), &transport).unwrap();
        let calls = calls.into_inner().unwrap();
        assert_eq!(
            calls,
            [
                "http://127.0.0.1:1/token?a=b&service=reg&scope=repository%3Afred%2Fx%3Apull",
                "http://127.0.0.1:1/token?a=b&service=reg&scope=repository%3Afred%2Fx%3Apull%2Cpush"
            ]
        );
    }

    #[test]
    fn an_authorization_value_goes_to_the_token_realm_as_dxf_sends_it() {
        let given = || AuthConfig {
            authorization: Some("Basic Z2l2ZW4=".into()),
            ..AuthConfig::default()
        };
        let pull = Scope::pull("fred/x");
        let auth = Auth::new("127.0.0.1:5000", given());
        // Nothing goes to the registry before it says what it wants.
        assert_eq!(auth.header(&pull, &no_transport).unwrap(), None);
        let ch = parse_challenges(&[r#"Bearer realm="http://127.0.0.1:1/token",service="reg""#]);
        let transport = |c: &TokenCall| -> Result<(u16, Vec<u8>)> {
            assert_eq!(c.basic.as_ref().map(Secret::expose), Some("Basic Z2l2ZW4="));
            Ok((200, br#"{"token":"tok"}"#.to_vec()))
        };
        assert!(auth.challenged(&ch, &pull, None, &transport).unwrap());
        assert_eq!(
            auth.header(&pull, &transport)
                .unwrap()
                .as_ref()
                .map(Secret::expose),
            Some("Bearer tok")
        );
        // A Basic registry is shown the value itself.
        let auth = Auth::new("h", given());
        let ch = parse_challenges(&["Basic realm=\"r\""]);
        assert!(auth.challenged(&ch, &pull, None, &no_transport).unwrap());
        assert_eq!(
            auth.header(&pull, &no_transport)
                .unwrap()
                .as_ref()
                .map(Secret::expose),
            Some("Basic Z2l2ZW4=")
        );
        assert!(
            !auth
                .challenged(&ch, &pull, Some("Basic Z2l2ZW4="), &no_transport)
                .unwrap()
        );
    }

    #[test]
    fn refusals_are_denied() {
        let local = parse_challenges(&[r#"Bearer realm="http://127.0.0.1:1/token""#]);
        let refused = |_: &TokenCall| -> Result<(u16, Vec<u8>)> { Ok((401, Vec::new())) };
        assert_eq!(
            Auth::new("h", cfg())
                .challenged(&local, &Scope::default(), None, &refused)
                .unwrap_err()
                .kind,
            Kind::Denied
        );
        let garbage = |_: &TokenCall| -> Result<(u16, Vec<u8>)> { Ok((200, b"{}".to_vec())) };
        assert_eq!(
            Auth::new("h", cfg())
                .challenged(&local, &Scope::default(), None, &garbage)
                .unwrap_err()
                .kind,
            Kind::Denied
        );
    }

    #[test]
    fn refresh_tokens_go_by_oauth2_post_and_auth_host_moves_the_realm() {
        let auth = Auth::new(
            "h",
            AuthConfig {
                refresh_token: Some("rt".into()),
                auth_host: Some("127.0.0.1:9".into()),
                ..AuthConfig::default()
            },
        );
        let ch =
            parse_challenges(&[r#"Bearer realm="https://auth.example/oauth2/token",service="h""#]);
        let transport = |c: &TokenCall| -> Result<(u16, Vec<u8>)> {
            assert_eq!(c.url, "https://127.0.0.1:9/oauth2/token");
            assert_eq!(
                c.post_form.as_ref().map(Secret::expose),
                Some(
                    "grant_type=refresh_token&service=h&client_id=regtool&refresh_token=rt&scope=repository%3Ar%3Apull"
                )
            );
            Ok((200, br#"{"access_token":"at"}"#.to_vec()))
        };
        assert!(
            auth.challenged(&ch, &Scope::pull("r"), None, &transport)
                .unwrap()
        );
    }
}
