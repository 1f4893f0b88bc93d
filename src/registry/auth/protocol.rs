//! The token protocol (Docker token spec, docs/registry-notes.md §14): what a token request
//! looks like (GET with Basic credentials or none, OAuth2 POST with a refresh token, the ACR
//! exchange of an Azure AD access token for a refresh token) and how its answer is read. The
//! requests themselves go out through the transport ([`Transport`]); which credentials they
//! carry is `credentials.rs`'s choice, and the tokens are kept by `cache.rs`.

use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Cause, Error, Kind, Result};
use crate::registry::auth::cache::{Realm, Token};
use crate::registry::scope::Scope;
use crate::registry::url;
use crate::secret::Secret;

/// A request to a token endpoint, made by the HTTP layer on our behalf. The form of a POST
/// holds a refresh or access token, so it is a secret as a whole.
#[derive(Debug)]
pub struct TokenCall {
    /// The form of an OAuth2 POST; None: a GET.
    pub post_form: Option<Secret>,
    /// The realm, with the query of a GET.
    pub url: String,
    /// The `Authorization` value of a GET with Basic credentials.
    pub basic: Option<Secret>,
}

/// Sends a [`TokenCall`]; returns the status and body.
pub type Transport<'a> = dyn Fn(&TokenCall) -> Result<(u16, Vec<u8>)> + 'a;

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

/// `Basic base64(user:pass)`.
pub fn basic_header(user: &str, pass: &Secret) -> Secret {
    let pair = format!("{user}:{}", pass.expose());
    Secret::new(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    ))
}

/// `Bearer <token>`.
pub fn bearer_header(token: &Secret) -> Secret {
    Secret::new(format!("Bearer {}", token.expose()))
}

pub(crate) fn form(pairs: &[(&str, &str)]) -> Secret {
    Secret::new(
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", url::encode(v)))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

/// The realm a challenge names, with its host replaced by `auth_host` when one is given.
pub fn replace_auth_host(realm: &str, auth_host: Option<&str>) -> String {
    let Some(new_host) = auth_host else {
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

/// Exchanges an Azure AD access token for a refresh token at the registry's
/// `/oauth2/exchange` (ACR), spoken with the realm's scheme.
pub fn exchange(
    host: &str,
    realm: &Realm,
    access_token: &Secret,
    transport: &Transport<'_>,
) -> Result<Secret> {
    let scheme = realm.realm.split("://").next().unwrap_or("https");
    let call = TokenCall {
        url: format!("{scheme}://{host}/oauth2/exchange"),
        basic: None,
        post_form: Some(form(&[
            ("grant_type", "access_token"),
            ("service", host),
            ("access_token", access_token.expose()),
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
    // A 200 that is no answer is bad data, not a refusal: the credentials may be fine.
    let answer: ExchangeAnswer = serde_json::from_slice(&body).map_err(|e| {
        Error::data(format!(
            "the token exchange answered with malformed JSON: {}",
            crate::text::json_error(&e)
        ))
    })?;
    Ok(answer.refresh_token)
}

/// Asks the token server for `scope`: OAuth2 POST with a refresh token, else GET with Basic
/// credentials (or none, for anonymous access).
pub fn fetch(
    realm: &Realm,
    scope: &Scope,
    refresh: Option<&Secret>,
    basic: Option<Secret>,
    transport: &Transport<'_>,
) -> Result<Token> {
    let service = realm.service.as_deref().unwrap_or("");
    let call = match refresh {
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
    read_token(&body)
}

/// A token answer: `token` or `access_token`, and `expires_in` (the spec's default is 60 s).
fn read_token(body: &[u8]) -> Result<Token> {
    // A 200 that holds no token is a malformed answer (bad data), not a refusal: nothing
    // says the credentials were wrong, and asking again would not help.
    let answer: TokenAnswer = serde_json::from_slice(body).map_err(|e| {
        Error::data(format!(
            "the token server answered with malformed JSON: {}",
            crate::text::json_error(&e)
        ))
    })?;
    let token = answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::data("the token server answered without a token"))?;
    if !header_safe(token.expose()) {
        return Err(Error::data(
            "the token server sent a token that is not printable ASCII",
        ));
    }
    Ok(Token::new(
        token,
        Duration::from_secs(answer.expires_in.unwrap_or(60).max(1)),
    ))
}

/// Whether a token can be sent as `Bearer <token>`: visible ASCII only (RFC 7235's token68
/// is a subset). Anything else fails every request that carries it.
pub fn header_safe(token: &str) -> bool {
    token.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_with_control_characters_is_malformed() {
        let e = read_token(b"{\"token\":\"tok-\\u001b[31mXYZ\",\"expires_in\":300}").unwrap_err();
        assert_eq!(e.kind, Kind::Data);
        assert!(read_token(br#"{"token":"a b"}"#).is_err());
        assert!(read_token(br#"{"token":"eyJ.a-b_c~d+e/f="}"#).is_ok());
    }

    #[test]
    fn answers_give_a_token_and_its_lifetime() {
        let t = read_token(br#"{"access_token":"a","expires_in":300}"#).unwrap();
        assert_eq!(t.token.expose(), "a");
        assert!(t.fresh());
        assert_eq!(read_token(br#"{"token":""}"#).unwrap_err().kind, Kind::Data);
        assert_eq!(read_token(b"<html>").unwrap_err().kind, Kind::Data);
    }

    #[test]
    fn the_auth_host_replaces_the_realm_host_only() {
        assert_eq!(
            replace_auth_host("https://a.example:8443/token?x=1", Some("b.example")),
            "https://b.example/token?x=1"
        );
        assert_eq!(replace_auth_host("https://a/t", None), "https://a/t");
    }
}
