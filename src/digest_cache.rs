//! The digest cache for files: a file pushed again is not read again when its stat says it
//! has not changed since it was hashed. The rule is git's index (racy-git): an entry is keyed
//! by the file's path, device, inode, size, mtime and ctime (nanoseconds), and an entry written
//! in the same second as the file's mtime (or earlier) is "racy" and not trusted, because a
//! file system with coarse timestamps could see the file written again in that second without
//! its stat changing.
//!
//! On disk (a directory the caller gives; the binary passes the token cache's): 256 shard
//! files `digests/00`..`digests/ff`, chosen by the hash of the path, each at most
//! [`PER_SHARD`] lines (the oldest written goes first), so the cache holds at most 16 384
//! files in about 4 MiB. Files are 0600 in a 0700 directory. A shard is read, merged and
//! replaced atomically (a temporary file renamed over it) with no lock: processes writing the
//! same shard at once may lose one of their entries (that file is hashed again next time),
//! never corrupt one, and never wait for each other. A line that does not parse is dropped.
//!
//! A part of a file has entries of its own: [`Stamp::part`] keys a part (a docker archive's
//! layer: its offset, size and the compression asked for) by the file's stamp and the part's
//! name, and such an entry also holds the size of the blob the part gives
//! ([`DigestCache::get_blob`]): the compressed layer's digest and size, so that an archive
//! pushed again is not compressed again.
//!
//! An entry is trusted, never proven: the registry verifies the digest of every blob uploaded
//! to it, so a wrong entry (a file changed in a way its stat does not show) fails its upload,
//! and the caller then forgets the entry and hashes the file ([`DigestCache::forget`]). Paths
//! are not stored, only their SHA-256.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::oci::Digest;

/// Most entries in one shard: 256 × 64 = 16 384 files in all.
pub const PER_SHARD: usize = 64;

/// Files smaller than this are not cached: hashing them costs about what reading and
/// writing a shard does.
pub const MIN_SIZE: u64 = 64 * 1024;

/// What identifies a file's content without reading it: its path and its stat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// The first 128 bits of the SHA-256 of the absolute path, in hex.
    path: String,
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i128,
    ctime: i128,
}

impl Stamp {
    /// The stamp of the file at `path` whose metadata is `meta` (from the open file).
    pub fn new(path: &Path, meta: &std::fs::Metadata) -> Stamp {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let hash = Digest::sha256(absolute.as_os_str().as_bytes());
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Stamp {
            path: hash.hex()[..32].to_string(),
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime: ns(meta.mtime(), meta.mtime_nsec()),
            ctime: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// The stamp of a part of the file, named `part` (say, a member's offset and size and
    /// how it is compressed): the same stat, keyed by the path and the part.
    pub fn part(&self, part: &str) -> Stamp {
        let key = Digest::sha256(format!("{} {part}", self.path).as_bytes());
        Stamp {
            path: key.hex()[..32].to_string(),
            ..self.clone()
        }
    }

    /// The file's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether the file's content is unchanged by its stat: same file, size and mtime. The
    /// ctime is left out: removing or renaming the file changes it.
    pub fn same_content(&self, other: &Stamp) -> bool {
        (self.dev, self.ino, self.size, self.mtime)
            == (other.dev, other.ino, other.size, other.mtime)
    }

    /// Whether the file is worth caching (see [`MIN_SIZE`]).
    pub fn worth_caching(&self) -> bool {
        self.size >= MIN_SIZE
    }
}

/// One line of a shard: the stamp, when it was written (ns since the epoch), the digest, and
/// for a part, the size of its blob.
struct Entry {
    stamp: Stamp,
    written: i128,
    digest: Digest,
    blob_size: Option<u64>,
}

impl Entry {
    fn parse(line: &str) -> Option<Entry> {
        let f: Vec<&str> = line.split(' ').collect();
        let (fields, blob_size) = match f.as_slice() {
            [fields @ .., last] if f.len() == 9 => (fields, Some(last.parse().ok()?)),
            fields => (fields, None),
        };
        let [path, dev, ino, size, mtime, ctime, written, digest] = fields else {
            return None;
        };
        if path.len() != 32 || !path.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(Entry {
            stamp: Stamp {
                path: path.to_string(),
                dev: dev.parse().ok()?,
                ino: ino.parse().ok()?,
                size: size.parse().ok()?,
                mtime: mtime.parse().ok()?,
                ctime: ctime.parse().ok()?,
            },
            written: written.parse().ok()?,
            digest: digest.parse().ok()?,
            blob_size,
        })
    }

    fn line(&self) -> String {
        let s = &self.stamp;
        let blob_size = self.blob_size.map(|n| format!(" {n}")).unwrap_or_default();
        format!(
            "{} {} {} {} {} {} {} {}{blob_size}\n",
            s.path, s.dev, s.ino, s.size, s.mtime, s.ctime, self.written, self.digest
        )
    }

    /// Racy (git's rule): the file's mtime is not in an earlier second than the entry was
    /// written, so the file may have changed after it was hashed with nothing in its stat
    /// to show it.
    fn racy(&self) -> bool {
        self.stamp.mtime.div_euclid(1_000_000_000) >= self.written.div_euclid(1_000_000_000)
    }
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// The digest cache in a directory.
pub struct DigestCache {
    dir: PathBuf,
}

impl DigestCache {
    /// The cache kept in `dir` (its `digests` subdirectory; created when first written).
    pub fn new(dir: &Path) -> DigestCache {
        DigestCache {
            dir: dir.join("digests"),
        }
    }

    fn shard(&self, stamp: &Stamp) -> PathBuf {
        self.dir.join(&stamp.path[..2])
    }

    fn read(&self, stamp: &Stamp) -> Vec<Entry> {
        std::fs::read_to_string(self.shard(stamp))
            .unwrap_or_default()
            .lines()
            .filter_map(Entry::parse)
            .collect()
    }

    /// The entry that matches `stamp` exactly and is not racy.
    fn lookup(&self, stamp: &Stamp) -> Option<Entry> {
        self.read(stamp)
            .into_iter()
            .find(|e| e.stamp == *stamp && !e.racy())
    }

    /// The digest of the file, if an entry matches its stamp exactly and is not racy.
    pub fn get(&self, stamp: &Stamp) -> Option<Digest> {
        self.lookup(stamp).map(|e| e.digest)
    }

    /// The digest and size of the blob a part gives (see [`Stamp::part`]), if an entry
    /// matches its stamp exactly, is not racy and has a size.
    pub fn get_blob(&self, stamp: &Stamp) -> Option<(Digest, u64)> {
        let entry = self.lookup(stamp)?;
        Some((entry.digest, entry.blob_size?))
    }

    /// Records the digest of the file (hashed while its stat was `stamp`). Failing to write
    /// is no error: the file is hashed again next time.
    pub fn put(&self, stamp: &Stamp, digest: &Digest) {
        self.record(stamp, digest, None);
    }

    /// Records the digest and size of the blob a part gives (made while the file's stat was
    /// the one `stamp` was made from).
    pub fn put_blob(&self, stamp: &Stamp, digest: &Digest, size: u64) {
        self.record(stamp, digest, Some(size));
    }

    fn record(&self, stamp: &Stamp, digest: &Digest, blob_size: Option<u64>) {
        let entry = Entry {
            stamp: stamp.clone(),
            written: now_ns(),
            digest: digest.clone(),
            blob_size,
        };
        self.update(stamp, Some(entry));
    }

    /// Drops the entry of the file (its digest proved wrong).
    pub fn forget(&self, stamp: &Stamp) {
        self.update(stamp, None);
    }

    /// Replaces the shard with its entries for other paths (the newest [`PER_SHARD`] of
    /// them, counting `entry`) and `entry`.
    fn update(&self, stamp: &Stamp, entry: Option<Entry>) {
        let mut entries = self.read(stamp);
        entries.retain(|e| e.stamp.path != stamp.path);
        if entry.is_none() && entries.is_empty() && !self.shard(stamp).exists() {
            return;
        }
        entries.extend(entry);
        entries.sort_by_key(|e| std::cmp::Reverse(e.written));
        entries.truncate(PER_SHARD);
        let text: String = entries.iter().map(Entry::line).collect();
        let _ = self.write(&self.shard(stamp), text.as_bytes());
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".digests-")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(&self.dir)?;
        tmp.write_all(bytes)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, len: usize, mtime: SystemTime) -> (PathBuf, Stamp) {
        let path = dir.join(name);
        std::fs::write(&path, vec![7u8; len]).unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(mtime).unwrap();
        let stamp = Stamp::new(&path, &f.metadata().unwrap());
        (path, stamp)
    }

    fn old() -> SystemTime {
        SystemTime::now() - std::time::Duration::from_secs(3600)
    }

    #[test]
    fn an_unchanged_file_is_found_and_a_changed_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DigestCache::new(&dir.path().join("c"));
        let (path, stamp) = file(dir.path(), "a", 100_000, old());
        let d = Digest::sha256(b"whatever");
        assert_eq!(cache.get(&stamp), None);
        cache.put(&stamp, &d);
        assert_eq!(cache.get(&stamp), Some(d.clone()));
        // Written again with the same size: mtime and ctime change.
        std::fs::write(&path, vec![8u8; 100_000]).unwrap();
        let again = Stamp::new(&path, &std::fs::metadata(&path).unwrap());
        assert_ne!(again, stamp);
        assert_eq!(cache.get(&again), None);
        // The same file by another path is another entry.
        let link = dir.path().join("b");
        std::fs::hard_link(&path, &link).unwrap();
        let by_link = Stamp::new(&link, &std::fs::metadata(&link).unwrap());
        assert_eq!(cache.get(&by_link), None);
        cache.forget(&stamp);
        assert_eq!(cache.get(&stamp), None);
    }

    #[test]
    fn a_file_modified_in_the_second_of_the_entry_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DigestCache::new(&dir.path().join("c"));
        let future = SystemTime::now() + std::time::Duration::from_secs(3600);
        let (_, stamp) = file(dir.path(), "a", 100_000, future);
        cache.put(&stamp, &Digest::sha256(b"x"));
        assert_eq!(cache.get(&stamp), None);
        let entry = Entry {
            stamp: stamp.clone(),
            written: stamp.mtime + 999_999_999 - stamp.mtime.rem_euclid(1_000_000_000),
            digest: Digest::sha256(b"x"),
            blob_size: None,
        };
        assert!(entry.racy(), "same second");
        let later = Entry {
            written: entry.written + 1,
            ..entry
        };
        assert!(!later.racy(), "the next second");
    }

    #[test]
    fn shards_are_private_bounded_and_keep_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DigestCache::new(&dir.path().join("c"));
        let base = Stamp::new(dir.path(), &std::fs::metadata(dir.path()).unwrap());
        // Stamps of made-up paths that all fall in shard "ab".
        let stamps: Vec<Stamp> = (0..PER_SHARD + 10)
            .map(|i| Stamp {
                path: format!("ab{i:030}"),
                mtime: 0,
                ..base.clone()
            })
            .collect();
        for s in &stamps {
            cache.put(s, &Digest::sha256(s.path.as_bytes()));
        }
        let shard = dir.path().join("c/digests/ab");
        let text = std::fs::read_to_string(&shard).unwrap();
        assert_eq!(text.lines().count(), PER_SHARD);
        assert_eq!(cache.get(&stamps[0]), None, "the oldest went");
        let last = stamps.last().unwrap();
        assert_eq!(cache.get(last), Some(Digest::sha256(last.path.as_bytes())));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&shard), 0o600);
        assert_eq!(mode(&dir.path().join("c/digests")), 0o700);
        // Garbage lines are dropped, not fatal.
        std::fs::write(&shard, format!("junk\n{}", newest_line(&text))).unwrap();
        assert_eq!(cache.get(last), Some(Digest::sha256(last.path.as_bytes())));
    }

    #[test]
    fn a_part_has_its_own_entry_with_its_blob_size() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DigestCache::new(&dir.path().join("c"));
        let (_, stamp) = file(dir.path(), "a.tar", 100_000, old());
        let (one, two) = (stamp.part("512 4096 gzip"), stamp.part("512 4096 zstd"));
        assert_ne!(one, two);
        assert_ne!(one, stamp);
        assert_eq!(one, stamp.part("512 4096 gzip"), "a part's key is stable");
        let d = Digest::sha256(b"layer");
        cache.put(&stamp, &Digest::sha256(b"file"));
        cache.put_blob(&one, &d, 1234);
        assert_eq!(cache.get_blob(&one), Some((d.clone(), 1234)));
        assert_eq!(cache.get_blob(&two), None);
        assert_eq!(cache.get(&stamp), Some(Digest::sha256(b"file")));
        // A file's entry has no blob size: no part answer from it.
        assert_eq!(cache.get_blob(&stamp), None);
        // The lines round-trip, with and without the size.
        for shard in std::fs::read_dir(dir.path().join("c/digests")).unwrap() {
            let text = std::fs::read_to_string(shard.unwrap().path()).unwrap();
            for line in text.lines() {
                assert_eq!(Entry::parse(line).unwrap().line(), format!("{line}\n"));
            }
        }
        cache.forget(&one);
        assert_eq!(cache.get_blob(&one), None);
        assert_eq!(cache.get(&stamp), Some(Digest::sha256(b"file")));
    }

    fn newest_line(text: &str) -> String {
        text.lines().next().unwrap().to_string() + "\n"
    }

    #[test]
    fn concurrent_writers_never_corrupt_a_shard() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("c");
        let base = Stamp::new(dir.path(), &std::fs::metadata(dir.path()).unwrap());
        std::thread::scope(|s| {
            for t in 0..8 {
                let (root, base) = (&root, &base);
                s.spawn(move || {
                    let cache = DigestCache::new(root);
                    for i in 0..50 {
                        let stamp = Stamp {
                            path: format!("cd{t:02}{i:028}"),
                            mtime: 0,
                            ..base.clone()
                        };
                        cache.put(&stamp, &Digest::sha256(stamp.path.as_bytes()));
                    }
                });
            }
        });
        let text = std::fs::read_to_string(root.join("digests/cd")).unwrap();
        assert!(!text.is_empty());
        assert!(text.lines().all(|l| Entry::parse(l).is_some()), "{text}");
    }
}
