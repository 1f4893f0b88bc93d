//! Bearer tokens and their cache: in memory for the process, and on disk (one JSON file in
//! REGTOOL_CACHE_DIR or the user's cache directory, mode 0600, replaced atomically) so that the
//! next process neither asks the token server again nor pays a 401 round trip to learn the
//! realm (PROTOCOL.md rule 16). Entries are keyed by registry, realm, service, identity and
//! scope; expired ones are dropped when the file is written.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Where a registry sends clients for tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Realm {
    pub realm: String,
    #[serde(default)]
    pub service: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Token {
    pub token: Secret,
    /// Seconds since the epoch.
    pub expires: f64,
    /// Seconds the token was issued for, to renew it ahead of time in proportion.
    #[serde(default)]
    pub lifetime: f64,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Token {
    pub fn new(token: Secret, lifetime: Duration) -> Token {
        let lifetime = lifetime.as_secs_f64();
        Token {
            token,
            expires: now() + lifetime,
            lifetime,
        }
    }

    /// Still good for a while: renewed when less than a fifth of its life (at most 30 s) is
    /// left, so that a long transfer's next request never carries a token about to expire.
    pub fn fresh(&self) -> bool {
        let margin = (self.lifetime / 5.0).min(30.0);
        self.expires - margin > now()
    }
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    #[serde(default)]
    realms: HashMap<String, Realm>,
    #[serde(default)]
    tokens: HashMap<String, Token>,
}

pub struct Cache {
    path: Option<PathBuf>,
    mem: Mutex<Option<File>>,
}

impl Cache {
    /// A cache persisted in `dir` (None: memory only).
    pub fn new(dir: Option<PathBuf>) -> Cache {
        Cache {
            path: dir.map(|d| d.join("tokens.json")),
            mem: Mutex::new(None),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut File) -> T) -> T {
        let mut guard = match self.mem.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let file = guard.get_or_insert_with(|| {
            self.path
                .as_ref()
                .and_then(|p| std::fs::read(p).ok())
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default()
        });
        f(file)
    }

    pub fn realm(&self, host: &str) -> Option<Realm> {
        self.with(|f| f.realms.get(host).cloned())
    }

    pub fn token(&self, key: &str) -> Option<Token> {
        self.with(|f| f.tokens.get(key).filter(|t| t.fresh()).cloned())
    }

    pub fn forget(&self, key: &str) {
        self.with(|f| f.tokens.remove(key));
    }

    pub fn put(&self, host: &str, realm: &Realm, key: &str, token: Token) {
        let snapshot = self.with(|f| {
            f.realms.insert(host.to_string(), realm.clone());
            f.tokens.insert(key.to_string(), token);
            f.tokens.retain(|_, t| t.expires > now());
            serde_json::to_vec(&*f).ok()
        });
        if let (Some(path), Some(bytes)) = (&self.path, snapshot) {
            // A cache that cannot be written costs a token request next time, nothing more.
            let _ = write_private(path, &bytes);
        }
    }
}

/// Writes a file only the user can read (0600, in a 0700 directory), atomically.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tokens-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_survive_the_process_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let realm = Realm {
            realm: "https://auth/token".into(),
            service: Some("reg".into()),
        };
        Cache::new(Some(dir.path().join("c"))).put(
            "h:5000",
            &realm,
            "k",
            Token::new("tok".into(), Duration::from_secs(300)),
        );
        let again = Cache::new(Some(dir.path().join("c")));
        assert_eq!(again.token("k").unwrap().token.expose(), "tok");
        assert_eq!(again.realm("h:5000"), Some(realm));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("c/tokens.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn tokens_near_expiry_are_not_fresh() {
        assert!(Token::new("t".into(), Duration::from_secs(60)).fresh());
        let mut t = Token::new("t".into(), Duration::from_secs(10));
        t.expires -= 9.0;
        assert!(!t.fresh());
    }
}
