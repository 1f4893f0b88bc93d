//! Writing a docker archive that `docker load` and skopeo read: each layer as an uncompressed
//! tar member `<diff_id hex>.tar` (so that its sha256 is the config's diff_id), the config as
//! `<config hex>.json`, then `manifest.json` with `RepoTags`. Members are owned by 0:0 with
//! mode 0644 and mtime 0, so the same image always gives the same bytes.
//!
//! A layer's uncompressed size is known only once it has been decompressed. Into a seekable
//! output (the temporary file of an atomic write) the data is streamed first and its header
//! written after it; into a stream (a pipe) each layer is first spooled, decompressed, to a
//! temporary file. Each layer is checked to be a tar while it passes, and its diff_id against
//! the one expected.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use serde_json::json;

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::image::copy::{Side, Watch};
use crate::image::layer::{Compression, sniff};
use crate::image::tarcheck::TarCheck;
use crate::oci::Digest;
use crate::oci::digest::{Algorithm, copy_hashing};

const BLOCK: u64 = 512;

/// Where an archive is written.
pub enum Output<'a> {
    /// A file that can be sought (layer headers are written after their data).
    Seekable(&'a mut File),
    /// A stream (layers are spooled to temporary files first).
    Stream(&'a mut dyn Write),
}

enum Out<'a> {
    Seekable(BufWriter<&'a mut File>),
    Stream(&'a mut dyn Write),
}

/// An archive being written: layers first, then [`Writer::finish`] with the config.
pub struct Writer<'a> {
    out: Out<'a>,
    /// Bytes written so far (the position in a seekable output).
    pos: u64,
    written: HashSet<Digest>,
    layers: Vec<String>,
    tmp: PathBuf,
    cancel: Cancel,
}

fn header(name: &str, size: u64) -> Result<tar::Header> {
    let mut h = tar::Header::new_gnu();
    h.set_path(name)
        .map_err(|e| Error::other(format!("{name}: {e}")))?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

fn padding(size: u64) -> usize {
    ((BLOCK - size % BLOCK) % BLOCK) as usize
}

/// Writes to `out` and feeds the tar check with the same bytes.
struct Checked<'a, W> {
    out: W,
    check: &'a mut TarCheck,
}

impl<W: Write> Write for Checked<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.check.update(&buf[..n])?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl<'a> Writer<'a> {
    /// Starts an archive in `out`; spool files (for a stream) go in `tmp`, removed on
    /// `cancel`.
    pub fn new(out: Output<'a>, tmp: &Path, cancel: &Cancel) -> Writer<'a> {
        let out = match out {
            Output::Seekable(f) => Out::Seekable(BufWriter::with_capacity(256 * 1024, f)),
            Output::Stream(w) => Out::Stream(w),
        };
        Writer {
            out,
            pos: 0,
            written: HashSet::new(),
            layers: Vec::new(),
            tmp: tmp.to_path_buf(),
            cancel: cancel.clone(),
        }
    }

    fn raw(&mut self) -> &mut dyn Write {
        match &mut self.out {
            Out::Seekable(w) => w,
            Out::Stream(w) => *w,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.raw()
            .write_all(bytes)
            .map_err(|e| crate::error::from_write("writing the archive", e))?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn member(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let h = header(name, bytes.len() as u64)?;
        self.put(h.as_bytes())?;
        self.put(bytes)?;
        self.put(&[0u8; BLOCK as usize][..padding(bytes.len() as u64)])
    }

    /// Adds a layer from `content` (a tar, plain or gzip/zstd compressed, told by its first
    /// bytes) and returns its diff_id. With `expected`, a different diff_id is a data error.
    /// `what` names the layer in messages. A layer already in the archive is written once.
    pub fn add_layer(
        &mut self,
        content: &mut dyn Read,
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<Digest> {
        let mut buffered = BufReader::with_capacity(256 * 1024, self.cancel.reader(content));
        let head = buffered
            .fill_buf()
            .map_err(|e| crate::error::from_io(format!("reading {what}"), e))?;
        let decoded: Box<dyn Read + '_> = match sniff(head) {
            Some(Compression::Gzip) => {
                Box::new(flate2::bufread::MultiGzDecoder::new(&mut buffered))
            }
            Some(Compression::Zstd) => Box::new(
                zstd::stream::read::Decoder::with_buffer(&mut buffered)
                    .map_err(|e| Error::io("starting zstd", &e))?,
            ),
            _ => Box::new(&mut buffered),
        };
        let mut decoded = DataErrors(decoded);
        let mut check = TarCheck::new();
        let bad = |e: Error| e.context(what);
        let start = self.pos;
        let (diff_id, dup) = match &mut self.out {
            Out::Seekable(w) => {
                let failed = |e| crate::error::from_write("writing the archive", e);
                w.write_all(&[0u8; BLOCK as usize]).map_err(failed)?;
                let mut sink = Checked {
                    out: &mut *w,
                    check: &mut check,
                };
                let (diff_id, size) =
                    copy_hashing(&mut decoded, &mut sink, Algorithm::Sha256).map_err(bad)?;
                check.finish().map_err(bad)?;
                verify(&diff_id, expected, what)?;
                w.write_all(&[0u8; BLOCK as usize][..padding(size)])
                    .map_err(failed)?;
                let end = start + BLOCK + size + padding(size) as u64;
                let dup = self.written.contains(&diff_id);
                w.seek(SeekFrom::Start(start)).map_err(failed)?;
                if !dup {
                    let h = header(&format!("{}.tar", diff_id.hex()), size)?;
                    w.write_all(h.as_bytes()).map_err(failed)?;
                    w.seek(SeekFrom::Start(end)).map_err(failed)?;
                    self.pos = end;
                }
                (diff_id, dup)
            }
            Out::Stream(_) => {
                let (mut spool, _guard) = self
                    .cancel
                    .tempfile(".regtool-layer-", &self.tmp)
                    .map_err(|e| {
                        Error::io(format!("creating a file in {}", self.tmp.display()), &e)
                    })?;
                let (diff_id, size) = {
                    let mut sink = Checked {
                        out: BufWriter::with_capacity(256 * 1024, spool.as_file_mut()),
                        check: &mut check,
                    };
                    let got =
                        copy_hashing(&mut decoded, &mut sink, Algorithm::Sha256).map_err(bad)?;
                    sink.flush()
                        .map_err(|e| Error::io("writing the spool file", &e))?;
                    got
                };
                check.finish().map_err(bad)?;
                verify(&diff_id, expected, what)?;
                let dup = self.written.contains(&diff_id);
                if !dup {
                    let h = header(&format!("{}.tar", diff_id.hex()), size)?;
                    self.put(h.as_bytes())?;
                    let mut file = spool
                        .reopen()
                        .map_err(|e| Error::io("reading the spool file", &e))?;
                    let copied = io::copy(&mut file, self.raw())
                        .map_err(|e| crate::error::from_write("writing the archive", e))?;
                    self.pos += copied;
                    self.put(&[0u8; BLOCK as usize][..padding(size)])?;
                }
                (diff_id, dup)
            }
        };
        // To its end, so that a verifying source checks its digest.
        drop(decoded);
        io::copy(&mut buffered, &mut io::sink())
            .map_err(|e| crate::error::from_io(format!("reading {what}"), e))?;
        if !dup {
            self.written.insert(diff_id.clone());
        }
        self.layers.push(format!("{}.tar", diff_id.hex()));
        Ok(diff_id)
    }

    /// Writes the config and `manifest.json` (with `repo_tags`), ends the tar and flushes.
    pub fn finish(mut self, config: &[u8], repo_tags: &[String]) -> Result<()> {
        let config_name = format!("{}.json", Digest::sha256(config).hex());
        self.member(&config_name, config)?;
        let manifest = json!([{
            "Config": config_name,
            "RepoTags": repo_tags,
            "Layers": self.layers,
        }]);
        let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::other(e.to_string()))?;
        self.member("manifest.json", &bytes)?;
        self.put(&[0u8; 2 * BLOCK as usize])?;
        let failed = |e| crate::error::from_write("writing the archive", e);
        match self.out {
            Out::Seekable(w) => {
                let file = w.into_inner().map_err(|e| failed(e.into_error()))?;
                // A layer written twice was rewound over: drop whatever lies past the end.
                file.set_len(self.pos).map_err(failed)?;
                Ok(())
            }
            Out::Stream(w) => w.flush().map_err(failed),
        }
    }
}

fn verify(diff_id: &Digest, expected: Option<&Digest>, what: &str) -> Result<()> {
    match expected {
        Some(want) if want != diff_id => Err(Error::data(format!(
            "{what}: the layer's diff_id is {diff_id}, the config says {want}"
        ))),
        _ => Ok(()),
    }
}

/// A decompressor's complaint (corrupt or truncated data) is a data error.
struct DataErrors<R>(R);

impl<R: Read> Read for DataErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // The decompressors' own errors (zstd's "Unknown frame descriptor" is of kind Other)
        // carry no OS error; the file's and our own (a cancel) pass as they are.
        self.0.read(buf).map_err(|e| match e.kind() {
            io::ErrorKind::Interrupted => e,
            _ if e.raw_os_error().is_none() && e.get_ref().is_none_or(|i| !i.is::<Error>()) => {
                Error::data(format!(
                    "not a valid layer: {}",
                    crate::error::io_reason(&e)
                ))
                .into()
            }
            _ => e,
        })
    }
}

/// Saves the image `reference` names in `src` as an archive (docker save): an index gives the
/// child for `platform`. `repo_tags` go in `manifest.json`. Blobs are verified as they stream
/// (resumed after a broken connection, `retries` times), each layer's diff_id against the
/// config. Returns the config's digest (docker's image ID).
pub fn save(
    src: Side<'_>,
    reference: &crate::oci::Reference,
    platform: &crate::oci::Platform,
    repo_tags: &[String],
    mut writer: Writer<'_>,
    fetch: &Fetch<'_>,
) -> Result<Digest> {
    let crate::image::copy::TarImage {
        config,
        layers,
        diff_ids,
        ..
    } = crate::image::copy::fetch_tar_image(src, reference, platform, fetch.retries)?;
    // Layers download `jobs` at a time, in order, each into a spool file (compressed, as it
    // came, verified); the archive takes them in order as they land.
    let (tmp, cancel) = (writer.tmp.clone(), writer.cancel.clone());
    let slots: Mutex<Vec<Option<Result<Spool>>>> =
        Mutex::new(layers.iter().map(|_| None).collect());
    let ready = Condvar::new();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            crate::parallel::map(fetch.jobs, (0..layers.len()).collect(), |_, i| {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let got = download(src, &layers[i], fetch, &tmp, &cancel);
                if let Ok(mut slots) = slots.lock() {
                    slots[i] = Some(got);
                }
                ready.notify_all();
            });
        });
        let written = (|| {
            for (i, (layer, diff_id)) in layers.iter().zip(&diff_ids).enumerate() {
                let (spool, _guard) = wait(&slots, &ready, i)?;
                let mut file = spool
                    .reopen()
                    .map_err(|e| Error::io("reading the spool file", &e))?;
                writer.add_layer(&mut file, Some(diff_id), &layer.digest.to_string())?;
            }
            writer.finish(&config, repo_tags)
        })();
        if written.is_err() {
            // Start no more downloads (those under way end, and their spools go).
            stop.store(true, Ordering::SeqCst);
        }
        written
    })?;
    Ok(Digest::sha256(&config))
}

/// How [`save`] downloads layers.
pub struct Fetch<'a> {
    /// Retries of a broken download (each blob is one operation).
    pub retries: u32,
    /// Layers downloaded at once.
    pub jobs: usize,
    /// Sees each layer's download (a progress bar).
    pub watch: &'a dyn Watch,
}

/// A layer downloaded to a temporary file, removed when dropped (or on cancel).
type Spool = (tempfile::NamedTempFile, crate::cancel::Guard);

/// Downloads `layer` into a spool file in `tmp`, verified against its digest.
fn download(
    src: Side<'_>,
    layer: &crate::oci::Descriptor,
    fetch: &Fetch<'_>,
    tmp: &Path,
    cancel: &Cancel,
) -> Result<Spool> {
    let (mut spool, guard) = cancel
        .tempfile(".regtool-layer-", tmp)
        .map_err(|e| Error::io(format!("creating a file in {}", tmp.display()), &e))?;
    let blob = crate::image::flatten::open_verified(
        src,
        layer.digest.clone(),
        Some(layer.size),
        fetch.retries,
    )?;
    let mut blob = fetch.watch.watch(layer, blob);
    let copied = io::copy(&mut blob, spool.as_file_mut())
        .map_err(|e| crate::error::from_io(format!("pulling {}", layer.digest), e));
    fetch.watch.done(layer);
    copied?;
    Ok((spool, guard))
}

/// Waits until slot `i` holds its download, and takes it.
fn wait(slots: &Mutex<Vec<Option<Result<Spool>>>>, ready: &Condvar, i: usize) -> Result<Spool> {
    let poisoned = || Error::other("a download thread failed");
    let mut guard = slots.lock().map_err(|_| poisoned())?;
    loop {
        if let Some(got) = guard[i].take() {
            return got;
        }
        guard = ready.wait(guard).map_err(|_| poisoned())?;
    }
}

/// Writes `image` of `archive` into `writer` as it is (the same config and layers, as plain
/// tars), named `repo_tags`: an archive copied into another, normalised.
pub fn copy(
    archive: &super::Archive,
    image: &super::Image,
    repo_tags: &[String],
    mut writer: Writer<'_>,
) -> Result<()> {
    for (member, diff_id) in image.layers.iter().zip(&image.diff_ids) {
        let what = format!("{}: {member}", archive.name());
        writer.add_layer(&mut archive.open_member(member)?, Some(diff_id), &what)?;
    }
    writer.finish(&image.config, repo_tags)
}
