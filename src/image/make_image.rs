//! `make-image`: layertool's `image`. An image made from a base (an image in a store, an
//! archive's image, or nothing: scratch) and layer tarballs, written as a docker archive
//! without touching a registry (a registry base is only read). The config is the base's with
//! every field kept, the new layers' diff_ids and one history entry each added, and `created`
//! set to the caller's timestamp (SOURCE_DATE_EPOCH, else the epoch), so the same inputs give
//! the same archive byte for byte.

use std::io::Read;

use serde_json::{Value, json};

use crate::archive::Archive;
use crate::archive::write::Writer;
use crate::error::{Error, Result};
use crate::image::copy::{self, Side};
use crate::image::flatten;
use crate::image::source::LayerSource;
use crate::oci::{Platform, Reference};

/// Where the base image comes from.
pub enum Base<'a> {
    /// No base: an empty image for this platform.
    Scratch(Platform),
    /// An image in a store (an index gives the child for the platform).
    Store {
        /// The store and repository.
        side: Side<'a>,
        /// The image's tag or digest.
        reference: Reference,
        /// The platform to take from an index.
        platform: Platform,
        /// Retries of a broken download.
        retries: u32,
    },
    /// An image of a docker archive.
    Archive(&'a Archive, crate::archive::Image),
}

/// Writes the base's layers into `writer` and returns its config, parsed.
fn write_base(base: &Base<'_>, writer: &mut Writer<'_>) -> Result<Value> {
    match base {
        Base::Scratch(p) => {
            let mut cfg = json!({"architecture": p.architecture, "os": p.os});
            if let Some(v) = &p.variant {
                cfg["variant"] = json!(v);
            }
            cfg["config"] = json!({});
            cfg["rootfs"] = json!({"type": "layers", "diff_ids": []});
            cfg["history"] = json!([]);
            Ok(cfg)
        }
        Base::Archive(a, image) => {
            for (member, diff_id) in image.layers.iter().zip(&image.diff_ids) {
                let what = format!("{}: {member}", a.name());
                writer.add_layer(&mut a.open_member(member)?, Some(diff_id), &what)?;
            }
            serde_json::from_slice(&image.config)
                .map_err(|e| Error::data(format!("{}: malformed config: {e}", a.name())))
        }
        Base::Store {
            side,
            reference,
            platform,
            retries,
        } => {
            let copy::TarImage {
                parsed: cfg,
                layers,
                diff_ids,
                ..
            } = copy::fetch_tar_image(*side, reference, platform, *retries)?;
            for (layer, diff_id) in layers.iter().zip(&diff_ids) {
                let mut blob = flatten::open_verified(
                    *side,
                    layer.digest.clone(),
                    Some(layer.size),
                    *retries,
                )?;
                writer.add_layer(&mut blob, Some(diff_id), &layer.digest.to_string())?;
            }
            Ok(cfg)
        }
    }
}

/// Writes the image of `base` plus `layers` (bottom first) into `writer`, with `created` as
/// the new history entries' and the image's timestamp, and `repo_tags` in `manifest.json`.
pub fn make_image(
    base: &Base<'_>,
    layers: &mut [Box<dyn LayerSource + '_>],
    created: &str,
    repo_tags: &[String],
    mut writer: Writer<'_>,
) -> Result<()> {
    let mut cfg = write_base(base, &mut writer)?;
    if !cfg.is_object() {
        return Err(Error::data("malformed base config: not an object"));
    }
    if !cfg["rootfs"].is_object() {
        cfg["rootfs"] = json!({"type": "layers", "diff_ids": []});
    }
    if !cfg["rootfs"]["diff_ids"].is_array() {
        cfg["rootfs"]["diff_ids"] = json!([]);
    }
    let keep_history = cfg["history"].is_array();
    for layer in layers.iter_mut() {
        let what = layer.describe();
        let diff_id = {
            let mut content: Box<dyn Read + '_> = layer.open()?;
            writer.add_layer(&mut content, None, &what)?
        };
        if let Some(ids) = cfg["rootfs"]["diff_ids"].as_array_mut() {
            ids.push(json!(diff_id));
        }
        if keep_history && let Some(h) = cfg["history"].as_array_mut() {
            h.push(json!({"created": created, "created_by": "regtool make-image"}));
        }
    }
    cfg["created"] = json!(created);
    let config = serde_json::to_vec(&cfg).map_err(|e| Error::other(e.to_string()))?;
    writer.finish(&config, repo_tags)
}
