//! The local backend of [`Store`]: one OCI image layout per repository under a root
//! (image-spec "OCI Image Layout"), so that skopeo, umoci and oras read what regtool writes.
//! Tags are `index.json` entries with the `org.opencontainers.image.ref.name` annotation.
//! Blobs are written to a temporary file beside their final place, verified, then renamed;
//! `index.json` is replaced atomically under a lock file, so concurrent writers do not lose
//! each other's tags.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::cleanup;
use crate::error::{Error, Result};
use crate::oci::digest::{copy_hashing, copy_verified};
use crate::oci::{Algorithm, Descriptor, Digest, media};
use crate::store::{BlobStream, Fetched, Store};

pub struct Layout {
    root: PathBuf,
}

fn io_err(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> Error {
    move |e| Error::io(what, &e)
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    /// Repository names are validated by the caller (`oci::name::check_repo`): their components
    /// are lower-case words, never `.` or `..`, so joining them cannot leave the root.
    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.root.join(repo)
    }

    fn blob_path(&self, repo: &str, digest: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("blobs")
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    fn exists(&self, repo: &str) -> bool {
        self.repo_dir(repo).join("oci-layout").is_file()
    }

    fn require(&self, repo: &str) -> Result<()> {
        if self.exists(repo) {
            Ok(())
        } else {
            Err(Error::not_found(format!(
                "{repo}: no such repository in {}",
                self.describe()
            )))
        }
    }

    /// Creates the layout of a repository on first write.
    fn ensure(&self, repo: &str) -> Result<()> {
        let dir = self.repo_dir(repo);
        if self.exists(repo) {
            return Ok(());
        }
        fs::create_dir_all(dir.join("blobs").join("sha256"))
            .map_err(io_err(format!("creating {}", dir.display())))?;
        if !dir.join("index.json").exists() {
            write_atomic(
                &dir.join("index.json"),
                &to_vec(
                    &json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": []}),
                ),
            )?;
        }
        write_atomic(
            &dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
    }

    fn read_index(&self, repo: &str) -> Result<Value> {
        let path = self.repo_dir(repo).join("index.json");
        let bytes = fs::read(&path).map_err(io_err(format!("reading {}", path.display())))?;
        let index: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::data(format!("{}: malformed index: {e}", path.display())))?;
        if !index.get("manifests").is_some_and(Value::is_array) {
            return Err(Error::data(format!(
                "{}: malformed index: no manifests list",
                path.display()
            )));
        }
        Ok(index)
    }

    /// Read-modify-write of `index.json` under the repository's lock file.
    fn update_index(
        &self,
        repo: &str,
        change: impl FnOnce(&mut Vec<Value>) -> Result<()>,
    ) -> Result<()> {
        let dir = self.repo_dir(repo);
        let lock = File::create(dir.join(".regtool.lock"))
            .map_err(io_err(format!("locking {}", dir.display())))?;
        lock.lock()
            .map_err(io_err(format!("locking {}", dir.display())))?;
        let mut index = self.read_index(repo)?;
        if let Some(Value::Array(list)) = index.get_mut("manifests") {
            change(list)?;
        }
        write_atomic(&dir.join("index.json"), &to_vec(&index))
    }

    fn tagged(&self, repo: &str, tag: &str) -> Result<Descriptor> {
        self.require(repo)?;
        let index = self.read_index(repo)?;
        let found = index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["annotations"][media::REF_NAME_ANNOTATION] == tag)
            .cloned();
        let entry = found.ok_or_else(|| Error::not_found(format!("{repo}: no alias {tag}")))?;
        serde_json::from_value(entry)
            .map_err(|e| Error::data(format!("{repo}/index.json: malformed entry for {tag}: {e}")))
    }

    /// Writes a blob from `content` through a verified temporary file, unless it is there.
    fn write_blob(
        &self,
        repo: &str,
        content: &mut dyn Read,
        expected: Option<(&Digest, u64)>,
        algorithm: Algorithm,
    ) -> Result<(Digest, u64)> {
        self.ensure(repo)?;
        let dir = self.repo_dir(repo).join("blobs").join(algorithm.name());
        fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let (mut tmp, _guard) = cleanup::tempfile(".upload-", &dir)
            .map_err(io_err(format!("writing in {}", dir.display())))?;
        let (digest, size) = match expected {
            Some((d, size)) => (
                d.clone(),
                copy_verified(content, tmp.as_file_mut(), d, Some(size))?,
            ),
            None => copy_hashing(content, tmp.as_file_mut(), algorithm)?,
        };
        tmp.as_file_mut()
            .flush()
            .map_err(io_err("writing a blob"))?;
        tmp.persist(self.blob_path(repo, &digest))
            .map_err(|e| Error::io("storing a blob", &e.error))?;
        Ok((digest, size))
    }
}

fn to_vec(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Replaces a file atomically: a temporary file beside it, then rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let (mut tmp, _guard) =
        cleanup::tempfile(".tmp-", dir).map_err(io_err(format!("writing in {}", dir.display())))?;
    tmp.write_all(bytes)
        .map_err(io_err(format!("writing {}", path.display())))?;
    tmp.persist(path)
        .map_err(|e| Error::io(format!("writing {}", path.display()), &e.error))?;
    Ok(())
}

impl Store for Layout {
    fn describe(&self) -> String {
        format!("local store {}", self.root.display())
    }

    fn blob_size(&self, repo: &str, digest: &Digest) -> Result<Option<u64>> {
        match fs::metadata(self.blob_path(repo, digest)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("checking {digest}"), &e)),
        }
    }

    fn open_blob(&self, repo: &str, digest: &Digest) -> Result<BlobStream<'_>> {
        let path = self.blob_path(repo, digest);
        let file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                Error::not_found(format!("pulling {digest} from {repo}: no such blob"))
            }
            _ => Error::io(format!("opening {}", path.display()), &e),
        })?;
        let size = file.metadata().ok().map(|m| m.len());
        Ok(BlobStream {
            size,
            reader: Box::new(file),
        })
    }

    fn put_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        content: &mut dyn Read,
    ) -> Result<()> {
        if self.blob_size(repo, digest)? == Some(size) {
            return Ok(());
        }
        self.write_blob(repo, content, Some((digest, size)), digest.algorithm())
            .map(|_| ())
    }

    fn put_blob_stream(
        &self,
        repo: &str,
        content: &mut dyn Read,
        algorithm: Algorithm,
    ) -> Result<(Digest, u64)> {
        self.write_blob(repo, content, None, algorithm)
    }

    fn mount_blob(&self, repo: &str, from: &str, digest: &Digest) -> Result<()> {
        let source = self.blob_path(from, digest);
        if !source.is_file() {
            return Err(Error::not_found(format!(
                "mounting {digest} from {from}: no such blob"
            )));
        }
        if self.blob_size(repo, digest)?.is_some() {
            return Ok(());
        }
        self.ensure(repo)?;
        let target = self.blob_path(repo, digest);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_err(format!("creating {}", parent.display())))?;
        }
        // A hard link shares the bytes; across file systems, copy through a verified temp file.
        if fs::hard_link(&source, &target).is_err() {
            let mut file =
                File::open(&source).map_err(io_err(format!("reading {}", source.display())))?;
            self.write_blob(repo, &mut file, None, digest.algorithm())?;
        }
        Ok(())
    }

    fn delete_blob(&self, repo: &str, digest: &Digest) -> Result<()> {
        match fs::remove_file(self.blob_path(repo, digest)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::not_found(format!(
                "deleting {digest} from {repo}: no such blob"
            ))),
            Err(e) => Err(Error::io(format!("deleting {digest}"), &e)),
        }
    }

    fn get_manifest(&self, repo: &str, reference: &str) -> Result<Fetched> {
        let (digest, media_type) = match reference.parse::<Digest>() {
            Ok(d) => (d, None),
            Err(_) => {
                let d = self.tagged(repo, reference)?;
                (d.digest, Some(d.media_type))
            }
        };
        let path = self.blob_path(repo, &digest);
        let file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::not_found(format!(
                "getting manifest {reference} from {repo}: no such manifest"
            )),
            _ => Error::io(format!("reading {}", path.display()), &e),
        })?;
        let mut bytes = Vec::new();
        file.take(media::MAX_MANIFEST + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err(format!("reading {}", path.display())))?;
        if bytes.len() as u64 > media::MAX_MANIFEST {
            return Err(Error::data(format!(
                "{reference}: manifest larger than 4 MiB"
            )));
        }
        let actual = Digest::of(digest.algorithm(), &bytes);
        if actual != digest {
            return Err(Error::data(format!(
                "{}: content is {actual}, not {digest}",
                path.display()
            )));
        }
        Ok(Fetched {
            bytes,
            media_type,
            digest,
        })
    }

    fn resolve(&self, repo: &str, reference: &str) -> Result<Digest> {
        match reference.parse::<Digest>() {
            Ok(d) if self.blob_size(repo, &d)?.is_some() => Ok(d),
            Ok(d) => Err(Error::not_found(format!("{repo}: no manifest {d}"))),
            Err(_) => Ok(self.tagged(repo, reference)?.digest),
        }
    }

    fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest> {
        if bytes.len() as u64 > media::MAX_MANIFEST {
            return Err(Error::data("manifest is larger than 4 MiB"));
        }
        // Like a registry, refuse a manifest whose blobs are not there.
        if let Ok(crate::oci::Manifest::Image { config, layers, .. }) =
            crate::oci::Manifest::parse(bytes, Some(media_type))
        {
            for d in std::iter::once(&config).chain(&layers) {
                if self.blob_size(repo, &d.digest)?.is_none() {
                    return Err(Error::not_found(format!(
                        "putting manifest {reference} in {repo}: blob {} is not in the repository",
                        d.digest
                    )));
                }
            }
        }
        let (digest, size) = self.write_blob(repo, &mut &bytes[..], None, Algorithm::Sha256)?;
        if let Ok(wanted) = reference.parse::<Digest>() {
            if wanted != digest {
                return Err(Error::data(format!(
                    "manifest content is {digest}, not {wanted}"
                )));
            }
            return Ok(digest);
        }
        let mut entry = Descriptor::new(media_type, digest.clone(), size);
        entry.annotations.insert(
            media::REF_NAME_ANNOTATION.to_string(),
            reference.to_string(),
        );
        let entry = serde_json::to_value(&entry).map_err(|e| Error::other(e.to_string()))?;
        self.update_index(repo, |list| {
            list.retain(|d| d["annotations"][media::REF_NAME_ANNOTATION] != reference);
            list.push(entry);
            Ok(())
        })?;
        Ok(digest)
    }

    fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<()> {
        self.require(repo)?;
        let text = digest.to_string();
        let mut found = false;
        self.update_index(repo, |list| {
            let before = list.len();
            list.retain(|d| d["digest"] != text.as_str());
            found = list.len() != before;
            Ok(())
        })?;
        let removed = fs::remove_file(self.blob_path(repo, digest)).is_ok();
        if found || removed {
            Ok(())
        } else {
            Err(Error::not_found(format!("{repo}: no manifest {digest}")))
        }
    }

    fn list_tags(&self, repo: &str) -> Result<Vec<String>> {
        self.require(repo)?;
        let index = self.read_index(repo)?;
        Ok(index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| {
                d["annotations"][media::REF_NAME_ANNOTATION]
                    .as_str()
                    .map(str::to_string)
            })
            .collect())
    }

    fn list_repos(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out)?;
        out.sort();
        Ok(out)
    }
}

/// Collects the directories under `dir` that hold an `oci-layout` file, as repository names.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("listing {}", dir.display()), &e)),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "blobs"
            || name.to_string_lossy().starts_with('.')
            || !entry.file_type().is_ok_and(|t| t.is_dir())
        {
            continue;
        }
        if path.join("oci-layout").is_file()
            && let Ok(rel) = path.strip_prefix(root)
        {
            out.push(
                rel.to_string_lossy()
                    .replace(std::path::MAIN_SEPARATOR, "/"),
            );
        }
        walk(root, &path, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_tags_and_repos_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Layout::new(dir.path());
        let (d, n) = store
            .put_blob_stream("fred/logs", &mut &b"hello"[..], Algorithm::Sha256)
            .unwrap();
        assert_eq!((d.clone(), n), (Digest::sha256(b"hello"), 5));
        assert_eq!(store.blob_size("fred/logs", &d).unwrap(), Some(5));
        store
            .put_blob(
                "fred/logs",
                &Digest::sha256(media::EMPTY_JSON),
                2,
                &mut &media::EMPTY_JSON[..],
            )
            .unwrap();
        let manifest = crate::oci::manifest::oci_alias(&[crate::oci::manifest::alias_layer(
            d.clone(),
            5,
            None,
        )]);
        let md = store
            .put_manifest("fred/logs", "may15", &manifest, media::OCI_MANIFEST)
            .unwrap();
        assert_eq!(store.resolve("fred/logs", "may15").unwrap(), md);
        assert_eq!(
            store.get_manifest("fred/logs", "may15").unwrap().bytes,
            manifest
        );
        assert_eq!(store.list_tags("fred/logs").unwrap(), ["may15"]);
        store.mount_blob("other", "fred/logs", &d).unwrap();
        assert_eq!(store.list_repos().unwrap(), ["fred/logs", "other"]);
        store.delete_manifest("fred/logs", &md).unwrap();
        assert!(store.list_tags("fred/logs").unwrap().is_empty());
        assert_eq!(
            store.list_tags("nope").unwrap_err().kind,
            crate::error::Kind::NotFound
        );
    }

    #[test]
    fn a_wrong_blob_never_lands() {
        let dir = tempfile::tempdir().unwrap();
        let store = Layout::new(dir.path());
        let err = store
            .put_blob("r", &Digest::sha256(b"good"), 4, &mut &b"evil"[..])
            .unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Data);
        assert_eq!(
            store.blob_size("r", &Digest::sha256(b"good")).unwrap(),
            None
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("r/blobs/sha256"))
            .unwrap()
            .collect();
        assert!(leftovers.is_empty());
    }
}
