//! Bearer tokens and their cache: in memory for the process, and on disk (one JSON file in
//! the cache directory the caller gives, mode 0600, replaced atomically) so that the
//! next process neither asks the token server again nor pays a 401 round trip to learn the
//! realm (docs/registry-notes.md §16). Entries are keyed by registry, realm, service, identity and
//! scope; expired ones are dropped when the file is written.
//!
//! Many processes share the file (a script running eight pushes at once): readers never lock
//! (the file is only ever replaced whole, by a rename), and a writer holds a lock on
//! `tokens.lock` only while it reads the file again, adds its one entry and renames the new
//! file into place, so that no process's entry is lost to another's write. In a process,
//! lookups share a read lock; only the first load and a change take it alone. The identity is an HMAC of the
//! credentials under a random key kept beside the cache (`key`, 0600), so that the file gives
//! nobody a way to test password guesses offline, as a plain hash of them would.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{OnceLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::registry::scope::Scope;
use crate::secret::Secret;

/// Where a registry sends clients for tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Realm {
    /// The token server's URL.
    pub realm: String,
    /// The `service` to ask it for.
    #[serde(default)]
    pub service: Option<String>,
}

/// A bearer token and when it expires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Token {
    /// The token itself.
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
    /// `token`, valid for `lifetime` from now.
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

/// The token cache: in memory, and in a file when a directory is given.
pub struct Cache {
    path: Option<PathBuf>,
    mem: RwLock<Option<File>>,
    /// None when the system has no random numbers to give: names are then plain hashes,
    /// and nothing that carries them is written to disk.
    key: OnceLock<Option<ring::hmac::Key>>,
}

impl Cache {
    /// A cache persisted in `dir` (None: memory only).
    pub fn new(dir: Option<PathBuf>) -> Cache {
        Cache {
            path: dir.map(|d| d.join("tokens.json")),
            mem: RwLock::new(None),
            key: OnceLock::new(),
        }
    }

    /// A name for `credentials` in cache keys: an HMAC-SHA256 under this cache's key.
    pub fn identity(&self, credentials: &[u8]) -> String {
        let key = self.key.get_or_init(|| {
            let bytes = self
                .path
                .as_deref()
                .and_then(std::path::Path::parent)
                .and_then(|dir| shared_key(dir).ok())
                // No usable directory: a key for this process, as its cache is memory only.
                .or_else(random_key)?;
            Some(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes))
        });
        match key {
            Some(key) => hex::encode(&ring::hmac::sign(key, credentials).as_ref()[..16]),
            None => hex::encode(
                &ring::digest::digest(&ring::digest::SHA256, credentials).as_ref()[..16],
            ),
        }
    }

    /// Whether entries may be written to disk: not when their names are plain hashes.
    fn keyed(&self) -> bool {
        self.key.get().is_none_or(Option::is_some)
    }

    fn load(&self) -> File {
        self.path.as_deref().map(read_file).unwrap_or_default()
    }

    /// Runs `f` on the entries, loading them on first use; lookups share the lock.
    fn read<T>(&self, f: impl FnOnce(&File) -> T) -> T {
        {
            let guard = match self.mem.read() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some(file) = guard.as_ref() {
                return f(file);
            }
        }
        self.write(|file| f(file))
    }

    /// Runs `f` on the entries alone (loading them on first use).
    fn write<T>(&self, f: impl FnOnce(&mut File) -> T) -> T {
        let mut guard = match self.mem.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let file = guard.get_or_insert_with(|| self.load());
        f(file)
    }

    /// The realm `host` sent clients to last time.
    pub fn realm(&self, host: &str) -> Option<Realm> {
        self.read(|f| f.realms.get(host).cloned())
    }

    /// The unexpired token under `key`.
    pub fn token(&self, key: &str) -> Option<Token> {
        // An entry that cannot go in a header (written by an older version) is dropped.
        self.read(|f| {
            f.tokens
                .get(key)
                .filter(|t| t.fresh() && super::protocol::header_safe(t.token.expose()))
                .cloned()
        })
    }

    /// Drops the token under `key` (the registry refused it), here and on disk, where the
    /// next process would otherwise try it again.
    pub fn forget(&self, key: &str) {
        let Some(refused) = self.write(|f| f.tokens.remove(key)) else {
            return;
        };
        self.update_disk(|disk| {
            if disk
                .tokens
                .get(key)
                .is_some_and(|t| t.token.expose() == refused.token.expose())
            {
                disk.tokens.remove(key);
            }
        });
    }

    /// Keeps `token` under `key`, and `realm` as `host`'s.
    pub fn put(&self, host: &str, realm: &Realm, key: &str, token: Token) {
        let add = |f: &mut File| {
            f.realms.insert(host.to_string(), realm.clone());
            f.tokens.insert(key.to_string(), token.clone());
        };
        self.write(add);
        self.update_disk(add);
    }

    /// Applies `change` to the file as it is on disk now (another process may have added
    /// entries since this one read it), under the writers' lock, and drops expired entries.
    /// A cache that cannot be written costs a token request next time, nothing more.
    fn update_disk(&self, change: impl FnOnce(&mut File)) {
        let (Some(path), true) = (&self.path, self.keyed()) else {
            return;
        };
        let _ = (|| -> std::io::Result<()> {
            let _lock = writers_lock(path)?;
            let mut disk = read_file(path);
            change(&mut disk);
            disk.tokens.retain(|_, t| t.expires > now());
            write_private(
                path,
                &serde_json::to_vec(&disk).map_err(std::io::Error::other)?,
            )
        })();
    }
}

/// The entries of the file at `path` (none when it is missing or unreadable).
fn read_file(path: &std::path::Path) -> File {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The lock writers of the file at `path` take (`flock` on a file beside it, 0600), held
/// until the returned file is dropped. Readers never take it.
fn writers_lock(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path.with_extension("lock"))?;
    file.lock()?;
    Ok(file)
}

/// The cache key of the tokens for `scope` at `realm`, for the registry `host` and the
/// (keyed-hash) `identity` they are for.
pub fn key(host: &str, realm: &Realm, identity: &str, scope: &Scope) -> String {
    format!(
        "{host}|{}|{}|{identity}|{scope}",
        realm.realm,
        realm.service.as_deref().unwrap_or("")
    )
}

const KEY_LEN: usize = 32;

fn random_key() -> Option<[u8; KEY_LEN]> {
    use ring::rand::SecureRandom;
    let mut key = [0; KEY_LEN];
    ring::rand::SystemRandom::new().fill(&mut key).ok()?;
    Some(key)
}

/// The cache's key in `dir/key`, made on first use. Concurrent processes agree on one: each
/// writes a complete candidate to a temporary file and links it into place only if no key
/// is there yet (never replacing one), and whoever loses reads the winner's.
fn shared_key(dir: &std::path::Path) -> std::io::Result<[u8; KEY_LEN]> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let path = dir.join("key");
    let read = || std::fs::read(&path).ok().and_then(|b| b.try_into().ok());
    if let Some(key) = read() {
        return Ok(key);
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let key = random_key().ok_or_else(|| std::io::Error::other("no random numbers"))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".key-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    tmp.write_all(&key)?;
    match tmp.persist_noclobber(&path) {
        Ok(_) => Ok(key),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => match read() {
            Some(theirs) => Ok(theirs),
            // Not a key (truncated by hand, say): ours replaces it; tokens cached under the
            // old one are orphaned, which costs a token request.
            None => e.file.persist(&path).map(|_| key).map_err(|e| e.error),
        },
        Err(e) => Err(e.error),
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
    fn identities_are_keyed_by_a_private_random_key_shared_by_concurrent_caches() {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("c");
        let names: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| Cache::new(Some(cache_dir.clone())).identity(b"user:fred")))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(names.iter().all(|n| n == &names[0]), "{names:?}");
        assert_eq!(names[0].len(), 32);
        // Not a plain hash of the credentials, which a stolen cache file would let anyone test
        // guesses against.
        let plain = crate::oci::Digest::sha256(b"user:fred").hex().to_string();
        assert!(!plain.contains(&names[0][..16]));
        use std::os::unix::fs::PermissionsExt;
        let key = cache_dir.join("key");
        assert_eq!(std::fs::read(&key).unwrap().len(), KEY_LEN);
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Another cache has another key; a broken key file is replaced.
        let other = Cache::new(Some(dir.path().join("d"))).identity(b"user:fred");
        assert_ne!(other, names[0]);
        std::fs::write(&key, b"short").unwrap();
        let renewed = Cache::new(Some(cache_dir.clone())).identity(b"user:fred");
        assert_ne!(renewed, names[0]);
        assert_eq!(std::fs::read(&key).unwrap().len(), KEY_LEN);
        assert_eq!(Cache::new(Some(cache_dir)).identity(b"user:fred"), renewed);
    }

    #[test]
    fn concurrent_writers_lose_no_entry() {
        // Eight caches (as eight processes would) each add their own tokens to one file at
        // once: every entry is there at the end, none lost to another's rename.
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("c");
        let realm = Realm {
            realm: "https://auth/token".into(),
            service: None,
        };
        std::thread::scope(|s| {
            for w in 0..8 {
                let (cache_dir, realm) = (cache_dir.clone(), realm.clone());
                s.spawn(move || {
                    let cache = Cache::new(Some(cache_dir));
                    for i in 0..10 {
                        let token =
                            Token::new(format!("t{w}-{i}").into(), Duration::from_secs(300));
                        cache.put("h", &realm, &format!("k{w}-{i}"), token);
                    }
                });
            }
        });
        let again = Cache::new(Some(cache_dir.clone()));
        for w in 0..8 {
            for i in 0..10 {
                let t = again.token(&format!("k{w}-{i}"));
                assert_eq!(
                    t.map(|t| t.token.expose().to_string()),
                    Some(format!("t{w}-{i}"))
                );
            }
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cache_dir.join("tokens.lock"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A token the registry refused is dropped from the file too, and only that one.
        again.forget("k3-3");
        let third = Cache::new(Some(cache_dir));
        assert!(third.token("k3-3").is_none());
        assert!(third.token("k3-4").is_some());
    }

    #[test]
    fn tokens_near_expiry_are_not_fresh() {
        assert!(Token::new("t".into(), Duration::from_secs(60)).fresh());
        let mut t = Token::new("t".into(), Duration::from_secs(10));
        t.expires -= 9.0;
        assert!(!t.fresh());
    }
}
