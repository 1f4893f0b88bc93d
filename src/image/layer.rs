//! Uploading a tar as an image layer in one pass over the input: the diff_id (sha256 of the
//! uncompressed tar), a streaming tar check, compression and the compressed digest all happen
//! while the bytes flow to the registry (a chunked upload of unknown length). Input that is
//! already gzip- or zstd-compressed is uploaded as it is, and a copy is decompressed on the
//! side for the diff_id and the check. Gzip output has no mtime and no name, so the same tar
//! always gives the same layer digest.

use std::io::{self, BufRead, BufReader, Read, Write};

use crate::error::{Error, Result};
use crate::image::tarcheck::TarCheck;
use crate::oci::Repository;
use crate::oci::digest::{Algorithm, Digest, Hasher};
use crate::store::Store;

/// How a layer's tar is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip (`tar+gzip` media types).
    Gzip,
    /// zstd (`tar+zstd` media types).
    Zstd,
    /// A plain tar.
    None,
}

impl Compression {
    /// `gzip`, `zstd` or `none`; None for anything else.
    pub fn parse(text: &str) -> Option<Compression> {
        match text {
            "gzip" => Some(Compression::Gzip),
            "zstd" => Some(Compression::Zstd),
            "none" => Some(Compression::None),
            _ => None,
        }
    }
}

/// What an uploaded layer is.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// The digest of the layer as stored (compressed).
    pub digest: Digest,
    /// Its size as stored.
    pub size: u64,
    /// The digest of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// How it was compressed.
    pub compression: Compression,
}

/// Receives the uncompressed tar: hashes it for the diff_id and checks it is a tar.
struct TarSink {
    hasher: Hasher,
    check: TarCheck,
}

impl TarSink {
    fn new() -> TarSink {
        TarSink {
            hasher: Algorithm::Sha256.hasher(),
            check: TarCheck::new(),
        }
    }
    fn finish(self) -> Result<Digest> {
        self.check.finish()?;
        Ok(self.hasher.finish())
    }
}

impl Write for TarSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check.update(buf)?;
        self.hasher.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Passes the input through unchanged and feeds every byte to `side` as well.
struct Tee<R, W> {
    inner: R,
    side: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.side.write_all(&buf[..n]).map_err(undecodable)?;
        Ok(n)
    }
}

/// An error of the side that decompresses and checks the layer: the layer is bad data (65),
/// whatever the reader of the tee (a store's upload) makes of an I/O error. The crate's own
/// errors (the tar check's) pass through as they are.
fn undecodable(e: io::Error) -> io::Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        return e;
    }
    let why = match e.kind() {
        // The decoder took no more: its stream ended before the input did.
        io::ErrorKind::WriteZero => "data after the end of the compressed stream".to_string(),
        _ => crate::error::io_reason(&e),
    };
    io::Error::new(
        e.kind(),
        Error::data(format!("not a valid compressed layer: {why}")),
    )
}

/// What the first bytes say the input is.
pub fn sniff(head: &[u8]) -> Option<Compression> {
    match head {
        [0x1f, 0x8b, ..] => Some(Compression::Gzip),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Compression::Zstd),
        _ => None,
    }
}

/// Where a layer's bytes go: a store (or only a hash), giving back the digest and size.
pub type PutBlob<'a> = dyn FnMut(&mut dyn Read) -> Result<(Digest, u64)> + 'a;

/// An input ready to upload, with what it was found to be.
pub struct Input<'a> {
    reader: BufReader<&'a mut dyn Read>,
    /// Set when the input is already compressed.
    pub precompressed: Option<Compression>,
}

impl<'a> Input<'a> {
    /// Looks at the first bytes (nothing is consumed).
    pub fn open(reader: &'a mut dyn Read) -> Result<Input<'a>> {
        let mut reader = BufReader::with_capacity(256 * 1024, reader);
        let head = reader
            .fill_buf()
            .map_err(|e| crate::error::from_io("reading the layer", e))?;
        let precompressed = sniff(head);
        Ok(Input {
            reader,
            precompressed,
        })
    }

    /// The compression the uploaded layer will have.
    pub fn compression(&self, wanted: Compression) -> Compression {
        self.precompressed.unwrap_or(wanted)
    }

    /// Uploads the layer to `repo` in one pass.
    pub fn upload(
        self,
        store: &dyn Store,
        repo: &Repository,
        wanted: Compression,
    ) -> Result<Layer> {
        self.upload_to(wanted, &mut |content| {
            store.put_blob_stream(repo, content, Algorithm::Sha256)
        })
    }

    /// Compresses the layer (unless it already is) in one pass and hands the stream to `put`,
    /// which stores it, or only hashes it, and returns its digest and size.
    pub fn upload_to(self, wanted: Compression, put: &mut PutBlob<'_>) -> Result<Layer> {
        let Input {
            reader,
            precompressed,
        } = self;
        let (digest, size, diff_id) = match precompressed {
            Some(Compression::Gzip) => {
                let mut tee = Tee {
                    inner: reader,
                    // Every member, as the bufread side (flatten) and Go's gzip reader do.
                    side: flate2::write::MultiGzDecoder::new(TarSink::new()),
                };
                let (digest, size) = put(&mut tee)?;
                let sink = tee.side.finish().map_err(|e| {
                    crate::error::from_io("decompressing the layer", undecodable(e))
                })?;
                (digest, size, sink.finish()?)
            }
            Some(Compression::Zstd) => {
                let decoder = zstd::stream::write::Decoder::new(TarSink::new())
                    .map_err(|e| Error::io("starting zstd", &e))?;
                let mut tee = Tee {
                    inner: reader,
                    side: decoder,
                };
                let (digest, size) = put(&mut tee)?;
                // finish, not flush: only finish says when the input stops inside a frame (a
                // truncated layer was taken for the tar it began).
                let sink = tee.side.finish().map_err(|e| {
                    crate::error::from_io("decompressing the layer", undecodable(e))
                })?;
                (digest, size, sink.finish()?)
            }
            _ => {
                let mut tap = Tee {
                    inner: reader,
                    side: TarSink::new(),
                };
                let (digest, size) = match wanted {
                    Compression::Gzip => {
                        // Level 6, no mtime, no name: reproducible.
                        let mut gz =
                            flate2::GzBuilder::new().read(&mut tap, flate2::Compression::new(6));
                        put(&mut gz)?
                    }
                    Compression::Zstd => {
                        let mut zs = zstd::stream::read::Encoder::new(&mut tap, 3)
                            .map_err(|e| Error::io("starting zstd", &e))?;
                        put(&mut zs)?
                    }
                    Compression::None => put(&mut tap)?,
                };
                (digest, size, tap.side.finish()?)
            }
        };
        Ok(Layer {
            digest,
            size,
            diff_id,
            compression: precompressed.unwrap_or(wanted),
        })
    }
}
