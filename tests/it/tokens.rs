//! A token server for docker-registry's `auth.token` (Docker token-auth spec), written for
//! the tests: ES256 JWTs with an `x5c` header holding the certificate the registry trusts
//! (`rootcertbundle`), `aud` = the service, and an `access` claim granting what was asked for
//! and what the policy allows. It serves GET with Basic credentials (or none) and OAuth2
//! POST (password and refresh_token grants), over TLS, and counts what it was asked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};

use crate::harness::Registry;
use crate::pki::{pem_der, pki};
use crate::scripted::{Request, Response, Server};

pub const SERVICE: &str = "regtool-test";
pub const ISSUER: &str = "regtool-test-issuer";
/// May push, pull and delete everywhere, and read the catalog.
pub const PUSHER: (&str, &str) = ("pusher", "push:pa55");
/// May only pull.
pub const PULLER: (&str, &str) = ("puller", "pull-pa55");
/// The refresh token the server hands out for (and accepts from) the pusher.
pub const PUSHER_REFRESH: &str = "refresh-token-of-pusher";
/// Anonymous users may pull repositories under this prefix.
pub const PUBLIC: &str = "public/";

pub struct TokenServer {
    pub server: Server,
    /// Seconds a token lives, as the registry sees it.
    pub lifetime: Arc<AtomicU64>,
}

impl TokenServer {
    pub fn requests(&self) -> usize {
        self.server
            .seen()
            .iter()
            .filter(|r| r.path.starts_with("/token"))
            .count()
    }

    /// Token requests whose scopes name `repo`: on the shared server, tests running at the
    /// same time ask for tokens too, and must not count in each other's numbers.
    pub fn requests_for(&self, repo: &str) -> usize {
        let ours = format!("repository:{repo}:");
        self.server
            .seen()
            .iter()
            .filter(|r| r.path.starts_with("/token"))
            .filter(|r| {
                let q = r.path.split_once('?').map_or("", |(_, q)| q);
                let form = String::from_utf8_lossy(&r.body);
                query(q)
                    .into_iter()
                    .chain(query(&form))
                    .any(|(k, v)| k == "scope" && v.split(' ').any(|s| s.starts_with(&ours)))
            })
            .count()
    }
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn query(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Who is asking: (user or None for anonymous), or Err for wrong credentials.
fn identify(req: &Request, form: &HashMap<String, String>) -> Result<Option<String>, ()> {
    let check = |user: &str, pass: &str| match (user, pass) {
        (u, p) if (u, p) == PUSHER || (u, p) == PULLER => Ok(Some(u.to_string())),
        _ => Err(()),
    };
    match form.get("grant_type").map(String::as_str) {
        Some("password") => {
            return check(
                form.get("username").map_or("", |s| s),
                form.get("password").map_or("", |s| s),
            );
        }
        Some("refresh_token") => {
            return if form.get("refresh_token").map(String::as_str) == Some(PUSHER_REFRESH) {
                Ok(Some(PUSHER.0.to_string()))
            } else {
                Err(())
            };
        }
        _ => {}
    }
    let Some(auth) = req.headers.get("authorization") else {
        return Ok(None);
    };
    let encoded = auth.strip_prefix("Basic ").ok_or(())?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| ())?;
    let text = String::from_utf8(decoded).map_err(|_| ())?;
    let (user, pass) = text.split_once(':').ok_or(())?;
    check(user, pass)
}

/// The actions the policy allows `user` on a scope's resource.
fn allowed(user: Option<&str>, kind: &str, name: &str, actions: &[&str]) -> Vec<String> {
    let ok = |a: &str| match (user, kind) {
        (Some("pusher"), _) => true,
        (Some("puller"), "repository") => a == "pull",
        (None, "repository") => a == "pull" && name.starts_with(PUBLIC),
        _ => false,
    };
    actions
        .iter()
        .filter(|a| ok(a))
        .map(|a| a.to_string())
        .collect()
}

fn sign(key: &EcdsaKeyPair, x5c: &str, claims: &Value) -> String {
    let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", b64url(sig.as_ref()))
}

/// The decoded claims of a JWT (for tests that check what a token grants).
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

fn answer(req: &Request, key: &EcdsaKeyPair, x5c: &str, lifetime: u64) -> Response {
    let (path, q) = req.path.split_once('?').unwrap_or((&req.path, ""));
    if path != "/token" {
        return Response::new(404);
    }
    let mut params = query(q);
    let form: HashMap<String, String> = if req.method == "POST" {
        query(&String::from_utf8_lossy(&req.body))
            .into_iter()
            .collect()
    } else {
        HashMap::new()
    };
    if let Some(scope) = form.get("scope") {
        params.extend(
            scope
                .split(' ')
                .map(|s| ("scope".to_string(), s.to_string())),
        );
    }
    let Ok(user) = identify(req, &form) else {
        return Response::new(401)
            .body(r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#);
    };
    let mut access = Vec::new();
    for (_, scope) in params.iter().filter(|(k, _)| k == "scope") {
        let Some((kind, rest)) = scope.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        let acts: Vec<&str> = actions.split(',').collect();
        let granted = allowed(user.as_deref(), kind, name, &acts);
        if !granted.is_empty() {
            access.push(json!({"type": kind, "name": name, "actions": granted}));
        }
    }
    let t = now();
    // docker-registry allows 60 s of leeway past `exp`: take it off so that the token really
    // lives `lifetime` seconds.
    let claims = json!({
        "iss": ISSUER, "sub": user.clone().unwrap_or_default(), "aud": SERVICE,
        "exp": t + lifetime - 60, "nbf": t - 60, "iat": t, "jti": format!("{t}-{}", rand_id()),
        "access": access,
    });
    let token = sign(key, x5c, &claims);
    let mut body =
        json!({"token": token, "access_token": token, "expires_in": lifetime, "issued_at": ""});
    if req.method == "POST" && user.as_deref() == Some(PUSHER.0) {
        body["refresh_token"] = json!(PUSHER_REFRESH);
    }
    Response::new(200)
        .header("Content-Type", "application/json")
        .body(body.to_string())
}

fn rand_id() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// Starts a token server (TLS) with the default lifetime of 300 s.
pub fn token_server() -> TokenServer {
    let pki = pki();
    let der = pem_der(&pki.path("token.key"));
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
            .expect("the token key");
    let x5c = base64::engine::general_purpose::STANDARD.encode(pem_der(&pki.path("token.pem")));
    let lifetime = Arc::new(AtomicU64::new(300));
    let life = lifetime.clone();
    let server = Server::start_tls(move |req| answer(req, &key, &x5c, life.load(Ordering::SeqCst)));
    TokenServer { server, lifetime }
}

/// docker-registry over TLS with token auth against `tokens`.
pub fn token_registry(name: &str, tokens: &TokenServer) -> Registry {
    let pki = pki();
    Registry::start(
        name,
        &format!(
            "  tls:\n    certificate: {}\n    key: {}\nauth:\n  token:\n    realm: https://{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            pki.path("server.pem").display(),
            pki.path("server.key").display(),
            tokens.server.host,
            pki.path("token.pem").display()
        ),
    )
}

/// The shared token server and its registry.
pub fn shared() -> &'static (TokenServer, Registry) {
    static S: OnceLock<(TokenServer, Registry)> = OnceLock::new();
    S.get_or_init(|| {
        let tokens = token_server();
        let registry = token_registry("token", &tokens);
        (tokens, registry)
    })
}

#[test]
fn a_token_with_control_characters_is_refused_at_once_and_never_cached() {
    let server = Server::start(|req| {
        let host = req.headers.get("host").cloned().unwrap_or_default();
        if req.path.starts_with("/token") {
            return Response::new(200)
                .body("{\"token\":\"tok-\\u001b[31mXYZ\",\"expires_in\":300}");
        }
        let challenge = format!(r#"Bearer realm="http://{host}/token",service="svc""#);
        Response::new(401).header("WWW-Authenticate", challenge)
    });
    let cache = crate::harness::tempdir();
    for _ in 0..2 {
        let before = server.seen().len();
        let out = crate::harness::regtool(&["list-aliases", "repo"])
            .env("REGTOOL_HOST", &server.host)
            .env("REGTOOL_INSECURE", "1")
            .env("REGTOOL_CACHE_DIR", cache.path())
            .run();
        let err = out.fails(65);
        assert!(
            err.starts_with("regtool: ")
                && err.contains("the token server sent a token that is not printable ASCII"),
            "{err}"
        );
        let token_calls = server.seen()[before..]
            .iter()
            .filter(|r| r.path.starts_with("/token"))
            .count();
        assert_eq!(token_calls, 1, "no retry, and nothing cached: asked again");
    }
}

/// A registry that wants bearer tokens from its own /token, which answers `answer`; the
/// token `good-token` lists one tag.
fn realm_answering(answer: &'static str) -> Server {
    Server::start(move |req| {
        let host = req.headers.get("host").cloned().unwrap_or_default();
        if req.path.starts_with("/token") {
            return Response::new(200).body(answer);
        }
        if req.headers.get("authorization").map(String::as_str) == Some("Bearer good-token") {
            return Response::new(200).body(r#"{"name":"repo","tags":["a"]}"#);
        }
        let challenge = format!(r#"Bearer realm="http://{host}/token",service="svc""#);
        Response::new(401).header("WWW-Authenticate", challenge)
    })
}

fn token_calls(server: &Server, since: usize) -> usize {
    server.seen()[since..]
        .iter()
        .filter(|r| r.path.starts_with("/token"))
        .count()
}

#[test]
fn a_realm_answering_malformed_json_or_no_token_is_bad_data() {
    for (answer, said) in [
        (
            "<html>not a token</html>",
            "the token server answered with malformed JSON",
        ),
        (
            r#"{"expires_in":300}"#,
            "the token server answered without a token",
        ),
    ] {
        let server = realm_answering(answer);
        let out = crate::harness::regtool(&["list-aliases", "repo"])
            .env("REGTOOL_HOST", &server.host)
            .env("REGTOOL_INSECURE", "1")
            .env("REGTOOL_CACHE_DIR", crate::harness::tempdir().path())
            .run();
        let err = out.fails(65);
        assert!(err.starts_with("regtool: ") && err.contains(said), "{err}");
        assert_eq!(err.lines().count(), 1, "one clear line: {err}");
        assert_eq!(
            token_calls(&server, 0),
            1,
            "a malformed answer is not retried"
        );
    }
}

#[test]
fn a_bad_token_or_file_in_the_cache_is_ignored_and_fetched_again() {
    let server = realm_answering(r#"{"token":"good-token","expires_in":300}"#);
    let cache = crate::harness::tempdir();
    let file = cache.path().join("tokens.json");
    let list = || {
        let before = server.seen().len();
        let out = crate::harness::regtool(&["list-aliases", "repo"])
            .env("REGTOOL_HOST", &server.host)
            .env("REGTOOL_INSECURE", "1")
            .env("REGTOOL_CACHE_DIR", cache.path())
            .run();
        assert_eq!(out.ok().trim(), "a");
        token_calls(&server, before)
    };
    assert_eq!(list(), 1);
    assert_eq!(list(), 0, "cached");
    // An entry that cannot go in a header (an older version cached such tokens).
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(stored.contains("\"good-token\""), "{stored}");
    std::fs::write(
        &file,
        stored.replace("\"good-token\"", "\"bad\\u001b[31mtoken\""),
    )
    .unwrap();
    assert_eq!(list(), 1, "the bad entry is fetched again");
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("\"good-token\"")
    );
    // A file that is not JSON at all.
    std::fs::write(&file, "{ not json").unwrap();
    assert_eq!(list(), 1);
    assert_eq!(list(), 0, "and the cache works again");
}
