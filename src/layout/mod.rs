//! The local backend of [`Store`]: one OCI image layout per repository under a root
//! (image-spec "OCI Image Layout"), so that skopeo, umoci and oras read what regtool writes.
//! Tags are `index.json` entries with the `org.opencontainers.image.ref.name` annotation.
//! [`Layout::at`] is one layout at a path (skopeo's `oci:DIR[:TAG]`): the same code, with the
//! repository name ignored.
//!
//! The rules that keep the layouts trustworthy:
//! - A repository name is a path under the root. The [`Repository`] type guarantees a relative
//!   path of plain words (no `..`, `.`, empty or absolute part can leave the root); this
//!   backend adds that no part may be one of a layout's own names (`blobs`, `index.json`,
//!   `oci-layout`): `x/blobs` would otherwise write its files into x's `blobs/`.
//! - `blobs/<alg>/` holds blobs only (image-spec "Blobs"); a write goes through a temporary
//!   file in the layout's `.regtool-tmp/`, locked by its writer while it lives, verified,
//!   fsynced, then renamed into place. The first write of a process to a layout removes the
//!   temporaries that no live writer holds (a killed push's).
//! - Every change of `index.json`, from creating the layout to deleting a manifest, happens
//!   under the layout's lock file and lands by rename of a fsynced temporary file.
//! - A blob already there is trusted only after hashing it: a corrupt one is replaced by the
//!   next push of the right content, and never spread by a mount.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cancel::{self, Cancel, STALE_AFTER, sweep_stale};
use crate::error::{Error, Result};
use crate::oci::digest::{copy_hashing, copy_verified, hash_reader};
use crate::oci::{Algorithm, Descriptor, Digest, Reference, Repository, Tag, media};
use crate::store::{BlobStream, Fetched, Location, Mount, Store};

/// The names an OCI layout gives its own files, which a repository name must not reach.
const LAYOUT_NAMES: [&str; 3] = ["blobs", "index.json", "oci-layout"];
/// Held while `index.json` changes. Its leading dot keeps it apart from repository names.
const LOCK_FILE: &str = ".regtool.lock";
/// Where writes are prepared, outside `blobs/` and apart from repository names.
const TMP_DIR: &str = ".regtool-tmp";
/// Earlier versions left unlocked temporaries in `blobs/<alg>/` and beside `index.json`:
/// swept once they are this old, when no writer can plausibly still be filling them.
const LEGACY_STALE_AFTER: Duration = Duration::from_secs(3600);

/// The local store: one OCI image layout per repository under a root directory, or one
/// layout at a path ([`Layout::at`]).
pub struct Layout {
    root: PathBuf,
    /// One layout at `root`, whatever the repository (see [`Layout::at`]).
    single: bool,
    /// The layouts whose stale temporaries this process has swept already.
    swept: Mutex<HashSet<PathBuf>>,
    /// Temporary files are removed when it is cancelled; a cancelled write is not renamed
    /// into place.
    cancel: Cancel,
}

fn io_err(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> Error {
    move |e| Error::io(what, &e)
}

/// Checks that `repo`, a path under the store's root by its type, has no part named like a
/// layout's own files, which would put it inside another repository's layout.
pub fn check_repo(repo: &Repository) -> Result<()> {
    if let Some(part) = repo.components().find(|p| LAYOUT_NAMES.contains(p)) {
        return Err(Error::usage(format!(
            "invalid repository name {:?}: a local store cannot use {part:?} as a part of \
             a name (blobs, index.json and oci-layout are the files of an OCI layout)",
            repo.as_str()
        )));
    }
    Ok(())
}

fn blob_file(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs")
        .join(digest.algorithm().name())
        .join(digest.hex())
}

impl Layout {
    /// The store rooted at `root` (created on the first write); never cancelled.
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout {
            root: root.into(),
            single: false,
            swept: Mutex::new(HashSet::new()),
            cancel: Cancel::new(),
        }
    }

    /// The one OCI image layout at `dir` (created on the first write), as skopeo and umoci
    /// name it with `oci:DIR`: every repository name given to its [`Store`] methods means this
    /// layout (use [`Layout::repo`]), and messages name it by its path. Its tags are the
    /// `org.opencontainers.image.ref.name` annotations of `DIR/index.json`;
    /// [`Layout::only_image`] finds the image of a layout named without a tag.
    pub fn at(dir: impl Into<PathBuf>) -> Layout {
        Layout {
            single: true,
            ..Layout::new(dir)
        }
    }

    /// The repository name to pass to a layout made by [`Layout::at`] (any name would do:
    /// it is ignored, and never shown).
    pub fn repo() -> Repository {
        Repository::single_layout()
    }

    /// The directory: the root of the store, or the layout of [`Layout::at`].
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Whether the repository's layout exists (has its `oci-layout` file).
    pub fn exists(&self, repo: &Repository) -> Result<bool> {
        Ok(self.repo_dir(repo)?.join("oci-layout").is_file())
    }

    /// How messages name a repository: by name in the store, by path for [`Layout::at`].
    fn shown(&self, repo: &Repository) -> String {
        if self.single {
            self.root.display().to_string()
        } else {
            repo.to_string()
        }
    }

    /// The index entry of the one image of a layout named without a tag (any entry, tagged or
    /// not). None is a not-found error; several are a usage error that lists the tags.
    pub fn only_image(&self, repo: &Repository) -> Result<Descriptor> {
        let index = read_index(&self.require(repo)?)?;
        let entries = index["manifests"].as_array().cloned().unwrap_or_default();
        let name = self.shown(repo);
        match entries.as_slice() {
            [] => Err(Error::not_found(format!("{name}: no image in the layout"))),
            [one] => serde_json::from_value(one.clone())
                .map_err(|e| Error::data(format!("{name}/index.json: malformed entry: {e}"))),
            many => {
                let tags: Vec<&str> = many
                    .iter()
                    .filter_map(|d| d["annotations"][media::REF_NAME_ANNOTATION].as_str())
                    .collect();
                Err(Error::usage(format!(
                    "{name} holds {} images: name one with a tag (oci:PATH:TAG)",
                    many.len()
                ))
                .with_hint(format!("its tags: {}", tags.join(", "))))
            }
        }
    }

    /// Adds an index entry without a tag for a manifest already stored (by digest), unless an
    /// entry has that digest already: what a layout named without a tag gets from a copy.
    pub fn add_untagged(&self, repo: &Repository, entry: &Descriptor) -> Result<()> {
        let dir = self.require(repo)?;
        if self.blob_size(repo, &entry.digest)? != Some(entry.size) {
            return Err(Error::not_found(format!(
                "{}: no manifest {}",
                self.shown(repo),
                entry.digest
            )));
        }
        let text = entry.digest.to_string();
        let value = serde_json::to_value(entry).map_err(|e| Error::other(e.to_string()))?;
        let lock = Locked::acquire(&dir, &self.cancel)?;
        lock.update_index(|list| {
            if !list.iter().any(|d| d["digest"] == text.as_str()) {
                list.push(value);
            }
            Ok(())
        })
    }

    /// The same layout, its temporary files removed (and writes stopped) when `cancel` is
    /// cancelled.
    pub fn with_cancel(mut self, cancel: Cancel) -> Layout {
        self.cancel = cancel;
        self
    }

    /// The layout directory of a repository, once its name is known to stay under the root.
    fn repo_dir(&self, repo: &Repository) -> Result<PathBuf> {
        if self.single {
            return Ok(self.root.clone());
        }
        check_repo(repo)?;
        Ok(self.root.join(repo.as_str()))
    }

    fn blob_path(&self, repo: &Repository, digest: &Digest) -> Result<PathBuf> {
        Ok(blob_file(&self.repo_dir(repo)?, digest))
    }

    /// The layout directory of an existing repository.
    fn require(&self, repo: &Repository) -> Result<PathBuf> {
        let dir = self.repo_dir(repo)?;
        if dir.join("oci-layout").is_file() {
            Ok(dir)
        } else {
            Err(self.missing(repo))
        }
    }

    fn missing(&self, repo: &Repository) -> Error {
        if self.single {
            Error::not_found(format!("{}: no OCI layout there", self.root.display()))
        } else {
            Error::not_found(format!("{repo}: no such repository in {}", self.location()))
        }
    }

    /// The layout directory of a repository, created on first write. `oci-layout` is written
    /// last and under the lock, so that two first writers cannot both write an empty index.
    fn ensure(&self, repo: &Repository) -> Result<PathBuf> {
        // A cancelled write creates nothing: the cleanup may be removing a new layout.
        self.cancel.check()?;
        let dir = self.repo_dir(repo)?;
        if !dir.join("oci-layout").is_file() {
            fs::create_dir_all(dir.join("blobs").join("sha256"))
                .map_err(io_err(format!("creating {}", dir.display())))?;
            let _lock = Locked::acquire(&dir, &self.cancel)?;
            if !dir.join("index.json").exists() {
                let empty =
                    json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": []});
                write_atomic(&dir, "index.json", &to_vec(&empty), &self.cancel)?;
            }
            if !dir.join("oci-layout").is_file() {
                write_atomic(
                    &dir,
                    "oci-layout",
                    br#"{"imageLayoutVersion":"1.0.0"}"#,
                    &self.cancel,
                )?;
            }
        }
        self.sweep_once(&dir);
        Ok(dir)
    }

    /// Removes the layout's stale temporaries, on the first write of this process to it.
    fn sweep_once(&self, dir: &Path) {
        let first = self
            .swept
            .lock()
            .is_ok_and(|mut swept| swept.insert(dir.to_path_buf()));
        if first {
            sweep(dir);
        }
    }

    fn tagged(&self, repo: &Repository, tag: &Tag) -> Result<Descriptor> {
        let index = read_index(&self.require(repo)?)?;
        let found = index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["annotations"][media::REF_NAME_ANNOTATION] == tag.as_str())
            .cloned();
        let name = self.shown(repo);
        let entry = found.ok_or_else(|| Error::not_found(format!("{name}: no alias {tag}")))?;
        serde_json::from_value(entry)
            .map_err(|e| Error::data(format!("{name}/index.json: malformed entry for {tag}: {e}")))
    }

    /// Writes a blob from `content` through a verified temporary file (see [`store_blob`]).
    fn write_blob(
        &self,
        repo: &Repository,
        content: &mut dyn Read,
        expected: Option<(&Digest, u64)>,
        algorithm: Algorithm,
    ) -> Result<(Digest, u64)> {
        store_blob(
            &self.ensure(repo)?,
            content,
            expected,
            algorithm,
            &self.cancel,
        )
    }
}

/// The lock of one layout, held while alive: `index.json` changes only through it.
struct Locked<'a> {
    dir: &'a Path,
    cancel: &'a Cancel,
    _file: File,
}

impl<'a> Locked<'a> {
    fn acquire(dir: &'a Path, cancel: &'a Cancel) -> Result<Locked<'a>> {
        let locking = || format!("locking {}", dir.display());
        // Never truncated, never through a link: a planted `.regtool.lock -> ~/.bashrc` must
        // not empty the file it points at.
        let path = dir.join(LOCK_FILE);
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&path)
        };
        let file = file
            .and_then(|f| {
                if f.metadata()?.is_file() {
                    Ok(f)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "not a regular file",
                    ))
                }
            })
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => Error::data(format!(
                    "{}: a symbolic link, not the layout's lock",
                    path.display()
                )),
                _ if e.kind() == io::ErrorKind::InvalidData => {
                    Error::data(format!("{}: {e}", path.display()))
                }
                _ => Error::io(locking(), &e),
            })?;
        file.lock().map_err(io_err(locking()))?;
        Ok(Locked {
            dir,
            cancel,
            _file: file,
        })
    }

    /// Read-modify-write of `index.json`.
    fn update_index<T>(&self, change: impl FnOnce(&mut Vec<Value>) -> Result<T>) -> Result<T> {
        let mut index = read_index(self.dir)?;
        let Some(Value::Array(list)) = index.get_mut("manifests") else {
            return Err(malformed_index(self.dir));
        };
        let result = change(list)?;
        write_atomic(self.dir, "index.json", &to_vec(&index), self.cancel)?;
        Ok(result)
    }
}

fn malformed_index(dir: &Path) -> Error {
    Error::data(format!(
        "{}: malformed index: no manifests list",
        dir.join("index.json").display()
    ))
}

/// The largest index.json read: far more than any real layout's, and a bound when it is
/// `/dev/zero` or a file that never ends.
const MAX_INDEX: u64 = 16 * 1024 * 1024;

/// Opens a file of a layout for reading: a regular file, never a symbolic link (a blob that
/// points at `/etc/shadow` is not the layout's to give; what regtool, skopeo and umoci write
/// are regular files) and never a FIFO or a device (opened without blocking, so a planted
/// FIFO cannot hang the command). Anything else is an `InvalidData` error saying what it is.
fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::new(io::ErrorKind::InvalidData, "a symbolic link, not a file")
            } else {
                e
            }
        })?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// An error opening or reading a layout's file: `InvalidData` (a link, a FIFO, a device) is
/// bad data naming the path; anything else an I/O error.
fn layout_file_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| {
        if e.kind() == io::ErrorKind::InvalidData {
            Error::data(format!("{}: {e}", path.display()))
        } else {
            Error::io(format!("reading {}", path.display()), &e)
        }
    }
}

/// Whether `path` is a directory itself, not a symbolic link to one.
fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

fn read_index(dir: &Path) -> Result<Value> {
    let path = dir.join("index.json");
    let mut bytes = Vec::new();
    open_regular(&path)
        .and_then(|f| f.take(MAX_INDEX + 1).read_to_end(&mut bytes))
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::io(format!("reading {}", path.display()), &e),
            _ => layout_file_err(&path)(e),
        })?;
    if bytes.len() as u64 > MAX_INDEX {
        return Err(Error::data(format!(
            "{}: larger than 16 MiB",
            path.display()
        )));
    }
    let index: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::data(format!("{}: malformed index: {e}", path.display())))?;
    if !index.get("manifests").is_some_and(Value::is_array) {
        return Err(malformed_index(dir));
    }
    Ok(index)
}

fn to_vec(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// A temporary file in the layout's `.regtool-tmp/`, locked for as long as it lives so that
/// a sweep by another process leaves it alone, and removed on cancel.
fn temp_file(dir: &Path, cancel: &Cancel) -> Result<(tempfile::NamedTempFile, cancel::Guard)> {
    let tmp = dir.join(TMP_DIR);
    let writing = || format!("writing in {}", tmp.display());
    fs::create_dir_all(&tmp).map_err(io_err(writing()))?;
    // A link there would put the temporaries, and the sweep that removes them, elsewhere.
    if !is_real_dir(&tmp) {
        return Err(Error::data(format!(
            "{}: not a directory (a symbolic link?): the layout's temporaries go there",
            tmp.display()
        )));
    }
    cancel
        .locked_tempfile(".upload-", &tmp)
        .map_err(io_err(writing()))
}

/// Makes a filled temporary file durable, then renames it to `path` (replacing what is there)
/// and makes the rename durable too.
fn persist(mut tmp: tempfile::NamedTempFile, path: &Path) -> Result<()> {
    let writing = || format!("writing {}", path.display());
    tmp.as_file_mut()
        .flush()
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(io_err(writing()))?;
    tmp.persist(path)
        .map_err(|e| Error::io(writing(), &e.error))?;
    if let Some(parent) = path.parent() {
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io_err(writing()))?;
    }
    Ok(())
}

/// Replaces the file `name` of a layout atomically.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8], cancel: &Cancel) -> Result<()> {
    let path = dir.join(name);
    let (mut tmp, _guard) = temp_file(dir, cancel)?;
    tmp.write_all(bytes)
        .map_err(io_err(format!("writing {}", path.display())))?;
    persist(tmp, &path)
}

/// Writes a blob into the layout `dir` through a temporary file, verified against `expected`
/// or hashed with `algorithm`, and renamed into place over whatever was there.
fn store_blob(
    dir: &Path,
    content: &mut dyn Read,
    expected: Option<(&Digest, u64)>,
    algorithm: Algorithm,
    cancel: &Cancel,
) -> Result<(Digest, u64)> {
    let (mut tmp, _guard) = temp_file(dir, cancel)?;
    let content = &mut cancel.reader(content);
    let (digest, size) = {
        let sink = &mut EarlyFlush::new(tmp.as_file_mut());
        match expected {
            Some((d, size)) => (d.clone(), copy_verified(content, sink, d, Some(size))?),
            None => copy_hashing(content, sink, algorithm)?,
        }
    };
    // Cancelled while copying: the temporary file is gone or going, and is not the blob.
    cancel.check()?;
    let path = blob_file(dir, &digest);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err(format!("creating {}", parent.display())))?;
    }
    check_blob_dirs(dir, &path)?;
    persist(tmp, &path)?;
    Ok((digest, size))
}

/// Refuses to write the blob `path` of the layout `dir` when `blobs/` or `blobs/<alg>/` is a
/// symbolic link: the blob would land outside the layout, over whatever has its name there.
fn check_blob_dirs(dir: &Path, path: &Path) -> Result<()> {
    let blobs = dir.join("blobs");
    for d in [Some(blobs.as_path()), path.parent()].into_iter().flatten() {
        if !is_real_dir(d) {
            return Err(Error::data(format!(
                "{}: not a directory (a symbolic link?): the layout's blobs go there",
                d.display()
            )));
        }
    }
    Ok(())
}

/// How much of a blob is written between two early flushes.
const FLUSH_EVERY: u64 = 8 * 1024 * 1024;

/// Writes to a file and, every [`FLUSH_EVERY`] bytes, has a helper thread flush what is
/// written so far to the disk: the disk works while the network does, and the fsync before
/// the rename finds little left to do. A blob smaller than that never starts the thread.
/// Best effort: a failed early flush is caught by that final fsync.
struct EarlyFlush<'a> {
    file: &'a mut File,
    written: u64,
    helper: Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl<'a> EarlyFlush<'a> {
    fn new(file: &'a mut File) -> EarlyFlush<'a> {
        EarlyFlush {
            file,
            written: 0,
            helper: None,
        }
    }

    fn kick(&mut self) {
        if self.helper.is_none() {
            let Ok(clone) = self.file.try_clone() else {
                return;
            };
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let spawned = std::thread::Builder::new()
                .name("flush".into())
                .spawn(move || {
                    while rx.recv().is_ok() {
                        // Requests that queued meanwhile are covered by this flush.
                        while rx.try_recv().is_ok() {}
                        let _ = clone.sync_data();
                    }
                });
            match spawned {
                Ok(handle) => self.helper = Some((tx, handle)),
                Err(_) => return,
            }
        }
        if let Some((tx, _)) = &self.helper {
            let _ = tx.send(());
        }
    }
}

impl Write for EarlyFlush<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        let before = self.written;
        self.written += n as u64;
        if self.written / FLUSH_EVERY != before / FLUSH_EVERY {
            self.kick();
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for EarlyFlush<'_> {
    fn drop(&mut self) {
        if let Some((tx, handle)) = self.helper.take() {
            drop(tx);
            let _ = handle.join();
        }
    }
}

/// Whether `file` holds exactly the `size` bytes of `digest`.
fn intact(mut file: &File, digest: &Digest, size: u64) -> Result<bool> {
    let (actual, count) = hash_reader(&mut file, digest.algorithm())?;
    Ok(actual == *digest && count == size)
}

/// Removes the temporaries of a layout that no live writer holds: those in `.regtool-tmp/`
/// once unlocked (their writer died), and the unlocked ones of earlier versions once old.
/// Best effort: a file that cannot be removed now is left for a later sweep.
/// Only directories that are really the layout's are swept, never through a symbolic link:
/// a layout from elsewhere with `.regtool-tmp -> ~` would otherwise have the sweep remove the
/// user's files.
fn sweep(dir: &Path) {
    if is_real_dir(&dir.join(TMP_DIR)) {
        sweep_stale(&dir.join(TMP_DIR), |_| true, STALE_AFTER, true);
    }
    sweep_stale(dir, |n| n.starts_with(".tmp-"), LEGACY_STALE_AFTER, false);
    if !is_real_dir(&dir.join("blobs")) {
        return;
    }
    for alg in fs::read_dir(dir.join("blobs"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|alg| alg.file_type().is_ok_and(|t| t.is_dir()))
    {
        sweep_stale(
            &alg.path(),
            |n| n.starts_with('.'),
            LEGACY_STALE_AFTER,
            false,
        );
    }
}

impl Store for Layout {
    fn location(&self) -> Location {
        if self.single {
            Location::OciLayout(self.root.clone())
        } else {
            Location::Layout(self.root.clone())
        }
    }

    fn blob_size(&self, repo: &Repository, digest: &Digest) -> Result<Option<u64>> {
        let path = self.blob_path(repo, digest)?;
        match fs::symlink_metadata(&path) {
            // What a link points at is not the layout's (its size would tell about it).
            Ok(m) if !m.is_file() => Err(Error::data(format!(
                "{}: not a regular file",
                path.display()
            ))),
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("checking {digest}"), &e)),
        }
    }

    /// A local file is hashed: anything may have changed it since it was verified.
    fn has_blob(&self, repo: &Repository, digest: &Digest, size: u64) -> Result<bool> {
        let path = self.blob_path(repo, digest)?;
        // Something that is not a regular file (a link, a FIFO) is not the blob: the blob
        // written in its place replaces it.
        let file = match open_regular(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(false),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), &e)),
        };
        let len = file
            .metadata()
            .map_err(io_err(format!("reading {}", path.display())))?
            .len();
        Ok(len == size && intact(&file, digest, size)?)
    }

    fn open_blob(&self, repo: &Repository, digest: &Digest) -> Result<BlobStream<'_>> {
        let path = self.blob_path(repo, digest)?;
        let file = open_regular(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::not_found(format!(
                "pulling {digest} from {}: no such blob",
                self.shown(repo)
            )),
            _ => layout_file_err(&path)(e),
        })?;
        let size = file.metadata().ok().map(|m| m.len());
        Ok(BlobStream {
            size,
            reader: Box::new(self.cancel.reader(file)),
        })
    }

    fn put_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        content: &mut dyn Read,
    ) -> Result<()> {
        if self.has_blob(repo, digest, size)? {
            return Ok(());
        }
        self.write_blob(repo, content, Some((digest, size)), digest.algorithm())
            .map(|_| ())
    }

    fn put_blob_stream(
        &self,
        repo: &Repository,
        content: &mut dyn Read,
        algorithm: Algorithm,
    ) -> Result<(Digest, u64)> {
        self.write_blob(repo, content, None, algorithm)
    }

    /// A hard link when both are on one file system, else a copy; either way, only after the
    /// source has been hashed, so that a corrupt blob is never spread.
    fn mount_blob(&self, repo: &Repository, from: &Repository, digest: &Digest) -> Result<Mount> {
        let source = self.blob_path(from, digest)?;
        let target = self.blob_path(repo, digest)?;
        let mounting = || format!("mounting {digest} from {from}");
        let file = open_regular(&source).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::not_found(format!("{}: no such blob", mounting())),
            _ => layout_file_err(&source)(e).context(mounting()),
        })?;
        let size = file
            .metadata()
            .map_err(io_err(format!("reading {}", source.display())))?
            .len();
        if self.has_blob(repo, digest, size)? {
            return Ok(Mount::Mounted);
        }
        if !intact(&file, digest, size)? {
            return Err(Error::data(format!(
                "{}: the blob in {from} is corrupt (its content has another digest)",
                mounting()
            ))
            .with_hint(format!(
                "push the right content to {from} again: it replaces the corrupt blob"
            )));
        }
        let dir = self.ensure(repo)?;
        // What is there is corrupt (has_blob said so): it makes room for the link.
        match fs::remove_file(&target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("replacing {}", target.display()), &e)),
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_err(format!("creating {}", parent.display())))?;
        }
        check_blob_dirs(&dir, &target)?;
        if fs::hard_link(&source, &target).is_err() {
            let mut file =
                File::open(&source).map_err(io_err(format!("reading {}", source.display())))?;
            store_blob(
                &dir,
                &mut file,
                Some((digest, size)),
                digest.algorithm(),
                &self.cancel,
            )?;
        }
        Ok(Mount::Mounted)
    }

    fn delete_blob(&self, repo: &Repository, digest: &Digest) -> Result<()> {
        match fs::remove_file(self.blob_path(repo, digest)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::not_found(format!(
                "deleting {digest} from {}: no such blob",
                self.shown(repo)
            ))),
            Err(e) => Err(Error::io(format!("deleting {digest}"), &e)),
        }
    }

    fn get_manifest(&self, repo: &Repository, reference: &Reference) -> Result<Fetched> {
        let (digest, media_type) = match reference {
            Reference::Digest(d) => (d.clone(), None),
            Reference::Tag(tag) => {
                let d = self.tagged(repo, tag)?;
                (d.digest, Some(d.media_type))
            }
        };
        let path = self.blob_path(repo, &digest)?;
        let file = open_regular(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::not_found(format!(
                "getting manifest {reference} from {}: no such manifest",
                self.shown(repo)
            )),
            _ => layout_file_err(&path)(e),
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

    fn resolve(&self, repo: &Repository, reference: &Reference) -> Result<Digest> {
        match reference {
            Reference::Digest(d) if self.blob_size(repo, d)?.is_some() => Ok(d.clone()),
            Reference::Digest(d) => Err(Error::not_found(format!(
                "{}: no manifest {d}",
                self.shown(repo)
            ))),
            Reference::Tag(tag) => Ok(self.tagged(repo, tag)?.digest),
        }
    }

    /// The manifest's blob and its tag are written under one hold of the lock, so that a
    /// concurrent delete of the same manifest cannot leave the tag without its blob.
    fn put_manifest(
        &self,
        repo: &Repository,
        reference: &Reference,
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
                        "putting manifest {reference} in {}: blob {} is not in the repository",
                        self.shown(repo),
                        d.digest
                    )));
                }
            }
        }
        let dir = self.ensure(repo)?;
        let lock = Locked::acquire(&dir, &self.cancel)?;
        let (digest, size) =
            store_blob(&dir, &mut &bytes[..], None, Algorithm::Sha256, &self.cancel)?;
        let tag = match reference {
            Reference::Digest(wanted) if *wanted != digest => {
                return Err(Error::data(format!(
                    "manifest content is {digest}, not {wanted}"
                )));
            }
            Reference::Digest(_) => return Ok(digest),
            Reference::Tag(tag) => tag.as_str(),
        };
        let mut entry = Descriptor::new(media_type, digest.clone(), size);
        entry
            .annotations
            .insert(media::REF_NAME_ANNOTATION.to_string(), tag.to_string());
        let entry = serde_json::to_value(&entry).map_err(|e| Error::other(e.to_string()))?;
        lock.update_index(|list| {
            list.retain(|d| d["annotations"][media::REF_NAME_ANNOTATION] != tag);
            list.push(entry);
            Ok(())
        })?;
        Ok(digest)
    }

    /// The index entries and the manifest's blob go under one hold of the lock.
    fn delete_manifest(&self, repo: &Repository, digest: &Digest) -> Result<()> {
        let dir = self.require(repo)?;
        let text = digest.to_string();
        let lock = Locked::acquire(&dir, &self.cancel)?;
        let found = lock.update_index(|list| {
            let before = list.len();
            list.retain(|d| d["digest"] != text.as_str());
            Ok(list.len() != before)
        })?;
        let removed = fs::remove_file(blob_file(&dir, digest)).is_ok();
        drop(lock);
        if found || removed {
            Ok(())
        } else {
            Err(Error::not_found(format!(
                "{}: no manifest {digest}",
                self.shown(repo)
            )))
        }
    }

    fn list_tags(&self, repo: &Repository) -> Result<Vec<String>> {
        let index = read_index(&self.require(repo)?)?;
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

    /// A layout of [`Layout::at`] holds no repositories of its own.
    fn list_repos(&self) -> Result<Vec<String>> {
        if self.single {
            return Ok(Vec::new());
        }
        if let Err(e) = fs::read_dir(&self.root) {
            return match e.kind() {
                io::ErrorKind::NotFound => Ok(Vec::new()),
                _ => Err(Error::io(format!("listing {}", self.root.display()), &e)),
            };
        }
        let mut out = Vec::new();
        walk(&self.root, "", &mut Vec::new(), &mut out);
        out.sort();
        Ok(out)
    }
}

/// Collects the repositories under `dir` (named `prefix/...`): every directory, symbolic
/// links followed, whose path is a name the store accepts and that holds an `oci-layout`
/// file. `ancestors` (canonical paths) cuts loops of links; a directory that cannot be read
/// holds no repository that can be.
fn walk(dir: &Path, prefix: &str, ancestors: &mut Vec<PathBuf>, out: &mut Vec<String>) {
    let Ok(canonical) = fs::canonicalize(dir) else {
        return;
    };
    if ancestors.contains(&canonical) {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    ancestors.push(canonical);
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let repo = match prefix {
            "" => name,
            _ => format!("{prefix}/{name}"),
        };
        let path = entry.path();
        // A name that fails the checks is no repository, nor the start of one.
        let valid = Repository::new(&repo).is_ok_and(|r| check_repo(&r).is_ok());
        if !valid || !path.is_dir() {
            continue;
        }
        if path.join("oci-layout").is_file() {
            out.push(repo.clone());
        }
        walk(&path, &repo, ancestors, out);
    }
    ancestors.pop();
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn r(name: &str) -> Repository {
        Repository::new(name).unwrap()
    }

    fn tag(name: &str) -> Reference {
        Reference::Tag(Tag::new(name).unwrap())
    }

    #[test]
    fn a_cancelled_layout_stops_reading_and_writing_and_another_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let cancel = Cancel::new();
        let store = Layout::new(dir.path()).with_cancel(cancel.clone());
        let (d, _) = store
            .put_blob_stream(&r("fred/logs"), &mut &b"hello"[..], Algorithm::Sha256)
            .unwrap();
        let mut blob = store.open_blob(&r("fred/logs"), &d).unwrap();
        cancel.cancel(Duration::from_secs(1));
        let err = blob.reader.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(
            crate::error::from_io("reading", err).kind,
            crate::error::Kind::Interrupted
        );
        let err = store
            .put_blob_stream(&r("fred/logs"), &mut &b"other"[..], Algorithm::Sha256)
            .unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Interrupted);
        assert_eq!(
            store
                .blob_size(&r("fred/logs"), &Digest::sha256(b"other"))
                .unwrap(),
            None
        );
        let tmp = dir.path().join("fred/logs").join(TMP_DIR);
        assert_eq!(
            fs::read_dir(tmp).unwrap().count(),
            0,
            "a temporary file was left"
        );
        // A layout with a token of its own is not affected.
        let other = Layout::new(dir.path()).with_cancel(Cancel::new());
        other
            .put_blob_stream(&r("fred/logs"), &mut &b"other"[..], Algorithm::Sha256)
            .unwrap();
    }

    #[test]
    fn blobs_tags_and_repos_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Layout::new(dir.path());
        let (d, n) = store
            .put_blob_stream(&r("fred/logs"), &mut &b"hello"[..], Algorithm::Sha256)
            .unwrap();
        assert_eq!((d.clone(), n), (Digest::sha256(b"hello"), 5));
        assert_eq!(store.blob_size(&r("fred/logs"), &d).unwrap(), Some(5));
        store
            .put_blob(
                &r("fred/logs"),
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
            .put_manifest(
                &r("fred/logs"),
                &tag("may15"),
                &manifest,
                media::OCI_MANIFEST,
            )
            .unwrap();
        assert_eq!(store.resolve(&r("fred/logs"), &tag("may15")).unwrap(), md);
        assert_eq!(
            store
                .get_manifest(&r("fred/logs"), &tag("may15"))
                .unwrap()
                .bytes,
            manifest
        );
        assert_eq!(store.list_tags(&r("fred/logs")).unwrap(), ["may15"]);
        store.mount_blob(&r("other"), &r("fred/logs"), &d).unwrap();
        assert_eq!(store.list_repos().unwrap(), ["fred/logs", "other"]);
        store.delete_manifest(&r("fred/logs"), &md).unwrap();
        assert!(store.list_tags(&r("fred/logs")).unwrap().is_empty());
        assert_eq!(
            store.list_tags(&r("nope")).unwrap_err().kind,
            crate::error::Kind::NotFound
        );
    }

    #[test]
    fn a_blob_past_the_early_flushes_lands_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Layout::new(dir.path());
        let data: Vec<u8> = (0..(2 * FLUSH_EVERY + 12345))
            .map(|i| (i % 251) as u8)
            .collect();
        let (d, n) = store
            .put_blob_stream(&r("big"), &mut &data[..], Algorithm::Sha256)
            .unwrap();
        assert_eq!((d.clone(), n), (Digest::sha256(&data), data.len() as u64));
        let written = fs::read(dir.path().join("big/blobs/sha256").join(d.hex())).unwrap();
        assert!(written == data);
        assert!(store.has_blob(&r("big"), &d, n).unwrap());
    }

    #[test]
    fn a_wrong_blob_never_lands() {
        let dir = tempfile::tempdir().unwrap();
        let store = Layout::new(dir.path());
        let err = store
            .put_blob(&r("r"), &Digest::sha256(b"good"), 4, &mut &b"evil"[..])
            .unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Data);
        assert_eq!(
            store.blob_size(&r("r"), &Digest::sha256(b"good")).unwrap(),
            None
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("r/blobs/sha256"))
            .unwrap()
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn no_name_reaches_outside_the_root() {
        // The name type keeps every path under the root.
        for bad in [
            "..",
            "../x",
            "a/../../x",
            "/tmp/abs",
            "a//b",
            "a/",
            "",
            ".",
            "./a",
            "a/./b",
            "A",
        ] {
            assert_eq!(
                Repository::new(bad).unwrap_err().kind,
                crate::error::Kind::Usage,
                "{bad:?} was accepted"
            );
        }
        // The layout keeps names out of other repositories' layout files.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let store = Layout::new(&root);
        let d = Digest::sha256(b"x");
        for bad in [
            "x/blobs",
            "x/blobs/sha256",
            "x/index.json",
            "x/oci-layout",
            "blobs",
        ] {
            let bad = &r(bad);
            let usage = |r: Result<()>| {
                assert_eq!(
                    r.unwrap_err().kind,
                    crate::error::Kind::Usage,
                    "{bad:?} was accepted"
                )
            };
            usage(
                store
                    .put_blob_stream(bad, &mut &b"x"[..], Algorithm::Sha256)
                    .map(drop),
            );
            usage(store.put_blob(bad, &d, 1, &mut &b"x"[..]));
            usage(store.mount_blob(bad, &r("ok"), &d).map(drop));
            usage(store.mount_blob(&r("ok"), bad, &d).map(drop));
            usage(
                store
                    .put_manifest(bad, &tag("t"), b"{}", media::OCI_MANIFEST)
                    .map(drop),
            );
            usage(store.delete_blob(bad, &d));
            usage(store.delete_manifest(bad, &d));
            usage(store.list_tags(bad).map(drop));
            usage(store.blob_size(bad, &d).map(drop));
        }
        // Nothing was written anywhere: not outside the root, not even the root itself.
        let written: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert!(written.is_empty(), "{written:?}");
    }

    /// Sets the modification time of `path` to `ago` in the past.
    fn age(path: &Path, ago: Duration) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - ago)
            .unwrap();
    }

    #[test]
    fn the_first_write_sweeps_the_temporaries_no_writer_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Layout::new(dir.path());
        store
            .put_blob_stream(&r("r"), &mut &b"first"[..], Algorithm::Sha256)
            .unwrap();
        let layout = dir.path().join("r");
        let tmp = layout.join(TMP_DIR);
        let file = |dir: &Path, name: &str, ago: u64| {
            let path = dir.join(name);
            fs::write(&path, "partial").unwrap();
            age(&path, Duration::from_secs(ago));
            path
        };
        let dead = file(&tmp, ".upload-dead", 120);
        let young = file(&tmp, ".upload-young", 5);
        let held = file(&tmp, ".upload-held", 120);
        let holder = File::open(&held).unwrap();
        holder.lock().unwrap();
        let sha = layout.join("blobs/sha256");
        let legacy = file(&sha, ".upload-old", 2 * 3600);
        let legacy_young = file(&sha, ".upload-recent", 120);
        let legacy_index = file(&layout, ".tmp-index", 2 * 3600);
        // The store above has swept already; another process (a new store) sweeps on its
        // first write.
        Layout::new(dir.path())
            .put_blob_stream(&r("r"), &mut &b"second"[..], Algorithm::Sha256)
            .unwrap();
        for (path, kept) in [
            (&dead, false),
            (&young, true),
            (&held, true),
            (&legacy, false),
            (&legacy_young, true),
            (&legacy_index, false),
        ] {
            assert_eq!(path.exists(), kept, "{}", path.display());
        }
        // Nothing of a write is left behind in the temporary directory.
        let mut left: Vec<_> = fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [".upload-held", ".upload-young"]);
    }

    #[test]
    fn a_delete_racing_a_tag_never_leaves_a_tag_without_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Layout::new(dir.path()));
        let (d, n) = store
            .put_blob_stream(&r("r"), &mut &b"layer"[..], Algorithm::Sha256)
            .unwrap();
        store
            .put_blob(
                &r("r"),
                &Digest::sha256(media::EMPTY_JSON),
                2,
                &mut &media::EMPTY_JSON[..],
            )
            .unwrap();
        let manifest =
            crate::oci::manifest::oci_alias(&[crate::oci::manifest::alias_layer(d, n, None)]);
        let md = Digest::sha256(&manifest);
        for _ in 0..100 {
            let deleter = {
                let (store, md) = (store.clone(), md.clone());
                std::thread::spawn(move || {
                    let _ = store.delete_manifest(&r("r"), &md);
                })
            };
            store
                .put_manifest(&r("r"), &tag("t"), &manifest, media::OCI_MANIFEST)
                .unwrap();
            deleter.join().unwrap();
            // The tag went with the delete, or it is there with its manifest.
            if store.list_tags(&r("r")).unwrap() == ["t"] {
                assert_eq!(
                    store.get_manifest(&r("r"), &tag("t")).unwrap().bytes,
                    manifest
                );
            }
        }
    }
}
