//! Credential choice: which of the credentials the caller gave (or the stored ones its
//! credential source finds) proves who we are to one registry, and in which form: Basic for a
//! registry or a token realm, a given bearer token, a refresh or identity token for OAuth2, or
//! an Azure AD access token to exchange (ACR). Which credentials a registry is given at all is
//! the caller's choice (the binary builds them per host from an allow-list).

use std::sync::OnceLock;

use crate::credentials::Stored;
use crate::error::Result;
use crate::registry::auth::AuthConfig;
use crate::registry::auth::protocol::basic_header;
use crate::secret::Secret;

/// Where a refresh token for OAuth2 comes from.
pub enum Refresh<'a> {
    /// Given, or a stored identity token.
    Token(Secret),
    /// An Azure AD access token, to exchange for one.
    Exchange(&'a Secret),
}

/// The credentials for one registry.
pub struct Credentials {
    host: String,
    cfg: AuthConfig,
    stored: OnceLock<Result<Option<Stored>>>,
}

impl Credentials {
    /// The credentials for `host`: those in `cfg`, else stored ones.
    pub fn new(host: &str, cfg: AuthConfig) -> Credentials {
        Credentials {
            host: host.to_string(),
            cfg,
            stored: OnceLock::new(),
        }
    }

    /// What the caller configured.
    pub fn config(&self) -> &AuthConfig {
        &self.cfg
    }

    /// Docker's or podman's credentials for this host, looked up once and only when none
    /// were given.
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

    /// User name and password, given or stored.
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
    pub fn basic(&self) -> Result<Option<Secret>> {
        if let (None, Some(a)) = (&self.cfg.username, &self.cfg.authorization) {
            return Ok(Some(a.clone()));
        }
        Ok(self.password_pair()?.map(|(u, p)| basic_header(&u, &p)))
    }

    /// A given `Authorization: Bearer ...` value is a token already: no realm would take it, so
    /// it goes to the registry as is (and cannot be renewed).
    pub fn given_bearer(&self) -> Option<&Secret> {
        self.cfg.authorization.as_ref().filter(|a| {
            let a = a.expose();
            a.get(..7)
                .is_some_and(|p| p.eq_ignore_ascii_case("bearer "))
        })
    }

    /// A bearer token given to be used as is until the registry refuses it.
    pub fn static_token(&self) -> Option<&Secret> {
        self.cfg.token.as_ref()
    }

    /// Whether any credential is given or stored for the host.
    pub fn has_credentials(&self) -> bool {
        self.cfg.username.is_some()
            || self.cfg.authorization.is_some()
            || self.cfg.token.is_some()
            || self.cfg.refresh_token.is_some()
            || self.cfg.access_token.is_some()
            || self.stored().ok().flatten().is_some()
    }

    /// The refresh token to use for OAuth2: a given one, an access token to exchange, or a
    /// stored identity token. None: GET with Basic credentials (or none).
    pub fn refresh(&self) -> Result<Option<Refresh<'_>>> {
        if let Some(r) = &self.cfg.refresh_token {
            return Ok(Some(Refresh::Token(r.clone())));
        }
        if let Some(aad) = &self.cfg.access_token {
            return Ok(Some(Refresh::Exchange(aad)));
        }
        Ok(self
            .stored()?
            .and_then(|s| s.identity_token)
            .map(Refresh::Token))
    }

    /// Who the tokens are for, as the secret material the cache key is an HMAC of (never
    /// stored as is); None when anonymous.
    pub fn who(&self) -> Option<Secret> {
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
                _ => return None,
            },
        };
        Some(Secret::new(who))
    }
}
