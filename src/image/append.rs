//! `append-layer`: adds tar layers to an image in a registry without pulling its base layers
//! (appendlayer's job). The new layers are uploaded once, in one pass each; the base blobs
//! are mounted (same registry) or streamed (another registry) into the destination; a new
//! config keeps every field of the old one (order and unknown fields too) with the diff_ids
//! and a history entry added; the manifest gets the new config and layers in the media types
//! of its own family (Docker or OCI, never mixed). An index gets this for every platform, or
//! only the chosen platform's, and a new index. The destination tag is written last, so any
//! failure leaves it as it was.

use std::io::Read;

use serde_json::{Value, json};

use crate::error::{Cause, Error, Result};
use crate::image::copy::{self, Side};
use crate::image::layer::{Compression, Input, Layer};
use crate::oci::digest::copy_verified;
use crate::oci::{Digest, Manifest, Platform, Reference, Tag, media};

/// How append-layer builds the new image.
pub struct Options {
    /// How the new layers are compressed.
    pub compression: Compression,
    /// The history entry's `created`, from SOURCE_DATE_EPOCH (none: no timestamp, so that the
    /// same input always gives the same image).
    pub created: Option<String>,
    /// The platform to take from a multi-platform index (None: every platform).
    pub platform: Option<Platform>,
    /// How many blobs move at once.
    pub jobs: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Docker,
    Oci,
}

impl Family {
    fn of(manifest: &Manifest) -> Family {
        if manifest.media_type() == media::DOCKER_MANIFEST {
            Family::Docker
        } else {
            Family::Oci
        }
    }

    fn layer_type(self, c: Compression) -> Result<&'static str> {
        Ok(match (self, c) {
            (Family::Docker, Compression::Gzip) => {
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            }
            (Family::Docker, Compression::None) => "application/vnd.docker.image.rootfs.diff.tar",
            (Family::Docker, Compression::Zstd) => {
                return Err(
                    Error::data("a Docker schema-2 image cannot carry a zstd layer")
                        .with_cause(Cause::CompressionUnsupported),
                );
            }
            (Family::Oci, Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
            (Family::Oci, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
            (Family::Oci, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
        })
    }
}

/// Formats seconds since the epoch as RFC 3339 UTC (Howard Hinnant's civil-from-days).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Appends `inputs` (tar streams) to the image `src_ref` and stores the result in `dst` under
/// `tag`. Returns the digest of the new manifest (or index).
pub fn append(
    src: Side<'_>,
    src_ref: &Reference,
    dst: Side<'_>,
    tag: &Tag,
    inputs: Vec<&mut dyn Read>,
    opts: &Options,
) -> Result<Digest> {
    let (top_fetched, top) = copy::fetch(src, src_ref)?;
    match &top {
        Manifest::Image { .. } => {
            let layers = upload_layers(dst, inputs, &[Family::of(&top)], opts)?;
            Ok(append_one(src, dst, &top_fetched.bytes, &top, &layers, Some(tag), opts)?.0)
        }
        Manifest::Index { manifests, .. } => {
            // Which children change: those of the chosen platform, or every image of a platform
            // (attestations, platform unknown/unknown, stay as they are).
            let chosen: Vec<bool> = manifests
                .iter()
                .map(|d| match (&d.platform, &opts.platform) {
                    (Some(p), Some(wanted)) => p.satisfies(wanted),
                    (Some(p), None) => p.os != "unknown",
                    (None, _) => false,
                })
                .collect();
            if !chosen.contains(&true) {
                return Err(Error::not_found(format!(
                    "{src_ref}: no platform to append to"
                )));
            }
            let mut children = Vec::new();
            for d in manifests {
                children.push(copy::fetch(src, &(&d.digest).into())?);
            }
            let families: Vec<Family> = children
                .iter()
                .zip(&chosen)
                .filter(|(_, c)| **c)
                .map(|((_, m), _)| Family::of(m))
                .collect();
            let layers = upload_layers(dst, inputs, &families, opts)?;
            let mut index: Value = serde_json::from_slice(&top_fetched.bytes)
                .map_err(|e| Error::data(format!("{src_ref}: malformed index: {e}")))?;
            for (i, ((fetched, manifest), change)) in children.iter().zip(&chosen).enumerate() {
                if *change {
                    let (digest, size) =
                        append_one(src, dst, &fetched.bytes, manifest, &layers, None, opts)?;
                    index["manifests"][i]["digest"] = json!(digest);
                    index["manifests"][i]["size"] = json!(size);
                } else {
                    copy::ensure_blobs(src, dst, copy::image_blobs(manifest), opts.jobs)?;
                    dst.store.put_manifest(
                        dst.repo,
                        &(&fetched.digest).into(),
                        &fetched.bytes,
                        manifest.media_type(),
                    )?;
                }
            }
            let bytes = serde_json::to_vec(&index).map_err(|e| Error::other(e.to_string()))?;
            dst.store
                .put_manifest(dst.repo, &tag.into(), &bytes, top.media_type())
        }
        Manifest::Schema1 { .. } => Err(Error::data(format!(
            "{src_ref}: Docker schema 1 images cannot be edited"
        ))),
    }
}

/// Uploads every input once, refusing a compression the targets' family cannot carry before
/// any byte goes out.
fn upload_layers(
    dst: Side<'_>,
    inputs: Vec<&mut dyn Read>,
    families: &[Family],
    opts: &Options,
) -> Result<Vec<Layer>> {
    let mut layers = Vec::new();
    for input in inputs {
        let input = Input::open(input)?;
        let compression = input.compression(opts.compression);
        for family in families {
            family.layer_type(compression)?;
        }
        layers.push(input.upload(dst.store, dst.repo, opts.compression)?);
    }
    Ok(layers)
}

/// Builds and stores one new image manifest, under `tag` or (an index's child) its digest.
fn append_one(
    src: Side<'_>,
    dst: Side<'_>,
    bytes: &[u8],
    manifest: &Manifest,
    layers: &[Layer],
    tag: Option<&Tag>,
    opts: &Options,
) -> Result<(Digest, u64)> {
    let new = build(src, dst, bytes, manifest, layers, opts)?;
    let reference = tag.map_or_else(|| Digest::sha256(&new).into(), Reference::from);
    let digest = dst
        .store
        .put_manifest(dst.repo, &reference, &new, manifest.media_type())?;
    Ok((digest, new.len() as u64))
}

/// The largest image config we read.
const MAX_CONFIG: u64 = 16 << 20;

/// Makes the destination ready for the new manifest (base layers, new config) and returns
/// the new manifest's bytes.
fn build(
    src: Side<'_>,
    dst: Side<'_>,
    bytes: &[u8],
    manifest: &Manifest,
    layers: &[Layer],
    opts: &Options,
) -> Result<Vec<u8>> {
    let Manifest::Image {
        config,
        layers: base,
        ..
    } = manifest
    else {
        return Err(Error::data("not an image manifest"));
    };
    let family = Family::of(manifest);
    let base: Vec<_> = copy::distributable(base).cloned().collect();
    copy::ensure_blobs(src, dst, base, opts.jobs)?;

    // The old config, verified, then extended in place so that every field survives.
    if config.size > MAX_CONFIG {
        return Err(Error::data(format!(
            "the image config is larger than {MAX_CONFIG} bytes"
        )));
    }
    let mut stream = src.store.open_blob(src.repo, &config.digest)?;
    stream.expect_size(&config.digest, Some(config.size))?;
    let mut old = Vec::new();
    copy_verified(
        &mut (&mut stream.reader).take(MAX_CONFIG + 1),
        &mut old,
        &config.digest,
        Some(config.size),
    )?;
    let mut cfg: Value = serde_json::from_slice(&old)
        .map_err(|e| Error::data(format!("malformed image config: {e}")))?;
    if !cfg.is_object() {
        return Err(Error::data("malformed image config: not an object"));
    }
    if !cfg["rootfs"].is_object() {
        cfg["rootfs"] = json!({"type": "layers", "diff_ids": []});
    }
    if !cfg["rootfs"]["diff_ids"].is_array() {
        cfg["rootfs"]["diff_ids"] = json!([]);
    }
    let keep_history = cfg["history"].is_array();
    for layer in layers {
        if let Some(ids) = cfg["rootfs"]["diff_ids"].as_array_mut() {
            ids.push(json!(layer.diff_id));
        }
        // History entries line up with layers; an image without history stays without.
        if keep_history && let Some(h) = cfg["history"].as_array_mut() {
            let mut entry = serde_json::Map::new();
            if let Some(created) = &opts.created {
                entry.insert("created".into(), json!(created));
            }
            entry.insert("created_by".into(), json!("regtool append-layer"));
            h.push(Value::Object(entry));
        }
    }
    let new_config = serde_json::to_vec(&cfg).map_err(|e| Error::other(e.to_string()))?;
    let config_digest = Digest::sha256(&new_config);
    dst.store.put_blob(
        dst.repo,
        &config_digest,
        new_config.len() as u64,
        &mut &new_config[..],
    )?;

    let mut m: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::data(format!("malformed manifest: {e}")))?;
    m["config"]["digest"] = json!(config_digest);
    m["config"]["size"] = json!(new_config.len());
    for layer in layers {
        let descriptor = json!({"mediaType": family.layer_type(layer.compression)?, "digest": layer.digest, "size": layer.size});
        match m["layers"].as_array_mut() {
            Some(list) => list.push(descriptor),
            None => m["layers"] = json!([descriptor]),
        }
    }
    serde_json::to_vec(&m).map_err(|e| Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
