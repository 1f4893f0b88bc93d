//! The binary's settings, from the environment. [`VARS`] is the one table of variables: it
//! drives parsing here, and is rendered into `--help`, the man page and the README, so the
//! documentation cannot drift from what is read. `REGTOOL_*` wins; the `DXF_*` name of a
//! variable dxf also had is the fallback. The library never sees a variable: this module
//! reads the files they name (password, PEM) and hands it typed [`Options`].

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regtool::credentials::{SharedSource, Sources};
use regtool::error::{Error, Result};
use regtool::image::layer::Compression;
use regtool::oci::host::HostError;
use regtool::oci::{Host, Platform};
use regtool::registry::auth::AuthConfig;
use regtool::registry::tls::{Material, TlsOptions};
use regtool::registry::{Log, LogSink, Options};
use regtool::secret::Secret;
use regtool::store::Store;

/// One environment variable: its name without the `REGTOOL_` prefix, whether dxf had it, and
/// its meaning. `plain` variables (`DOCKER_CONFIG`) are read under their own name only.
pub struct Var {
    pub name: &'static str,
    pub dxf: bool,
    pub plain: bool,
    pub help: &'static str,
}

impl Var {
    pub fn full_name(&self) -> String {
        if self.plain {
            self.name.to_string()
        } else {
            format!("REGTOOL_{}", self.name)
        }
    }
}

pub const VARS: &[Var] = &[
    Var {
        name: "HOST",
        dxf: true,
        plain: false,
        help: "host[:port] of the registry ([::1]:5000 for IPv6); oci:PATH for a local OCI-layout store (one layout per repository under PATH). Unset: the local store in the user's data directory; set but empty: an error.",
    },
    Var {
        name: "INSECURE",
        dxf: true,
        plain: false,
        help: "1: plain HTTP to REGTOOL_HOST only; or a comma-separated list of host[:port] allowed plain HTTP (a host without a port: on any port; a number is no host, so name REGTOOL_HOST by its host[:port] in a list), such as a registry named in an image reference or an http token realm. Credentials (passwords, tokens, Authorization) go in clear text only to these hosts and to this machine. Loopback hosts fall back to HTTP by themselves when they do not speak TLS. A host reached through a proxy (*_PROXY, unless NO_PROXY names it) is never this machine, even when the proxy is on loopback.",
    },
    Var {
        name: "USERNAME",
        dxf: true,
        plain: false,
        help: "User name for the registry (Basic authentication); it cannot contain ':'. Credentials never go in REGTOOL_HOST or in a reference (user:password@host is refused, the password not shown).",
    },
    Var {
        name: "PASSWORD",
        dxf: true,
        plain: false,
        help: "Password for the registry; needs REGTOOL_USERNAME.",
    },
    Var {
        name: "PASSWORD_FILE",
        dxf: false,
        plain: false,
        help: "Read the password from this file (trailing newline ignored).",
    },
    Var {
        name: "AUTHORIZATION",
        dxf: true,
        plain: false,
        help: "A whole Authorization header value, as dxf uses it: shown to a Basic registry, or to the token realm when the registry wants bearer tokens. A Bearer value goes to the registry as is.",
    },
    Var {
        name: "PLATFORM",
        dxf: true,
        plain: false,
        help: "os/arch[/variant] to pick from a multi-platform index; linux/arm64 matches linux/arm64/v8. A docker archive holds one platform: without it, this machine's.",
    },
    Var {
        name: "PROGRESS",
        dxf: true,
        plain: false,
        help: "1 (or true): progress bars on stderr always; 0 (or false): never; unset or anything else (auto): only when stderr is a terminal.",
    },
    Var {
        name: "BLOB_INFO",
        dxf: true,
        plain: false,
        help: "1: pull-blob prints `<digest> <size>` before each blob.",
    },
    Var {
        name: "CHUNK_SIZE",
        dxf: true,
        plain: false,
        help: "Upload in chunks of this many bytes (8M, 64k, 1048576; at most 1G); unset: one request per blob. Files are read again for a resend, never held in memory; stdin holds at most 16M (larger chunks go 16M at a time).",
    },
    Var {
        name: "JOBS",
        dxf: false,
        plain: false,
        help: "Concurrent blob transfers (default 4).",
    },
    Var {
        name: "RETRIES",
        dxf: false,
        plain: false,
        help: "Retries on connection errors, 408, 429 and 5xx (default 5), counted per operation (a blob pulled, pushed or copied; a manifest), whichever layer retries, within 5 minutes of failing; a chunked upload that the registry took more of since its last failure gets its retries back. After an upload's lost answer it asks the registry where the upload stands before sending more.",
    },
    Var {
        name: "TIMEOUT",
        dxf: false,
        plain: false,
        help: "Idle timeout in seconds for connecting and for each read or write, and the longest a credential helper may take to answer (default 60).",
    },
    Var {
        name: "FORMAT",
        dxf: false,
        plain: false,
        help: "json: one JSON object per line for every result instead of bare text (get-manifest: one compact line per manifest).",
    },
    Var {
        name: "DEBUG",
        dxf: false,
        plain: false,
        help: "1: log each HTTP request and response status on stderr, secrets redacted.",
    },
    Var {
        name: "TOKEN",
        dxf: true,
        plain: false,
        help: "A bearer token to use as is; renewed with the other credentials when the registry refuses it.",
    },
    Var {
        name: "REFRESH_TOKEN",
        dxf: false,
        plain: false,
        help: "An OAuth2 refresh (identity) token, exchanged at the token realm for access tokens.",
    },
    Var {
        name: "ACCESS_TOKEN",
        dxf: false,
        plain: false,
        help: "An Azure AD access token, exchanged at the registry's /oauth2/exchange for a refresh token (Azure Container Registry).",
    },
    Var {
        name: "AUTH_HOST",
        dxf: true,
        plain: false,
        help: "host[:port] that replaces the host of the token realm REGTOOL_HOST names (other registries keep their own realm).",
    },
    Var {
        name: "TLSVERIFY",
        dxf: true,
        plain: false,
        help: "Path to a PEM CA bundle trusted in addition to the built-in roots; a registry's own self-signed certificate (openssl req -x509) may be given as it is.",
    },
    Var {
        name: "SKIPTLSVERIFY",
        dxf: true,
        plain: false,
        help: "1: do not verify the TLS certificate of REGTOOL_HOST (a warning on stderr); other registries are always verified.",
    },
    Var {
        name: "CLIENT_CERT",
        dxf: false,
        plain: false,
        help: "PEM client certificate (chain) for mutual TLS with REGTOOL_HOST; needs REGTOOL_CLIENT_KEY.",
    },
    Var {
        name: "CLIENT_KEY",
        dxf: false,
        plain: false,
        help: "PEM private key of REGTOOL_CLIENT_CERT.",
    },
    Var {
        name: "CACHE_DIR",
        dxf: false,
        plain: false,
        help: "Where bearer tokens, file digests and the plain HTTP of loopback registries (plain-http/HOST) are kept (default: the user's cache directory; files 0600 in a 0700 directory). Token entries name the user by an HMAC of the credentials under a random key kept there (key), never by a plain hash of them. An existing directory must be the user's own and writable by nobody else (such as /tmp is): otherwise 78.",
    },
    Var {
        name: "DIGEST_CACHE",
        dxf: false,
        plain: false,
        help: "0: hash every pushed file again. Default 1: the digest of a pushed file of 64 KiB or more is kept in REGTOOL_CACHE_DIR (digests/, at most 16384 files, about 4 MiB, the oldest dropped first), and used again while the file's path, device, inode, size, mtime and ctime are unchanged, as git's index does; a file modified in the second its digest was recorded is hashed again. A wrong digest is caught by the registry, which verifies every upload, and the file is then hashed and pushed again. The layers of a docker archive file pushed (push-image, copy) or digested have entries too (their compressed digest and size, keyed by the archive's stat, the member's place and REGTOOL_COMPRESSION): pushed again, a layer the registry has is neither read nor compressed; a cached digest the registry lacks is compressed and uploaded again.",
    },
    Var {
        name: "COMPRESSION",
        dxf: false,
        plain: false,
        help: "Layer compression for append-layer, for the plain layers of a docker archive pushed (push-image, copy, digest) and of an image make-image writes into a layout: gzip (default), zstd or none. Input that is already compressed is uploaded as it is.",
    },
    Var {
        name: "SOURCE_DATE_EPOCH",
        dxf: false,
        plain: true,
        help: "Seconds since 1970: the time recorded in the history entry append-layer adds (unset: none, so the same input gives the same image), the mtime of every entry make-layer writes (unset: 0), and the image and history times make-image writes (unset: 1970-01-01).",
    },
    Var {
        name: "DOCKER_CONFIG",
        dxf: false,
        plain: true,
        help: "Directory of docker's config.json (default ~/.docker): auths, credHelpers and credsStore are read when no credentials are set. A credential helper that does not answer within REGTOOL_TIMEOUT seconds is stopped (status 69).",
    },
    Var {
        name: "REGISTRY_AUTH_FILE",
        dxf: false,
        plain: true,
        help: "Podman's auth.json (default $XDG_RUNTIME_DIR/containers/auth.json), read after docker's config.",
    },
];

/// Where variables come from; a trait so that parsing is tested without touching the process.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
    }
}

/// The value of a variable (`REGTOOL_` name, then `DXF_` name), with its full name for messages.
/// An empty value counts as unset.
fn lookup(env: &dyn Env, name: &str) -> Option<(String, String)> {
    let spec = VARS.iter().find(|v| v.name == name);
    let mut names = vec![spec.map_or_else(|| format!("REGTOOL_{name}"), Var::full_name)];
    if spec.is_some_and(|v| v.dxf) {
        names.push(format!("DXF_{name}"));
    }
    names
        .into_iter()
        .find_map(|n| env.var(&n).filter(|v| !v.is_empty()).map(|v| (n, v)))
}

/// The spellings every boolean variable accepts, as the error message lists them.
const TRUE: [&str; 2] = ["1", "true"];
const FALSE: [&str; 2] = ["0", "false"];

/// Parses a boolean value (case-insensitive); the error names exactly what is accepted.
fn boolean(var: &str, value: &str) -> Result<bool> {
    let is = |words: [&str; 2]| words.iter().any(|w| value.eq_ignore_ascii_case(w));
    if is(TRUE) {
        Ok(true)
    } else if is(FALSE) {
        Ok(false)
    } else {
        Err(Error::config(
            var,
            format!(
                "expected {} or {} (or {} or {}), got {value:?}",
                TRUE[0], FALSE[0], TRUE[1], FALSE[1]
            ),
        ))
    }
}

fn flag(env: &dyn Env, name: &str) -> Result<bool> {
    match lookup(env, name) {
        None => Ok(false),
        Some((n, v)) => boolean(&n, &v),
    }
}

fn number(env: &dyn Env, name: &str, default: u64, min: u64, max: u64) -> Result<u64> {
    match lookup(env, name) {
        None => Ok(default),
        Some((n, v)) => match v.trim().parse::<u64>() {
            Ok(x) if (min..=max).contains(&x) => Ok(x),
            _ => Err(Error::config(
                &n,
                format!("expected a whole number from {min} to {max}, got {v:?}"),
            )),
        },
    }
}

/// A variable whose value goes into an HTTP header: control characters (a pasted newline) are
/// not allowed in a field value (RFC 9110 5.5), so they are refused here, naming the variable.
fn header_value(env: &dyn Env, name: &str) -> Result<Option<Secret>> {
    match lookup(env, name) {
        Some((n, v)) if v.chars().any(|c| c.is_control() && c != '\t') => Err(Error::config(
            &n,
            "contains a control character (a newline?), which cannot go in an HTTP header",
        )),
        found => Ok(found.map(|(_, v)| v.into())),
    }
}

/// The largest REGTOOL_CHUNK_SIZE: one request carries at most this much (a file is never
/// held in memory whatever the chunk; stdin holds at most 16 MiB of a chunk).
pub const MAX_CHUNK: u64 = 1 << 30;

/// Parses a byte count with an optional binary suffix: `8M`, `64k`, `1G`, `1048576`.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, mult) = match t.char_indices().last()? {
        (i, 'k' | 'K') => (&t[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&t[..i], 1 << 20),
        (i, 'g' | 'G') => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(mult).filter(|&x| x > 0)
}

/// Where the blob store lives.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    Registry(Box<Options>),
    /// A local OCI-layout store; `implicit` when `REGTOOL_HOST` was unset.
    Layout {
        root: PathBuf,
        implicit: bool,
    },
}

impl Location {
    /// Opens the store this names; its long operations stop when `cancel` is cancelled.
    pub fn open(&self, cancel: &regtool::Cancel) -> Box<dyn Store> {
        match self {
            Location::Registry(opts) => {
                Box::new(regtool::registry::Registry::new(opts).with_cancel(cancel.clone()))
            }
            Location::Layout { root, .. } => {
                Box::new(regtool::layout::Layout::new(root.clone()).with_cancel(cancel.clone()))
            }
        }
    }
}

/// The library's diagnostics, on stderr as `regtool: debug: ...` and `regtool: warning: ...`.
struct Stderr;

impl Log for Stderr {
    fn debug(&self, line: &str) {
        crate::output::stderr_line(format_args!("regtool: debug: {line}"));
    }
    fn warning(&self, line: &str) {
        crate::output::stderr_line(format_args!("regtool: warning: {line}"));
    }
}

/// The PEM files the TLS variables name, each with the variable that named it. They are read
/// only when a registry is opened: a bad REGTOOL_TLSVERIFY does not break a command on the
/// local store.
#[derive(Debug, Clone, PartialEq, Default)]
struct TlsFiles {
    ca: Option<(String, PathBuf)>,
    cert: Option<(String, PathBuf)>,
    key: Option<(String, PathBuf)>,
    skip_verify: bool,
}

/// The most a file named by a setting may hold: a CA bundle is a few hundred KiB, a
/// password or token far less. A device or a FIFO that never ends (`/dev/zero`) is refused
/// instead of filling the memory.
const MAX_SETTING_FILE: u64 = 16 << 20;

/// `dir` when it may hold secrets: missing (it is made 0700), or an existing directory of
/// the user's own that nobody else may write to. In a shared one (`/tmp`), another user
/// could plant the token cache's key (and so test password guesses against the file) or
/// replace the cached tokens.
fn private_dir(var: &str, dir: PathBuf) -> Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(&dir) else {
        return Ok(dir);
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let why = if meta.uid() != euid {
        "belongs to another user"
    } else if meta.mode() & 0o022 != 0 {
        "is writable by other users"
    } else {
        return Ok(dir);
    };
    Err(Error::config(
        var,
        format!(
            "{} {why}: the tokens and the key kept there would be theirs to read or replace",
            dir.display()
        ),
    )
    .with_hint("name a directory of your own that only you can write to"))
}

/// The content of the file `var` names, at most [`MAX_SETTING_FILE`] bytes.
fn read_setting_file(var: &str, path: &Path) -> Result<Vec<u8>> {
    let cannot = |e: std::io::Error| {
        Error::config(
            var,
            format!(
                "cannot read {}: {}",
                path.display(),
                regtool::error::io_reason(&e)
            ),
        )
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SETTING_FILE + 1).read_to_end(&mut bytes))
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_SETTING_FILE {
        return Err(Error::config(
            var,
            format!(
                "{} is larger than {} MiB",
                path.display(),
                MAX_SETTING_FILE >> 20
            ),
        ));
    }
    Ok(bytes)
}

impl TlsFiles {
    fn read(named: &(String, PathBuf)) -> Result<Vec<u8>> {
        let (var, path) = named;
        read_setting_file(var, path)
    }

    /// Everything, for REGTOOL_HOST.
    fn load(&self) -> Result<TlsOptions> {
        let ca = self.ca.as_ref().map(Self::read).transpose()?;
        let client = match (&self.cert, &self.key) {
            (None, None) => None,
            (Some((cert_var, _)), None) => {
                return Err(Error::config(
                    "REGTOOL_CLIENT_KEY",
                    format!("unset, but {cert_var} is set"),
                ));
            }
            (None, Some((key_var, _))) => {
                return Err(Error::config(
                    "REGTOOL_CLIENT_CERT",
                    format!("unset, but {key_var} is set"),
                ));
            }
            (Some(cert), Some(key)) => Some((Self::read(cert)?, Self::read(key)?)),
        };
        let client = client.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice()));
        TlsOptions::from_pem(ca.as_deref(), client, self.skip_verify).map_err(|e| {
            let named = match e.material {
                Material::CaBundle => &self.ca,
                Material::ClientCert => &self.cert,
                Material::ClientKey => &self.key,
            };
            match named {
                Some((var, path)) => {
                    Error::config(var, format!("{}: {}", path.display(), e.problem))
                }
                None => Error::other(format!("TLS set-up: {}", e.problem)),
            }
        })
    }

    /// Only the trusted CAs, for any other registry.
    fn trust_only(&self) -> Result<TlsOptions> {
        TlsFiles {
            ca: self.ca.clone(),
            ..TlsFiles::default()
        }
        .load()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Always,
    Never,
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Everything the environment says, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub location: Location,
    /// How to talk to registries named in image references (`host/repo:tag`), but TLS.
    pub remote: Box<Options>,
    tls: TlsFiles,
    /// Layer compression for append-layer and for archives pushed or made into layouts.
    pub compression: Compression,
    /// SOURCE_DATE_EPOCH as RFC 3339, for reproducible history entries.
    pub created: Option<String>,
    /// SOURCE_DATE_EPOCH in seconds, for the mtimes of the layers make-layer writes.
    pub epoch: Option<i64>,
    pub platform: Option<Platform>,
    pub progress: Progress,
    pub blob_info: bool,
    pub jobs: usize,
    pub format: Format,
    /// Where the digest cache is (REGTOOL_CACHE_DIR), None when REGTOOL_DIGEST_CACHE=0.
    pub digest_cache: Option<PathBuf>,
}

/// Parses the `host[:port]` a variable gives (see [`Host`]), refused with a hint. The text is
/// shown without user information (a password).
fn check_host(var: &str, host: &str) -> Result<Host> {
    Host::parse(host).map_err(|why| {
        let hint = match why {
            HostError::UnbracketedIpv6 => {
                "write it in brackets, with the port after them: [::1]:5000".to_string()
            }
            HostError::Credentials => {
                format!("give them in REGTOOL_USERNAME and REGTOOL_PASSWORD, not in {var}")
            }
            HostError::Scheme if host.starts_with("http://") => format!(
                "drop the scheme: {var} takes host[:port]; for plain HTTP set REGTOOL_INSECURE=1"
            ),
            HostError::Scheme => format!("drop the scheme: {var} takes host[:port]"),
            HostError::Path => format!("drop the path: {var} takes host[:port] only"),
            _ => "for a local store use oci:PATH".to_string(),
        };
        Error::config(
            var,
            format!(
                "{why} in {:?}: expected host[:port], like registry.example:5000",
                regtool::oci::host::shown(host)
            ),
        )
        .with_hint(hint)
    })
}

/// REGTOOL_HOST (else DXF_HOST). Set but empty is refused: it is what a CI job whose secret did
/// not arrive looks like, and falling back to the local store would make its pushes vanish. A
/// trailing `/` (pasted from a URL) is forgiven.
fn host_var(env: &dyn Env) -> Result<Option<(String, String)>> {
    for name in ["REGTOOL_HOST", "DXF_HOST"] {
        match env.var(name) {
            None => continue,
            Some(v) if v.trim().is_empty() => {
                return Err(Error::config(name, "set but empty").with_hint(
                    "set it to the registry's host[:port], or unset it to use the local store",
                ));
            }
            Some(v) if v.starts_with("oci:") => return Ok(Some((name.to_string(), v))),
            Some(v) => {
                let host = v.trim_end_matches('/').to_string();
                return Ok(Some((name.to_string(), host)));
            }
        }
    }
    Ok(None)
}

/// The TLS variables: paths, read later ([`TlsFiles`]).
fn tls_files(env: &dyn Env) -> Result<TlsFiles> {
    let named = |name: &str| lookup(env, name).map(|(n, v)| (n, PathBuf::from(v)));
    Ok(TlsFiles {
        ca: named("TLSVERIFY"),
        cert: named("CLIENT_CERT"),
        key: named("CLIENT_KEY"),
        skip_verify: flag(env, "SKIPTLSVERIFY")?,
    })
}

/// Everything that says how to talk to a registry, for `host`, but TLS.
fn registry_options(env: &dyn Env, host: Option<&Host>, jobs: usize) -> Result<Options> {
    let password = match (lookup(env, "PASSWORD"), lookup(env, "PASSWORD_FILE")) {
        (Some((_, p)), _) => Some(Secret::from(p)),
        (None, Some((n, path))) => {
            let bytes = read_setting_file(&n, Path::new(&path))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| Error::config(&n, format!("{path} is not UTF-8 text")))?;
            Some(Secret::from(text.trim_end_matches(['\r', '\n'])))
        }
        (None, None) => None,
    };
    let chunk_size = match lookup(env, "CHUNK_SIZE") {
        None => None,
        Some((n, v)) => Some(match parse_size(&v) {
            Some(size) if size > MAX_CHUNK => {
                return Err(Error::config(
                    &n,
                    format!("{v:?} is larger than the largest chunk: at most 1G"),
                ));
            }
            Some(size) => size,
            None => {
                return Err(Error::config(
                    &n,
                    format!("expected a byte count like 8M or 65536, got {v:?}"),
                ));
            }
        }),
    };
    let insecure_hosts = insecure_hosts(env, host)?;
    let insecure = host.is_some_and(|h| h.listed_in(&insecure_hosts, 80));
    let timeout = Duration::from_secs(number(env, "TIMEOUT", 60, 1, 86_400)?);
    let auth_host = match lookup(env, "AUTH_HOST") {
        Some((n, h)) => Some(check_host(&n, &h)?),
        None => None,
    };
    let username = lookup(env, "USERNAME");
    if let Some((n, _)) = username.as_ref().filter(|(_, u)| u.contains(':')) {
        // Basic sends `user:password` (RFC 7617 2): a colon in the user would move the split.
        return Err(Error::config(
            n,
            "a user name cannot contain ':' (Basic authentication splits user and password there)",
        ));
    }
    let username = username.map(|(_, v)| v);
    if password.is_some() && username.is_none() {
        let given = lookup(env, "PASSWORD")
            .or_else(|| lookup(env, "PASSWORD_FILE"))
            .map_or_else(|| "REGTOOL_PASSWORD".to_string(), |(n, _)| n);
        return Err(Error::config(
            &given,
            "set without REGTOOL_USERNAME (or DXF_USERNAME): a password needs a user name",
        )
        .with_hint("set REGTOOL_USERNAME too"));
    }
    let auth = AuthConfig {
        username,
        password,
        authorization: header_value(env, "AUTHORIZATION")?,
        token: header_value(env, "TOKEN")?,
        refresh_token: lookup(env, "REFRESH_TOKEN").map(|(_, v)| v.into()),
        access_token: lookup(env, "ACCESS_TOKEN").map(|(_, v)| v.into()),
        auth_host,
        sources: Some(SharedSource::new(credential_sources(env, timeout))),
        cache_dir: match lookup(env, "CACHE_DIR") {
            Some((n, p)) => Some(private_dir(&n, PathBuf::from(p))?),
            None => directories::ProjectDirs::from("", "", "regtool")
                .map(|d| d.cache_dir().to_path_buf()),
        },
    };
    Ok(Options {
        // The template's host is never used: registry_for gives each registry its own.
        host: host.cloned().unwrap_or_else(Host::localhost),
        insecure,
        insecure_hosts,
        auth,
        tls: TlsOptions::default(),
        chunk_size,
        retries: number(env, "RETRIES", 5, 0, 100)? as u32,
        timeout,
        debug: flag(env, "DEBUG")?,
        jobs,
        log: LogSink::new(Arc::new(Stderr)),
    })
}

/// REGTOOL_INSECURE: a yes/no for `registry` (REGTOOL_HOST) alone, or the list of
/// `host[:port]` allowed plain HTTP.
fn insecure_hosts(env: &dyn Env, registry: Option<&Host>) -> Result<Vec<Host>> {
    let Some((name, value)) = lookup(env, "INSECURE") else {
        return Ok(Vec::new());
    };
    if let Ok(on) = flag(env, "INSECURE") {
        return Ok(registry.filter(|_| on).cloned().into_iter().collect());
    }
    let shown: Vec<String> = value.split(',').map(regtool::oci::host::shown).collect();
    let shown = shown.join(",");
    let bad = || {
        Error::config(
            &name,
            format!(
                "expected 1 or 0 (or true or false), or a comma-separated list of host[:port], got {shown:?}"
            ),
        )
    };
    // A yes/no word the boolean parser does not take is a typo, not a host.
    const WORDS: &[&str] = &["yes", "no", "on", "off", "true", "false", "y", "n"];
    let list = value.contains(',');
    value
        .split(',')
        .map(str::trim)
        .map(|host| {
            if WORDS.iter().any(|w| w.eq_ignore_ascii_case(host)) {
                return Err(bad());
            }
            // A number is a yes/no or a typo, never a host: `2` alone, or the `1` of `1,h`
            // that meant REGTOOL_HOST (which is named by its host in a list).
            if !host.is_empty() && host.bytes().all(|b| b.is_ascii_digit()) {
                if !list {
                    return Err(bad());
                }
                return Err(Error::config(
                    &name,
                    format!("1 alone, or a list of hosts: {host:?} in {shown:?} is no host"),
                )
                .with_hint("to allow REGTOOL_HOST in a list, write its host[:port] there"));
            }
            check_host(&name, host).map_err(|_| bad())
        })
        .collect()
}

/// Where stored credentials are looked for: `$DOCKER_CONFIG/config.json` (else
/// `~/.docker/config.json`), then `$REGISTRY_AUTH_FILE`, then
/// `$XDG_RUNTIME_DIR/containers/auth.json` (docs/registry-notes.md §18).
fn credential_sources(env: &dyn Env, helper_timeout: Duration) -> Sources {
    let docker = match lookup(env, "DOCKER_CONFIG") {
        Some((_, dir)) => Some(PathBuf::from(dir)),
        None => env
            .var("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".docker")),
    };
    let mut auth_files = Vec::new();
    if let Some((_, f)) = lookup(env, "REGISTRY_AUTH_FILE") {
        auth_files.push(PathBuf::from(f));
    }
    if let Some(run) = env.var("XDG_RUNTIME_DIR").filter(|r| !r.is_empty()) {
        auth_files.push(PathBuf::from(run).join("containers/auth.json"));
    }
    Sources {
        docker_config: docker.map(|d| d.join("config.json")),
        auth_files,
        helper_timeout: Some(helper_timeout),
    }
}

/// The default local store: `<data dir>/regtool/store`.
pub fn default_store() -> Result<PathBuf> {
    directories::ProjectDirs::from("", "", "regtool")
        .map(|d| d.data_dir().join("store"))
        .ok_or_else(|| {
            Error::config(
                "REGTOOL_HOST",
                "unset, and no home directory for the default local store",
            )
        })
}

impl Settings {
    pub fn from_env(env: &dyn Env) -> Result<Settings> {
        let jobs = number(env, "JOBS", 4, 1, 64)? as usize;
        let host_setting = host_var(env)?;
        let host = match &host_setting {
            Some((n, v)) if !v.starts_with("oci:") => Some(check_host(n, v)?),
            _ => None,
        };
        let remote = Box::new(registry_options(env, host.as_ref(), jobs)?);
        let tls = tls_files(env)?;
        let location = match host_setting {
            None => Location::Layout {
                root: default_store()?,
                implicit: true,
            },
            Some((_, v)) if v.starts_with("oci:") => {
                let path = &v[4..];
                if path.is_empty() {
                    return Err(Error::config(
                        "REGTOOL_HOST",
                        "oci: needs a path, like oci:/srv/blobs",
                    ));
                }
                Location::Layout {
                    root: PathBuf::from(path),
                    implicit: false,
                }
            }
            Some(_) => Location::Registry(Box::new(Options {
                tls: tls.load()?,
                ..(*remote).clone()
            })),
        };
        let platform = match lookup(env, "PLATFORM") {
            None => None,
            Some((n, v)) => Some(
                v.parse::<Platform>()
                    .map_err(|e| Error::config(&n, e.message))?,
            ),
        };
        // 1 always, 0 never, anything else (unset, auto, yes…) when stderr is a terminal.
        let progress = match lookup(env, "PROGRESS").map(|(n, v)| boolean(&n, &v)) {
            Some(Ok(true)) => Progress::Always,
            Some(Ok(false)) => Progress::Never,
            None | Some(Err(_)) => Progress::Auto,
        };
        let format = match lookup(env, "FORMAT") {
            None => Format::Text,
            Some((_, v)) if v == "json" => Format::Json,
            Some((_, v)) if v == "text" => Format::Text,
            Some((n, v)) => {
                return Err(Error::config(
                    &n,
                    format!("expected json or text, got {v:?}"),
                ));
            }
        };
        let compression = match lookup(env, "COMPRESSION") {
            None => Compression::Gzip,
            Some((n, v)) => Compression::parse(&v).ok_or_else(|| {
                Error::config(&n, format!("expected gzip, zstd or none, got {v:?}"))
            })?,
        };
        let epoch = match lookup(env, "SOURCE_DATE_EPOCH") {
            None => None,
            // reproducible-builds.org: a non-negative integer. A negative one was clamped to
            // 0 by make-layer but written as a 1969 date by append-layer.
            Some((n, v)) => Some(
                v.trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|s| *s >= 0)
                    .ok_or_else(|| {
                        Error::config(&n, format!("expected seconds since 1970, got {v:?}"))
                    })?,
            ),
        };
        let created = epoch.map(regtool::image::append::rfc3339);
        let digest_cache = match lookup(env, "DIGEST_CACHE") {
            Some((n, v)) if !boolean(&n, &v)? => None,
            _ => remote.auth.cache_dir.clone(),
        };
        Ok(Settings {
            location,
            remote,
            tls,
            compression,
            created,
            epoch,
            platform,
            progress,
            blob_info: flag(env, "BLOB_INFO")?,
            jobs,
            format,
            digest_cache,
        })
    }

    /// How to talk to `host`. Everything about REGTOOL_HOST applies to REGTOOL_HOST only:
    /// another registry starts from the defaults, takes the settings that are truly global
    /// (TLS trust, timeout, retries, jobs, chunk size, debug log; proxies come from the
    /// environment anyway) and its own stored credentials. Credentials from the environment
    /// (a client certificate too), REGTOOL_AUTH_HOST, REGTOOL_SKIPTLSVERIFY and plain HTTP
    /// never follow the user to another registry; REGTOOL_INSECURE's list names the hosts
    /// allowed plain HTTP.
    pub fn registry_for(&self, host: &Host) -> Result<Options> {
        let ours = &self.remote;
        if let Location::Registry(r) = &self.location
            && r.host == *host
        {
            return Ok(Options {
                tls: self.tls.load()?,
                ..(**ours).clone()
            });
        }
        Ok(Options {
            insecure: host.listed_in(&ours.insecure_hosts, 80),
            insecure_hosts: ours.insecure_hosts.clone(),
            auth: AuthConfig {
                sources: ours.auth.sources.clone(),
                cache_dir: ours.auth.cache_dir.clone(),
                ..AuthConfig::default()
            },
            tls: self.tls.trust_only()?,
            chunk_size: ours.chunk_size,
            retries: ours.retries,
            timeout: ours.timeout,
            debug: ours.debug,
            jobs: ours.jobs,
            log: ours.log.clone(),
            ..Options::new(host.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use regtool::error::Kind;

    struct Map(HashMap<String, String>);
    impl Env for Map {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }
    fn env(pairs: &[(&str, &str)]) -> Map {
        Map(pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
    fn h(s: &str) -> Host {
        Host::parse(s).unwrap()
    }
    fn registry(s: &Settings) -> &Options {
        match &s.location {
            Location::Registry(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn regtool_names_beat_dxf_names() {
        let s = Settings::from_env(&env(&[
            ("DXF_HOST", "a:5000"),
            ("REGTOOL_HOST", "b:5000"),
            ("DXF_USERNAME", "u"),
        ]))
        .unwrap();
        assert_eq!(registry(&s).host.as_str(), "b:5000");
        assert_eq!(registry(&s).auth.username.as_deref(), Some("u"));
        let s = Settings::from_env(&env(&[("DXF_HOST", "a:5000")])).unwrap();
        assert_eq!(registry(&s).host.as_str(), "a:5000");
    }

    #[test]
    fn regtool_only_variables_have_no_dxf_fallback() {
        let s = Settings::from_env(&env(&[("REGTOOL_HOST", "h"), ("DXF_JOBS", "9")])).unwrap();
        assert_eq!(s.jobs, 4);
    }

    #[test]
    fn hosts_and_layouts() {
        let s = Settings::from_env(&env(&[("REGTOOL_HOST", "oci:/srv/x")])).unwrap();
        assert_eq!(
            s.location,
            Location::Layout {
                root: "/srv/x".into(),
                implicit: false
            }
        );
        for good in [
            "localhost",
            "127.0.0.1:5000",
            "[::1]:5000",
            "reg.example.com",
        ] {
            assert!(
                Settings::from_env(&env(&[("REGTOOL_HOST", good)])).is_ok(),
                "{good}"
            );
        }
        for bad in ["http://h", "h:0", "h:99999", "h:x", "[::1", "a b", "oci:"] {
            let e = Settings::from_env(&env(&[("REGTOOL_HOST", bad)])).unwrap_err();
            assert_eq!(e.kind, Kind::Config, "{bad}");
            assert!(e.message.starts_with("REGTOOL_HOST: "), "{}", e.message);
        }
    }

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("8M"), Some(8 << 20));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size("1048576"), Some(1048576));
        for bad in ["", "0", "M", "8X", "-1", "1.5M", "99999999999999999999G"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, val) in [
            ("REGTOOL_CHUNK_SIZE", "lots"),
            ("REGTOOL_CHUNK_SIZE", "10G"),
            ("DXF_CHUNK_SIZE", "1025M"),
            ("REGTOOL_JOBS", "0"),
            ("REGTOOL_RETRIES", "x"),
            ("REGTOOL_TIMEOUT", "0"),
            ("REGTOOL_INSECURE", "yes"),
            ("REGTOOL_USERNAME", "u:"),
            ("REGTOOL_INSECURE", "2"),
            ("REGTOOL_FORMAT", "xml"),
            ("DXF_PLATFORM", "linux"),
            ("REGTOOL_PASSWORD_FILE", "/nonexistent/pw"),
        ] {
            let e = Settings::from_env(&env(&[("REGTOOL_HOST", "h"), (var, val)])).unwrap_err();
            assert_eq!(e.kind, Kind::Config);
            assert!(e.message.starts_with(&format!("{var}: ")), "{}", e.message);
        }
    }

    #[test]
    fn an_empty_host_is_refused_not_the_local_store() {
        for var in ["REGTOOL_HOST", "DXF_HOST"] {
            let e = Settings::from_env(&env(&[(var, "")])).unwrap_err();
            assert_eq!(e.kind, Kind::Config);
            assert_eq!(e.message, format!("{var}: set but empty"));
        }
        // Unset is still the local store.
        let s = Settings::from_env(&env(&[])).unwrap();
        assert!(matches!(
            s.location,
            Location::Layout { implicit: true, .. }
        ));
    }

    #[test]
    fn ipv6_needs_brackets_and_a_trailing_slash_is_forgiven() {
        for bare in ["::1", "::1:5000", "fe80::1"] {
            let e = Settings::from_env(&env(&[("REGTOOL_HOST", bare)])).unwrap_err();
            assert_eq!(e.kind, Kind::Config, "{bare}");
            assert!(e.message.contains("without brackets"), "{}", e.message);
            assert!(e.hint.unwrap().contains("[::1]:5000"));
        }
        let s = Settings::from_env(&env(&[("REGTOOL_HOST", "reg.example:5000/")])).unwrap();
        assert_eq!(registry(&s).host.as_str(), "reg.example:5000");
        assert_eq!(s.remote.host.as_str(), "reg.example:5000");
    }

    #[test]
    fn a_password_needs_a_user_name() {
        for var in ["REGTOOL_PASSWORD", "DXF_PASSWORD"] {
            let e = Settings::from_env(&env(&[("REGTOOL_HOST", "h"), (var, "pw")])).unwrap_err();
            assert_eq!(e.kind, Kind::Config);
            assert!(e.message.starts_with(&format!("{var}: ")), "{}", e.message);
            assert!(e.message.contains("REGTOOL_USERNAME"), "{}", e.message);
        }
        assert!(
            Settings::from_env(&env(&[
                ("REGTOOL_HOST", "h"),
                ("REGTOOL_PASSWORD", "pw"),
                ("DXF_USERNAME", "u"),
            ]))
            .is_ok()
        );
    }

    #[test]
    fn header_variables_refuse_control_characters() {
        for var in [
            "REGTOOL_TOKEN",
            "REGTOOL_AUTHORIZATION",
            "DXF_AUTHORIZATION",
        ] {
            let e = Settings::from_env(&env(&[("REGTOOL_HOST", "h"), (var, "abc\n")])).unwrap_err();
            assert_eq!(e.kind, Kind::Config);
            assert!(e.message.starts_with(&format!("{var}: ")), "{}", e.message);
        }
        let s = Settings::from_env(&env(&[
            ("REGTOOL_HOST", "h"),
            ("REGTOOL_AUTHORIZATION", "Basic\tabc=="),
        ]))
        .unwrap();
        assert!(registry(&s).auth.authorization.is_some());
    }

    #[test]
    fn booleans_accept_what_the_message_says() {
        let e = Settings::from_env(&env(&[("REGTOOL_HOST", "h"), ("REGTOOL_DEBUG", "yes")]))
            .unwrap_err();
        assert_eq!(
            e.message,
            "REGTOOL_DEBUG: expected 1 or 0 (or true or false), got \"yes\""
        );
        for (v, want) in [
            ("1", true),
            ("true", true),
            ("TRUE", true),
            ("0", false),
            ("false", false),
        ] {
            let s =
                Settings::from_env(&env(&[("REGTOOL_HOST", "h"), ("REGTOOL_DEBUG", v)])).unwrap();
            assert_eq!(registry(&s).debug, want, "{v}");
            let s = Settings::from_env(&env(&[("REGTOOL_PROGRESS", v)])).unwrap();
            let p = if want {
                Progress::Always
            } else {
                Progress::Never
            };
            assert_eq!(s.progress, p, "{v}");
        }
        // Anything else means "when stderr is a terminal", never a configuration error.
        for v in ["auto", "yes", "2", ""] {
            let s = Settings::from_env(&env(&[("REGTOOL_PROGRESS", v)])).unwrap();
            assert_eq!(s.progress, Progress::Auto, "{v}");
        }
    }

    #[test]
    fn the_digest_cache_is_on_by_default_in_the_cache_dir_and_off_with_0() {
        let with = |v: &str| {
            Settings::from_env(&env(&[
                ("REGTOOL_CACHE_DIR", "/c"),
                ("REGTOOL_DIGEST_CACHE", v),
            ]))
        };
        for v in ["", "1", "true", "TRUE"] {
            assert_eq!(with(v).unwrap().digest_cache, Some("/c".into()), "{v}");
        }
        for v in ["0", "false", "False"] {
            assert_eq!(with(v).unwrap().digest_cache, None, "{v}");
        }
        let e = with("no").err().unwrap();
        assert_eq!(e.kind, regtool::error::Kind::Config);
        assert_eq!(
            e.message,
            "REGTOOL_DIGEST_CACHE: expected 1 or 0 (or true or false), got \"no\""
        );
    }

    #[test]
    fn a_host_is_refused_without_showing_credentials_and_with_the_right_reason() {
        for (host, message, hint) in [
            (
                "fred:hunter2@127.0.0.1:5000",
                "REGTOOL_HOST: credentials in the host in \"…@127.0.0.1:5000\"",
                "give them in REGTOOL_USERNAME and REGTOOL_PASSWORD, not in REGTOOL_HOST",
            ),
            (
                "https://fred:hunter2@reg.example",
                "REGTOOL_HOST: credentials in the host in \"…@reg.example\"",
                "give them in REGTOOL_USERNAME and REGTOOL_PASSWORD, not in REGTOOL_HOST",
            ),
            (
                "http://h:5000",
                "REGTOOL_HOST: a URL scheme in \"http://h:5000\"",
                "drop the scheme: REGTOOL_HOST takes host[:port]; for plain HTTP set REGTOOL_INSECURE=1",
            ),
            (
                "https://h",
                "REGTOOL_HOST: a URL scheme in \"https://h\"",
                "drop the scheme: REGTOOL_HOST takes host[:port]",
            ),
            (
                "h:5000/v2",
                "REGTOOL_HOST: a path in \"h:5000/v2\"",
                "drop the path: REGTOOL_HOST takes host[:port] only",
            ),
        ] {
            let e = Settings::from_env(&env(&[("REGTOOL_HOST", host)])).unwrap_err();
            assert_eq!(e.kind, Kind::Config, "{host}");
            assert!(e.message.starts_with(message), "{}", e.message);
            assert!(!e.message.contains("hunter2"), "{}", e.message);
            assert_eq!(e.hint.as_deref(), Some(hint), "{host}");
        }
        let e = Settings::from_env(&env(&[
            ("REGTOOL_HOST", "h"),
            ("REGTOOL_INSECURE", "fred:hunter2@h,x"),
        ]))
        .unwrap_err();
        assert!(!e.message.contains("hunter2"), "{}", e.message);
    }

    #[test]
    fn a_user_name_with_a_colon_is_refused() {
        let e = Settings::from_env(&env(&[("REGTOOL_HOST", "h"), ("REGTOOL_USERNAME", "u:")]))
            .unwrap_err();
        assert_eq!(e.kind, Kind::Config);
        assert_eq!(
            e.message,
            "REGTOOL_USERNAME: a user name cannot contain ':' (Basic authentication splits user \
             and password there)"
        );
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let s = Settings::from_env(&env(&[
            ("REGTOOL_HOST", "h"),
            ("REGTOOL_USERNAME", "fred"),
            ("REGTOOL_PASSWORD", "secret-password"),
            ("REGTOOL_AUTHORIZATION", "Basic secret-authorization"),
            ("REGTOOL_TOKEN", "secret-token"),
            ("REGTOOL_REFRESH_TOKEN", "secret-refresh"),
            ("REGTOOL_ACCESS_TOKEN", "secret-access"),
        ]))
        .unwrap();
        let text = format!(
            "{s:?} {:?} {:?}",
            s.remote,
            s.registry_for(&h("other")).unwrap()
        );
        assert!(text.contains("fred"), "{text}");
        assert!(!text.contains("secret-"), "{text}");
    }

    #[test]
    fn insecure_is_for_registry_host_or_a_list() {
        let insecure = |value: &str, host: &str| {
            let s = Settings::from_env(&env(&[
                ("REGTOOL_HOST", "reg.example:5000"),
                ("REGTOOL_INSECURE", value),
            ]))
            .unwrap();
            s.registry_for(&h(host)).unwrap().insecure
        };
        for on in ["1", "true"] {
            assert!(insecure(on, "reg.example:5000"), "{on}");
            assert!(!insecure(on, "other.example"), "{on}");
        }
        assert!(!insecure("0", "reg.example:5000"));
        let list = "Other.example, reg.example:5000,[::2]:81";
        assert!(insecure(list, "reg.example:5000"));
        assert!(insecure(list, "other.example:1234"), "no port: any port");
        assert!(insecure(list, "[::2]:81"));
        assert!(!insecure(list, "[::2]:82"));
        assert!(!insecure("reg.example:5001", "reg.example:5000"));
        for bad in ["yes", "a b", "h,", "http://h", "h:0", "off,h", "2", "01"] {
            let e = Settings::from_env(&env(&[("REGTOOL_HOST", "h"), ("REGTOOL_INSECURE", bad)]))
                .unwrap_err();
            assert_eq!(e.kind, Kind::Config, "{bad}");
            assert!(
                e.message.starts_with(
                    "REGTOOL_INSECURE: expected 1 or 0 (or true or false), or a comma"
                ),
                "{}",
                e.message
            );
        }
        for list in ["1,myreg", "myreg,0", "1,2"] {
            let e = Settings::from_env(&env(&[("REGTOOL_HOST", "h"), ("REGTOOL_INSECURE", list)]))
                .unwrap_err();
            assert_eq!(e.kind, Kind::Config, "{list}");
            assert!(
                e.message
                    .starts_with("REGTOOL_INSECURE: 1 alone, or a list of hosts: "),
                "{}",
                e.message
            );
            assert!(e.hint.is_some());
        }
    }

    #[test]
    fn other_registries_start_from_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, TEST_CA).unwrap();
        let s = Settings::from_env(&env(&[
            ("REGTOOL_HOST", "reg.example"),
            ("REGTOOL_INSECURE", "1"),
            ("REGTOOL_AUTH_HOST", "auth.example"),
            ("REGTOOL_USERNAME", "fred"),
            ("REGTOOL_PASSWORD", "pw"),
            ("REGTOOL_TOKEN", "t"),
            ("REGTOOL_AUTHORIZATION", "Basic x"),
            ("REGTOOL_SKIPTLSVERIFY", "1"),
            ("REGTOOL_TLSVERIFY", ca.to_str().unwrap()),
            ("REGTOOL_TIMEOUT", "7"),
            ("REGTOOL_RETRIES", "2"),
            ("REGTOOL_JOBS", "3"),
            ("REGTOOL_CHUNK_SIZE", "1M"),
            ("REGTOOL_CACHE_DIR", "/c"),
            ("DOCKER_CONFIG", "/d"),
        ]))
        .unwrap();
        let ours = s.registry_for(&h("reg.example")).unwrap();
        assert_eq!(&ours, registry(&s));
        // Host names are case-insensitive (RFC 3986 section 3.2.2).
        assert_eq!(s.registry_for(&h("REG.example")).unwrap().auth, ours.auth);
        assert!(ours.insecure && ours.tls.skip_verify);
        let other = s.registry_for(&h("other.example")).unwrap();
        let mut expected = Options::new(h("other.example"));
        expected.insecure_hosts = vec![h("reg.example")];
        expected.auth.sources = ours.auth.sources.clone();
        expected.auth.cache_dir = Some("/c".into());
        expected.tls.extra_roots = ours.tls.extra_roots.clone();
        (expected.timeout, expected.retries, expected.jobs) = (Duration::from_secs(7), 2, 3);
        expected.chunk_size = Some(1 << 20);
        expected.log = ours.log.clone();
        assert_eq!(other, expected);
        assert_eq!(other.tls.extra_roots.len(), 1);
    }

    /// A self-signed certificate, only to be parsed.
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBjzCCATWgAwIBAgIUaG+m74qetsA5sx36mJJ2EKJ7TcQwCgYIKoZIzj0EAwIw\n\
HDEaMBgGA1UEAwwRcmVndG9vbC11bml0LXRlc3QwIBcNMjYxMTIzMTgyNjAxWhgP\n\
MjEyNjEwMzAxODI2MDFaMBwxGjAYBgNVBAMMEXJlZ3Rvb2wtdW5pdC10ZXN0MFkw\n\
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2dU13znQg1QREQsk524lEo/mX1bUN6Kv\n\
hALv+yFuq9t2p6EmNL3ZwAsACJEje/fW98ZermXwrsceRm8T2k9iiaNTMFEwHQYD\n\
VR0OBBYEFN2gLITVXPJoAsD1XJ136dG20SpPMB8GA1UdIwQYMBaAFN2gLITVXPJo\n\
AsD1XJ136dG20SpPMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIg\n\
S1J9BSbwR5N2rQo/4udlIW86ECKQfZpiyBi8HUp/awYCIQDbQrOz+Y/xfz10f2Mq\n\
iXgkfPN0hn5pV9uBM5U/S/S7wQ==\n\
-----END CERTIFICATE-----\n\
";

    #[test]
    fn password_file_is_read_without_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let s = Settings::from_env(&env(&[
            ("REGTOOL_HOST", "h"),
            ("REGTOOL_USERNAME", "u"),
            ("REGTOOL_PASSWORD_FILE", path.to_str().unwrap()),
        ]))
        .unwrap();
        assert_eq!(
            registry(&s).auth.password.as_ref().map(Secret::expose),
            Some("s3cret")
        );
    }
}
