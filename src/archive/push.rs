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
use crate::error::{Error, Result};
use crate::image::copy::{Side, Unwatched, Watch};
use crate::image::layer::{Compression, Input, Layer};
use crate::oci::digest::{Algorithm, hash_reader};
use crate::oci::{Descriptor, Digest, Reference, media};

/// Where the blobs go: stored, or only hashed.
type Put<'a> = dyn Fn(&mut dyn Read) -> Result<(Digest, u64)> + Sync + 'a;

/// Uploads `image` of `archive` to `dst` and stores its manifest under `reference` (None: by
/// its digest); returns the manifest's descriptor. `jobs` layers move at once.
pub fn push(
    archive: &Archive,
    image: &Image,
    dst: Side<'_>,
    reference: Option<&Reference>,
    compression: Compression,
    jobs: usize,
    watch: &dyn Watch,
) -> Result<Descriptor> {
    let put = |content: &mut dyn Read| {
        dst.store
            .put_blob_stream(dst.repo, content, Algorithm::Sha256)
    };
    let layers = upload(archive, image, compression, jobs, &put, watch)?;
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
/// sink: as long as compressing them takes, but nothing is stored).
pub fn digest(
    archive: &Archive,
    image: &Image,
    compression: Compression,
    jobs: usize,
) -> Result<Digest> {
    let put = |content: &mut dyn Read| hash_reader(content, Algorithm::Sha256);
    let layers = upload(archive, image, compression, jobs, &put, &Unwatched)?;
    let (bytes, _) = manifest(&image.config, &layers)?;
    Ok(Digest::sha256(&bytes))
}

/// Puts every layer, checking each diff_id against the config's. `watch` sees each layer's
/// member read (named by its diff_id).
fn upload(
    archive: &Archive,
    image: &Image,
    compression: Compression,
    jobs: usize,
    put: &Put<'_>,
    watch: &dyn Watch,
) -> Result<Vec<Layer>> {
    let work: Vec<(&String, &Digest)> = image.layers.iter().zip(&image.diff_ids).collect();
    let results = crate::parallel::map(jobs, work, |_, (member, expected)| {
        let what = format!("{}: {member}", archive.name());
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
