//! Where layer bytes come from, and reading them as tar entries. A [`LayerSource`] can be
//! opened more than once (the merge engine reads each layer twice): a regular file is simply
//! reopened; a stream that cannot be read again (stdin, a pipe, `<(...)`, a registry blob) is
//! a [`Spooled`] source, copied to a temporary file as it is read the first time (still
//! compressed, so the spool is no bigger than the stream) and read from there the second
//! time. [`read_entries`] detects the compression by its magic bytes (gzip, zstd, or none),
//! checks the tar as it streams (the checks append-layer applies: checksums, sizes, no path
//! leaving the root) and hands each entry to a visitor.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::cancel::{self, Cancel};
use crate::error::{Error, Result};
use crate::image::layer::{Compression, sniff};
use crate::image::tarcheck::TarCheck;
use crate::oci::digest::{Digest, Hasher};

/// A layer that can be opened from its start, as often as needed.
pub trait LayerSource {
    /// Names the layer in messages (a path, `stdin`, a digest).
    fn describe(&self) -> String;
    /// The layer's bytes (compressed or not) from the start.
    fn open(&mut self) -> Result<Box<dyn Read + '_>>;
    /// The digest of the layer's tar (uncompressed) when the source is to be checked against
    /// one: a docker archive's member, which only its config's diff_id vouches for.
    fn diff_id(&self) -> Option<Digest> {
        None
    }
}

/// A regular file, reopened for each read (through the handle opened first, so a file
/// replaced meanwhile is not mixed in).
pub struct FileSource {
    path: PathBuf,
    file: File,
}

impl FileSource {
    /// `file` is `path` opened; `path` names it in messages.
    pub fn new(path: PathBuf, file: File) -> FileSource {
        FileSource { path, file }
    }
}

impl LayerSource for FileSource {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
    fn open(&mut self) -> Result<Box<dyn Read + '_>> {
        self.file
            .rewind()
            .map_err(|e| Error::io(format!("reading {}", self.path.display()), &e))?;
        Ok(Box::new(&self.file))
    }
}

type Opener<'a> = Box<dyn FnOnce() -> Result<Box<dyn Read + 'a>> + 'a>;

enum Spool<'a> {
    Fresh(Opener<'a>),
    Filled(tempfile::NamedTempFile, cancel::Guard),
    Gone,
}

/// A stream read once: the first read copies it to a temporary file in the directory the
/// caller names (the library reads no environment: the binary gives `TMPDIR`), later reads
/// come from that file. The file is removed when the source is dropped (and on cancel).
pub struct Spooled<'a> {
    name: String,
    spool: Spool<'a>,
    dir: PathBuf,
    cancel: Cancel,
}

impl<'a> Spooled<'a> {
    /// `open` is called once, when the layer is first read (so a registry connection is not
    /// held open while earlier layers are read). The spool file goes in `dir`.
    pub fn new(
        name: impl Into<String>,
        dir: &Path,
        cancel: &Cancel,
        open: impl FnOnce() -> Result<Box<dyn Read + 'a>> + 'a,
    ) -> Spooled<'a> {
        Spooled {
            name: name.into(),
            spool: Spool::Fresh(Box::new(open)),
            dir: dir.to_path_buf(),
            cancel: cancel.clone(),
        }
    }
}

impl LayerSource for Spooled<'_> {
    fn describe(&self) -> String {
        self.name.clone()
    }
    fn open(&mut self) -> Result<Box<dyn Read + '_>> {
        match std::mem::replace(&mut self.spool, Spool::Gone) {
            Spool::Fresh(opener) => {
                let dir = &self.dir;
                let (tmp, guard) = self
                    .cancel
                    .tempfile(".regtool-spool-", dir)
                    .map_err(|e| Error::io(format!("creating a file in {}", dir.display()), &e))?;
                let side = tmp
                    .reopen()
                    .map_err(|e| Error::io("opening the spool file", &e))?;
                let inner = opener()?;
                self.spool = Spool::Filled(tmp, guard);
                Ok(Box::new(Tee {
                    inner,
                    side: io::BufWriter::with_capacity(256 * 1024, side),
                }))
            }
            Spool::Filled(tmp, guard) => {
                let file = tmp
                    .reopen()
                    .map_err(|e| Error::io("reading the spool file", &e))?;
                self.spool = Spool::Filled(tmp, guard);
                Ok(Box::new(file))
            }
            Spool::Gone => Err(Error::other(format!(
                "{}: the layer could not be read again",
                self.name
            ))),
        }
    }
}

/// Passes a stream through and writes every byte to `side` as well.
struct Tee<R, W: Write> {
    inner: R,
    side: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.side.flush()?;
        }
        self.side.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Feeds every byte read to the tar check, so that a bad archive fails with its reason, and
/// to the hasher of the diff_id when there is one to check.
struct Checked<R> {
    inner: R,
    check: TarCheck,
    /// The check refused the stream: its error is the reason, whatever came after.
    refused: bool,
    hasher: Option<Hasher>,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        if let Err(e) = self.check.update(&buf[..n]) {
            self.refused = true;
            return Err(e.into());
        }
        Ok(n)
    }
}

/// A tar error as a one-line data error naming the layer (our own errors, from the check or
/// the source, keep their kind).
pub fn tar_error(layer: &str, e: io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        return crate::error::from_io(layer, e).context(layer);
    }
    Error::data(format!(
        "{layer}: not a valid layer: {}",
        crate::error::io_reason(&e)
    ))
}

/// Reads the layer `source` gives, and calls `visit` with each entry's ordinal and the entry
/// (its data unread unless the visitor reads it). The whole stream is read to its end, so
/// that a spool is complete and a verifying source checks its digest.
pub fn read_entries(
    source: &mut dyn LayerSource,
    mut visit: impl FnMut(u64, &mut tar::Entry<'_, &mut dyn Read>) -> Result<()>,
) -> Result<()> {
    let name = source.describe();
    let diff_id = source.diff_id();
    let raw = source.open()?;
    let mut buffered = BufReader::with_capacity(256 * 1024, raw);
    let head = buffered.fill_buf().map_err(|e| tar_error(&name, e))?;
    let compression = sniff(head).unwrap_or(Compression::None);
    {
        let decoded: Box<dyn Read + '_> = match compression {
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(&mut buffered)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(&mut buffered)
                    .map_err(|e| Error::io("starting zstd", &e))?,
            ),
            Compression::None => Box::new(&mut buffered),
        };
        let mut checked = Checked {
            inner: decoded,
            check: TarCheck::new(),
            refused: false,
            hasher: diff_id.as_ref().map(|d| d.algorithm().hasher()),
        };
        let parsed = {
            let reader: &mut dyn Read = &mut checked;
            let mut archive = tar::Archive::new(reader);
            visit_all(&mut archive, &name, &mut visit)
        };
        if let Err(e) = parsed {
            // The check says best what is wrong with a stream that is not a tar (unless it
            // has said it already: it refused an entry, maybe the first).
            return match checked.check.finish() {
                Err(why) if e.kind == crate::error::Kind::Data && !checked.refused => {
                    Err(why.context(&name))
                }
                _ => Err(e),
            };
        }
        io::copy(&mut checked, &mut io::sink()).map_err(|e| tar_error(&name, e))?;
        checked.check.finish().map_err(|e| e.context(&name))?;
        if let (Some(expected), Some(hasher)) = (diff_id, checked.hasher) {
            let actual = hasher.finish();
            if actual != expected {
                return Err(Error::data(format!(
                    "{name}: the layer's diff_id is {actual}, the config says {expected}"
                )));
            }
        }
    }
    io::copy(&mut buffered, &mut io::sink()).map_err(|e| tar_error(&name, e))?;
    Ok(())
}

fn visit_all(
    archive: &mut tar::Archive<&mut dyn Read>,
    name: &str,
    visit: &mut impl FnMut(u64, &mut tar::Entry<'_, &mut dyn Read>) -> Result<()>,
) -> Result<()> {
    let entries = archive.entries().map_err(|e| tar_error(name, e))?;
    for (i, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| tar_error(name, e))?;
        visit(i as u64, &mut entry)?;
    }
    Ok(())
}

/// Opens a layer named on the command line: a regular file is read in place; anything else
/// (a pipe, `<(...)`, a device) is spooled in `tmp`, the spool removed on `cancel`. A missing
/// file is a not-found error.
pub fn open_path(path: &Path, tmp: &Path, cancel: &Cancel) -> Result<Box<dyn LayerSource>> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|e| Error::io(format!("opening {shown}"), &e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("opening {shown}"), &e))?;
    if meta.is_dir() {
        return Err(Error::usage(format!("{shown} is a directory, not a layer")));
    }
    if meta.is_file() {
        return Ok(Box::new(FileSource::new(path.to_path_buf(), file)));
    }
    Ok(Box::new(Spooled::new(shown, tmp, cancel, move || {
        Ok(Box::new(file) as Box<dyn Read>)
    })))
}

/// Standard input as a layer (spooled in `tmp`: it can be read only once), the spool removed
/// on `cancel`.
pub fn stdin(tmp: &Path, cancel: &Cancel) -> Box<dyn LayerSource> {
    Box::new(Spooled::new("stdin", tmp, cancel, || {
        Ok(Box::new(io::stdin().lock()) as Box<dyn Read>)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spooled_stream_reads_the_same_twice() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let copy = data.clone();
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spooled::new("x", dir.path(), &Cancel::new(), move || {
            Ok(Box::new(io::Cursor::new(copy)) as Box<dyn Read>)
        });
        for _ in 0..2 {
            let mut got = Vec::new();
            s.open().unwrap().read_to_end(&mut got).unwrap();
            assert!(got == data);
            // The spool is in the directory the caller gave.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        }
        drop(s);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn missing_and_directory_paths_are_refused() {
        let e = open_path(
            Path::new("/nonexistent/layer.tar"),
            Path::new("/tmp"),
            &Cancel::new(),
        )
        .err()
        .unwrap();
        assert_eq!(e.kind, crate::error::Kind::NotFound);
        assert_eq!(
            e.message,
            "opening /nonexistent/layer.tar: No such file or directory"
        );
        let e = open_path(Path::new("/"), Path::new("/tmp"), &Cancel::new())
            .err()
            .unwrap();
        assert_eq!(e.kind, crate::error::Kind::Usage);
    }
}
