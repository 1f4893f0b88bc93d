//! The layers and config of an image in a store (a registry or the local store), ready for
//! the merge engine: `flatten` is [`open`] followed by [`crate::image::merge::merge`]. Other
//! image sources (a layout, an archive) only need to give the same [`Image`].
//!
//! Each layer is downloaded once: it is spooled to a temporary file (as it came, compressed)
//! while the first merge pass reads it, verified against its digest as it streams (resumed
//! after a broken connection), and read from the spool by the second pass. At most the
//! compressed size of the image is on disk at once, and layers are fetched one at a time,
//! when the merge reaches them.

use crate::retry::RetryPolicy;
use std::io::{self, Read};

use crate::cancel::Cancel;
use crate::error::{Cause, Error, Result};
use crate::image::copy::{self, Side};
use crate::image::source::{LayerSource, Spooled};
use crate::oci::digest::{HashingReader, check};
use crate::oci::{Descriptor, Digest, Manifest, Platform, Reference};

/// The largest config read (they are small JSON documents).
const MAX_CONFIG: u64 = 16 * 1024 * 1024;

/// An image to flatten: its config bytes and its layers, bottom first.
pub struct Image<'a> {
    /// The config blob as stored.
    pub config: Vec<u8>,
    /// The layers, read twice each by the merge engine.
    pub layers: Vec<Box<dyn LayerSource + 'a>>,
}

/// Opens the image `reference` names in `side`; an index needs `platform`. The layers' spool
/// files go in `tmp` and are removed on `cancel`.
pub fn open<'a>(
    side: Side<'a>,
    reference: &Reference,
    platform: Option<&Platform>,
    retries: u32,
    tmp: &std::path::Path,
    cancel: &Cancel,
) -> Result<Image<'a>> {
    let (_, mut manifest) = copy::fetch(side, reference)?;
    if let Manifest::Index { manifests, .. } = &manifest {
        let Some(wanted) = platform else {
            return Err(
                Error::usage(format!("{reference} is a multi-platform index"))
                    .with_cause(Cause::PlatformNeeded),
            );
        };
        let child = crate::oci::manifest::child_for(manifests, wanted, reference)?;
        manifest = copy::fetch(side, &(&child.digest).into())?.1;
    }
    let Manifest::Image { config, layers, .. } = manifest else {
        return Err(Error::data(format!(
            "{reference}: nested indexes are not supported"
        )));
    };
    if config.size > MAX_CONFIG {
        return Err(Error::data(format!(
            "{reference}: the config is larger than 16 MiB"
        )));
    }
    let config = read_blob(side, &config, retries)?;
    let layers = layers
        .into_iter()
        .map(|layer| {
            if !layer.media_type.contains("tar") {
                return Err(Error::data(format!(
                    "{reference}: the layer {} is {}, not a tar",
                    layer.digest, layer.media_type
                )));
            }
            Ok(Box::new(Spooled::new(
                layer.digest.to_string(),
                tmp,
                cancel,
                move || {
                    Ok(
                        open_verified(side, layer.digest, Some(layer.size), retries)?
                            as Box<dyn Read>,
                    )
                },
            )) as Box<dyn LayerSource + 'a>)
        })
        .collect::<Result<_>>()?;
    Ok(Image { config, layers })
}

pub(crate) fn read_blob(side: Side<'_>, desc: &Descriptor, retries: u32) -> Result<Vec<u8>> {
    let mut reader = open_verified(side, desc.digest.clone(), Some(desc.size), retries)?;
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| crate::error::from_io(format!("reading {}", desc.digest), e))?;
    Ok(bytes)
}

/// A blob stream that resumes after a broken connection and fails at its end unless its
/// content matches `digest` (and `size`).
pub(crate) fn open_verified<'a>(
    side: Side<'a>,
    digest: Digest,
    size: Option<u64>,
    retries: u32,
) -> Result<Box<dyn Read + Send + 'a>> {
    // One blob is one operation: its requests and its resumptions draw from one budget.
    let budget = RetryPolicy::new(retries).budget();
    let blob = budget.enter(|| side.store.open_blob(side.repo, &digest))?;
    blob.expect_size(&digest, size)?;
    let resuming =
        crate::resume::Resuming::new(side.store, side.repo, &digest, blob.reader, budget)
            .with_size(size.or(blob.size));
    Ok(Box::new(Verified {
        inner: Some(HashingReader::new(resuming, digest.algorithm())),
        digest,
        size,
    }))
}

struct Verified<R> {
    inner: Option<HashingReader<R>>,
    digest: Digest,
    size: Option<u64>,
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(0);
        };
        let n = inner.read(buf)?;
        if n == 0
            && !buf.is_empty()
            && let Some(done) = self.inner.take()
        {
            let (actual, count) = done.finish();
            check(&self.digest, self.size, &actual, count)?;
        }
        Ok(n)
    }
}
