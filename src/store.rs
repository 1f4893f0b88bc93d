//! The storage trait every command works through, with two backends: a registry
//! ([`crate::registry::Registry`]) and a local OCI image layout ([`crate::layout::Layout`]).
//! Commands never ask which one they hold (only `auth`, through [`Store::registry`]).

use std::fmt;
use std::io::Read;
use std::path::PathBuf;

use crate::error::Result;
use crate::oci::{Algorithm, Digest, Host, Reference, Repository};

/// A manifest as fetched: its bytes, the media type the store reported, and its digest
/// (computed locally from the bytes, never taken on trust).
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The manifest as stored, byte for byte.
    pub bytes: Vec<u8>,
    /// The media type the store reported, if any.
    pub media_type: Option<String>,
    /// The digest of `bytes`.
    pub digest: Digest,
}

/// An open blob: its size when the store knows it, and the unverified byte stream
/// (callers verify with [`crate::oci::digest::copy_verified`]).
pub struct BlobStream<'a> {
    /// The blob's size, when the store says it.
    pub size: Option<u64>,
    /// The blob's bytes, not yet verified.
    pub reader: Box<dyn Read + Send + 'a>,
}

impl BlobStream<'_> {
    /// Fails with a data error, before a byte is read, when the store announces another size
    /// than the one already known (`declared`, from a manifest or an earlier answer): a
    /// registry that promises more bytes than the blob has would otherwise be waited for
    /// until the idle timeout, and one that promises fewer is lying about the blob.
    pub fn expect_size(&self, digest: &Digest, declared: Option<u64>) -> Result<()> {
        match (self.size, declared) {
            (Some(offered), Some(declared)) if offered != declared => {
                Err(crate::error::Error::data(format!(
                    "the registry offers {offered} bytes of {digest}, the manifest declares {declared}"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// Where a store is: its identity (two stores at one location are the same store) and, as
/// text, how messages name it: `registry 127.0.0.1:5000`, `local store /srv/x`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A registry, by its host.
    Registry(Host),
    /// A local store, by its root directory.
    Layout(PathBuf),
    /// One OCI image layout, by its directory.
    OciLayout(PathBuf),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Registry(host) => write!(f, "registry {host}"),
            Location::Layout(root) => write!(f, "local store {}", root.display()),
            Location::OciLayout(dir) => write!(f, "OCI layout {}", dir.display()),
        }
    }
}

/// What became of a cross-repository mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mount {
    /// The blob is in the target repository now.
    Mounted,
    /// The store did not mount it although the source has it (a registry may answer a mount
    /// request with an ordinary upload session: distribution spec, "Mounting a blob from
    /// another repository"); the bytes have to be copied.
    Declined,
}

/// A blob and manifest store. Names are typed and valid by construction, so no backend checks
/// a repository name's grammar or decides whether a reference is a tag or a digest.
pub trait Store: Send + Sync {
    /// Where the store is (see [`Location`]).
    fn location(&self) -> Location;

    /// The size of a blob, or None when the repository does not have it.
    fn blob_size(&self, repo: &Repository, digest: &Digest) -> Result<Option<u64>>;

    /// Whether the repository holds this blob whole, so that a push can skip it. A registry
    /// is trusted on the size (it verified the digest when the blob was uploaded); the local
    /// store hashes its file.
    fn has_blob(&self, repo: &Repository, digest: &Digest, size: u64) -> Result<bool> {
        Ok(self.blob_size(repo, digest)? == Some(size))
    }

    /// Opens a blob for reading. Not-found is an error of kind NotFound.
    fn open_blob(&self, repo: &Repository, digest: &Digest) -> Result<BlobStream<'_>>;

    /// Opens a blob to read from byte `offset` on (resuming a broken download). The default
    /// reads and drops the first `offset` bytes.
    fn open_blob_at(
        &self,
        repo: &Repository,
        digest: &Digest,
        offset: u64,
    ) -> Result<BlobStream<'_>> {
        let mut blob = self.open_blob(repo, digest)?;
        skip(&mut blob.reader, offset)?;
        blob.size = blob.size.map(|s| s.saturating_sub(offset));
        Ok(blob)
    }

    /// Stores a blob whose digest and size are known in advance (a local file, hashed first).
    /// `content` must yield exactly `size` bytes.
    fn put_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        content: &mut dyn Read,
    ) -> Result<()>;

    /// Stores a blob from a regular file whose digest and size are known in advance. The store
    /// may read any part of the file again (to resend what a failed request carried); it
    /// reads at positions, never through the file's own offset.
    fn put_blob_file(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        file: &dyn ReadAt,
    ) -> Result<()> {
        self.put_blob(repo, digest, size, &mut FileRange::new(file, 0, size))
    }

    /// Stores a blob from a regular file of `size` bytes whose digest is not known yet,
    /// unless the repository has it: the digest, and whether the blob was uploaded. `hash` and
    /// `upload` are the same file, given twice so that a caller can count each reader's
    /// progress; both are read at positions. A file that is not `size` bytes long when read
    /// is a data error. The default hashes the file, asks [`Store::has_blob`] and stores it
    /// from `upload`: two reads (the local store keeps it, as its copy is a write that a blob
    /// it has does not need). A registry uploads while it hashes (see [`crate::registry`]).
    fn push_file(
        &self,
        repo: &Repository,
        hash: &dyn ReadAt,
        upload: &dyn ReadAt,
        size: u64,
        algorithm: Algorithm,
    ) -> Result<(Digest, bool)> {
        hash_then_put(self, repo, hash, upload, size, algorithm)
    }

    /// Stores a blob of unknown length and digest in one pass, hashing while it streams.
    fn put_blob_stream(
        &self,
        repo: &Repository,
        content: &mut dyn Read,
        algorithm: Algorithm,
    ) -> Result<(Digest, u64)>;

    /// Makes a blob of `from` available in `repo` without moving its bytes through us.
    /// A source without the blob is an error of kind NotFound.
    fn mount_blob(&self, repo: &Repository, from: &Repository, digest: &Digest) -> Result<Mount>;

    /// Deletes a blob from `repo`.
    fn delete_blob(&self, repo: &Repository, digest: &Digest) -> Result<()>;

    /// Fetches a manifest by tag or digest. By digest, the bytes are verified.
    fn get_manifest(&self, repo: &Repository, reference: &Reference) -> Result<Fetched>;

    /// The digest of the manifest a tag (or digest) names, without fetching it if possible.
    fn resolve(&self, repo: &Repository, reference: &Reference) -> Result<Digest>;

    /// Stores a manifest under a tag (or under its digest, which must be the bytes') and
    /// returns its digest.
    fn put_manifest(
        &self,
        repo: &Repository,
        reference: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest>;

    /// Deletes a manifest by digest (every tag pointing at it goes with it).
    fn delete_manifest(&self, repo: &Repository, digest: &Digest) -> Result<()>;

    /// The tags of a repository, as the store lists them (unchecked: see
    /// [`crate::oci::name::check_listed`]).
    fn list_tags(&self, repo: &Repository) -> Result<Vec<String>>;

    /// The repositories, as the store lists them (unchecked, like [`Store::list_tags`]).
    fn list_repos(&self) -> Result<Vec<String>>;

    /// How operations on this store are tried again after a transient failure; None for a
    /// store that has no such failures (a local one).
    fn retry_policy(&self) -> Option<crate::retry::RetryPolicy> {
        None
    }

    /// The registry behind this store, for what only a registry does (minting a token);
    /// None for other stores.
    fn registry(&self) -> Option<&crate::registry::Registry> {
        None
    }
}

/// [`Store::push_file`] in two reads: hashes the file, asks the store for the blob, and
/// stores it from `upload` only when it is missing.
pub fn hash_then_put<S: Store + ?Sized>(
    store: &S,
    repo: &Repository,
    hash: &dyn ReadAt,
    upload: &dyn ReadAt,
    size: u64,
    algorithm: Algorithm,
) -> Result<(Digest, bool)> {
    let (digest, hashed) =
        crate::oci::digest::hash_reader(&mut FileRange::new(hash, 0, u64::MAX), algorithm)?;
    if hashed != size {
        return Err(crate::error::Error::data(
            "the file changed while it was read",
        ));
    }
    if store.has_blob(repo, &digest, size)? {
        return Ok((digest, false));
    }
    store.put_blob_file(repo, &digest, size, upload)?;
    Ok((digest, true))
}

/// Reads and drops `n` bytes (failing if the stream is shorter).
pub fn skip(reader: &mut dyn Read, n: u64) -> Result<()> {
    let skipped = std::io::copy(&mut reader.take(n), &mut std::io::sink())
        .map_err(|e| crate::error::from_io("skipping", e))?;
    if skipped < n {
        return Err(crate::error::Error::unavailable(format!(
            "the blob ended after {skipped} of {n} bytes"
        )));
    }
    Ok(())
}

/// Content that can be read at any position, any number of times: a regular file (or a
/// wrapper around one that counts progress).
pub trait ReadAt: Sync {
    /// Reads into `buf` from position `pos`, as `pread` does; 0 at the end.
    fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<usize>;
}

impl ReadAt for std::fs::File {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, pos)
    }
}

/// `len` bytes of a file from `start`, read at positions: the file's own offset is left
/// alone, so one open file can be read from anywhere any number of times.
pub struct FileRange<'a> {
    file: &'a dyn ReadAt,
    pos: u64,
    end: u64,
}

impl<'a> FileRange<'a> {
    /// The `len` bytes of `file` from `start`.
    pub fn new(file: &'a dyn ReadAt, start: u64, len: u64) -> FileRange<'a> {
        FileRange {
            file,
            pos: start,
            end: start.saturating_add(len),
        }
    }
}

impl Read for FileRange<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = usize::try_from(self.end - self.pos)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    #[test]
    fn file_ranges_read_at_positions() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"0123456789").unwrap();
        let mut out = String::new();
        super::FileRange::new(&file, 3, 4)
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "3456");
        // The file's own offset (at the end after the write) did not matter, nor moved.
        out.clear();
        super::FileRange::new(&file, 8, 100)
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "89");
    }
}
