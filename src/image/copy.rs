//! Moving images between repositories and registries. Blobs the destination has are skipped;
//! within one registry they are mounted (no bytes move); across registries they are streamed
//! from one to the other, `jobs` at a time, never held whole in memory or on disk. Manifests
//! are copied byte for byte, children before the index that names them, so a digest
//! reference stays valid.

use std::io::Read;

use crate::alias::Resolved;
use crate::error::{Error, Result};
use crate::oci::{Descriptor, Digest, Manifest, Platform, Reference, Repository, Tag};
use crate::retry::RetryPolicy;
use crate::store::{Fetched, Location, Mount, Store};

/// One side of a copy: a store and a repository in it.
#[derive(Clone, Copy)]
pub struct Side<'a> {
    /// The store.
    pub store: &'a dyn Store,
    /// The repository in it.
    pub repo: &'a Repository,
}

impl Side<'_> {
    fn same_store(&self, other: &Side<'_>) -> bool {
        self.store.location() == other.store.location()
    }
}

/// Sees the bytes of each blob a copy streams (the binary draws a progress bar per blob; the
/// library draws nothing).
pub trait Watch: Sync {
    /// Wraps the stream of `blob`'s bytes on their way to the destination; `done` is called
    /// when the blob is copied (or failed).
    fn watch<'a>(
        &self,
        blob: &Descriptor,
        reader: Box<dyn Read + Send + 'a>,
    ) -> Box<dyn Read + Send + 'a>;
    /// The blob is copied, or failed.
    fn done(&self, _blob: &Descriptor) {}
}

/// Watches nothing.
pub struct Unwatched;

impl Watch for Unwatched {
    fn watch<'a>(
        &self,
        _blob: &Descriptor,
        reader: Box<dyn Read + Send + 'a>,
    ) -> Box<dyn Read + Send + 'a> {
        reader
    }
}

/// Makes every blob of `blobs` present in `dst`, taking them from `src`.
pub fn ensure_blobs(
    src: Side<'_>,
    dst: Side<'_>,
    blobs: Vec<Descriptor>,
    jobs: usize,
) -> Result<()> {
    ensure_blobs_watched(src, dst, blobs, jobs, &Unwatched)
}

/// [`ensure_blobs`], the streamed blobs shown to `watch`.
pub fn ensure_blobs_watched(
    src: Side<'_>,
    dst: Side<'_>,
    blobs: Vec<Descriptor>,
    jobs: usize,
    watch: &dyn Watch,
) -> Result<()> {
    let same_store = src.same_store(&dst);
    let results = crate::parallel::map(jobs, blobs, |_, blob| {
        if dst.store.has_blob(dst.repo, &blob.digest, blob.size)? {
            return Ok(());
        }
        if same_store {
            match dst.store.mount_blob(dst.repo, src.repo, &blob.digest)? {
                Mount::Mounted => return Ok(()),
                // The registry declined (202): stream it instead.
                Mount::Declined => {}
            }
        }
        // A broken upload starts over from a new session; a broken download resumes. The
        // blob's copy is one operation: every retry of it, at any layer, draws from one budget.
        let budget = retry_policy(src, dst).budget();
        let copied = crate::resume::again(&budget, || {
            let stream = src.store.open_blob(src.repo, &blob.digest)?;
            stream.expect_size(&blob.digest, Some(blob.size))?;
            let reader = crate::resume::Resuming::new(
                src.store,
                src.repo,
                &blob.digest,
                stream.reader,
                budget.clone(),
            )
            .with_size(Some(blob.size));
            let mut reader = watch.watch(&blob, Box::new(reader));
            dst.store
                .put_blob(dst.repo, &blob.digest, blob.size, &mut reader)
        });
        watch.done(&blob);
        copied.map_err(|e| e.context(format!("copying {}", blob.digest)))
    });
    results.into_iter().collect()
}

/// The retry policy of a copy: the source's (downloads are resumed), else the destination's.
fn retry_policy(src: Side<'_>, dst: Side<'_>) -> RetryPolicy {
    src.store
        .retry_policy()
        .or_else(|| dst.store.retry_policy())
        .unwrap_or(RetryPolicy::new(0))
}

/// The layers that move with an image: all but foreign (non-distributable) layers, which
/// carry URLs and live elsewhere (image-spec "Image Layer Filesystem Changeset",
/// non-distributable layers; Docker's `foreign` layer media types).
pub fn distributable(layers: &[Descriptor]) -> impl Iterator<Item = &Descriptor> {
    layers.iter().filter(|l| !l.media_type.contains("foreign"))
}

/// The blobs an image manifest needs: its config and its distributable layers.
pub fn image_blobs(manifest: &Manifest) -> Vec<Descriptor> {
    match manifest {
        Manifest::Image { config, layers, .. } => std::iter::once(config)
            .chain(distributable(layers))
            .cloned()
            .collect(),
        _ => Vec::new(),
    }
}

/// Fetches and parses a manifest that can be copied or edited (not schema 1).
pub fn fetch(side: Side<'_>, reference: &Reference) -> Result<(Fetched, Manifest)> {
    let Resolved { fetched, manifest } = Resolved::fetch(side.store, side.repo, reference)?;
    if let Manifest::Schema1 { .. } = manifest {
        return Err(Error::data(format!(
            "{reference}: Docker schema 1 images cannot be copied or edited"
        )));
    }
    Ok((fetched, manifest))
}

/// Copies one image manifest (after its blobs) and stores it under `tag` (or its digest).
fn copy_image(
    src: Side<'_>,
    dst: Side<'_>,
    fetched: &Fetched,
    manifest: &Manifest,
    tag: Option<&Tag>,
    opts: &Options<'_>,
) -> Result<Digest> {
    let blobs = image_blobs(manifest);
    check_local(src, &blobs)?;
    ensure_blobs_watched(src, dst, blobs, opts.jobs, opts.watch)?;
    let reference = stored_as(fetched, tag);
    dst.store
        .put_manifest(dst.repo, &reference, &fetched.bytes, manifest.media_type())
}

/// How a copy goes: the platform to take from an index (None: all of them), how many blobs
/// move at once, and who watches them move.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    /// With a platform, an index gives just that platform's image.
    pub platform: Option<&'a Platform>,
    /// Blobs copied at once.
    pub jobs: usize,
    /// Sees each streamed blob.
    pub watch: &'a dyn Watch,
}

impl<'a> Options<'a> {
    /// Every platform, `jobs` blobs at once, unwatched.
    pub fn new(jobs: usize) -> Options<'a> {
        Options {
            platform: None,
            jobs,
            watch: &Unwatched,
        }
    }
}

/// Copies the image or index `reference` names to `dst` under `tag` (or by digest). With a
/// platform, an index gives just that platform's image.
pub fn copy(
    src: Side<'_>,
    reference: &Reference,
    dst: Side<'_>,
    tag: Option<&Tag>,
    platform: Option<&Platform>,
    jobs: usize,
) -> Result<Digest> {
    let opts = Options {
        platform,
        ..Options::new(jobs)
    };
    copy_with(src, reference, dst, tag, &opts).map(|copied| copied.digest)
}

/// What a copy stored at the top: the manifest or index's digest, size and media type.
pub type Copied = Descriptor;

/// [`copy`] with all its options; returns the descriptor of what it stored at the top.
pub fn copy_with(
    src: Side<'_>,
    reference: &Reference,
    dst: Side<'_>,
    tag: Option<&Tag>,
    opts: &Options<'_>,
) -> Result<Copied> {
    let (fetched, manifest) = fetch(src, reference)?;
    let described = |fetched: &Fetched, manifest: &Manifest, digest: Digest| {
        Descriptor::new(manifest.media_type(), digest, fetched.bytes.len() as u64)
    };
    let Manifest::Index { manifests, .. } = &manifest else {
        let digest = copy_image(src, dst, &fetched, &manifest, tag, opts)?;
        return Ok(described(&fetched, &manifest, digest));
    };
    if let Some(wanted) = opts.platform {
        let child = crate::oci::manifest::child_for(manifests, wanted, reference)?;
        let (cf, cm) = fetch(src, &(&child.digest).into())?;
        let digest = copy_image(src, dst, &cf, &cm, tag, opts)?;
        return Ok(described(&cf, &cm, digest));
    }
    // Every child is fetched and checked before the first blob moves, so that an index with
    // a bad child writes nothing.
    let mut children = Vec::with_capacity(manifests.len());
    for child in manifests {
        let (cf, cm) = fetch_child(src, dst, &child.digest)?;
        if let Manifest::Index { .. } = cm {
            return Err(Error::data(format!(
                "{reference}: nested indexes are not supported"
            )));
        }
        children.push((cf, cm));
    }
    let blobs: Vec<Descriptor> = children
        .iter()
        .flat_map(|(_, cm)| image_blobs(cm))
        .collect();
    let blobs = unique(blobs);
    check_local(src, &blobs)?;
    ensure_blobs_watched(src, dst, blobs, opts.jobs, opts.watch)?;
    // Children before the index that names them.
    for (cf, cm) in &children {
        dst.store
            .put_manifest(dst.repo, &(&cf.digest).into(), &cf.bytes, cm.media_type())?;
    }
    let reference = stored_as(&fetched, tag);
    let digest =
        dst.store
            .put_manifest(dst.repo, &reference, &fetched.bytes, manifest.media_type())?;
    Ok(described(&fetched, &manifest, digest))
}

/// A child of an index, from a local destination that has it already (read and verified
/// there, so a second pull of an index asks the registry for the index alone), else from the
/// source.
fn fetch_child(src: Side<'_>, dst: Side<'_>, digest: &Digest) -> Result<(Fetched, Manifest)> {
    let local = !matches!(dst.store.location(), Location::Registry(_));
    if local && dst.store.blob_size(dst.repo, digest)?.is_some() {
        // A corrupt copy is not used: the source's replaces it.
        if let Ok(found) = fetch(dst, &digest.into()) {
            return Ok(found);
        }
    }
    fetch(src, &digest.into())
}

/// A local source (a layout) must hold every blob before the first one moves, so that an
/// image that is not whole leaves nothing at the destination (checking costs a stat each).
/// A missing blob is not found; one of another size is bad data.
fn check_local(src: Side<'_>, blobs: &[Descriptor]) -> Result<()> {
    if let Location::Registry(_) = src.store.location() {
        return Ok(());
    }
    for blob in blobs {
        match src.store.blob_size(src.repo, &blob.digest)? {
            Some(size) if size == blob.size => {}
            Some(size) => {
                return Err(Error::data(format!(
                    "{}: blob {} has {size} bytes, not the {} its manifest says",
                    src.store.location(),
                    blob.digest,
                    blob.size
                )));
            }
            None => {
                return Err(Error::not_found(format!(
                    "{}: blob {} is missing",
                    src.store.location(),
                    blob.digest
                )));
            }
        }
    }
    Ok(())
}

/// The blobs, each once (in their first order): platforms share layers.
fn unique(blobs: Vec<Descriptor>) -> Vec<Descriptor> {
    let mut seen = std::collections::HashSet::new();
    blobs
        .into_iter()
        .filter(|b| seen.insert(b.digest.clone()))
        .collect()
}

/// What a copied manifest is stored under: the tag, else its digest.
fn stored_as(fetched: &Fetched, tag: Option<&Tag>) -> Reference {
    tag.map_or_else(|| (&fetched.digest).into(), Reference::from)
}

/// An image read from a store to be written out as plain layers (an archive, a new image):
/// its config, parsed, and its layers with the diff_ids the config gives them.
pub struct TarImage {
    /// The config, byte for byte.
    pub config: Vec<u8>,
    /// The config, parsed.
    pub parsed: serde_json::Value,
    /// The layers, bottom first.
    pub layers: Vec<Descriptor>,
    /// The config's diff_id of each layer.
    pub diff_ids: Vec<Digest>,
}

/// Reads the image `reference` names in `side` (an index gives the child for `platform`):
/// its config (at most 16 MiB, verified, fetched with `retries`) and layers, which must be
/// tars, one for each of the config's diff_ids.
pub fn fetch_tar_image(
    side: Side<'_>,
    reference: &Reference,
    platform: &Platform,
    retries: u32,
) -> Result<TarImage> {
    let (_, mut manifest) = fetch(side, reference)?;
    if let Manifest::Index { manifests, .. } = &manifest {
        let child = crate::oci::manifest::child_for(manifests, platform, reference)?;
        manifest = fetch(side, &(&child.digest).into())?.1;
    }
    let Manifest::Image { config, layers, .. } = manifest else {
        return Err(Error::data(format!(
            "{reference}: nested indexes are not supported"
        )));
    };
    if config.size > 16 << 20 {
        return Err(Error::data(format!(
            "{reference}: the config is larger than 16 MiB"
        )));
    }
    let config = crate::image::flatten::read_blob(side, &config, retries)?;
    let parsed: serde_json::Value = serde_json::from_slice(&config)
        .map_err(|e| Error::data(format!("{reference}: malformed image config: {e}")))?;
    let diff_ids = diff_ids(&parsed);
    if diff_ids.len() != layers.len() {
        return Err(Error::data(format!(
            "{reference}: the config has {} diff_ids for {} layers",
            diff_ids.len(),
            layers.len()
        )));
    }
    if let Some(layer) = layers.iter().find(|l| !l.media_type.contains("tar")) {
        return Err(Error::data(format!(
            "{reference}: the layer {} is {}, not a tar",
            layer.digest, layer.media_type
        )));
    }
    Ok(TarImage {
        config,
        parsed,
        layers,
        diff_ids,
    })
}

/// The diff_ids an image config lists (those that parse as digests).
pub fn diff_ids(config: &serde_json::Value) -> Vec<Digest> {
    config["rootfs"]["diff_ids"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|d| d.as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}
