//! Stored credentials, as docker and podman keep them (docs/registry-notes.md §18): docker's
//! `config.json` (`credHelpers[host]` beats `credsStore` beats `auths[host]`), then podman's
//! `auth.json`. Helpers speak the `docker-credential-<name> get` protocol: the server URL on
//! stdin, `{"Username","Secret"}` on stdout; the user name `<token>` marks an identity token.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Cause, Error, Result};
use crate::secret::Secret;

/// Credentials found for a registry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stored {
    /// The user name, or `<token>` for an identity token.
    pub username: Option<String>,
    /// The password, or the identity token.
    pub password: Option<Secret>,
    /// An OAuth2 refresh token (docker's `identitytoken`).
    pub identity_token: Option<Secret>,
}

/// Where stored credentials are looked for, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sources {
    /// docker's `config.json`.
    pub docker_config: Option<PathBuf>,
    /// podman's `auth.json` files.
    pub auth_files: Vec<PathBuf>,
    /// How long a credential helper may take to answer (None: [`HELPER_TIMEOUT`]).
    pub helper_timeout: Option<Duration>,
}

/// Where stored credentials come from when none were given as values: docker's and podman's
/// files ([`Sources`]), or anything else a program keeps them in.
pub trait CredentialSource: Send + Sync {
    /// The stored credentials for `host` (`host[:port]`), if any.
    fn lookup(&self, host: &str) -> Result<Option<Stored>>;
}

impl CredentialSource for Sources {
    fn lookup(&self, host: &str) -> Result<Option<Stored>> {
        lookup(self, host)
    }
}

/// A shared [`CredentialSource`]. Two are equal when they are the same source.
#[derive(Clone)]
pub struct SharedSource(pub std::sync::Arc<dyn CredentialSource>);

impl SharedSource {
    /// Shares `source`.
    pub fn new(source: impl CredentialSource + 'static) -> SharedSource {
        SharedSource(std::sync::Arc::new(source))
    }
}

impl std::fmt::Debug for SharedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialSource")
    }
}

impl PartialEq for SharedSource {
    fn eq(&self, other: &SharedSource) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A helper may be waiting for the user to unlock a keychain: give them a minute.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(60);

/// The key docker uses for Docker Hub.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

fn is_docker_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// The host part of a config key: `https://host[:port]/path` or `host[:port]`.
fn key_host(key: &str) -> &str {
    let rest = key.split_once("://").map_or(key, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

fn key_matches(key: &str, host: &str) -> bool {
    if is_docker_hub(host) && (key == DOCKER_HUB_KEY || is_docker_hub(key_host(key))) {
        return true;
    }
    key_host(key).eq_ignore_ascii_case(host)
}

/// The server URL a credential helper is asked about.
fn helper_server(host: &str) -> String {
    if is_docker_hub(host) {
        DOCKER_HUB_KEY.to_string()
    } else {
        host.to_string()
    }
}

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    auths: serde_json::Map<String, Value>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: serde_json::Map<String, Value>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

/// The most a credentials file may hold (docker's and podman's are a few KiB): a path to a
/// device that never ends (`/dev/zero`) is refused, not read into memory.
const MAX_CONFIG_FILE: u64 = 16 << 20;

fn read_config(path: &Path) -> Result<Option<ConfigFile>> {
    let read = || -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(MAX_CONFIG_FILE + 1)
            .read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    let bytes = match read() {
        Ok(b) if b.len() as u64 > MAX_CONFIG_FILE => {
            return Err(Error::config(
                &path.display().to_string(),
                format!(
                    "larger than {} MiB: not a credentials file",
                    MAX_CONFIG_FILE >> 20
                ),
            ));
        }
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::config(
                &path.display().to_string(),
                crate::error::io_reason(&e),
            ));
        }
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Error::config(
            &path.display().to_string(),
            format!(
                "malformed credentials file: {}",
                crate::text::json_error(&e)
            ),
        )
    })
}

/// An `auths` entry: base64 `auth` (`user:password`, the password may contain `:`),
/// `username`/`password`, or `identitytoken`.
fn from_auth_entry(entry: &Value) -> Option<Stored> {
    let mut stored = Stored::default();
    if let Some(auth) = entry
        .get("auth")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, pass) = text.split_once(':')?;
        stored.username = Some(user.to_string());
        stored.password = Some(pass.into());
    }
    if let Some(u) = entry
        .get("username")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    {
        stored.username = Some(u.to_string());
    }
    if let Some(p) = entry
        .get("password")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
    {
        stored.password = Some(p.into());
    }
    if let Some(t) = entry
        .get("identitytoken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        stored.identity_token = Some(t.into());
    }
    (stored != Stored::default()).then_some(stored)
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: Secret,
}

/// Runs `docker-credential-<name> get`. A helper that knows nothing of the host answers with
/// a non-zero status ("credentials not found"): that is no credentials, not an error. One
/// that does not answer within `timeout` (a keychain prompt nobody sees) is killed.
fn ask_helper(name: &str, host: &str, timeout: Duration) -> Result<Option<Stored>> {
    let program = format!("docker-credential-{name}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            Error::config(
                "credential helper",
                format!("cannot run {program}: {}", crate::error::io_reason(&e)),
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(helper_server(host).as_bytes());
    }
    let (status, stdout) = wait_for(child, timeout)
        .map_err(|e| Error::io(format!("running {program}"), &e))?
        .ok_or_else(|| {
            Error::unavailable(format!(
                "asking {program} for the credentials of {host}: no answer within {} s, so it was stopped",
                timeout.as_secs()
            ))
            .with_cause(Cause::HelperTimeout)
        })?;
    if !status.success() {
        return Ok(None);
    }
    let answer: HelperAnswer = serde_json::from_slice(&stdout).map_err(|e| {
        Error::config(
            "credential helper",
            format!(
                "{program} answered with malformed JSON: {}",
                crate::text::json_error(&e)
            ),
        )
    })?;
    Ok(Some(if answer.username == "<token>" {
        Stored {
            identity_token: Some(answer.secret),
            ..Stored::default()
        }
    } else {
        Stored {
            username: Some(answer.username),
            password: Some(answer.secret),
            identity_token: None,
        }
    }))
}

/// The exit status and output of a helper that has been given its input, or None (and the
/// helper killed) when it did not finish within `timeout`. Its output is read on another
/// thread, so that neither a full pipe nor a stalled helper can hold us past the deadline.
fn wait_for(mut child: Child, timeout: Duration) -> std::io::Result<Option<(ExitStatus, Vec<u8>)>> {
    let deadline = Instant::now() + timeout;
    let stdout = child.stdout.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(pipe) = stdout {
            let _ = pipe.take(1 << 20).read_to_end(&mut out);
        }
        let _ = tx.send(out);
    });
    let output = rx.recv_timeout(timeout);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    match (status, output) {
        (Some(status), Ok(out)) => Ok(Some((status, out))),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            Ok(None)
        }
    }
}

/// The stored credentials for `host` (`host[:port]`), if any.
pub fn lookup(sources: &Sources, host: &str) -> Result<Option<Stored>> {
    let timeout = sources.helper_timeout.unwrap_or(HELPER_TIMEOUT);
    if let Some(path) = &sources.docker_config
        && let Some(config) = read_config(path)?
    {
        if let Some(helper) = config
            .cred_helpers
            .iter()
            .find(|(k, _)| key_matches(k, host))
            .and_then(|(_, v)| v.as_str())
        {
            return ask_helper(helper, host, timeout);
        }
        if let Some(store) = config.creds_store.as_deref().filter(|s| !s.is_empty())
            && let Some(found) = ask_helper(store, host, timeout)?
        {
            return Ok(Some(found));
        }
        if let Some(found) = auths_entry(&config, host) {
            return Ok(Some(found));
        }
    }
    for path in &sources.auth_files {
        if let Some(config) = read_config(path)?
            && let Some(found) = auths_entry(&config, host)
        {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The best `auths` entry for a host: an exact `host` key first, then URL-shaped keys.
fn auths_entry(config: &ConfigFile, host: &str) -> Option<Stored> {
    let exact = config.auths.get(host);
    exact
        .into_iter()
        .chain(
            config
                .auths
                .iter()
                .filter(|(k, _)| key_matches(k, host))
                .map(|(_, v)| v),
        )
        .find_map(from_auth_entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(dir: &Path, json: &str) -> Sources {
        let path = dir.join("config.json");
        std::fs::write(&path, json).unwrap();
        Sources {
            docker_config: Some(path),
            ..Sources::default()
        }
    }

    #[test]
    fn auths_entries_in_every_form() {
        let dir = tempfile::tempdir().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode("fred:pa:ss");
        let s = sources(
            dir.path(),
            &format!(
                r#"{{"auths":{{
                "reg.example:5000":{{"auth":"{b64}"}},
                "https://other.example/v2/":{{"username":"u","password":"p"}},
                "https://index.docker.io/v1/":{{"identitytoken":"idt"}}}}}}"#
            ),
        );
        let got = lookup(&s, "reg.example:5000").unwrap().unwrap();
        assert_eq!(
            (
                got.username.as_deref(),
                got.password.as_ref().map(Secret::expose)
            ),
            (Some("fred"), Some("pa:ss"))
        );
        assert_eq!(
            lookup(&s, "other.example")
                .unwrap()
                .unwrap()
                .username
                .as_deref(),
            Some("u")
        );
        assert_eq!(
            lookup(&s, "registry-1.docker.io")
                .unwrap()
                .unwrap()
                .identity_token
                .as_ref()
                .map(Secret::expose),
            Some("idt")
        );
        assert_eq!(lookup(&s, "nowhere.example").unwrap(), None);
    }

    #[test]
    fn debug_output_never_shows_stored_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let s = sources(
            dir.path(),
            r#"{"auths":{"a":{"username":"u","password":"secret-pw"},"b":{"identitytoken":"secret-idt"}}}"#,
        );
        let text = format!("{:?} {:?}", lookup(&s, "a"), lookup(&s, "b"));
        assert!(text.contains("\"u\""), "{text}");
        assert!(!text.contains("secret-"), "{text}");
    }

    #[test]
    fn podman_files_come_after_docker() {
        let dir = tempfile::tempdir().unwrap();
        let podman = dir.path().join("auth.json");
        std::fs::write(
            &podman,
            r#"{"auths":{"reg.example":{"username":"pod","password":"man"}}}"#,
        )
        .unwrap();
        let s = Sources {
            docker_config: Some(dir.path().join("missing.json")),
            auth_files: vec![podman],
            helper_timeout: None,
        };
        assert_eq!(
            lookup(&s, "reg.example")
                .unwrap()
                .unwrap()
                .username
                .as_deref(),
            Some("pod")
        );
    }

    #[test]
    fn a_malformed_file_is_a_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = sources(dir.path(), "{not json");
        assert_eq!(
            lookup(&s, "h").unwrap_err().kind,
            crate::error::Kind::Config
        );
    }
}
