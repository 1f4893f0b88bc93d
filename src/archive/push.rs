//! Uploading an archive's image to a store, and the digest that upload gives. Plain layers
//! are compressed on the way, in one pass each (the diff_id checked against the config while
//! they stream); compressed layers go as they are. Compression is reproducible (gzip with a
//! fixed level, no mtime and no name; zstd at a fixed level), so the same archive always
//! gives the same manifest, and [`digest`] gets it by compressing into a hashing sink.
//!
//! The manifest is always OCI (see [`manifest`]).

use std::io::Read;

use serde_json::json;

use crate::archive::{Archive, Image};
use crate::digest_cache::DigestCache;
use crate::digest_cache::MIN_SIZE;
use crate::error::{Error, Result};
use crate::image::copy::{Side, Unwatched, Watch};
use crate::image::layer::{Compression, Input, Layer, sniff};
use crate::oci::digest::{Algorithm, hash_reader};
use crate::oci::{Descriptor, Digest, Reference, media};

/// Where the blobs go: stored, or only hashed.
type Put<'a> = dyn Fn(&mut dyn Read) -> Result<(Digest, u64)> + Sync + 'a;

/// Whether the destination has a blob (of this digest and size) already.
type Has<'a> = dyn Fn(&Digest, u64) -> Result<bool> + Sync + 'a;

/// Uploads `image` of `archive` to `dst` and stores its manifest under `reference` (None: by
/// its digest); returns the manifest's descriptor. `jobs` layers move at once.
///
/// With a digest `cache` (and an archive that is a regular file), a layer whose compressed
/// digest is cached is not read when `dst` has that blob (one HEAD); else it is compressed
/// and uploaded, and what it gave is cached.
#[allow(clippy::too_many_arguments)]
pub fn push(
    archive: &Archive,
    image: &Image,
    dst: Side<'_>,
    reference: Option<&Reference>,
    compression: Compression,
    jobs: usize,
    cache: Option<&DigestCache>,
    watch: &dyn Watch,
) -> Result<Descriptor> {
    let put = |content: &mut dyn Read| {
        dst.store
            .put_blob_stream(dst.repo, content, Algorithm::Sha256)
    };
    let has = |digest: &Digest, size: u64| dst.store.has_blob(dst.repo, digest, size);
    let dedup = Dedup { cache, has: &has };
    let layers = upload(archive, image, compression, jobs, &put, dedup, watch)?;
    let config_digest = Digest::sha256(&image.config);
    let config_size = image.config.len() as u64;
    if !dst.store.has_blob(dst.repo, &config_digest, config_size)? {
        dst.store.put_blob(
            dst.repo,
            &config_digest,
            config_size,
            &mut &image.config[..],
        )?;
    }
    let (bytes, media_type) = manifest(&image.config, &layers)?;
    let by_digest = Reference::Digest(Digest::sha256(&bytes));
    let digest = dst.store.put_manifest(
        dst.repo,
        reference.unwrap_or(&by_digest),
        &bytes,
        media_type,
    )?;
    Ok(Descriptor::new(media_type, digest, bytes.len() as u64))
}

/// The manifest digest [`push`] would give `image` (its layers compressed into a hashing
/// sink: as long as compressing them takes, but nothing is stored). With a digest `cache`,
/// the layers' digests come from it when it has them, and go into it when it does not, so
/// that a push of the same archive compresses nothing.
pub fn digest(
    archive: &Archive,
    image: &Image,
    compression: Compression,
    jobs: usize,
    cache: Option<&DigestCache>,
) -> Result<Digest> {
    let put = |content: &mut dyn Read| hash_reader(content, Algorithm::Sha256);
    let dedup = Dedup {
        cache,
        has: &|_: &Digest, _| Ok(true),
    };
    let layers = upload(archive, image, compression, jobs, &put, dedup, &Unwatched)?;
    let (bytes, _) = manifest(&image.config, &layers)?;
    Ok(Digest::sha256(&bytes))
}

/// The digest cache and what says a cached layer need not be put again.
#[derive(Clone, Copy)]
struct Dedup<'a> {
    cache: Option<&'a DigestCache>,
    has: &'a Has<'a>,
}

/// Puts every layer, checking each diff_id against the config's. `watch` sees each layer's
/// member read (named by its diff_id).
///
/// A layer found in the digest cache (keyed by the archive's stat and the member's place and
/// the compression; see `digest_cache`) that `dedup.has` is not read at all: its diff_id was
/// checked when the entry was made, from the same unchanged archive. A layer that is read
/// has its digest and size cached, if the archive did not change meanwhile. A cached digest
/// the destination lacks is no error: the layer is compressed and put as if it were not
/// cached, and the entry replaced by what that gives (a wrong entry never names a blob:
/// only a digest computed here does).
fn upload(
    archive: &Archive,
    image: &Image,
    compression: Compression,
    jobs: usize,
    put: &Put<'_>,
    dedup: Dedup<'_>,
    watch: &dyn Watch,
) -> Result<Vec<Layer>> {
    let work: Vec<(&String, &Digest)> = image.layers.iter().zip(&image.diff_ids).collect();
    let results = crate::parallel::map(jobs, work, |_, (member, expected)| {
        let what = format!("{}: {member}", archive.name());
        let key = dedup.cache.zip(
            archive
                .member_stamp(member, compression)
                .filter(|_| archive.size(member).is_ok_and(|n| n >= MIN_SIZE)),
        );
        if let Some((cache, stamp)) = &key
            && let Some((digest, size)) = cache.get_blob(stamp)
            && (dedup.has)(&digest, size).map_err(|e| e.context(&what))?
        {
            // Only the first bytes: whether the member is compressed already.
            let mut head = Vec::new();
            archive
                .open_member(member)?
                .take(4)
                .read_to_end(&mut head)
                .map_err(|e| Error::io(format!("reading {}", archive.name()), &e))?;
            return Ok(Layer {
                digest,
                size,
                diff_id: (*expected).clone(),
                compression: sniff(&head).unwrap_or(compression),
            });
        }
        let seen = Descriptor::new(media::OCTET_STREAM, expected.clone(), archive.size(member)?);
        let mut range = watch.watch(&seen, Box::new(archive.open_member(member)?));
        let layer = Input::open(&mut range)
            .and_then(|input| input.upload_to(compression, &mut |content| put(content)))
            .map_err(|e| e.context(&what));
        watch.done(&seen);
        let layer = layer?;
        if &layer.diff_id != expected {
            return Err(Error::data(format!(
                "{what}: the layer's diff_id is {}, the config says {expected}",
                layer.diff_id
            )));
        }
        if let Some((cache, stamp)) = &key
            && archive.unchanged()
        {
            cache.put_blob(stamp, &layer.digest, layer.size);
        }
        Ok(layer)
    });
    results.into_iter().collect()
}

/// The image manifest of `config` and `layers`, and its media type: always OCI, which every
/// current registry takes, which OCI layouts require (skopeo and umoci refuse Docker media
/// types there), and which can carry zstd layers; so an archive has one digest wherever it
/// is pushed.
pub fn manifest(config: &[u8], layers: &[Layer]) -> Result<(Vec<u8>, &'static str)> {
    let layer_type = |c: Compression| match c {
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        Compression::None => "application/vnd.oci.image.layer.v1.tar",
    };
    let value = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": config.len(),
            "digest": Digest::sha256(config),
        },
        "layers": layers.iter().map(|l| json!({
            "mediaType": layer_type(l.compression),
            "size": l.size,
            "digest": l.digest,
        })).collect::<Vec<_>>(),
    });
    let bytes = serde_json::to_vec_pretty(&value).map_err(|e| Error::other(e.to_string()))?;
    Ok((bytes, media::OCI_MANIFEST))
}
