//! Uploading an archive's image to a store, and the digest that upload gives. Plain layers
//! are compressed on the way, in one pass each (the diff_id checked against the config while
//! they stream); compressed layers go as they are. Compression is reproducible (gzip with a
//! fixed level, no mtime and no name; zstd at a fixed level), so the same archive always
//! gives the same manifest, and [`digest`] gets it by compressing into a hashing sink.
//!
//! The manifest is Docker schema 2 (what `docker push` makes of a loaded image) unless a
//! layer is zstd, which only OCI manifests can carry.

use std::io::Read;

use serde_json::json;

use crate::archive::{Archive, Image};
use crate::error::{Error, Result};
use crate::image::copy::Side;
use crate::image::layer::{Compression, Input, Layer};
use crate::oci::digest::{Algorithm, hash_reader};
use crate::oci::{Digest, Reference, media};

/// Where the blobs go: stored, or only hashed.
type Put<'a> = dyn Fn(&mut dyn Read) -> Result<(Digest, u64)> + Sync + 'a;

/// Uploads `image` of `archive` to `dst` and stores its manifest under `reference`; returns
/// the manifest's digest. `jobs` layers move at once.
pub fn push(
    archive: &Archive,
    image: &Image,
    dst: Side<'_>,
    reference: &Reference,
    compression: Compression,
    jobs: usize,
) -> Result<Digest> {
    let put = |content: &mut dyn Read| {
        dst.store
            .put_blob_stream(dst.repo, content, Algorithm::Sha256)
    };
    let layers = upload(archive, image, compression, jobs, &put)?;
    let config_digest = Digest::sha256(&image.config);
    if !dst
        .store
        .has_blob(dst.repo, &config_digest, image.config.len() as u64)?
    {
        dst.store.put_blob(
            dst.repo,
            &config_digest,
            image.config.len() as u64,
            &mut &image.config[..],
        )?;
    }
    let (bytes, media_type) = manifest(&image.config, &layers)?;
    dst.store
        .put_manifest(dst.repo, reference, &bytes, media_type)
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
    let layers = upload(archive, image, compression, jobs, &put)?;
    let (bytes, _) = manifest(&image.config, &layers)?;
    Ok(Digest::sha256(&bytes))
}

/// Puts every layer, checking each diff_id against the config's.
fn upload(
    archive: &Archive,
    image: &Image,
    compression: Compression,
    jobs: usize,
    put: &Put<'_>,
) -> Result<Vec<Layer>> {
    let work: Vec<(&String, &Digest)> = image.layers.iter().zip(&image.diff_ids).collect();
    let results = crate::parallel::map(jobs, work, |_, (member, expected)| {
        let what = format!("{}: {member}", archive.name());
        let mut range = archive.open_member(member)?;
        let layer = Input::open(&mut range)
            .and_then(|input| input.upload_to(compression, &mut |content| put(content)))
            .map_err(|e| e.context(&what))?;
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

/// The image manifest of `config` and `layers`, and its media type.
pub fn manifest(config: &[u8], layers: &[Layer]) -> Result<(Vec<u8>, &'static str)> {
    let docker = layers.iter().all(|l| l.compression != Compression::Zstd);
    let layer_type = |c: Compression| match (docker, c) {
        (true, Compression::Gzip) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        (true, _) => "application/vnd.docker.image.rootfs.diff.tar",
        (false, Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
        (false, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
        (false, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
    };
    let (manifest_type, config_type) = if docker {
        (media::DOCKER_MANIFEST, media::DOCKER_CONFIG)
    } else {
        (
            media::OCI_MANIFEST,
            "application/vnd.oci.image.config.v1+json",
        )
    };
    let value = json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {
            "mediaType": config_type,
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
    Ok((bytes, manifest_type))
}
