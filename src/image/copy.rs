//! Moving images between repositories and registries. Blobs the destination has are skipped;
//! within one registry they are mounted (no bytes move); across registries they are streamed
//! from one to the other, `jobs` at a time, never held whole in memory or on disk. Manifests
//! are copied byte for byte, children before the index that names them, so a digest
//! reference stays valid.

use crate::error::{Error, Kind, Result};
use crate::oci::{Descriptor, Digest, Manifest, Platform};
use crate::registry::transport::retry::RetryPolicy;
use crate::store::{Fetched, Store};

/// One side of a copy: a store and a repository in it.
#[derive(Clone, Copy)]
pub struct Side<'a> {
    /// The store.
    pub store: &'a dyn Store,
    /// The repository in it.
    pub repo: &'a str,
}

impl Side<'_> {
    fn same_store(&self, other: &Side<'_>) -> bool {
        self.store.describe() == other.store.describe()
    }
}

/// Makes every blob of `blobs` present in `dst`, taking them from `src`.
pub fn ensure_blobs(
    src: Side<'_>,
    dst: Side<'_>,
    blobs: Vec<Descriptor>,
    jobs: usize,
) -> Result<()> {
    let same_store = src.same_store(&dst);
    let results = crate::parallel::map(jobs, blobs, |_, blob| {
        if dst.store.has_blob(dst.repo, &blob.digest, blob.size)? {
            return Ok(());
        }
        if same_store {
            match dst.store.mount_blob(dst.repo, src.repo, &blob.digest) {
                Ok(()) => return Ok(()),
                // The registry declined (202): stream it instead.
                Err(e) if e.kind == Kind::Other => {}
                Err(e) => return Err(e),
            }
        }
        // A broken upload starts over from a new session; a broken download resumes. The
        // blob's copy is one operation: every retry of it, at any layer, draws from one budget.
        let budget = retry_policy(src, dst).budget();
        crate::resume::again(&budget, || {
            let stream = src.store.open_blob(src.repo, &blob.digest)?;
            let mut reader = crate::resume::Resuming::new(
                src.store,
                src.repo,
                &blob.digest,
                stream.reader,
                budget.clone(),
            );
            dst.store
                .put_blob(dst.repo, &blob.digest, blob.size, &mut reader)
        })
        .map_err(|e| e.context(format!("copying {}", blob.digest)))
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

/// The blobs an image manifest needs: its config and its layers (foreign layers, which carry
/// URLs and live elsewhere, excepted).
pub fn image_blobs(manifest: &Manifest) -> Vec<Descriptor> {
    match manifest {
        Manifest::Image { config, layers, .. } => std::iter::once(config.clone())
            .chain(
                layers
                    .iter()
                    .filter(|l| !l.media_type.contains("foreign"))
                    .cloned(),
            )
            .collect(),
        _ => Vec::new(),
    }
}

/// Fetches and parses a manifest.
pub fn fetch(side: Side<'_>, reference: &str) -> Result<(Fetched, Manifest)> {
    let fetched = side.store.get_manifest(side.repo, reference)?;
    let manifest = Manifest::parse(&fetched.bytes, fetched.media_type.as_deref())
        .map_err(|e| e.context(reference))?;
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
    tag: Option<&str>,
    jobs: usize,
) -> Result<Digest> {
    ensure_blobs(src, dst, image_blobs(manifest), jobs)?;
    let reference = tag.map_or_else(|| fetched.digest.to_string(), str::to_string);
    dst.store
        .put_manifest(dst.repo, &reference, &fetched.bytes, manifest.media_type())
}

/// Copies the image or index `reference` names to `dst` under `tag` (or by digest). With a
/// platform, an index gives just that platform's image.
pub fn copy(
    src: Side<'_>,
    reference: &str,
    dst: Side<'_>,
    tag: Option<&str>,
    platform: Option<&Platform>,
    jobs: usize,
) -> Result<Digest> {
    let (fetched, manifest) = fetch(src, reference)?;
    let Manifest::Index { manifests, .. } = &manifest else {
        return copy_image(src, dst, &fetched, &manifest, tag, jobs);
    };
    if let Some(wanted) = platform {
        let child = crate::oci::manifest::child_for(manifests, wanted, reference)?;
        let (cf, cm) = fetch(src, &child.digest.to_string())?;
        return copy_image(src, dst, &cf, &cm, tag, jobs);
    }
    for child in manifests {
        let (cf, cm) = fetch(src, &child.digest.to_string())?;
        match cm {
            Manifest::Index { .. } => {
                return Err(Error::data(format!(
                    "{reference}: nested indexes are not supported"
                )));
            }
            _ => {
                copy_image(src, dst, &cf, &cm, None, jobs)?;
            }
        }
    }
    let reference = tag.map_or_else(|| fetched.digest.to_string(), str::to_string);
    dst.store
        .put_manifest(dst.repo, &reference, &fetched.bytes, manifest.media_type())
}
