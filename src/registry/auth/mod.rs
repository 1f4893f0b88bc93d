//! Authentication for one registry (docs/registry-notes.md §13-§18), in three parts beside
//! this one: `credentials.rs` chooses the credentials, `protocol.rs` speaks the token
//! protocol, `cache.rs` keeps the tokens (memory and disk, keyed by an HMAC of who they are
//! for, renewed before they expire). This file is the authentication layer itself: the first
//! 401 tells the scheme; `Basic` sends the credentials; `Bearer` names a realm, and from then
//! on every request carries a token for exactly the scope it needs, fetched once per scope.

pub(crate) mod cache;
pub(crate) mod credentials;
pub(crate) mod protocol;

use std::sync::{Mutex, OnceLock};

use crate::credentials::SharedSource;
use crate::error::Result;
use crate::oci::Host;
use crate::registry::headers::Challenge;
use crate::registry::scope::Scope;
use crate::secret::Secret;

use self::cache::{Cache, Realm, Token};
use self::credentials::{Credentials, Refresh};
pub use self::protocol::{TokenCall, Transport};
use self::protocol::{bearer_header, replace_auth_host};

/// What the user configured for authentication.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthConfig {
    /// The user name for Basic authentication (at the registry or the token realm).
    pub username: Option<String>,
    /// The password that goes with `username`.
    pub password: Option<Secret>,
    /// A whole `Authorization` value, as dxf meant it: what a Basic registry or the token realm
    /// is shown. A `Bearer` value is a token, sent to the registry as is.
    pub authorization: Option<Secret>,
    /// A bearer token used as is until the registry refuses it.
    pub token: Option<Secret>,
    /// An OAuth2 refresh (or identity) token, sent to the realm by POST.
    pub refresh_token: Option<Secret>,
    /// An Azure AD access token, exchanged for a refresh token.
    pub access_token: Option<Secret>,
    /// Replaces the host of the token realm.
    pub auth_host: Option<Host>,
    /// Where stored credentials are looked up, when none are given here.
    pub sources: Option<SharedSource>,
    /// Where tokens are cached on disk; None: in memory only.
    pub cache_dir: Option<std::path::PathBuf>,
}

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

/// The authentication layer of one registry: answers its 401s and gives each request the
/// `Authorization` value its scope needs.
pub struct Auth {
    host: String,
    creds: Credentials,
    identity: OnceLock<String>,
    state: Mutex<State>,
    cache: Cache,
    /// One token request at a time, so concurrent transfers wanting the same scope share it.
    fetching: Mutex<()>,
}

impl Auth {
    /// The layer for the registry `host` with the credentials of `cfg`.
    pub fn new(host: &str, cfg: AuthConfig) -> Auth {
        let cache = Cache::new(cfg.cache_dir.clone());
        let mut auth = Auth {
            host: host.to_string(),
            creds: Credentials::new(host, cfg),
            identity: OnceLock::new(),
            state: Mutex::new(State {
                mode: Mode::Unknown,
                static_refused: false,
                exchanged: None,
            }),
            cache,
            fetching: Mutex::new(()),
        };
        // A realm learnt by an earlier process (the auth host applies to it too).
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

    /// Whether any credential was given or is stored for this registry.
    pub fn has_credentials(&self) -> bool {
        self.creds.has_credentials()
    }

    /// Who the tokens are for, as part of the cache key: a keyed hash, never the secret itself.
    /// Worked out once: every request's header asks for it.
    fn identity(&self) -> String {
        self.identity
            .get_or_init(|| match self.creds.who() {
                Some(who) => self.cache.identity(who.expose().as_bytes()),
                None => "anonymous".to_string(),
            })
            .clone()
    }

    fn key(&self, realm: &Realm, scope: &Scope) -> String {
        cache::key(&self.host, realm, &self.identity(), scope)
    }

    fn replace_auth_host(&self, realm: &str) -> String {
        replace_auth_host(
            realm,
            self.creds.config().auth_host.as_ref().map(Host::as_str),
        )
    }

    /// The `Authorization` value for a request needing `scope`, if any.
    pub fn header(&self, scope: &Scope, transport: &Transport<'_>) -> Result<Option<Secret>> {
        if let Some(bearer) = self.creds.given_bearer() {
            return Ok(Some(bearer.clone()));
        }
        let (mode, static_refused) = {
            let s = self.state();
            (s.mode.clone(), s.static_refused)
        };
        if let (Some(t), false) = (self.creds.static_token(), static_refused) {
            return Ok(Some(bearer_header(t)));
        }
        match mode {
            Mode::Unknown => Ok(None),
            Mode::Basic => self.creds.basic(),
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
        if self.creds.given_bearer().is_some() {
            return Ok(false);
        }
        let static_token = self.creds.static_token().map(bearer_header);
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
            && let Some(header) = self.creds.basic()?
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

    /// The refresh token to use, exchanging the given access token for one the first time.
    fn refresh_token(&self, realm: &Realm, transport: &Transport<'_>) -> Result<Option<Secret>> {
        match self.creds.refresh()? {
            None => Ok(None),
            Some(Refresh::Token(r)) => Ok(Some(r)),
            Some(Refresh::Exchange(aad)) => {
                if let Some(r) = self.state().exchanged.clone() {
                    return Ok(Some(r));
                }
                let r = protocol::exchange(&self.host, realm, aad, transport)?;
                self.state().exchanged = Some(r.clone());
                Ok(Some(r))
            }
        }
    }

    /// Asks the token server: OAuth2 POST with a refresh token, else GET with Basic
    /// credentials (or none, for anonymous access). The given `Authorization` value goes to
    /// the realm, as dxf sends its own.
    fn fetch(&self, realm: &Realm, scope: &Scope, transport: &Transport<'_>) -> Result<Token> {
        match self.refresh_token(realm, transport)? {
            Some(refresh) => protocol::fetch(realm, scope, Some(&refresh), None, transport),
            None => protocol::fetch(realm, scope, None, self.creds.basic()?, transport),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;
    use crate::registry::auth::protocol::{basic_header, form};
    use crate::registry::headers::parse_challenges;
    use std::time::Duration;

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
        // An answer without a token refuses nothing: it is bad data.
        let garbage = |_: &TokenCall| -> Result<(u16, Vec<u8>)> { Ok((200, b"{}".to_vec())) };
        assert_eq!(
            Auth::new("h", cfg())
                .challenged(&local, &Scope::default(), None, &garbage)
                .unwrap_err()
                .kind,
            Kind::Data
        );
    }

    #[test]
    fn refresh_tokens_go_by_oauth2_post_and_auth_host_moves_the_realm() {
        let auth = Auth::new(
            "h",
            AuthConfig {
                refresh_token: Some("rt".into()),
                auth_host: Some(crate::oci::Host::parse("127.0.0.1:9").unwrap()),
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
