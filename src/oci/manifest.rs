//! Manifests as regtool reads them (OCI image manifest and index, Docker schema 2 manifest and
//! list, Docker schema 1 for old dxf aliases) and the alias manifests it writes
//! (docs/alias-format.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::oci::digest::Digest;
use crate::oci::media;
use crate::oci::platform::Platform;

/// A content descriptor (OCI image-spec "Descriptors").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the content described.
    pub media_type: String,
    /// The digest of the content.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The platform of an image in an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type of an artifact manifest in an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations, sorted by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor with no platform, artifact type or annotations.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            platform: None,
            artifact_type: None,
            annotations: BTreeMap::new(),
        }
    }
}

/// What a manifest says, whatever format it came in.
#[derive(Debug, Clone, PartialEq)]
pub enum Manifest {
    /// An image (or alias) manifest: a config and layers.
    Image {
        /// The manifest's media type.
        media_type: String,
        /// The config blob.
        config: Descriptor,
        /// The layers (or an alias's blobs), bottom first.
        layers: Vec<Descriptor>,
    },
    /// A multi-platform index / manifest list.
    Index {
        /// The index's media type.
        media_type: String,
        /// One per child manifest.
        manifests: Vec<Descriptor>,
    },
    /// Docker schema 1: only the layer digests are of use (oldest first).
    Schema1 {
        /// The layer digests, oldest first.
        layers: Vec<Digest>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    schema_version: Option<u64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    fs_layers: Option<Vec<Schema1Layer>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Schema1Layer {
    blob_sum: Digest,
}

impl Manifest {
    /// Parses manifest bytes; `content_type` is the registry's Content-Type, used when the
    /// body carries no `mediaType` (it is optional in OCI manifests).
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest> {
        let raw: Raw = serde_json::from_slice(bytes)
            .map_err(|e| Error::data(format!("malformed manifest: {e}")))?;
        let media_type = raw
            .media_type
            .clone()
            .or_else(|| content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_string()))
            .unwrap_or_default();
        if raw.schema_version == Some(1)
            || media_type == media::DOCKER_SCHEMA1
            || media_type == media::DOCKER_SCHEMA1_SIGNED
        {
            let layers = raw
                .fs_layers
                .ok_or_else(|| Error::data("malformed manifest: schema 1 without fsLayers"))?;
            // Schema 1 lists layers newest first.
            return Ok(Manifest::Schema1 {
                layers: layers.into_iter().rev().map(|l| l.blob_sum).collect(),
            });
        }
        if raw.schema_version != Some(2) {
            return Err(Error::data("malformed manifest: schemaVersion is not 2"));
        }
        if let Some(manifests) = raw.manifests {
            let media_type = if media_type.is_empty() {
                media::OCI_INDEX.to_string()
            } else {
                media_type
            };
            return Ok(Manifest::Index {
                media_type,
                manifests,
            });
        }
        match (raw.config, raw.layers) {
            (Some(config), layers) => {
                let media_type = if media_type.is_empty() {
                    media::OCI_MANIFEST.to_string()
                } else {
                    media_type
                };
                Ok(Manifest::Image {
                    media_type,
                    config,
                    layers: layers.unwrap_or_default(),
                })
            }
            _ => Err(Error::data(
                "malformed manifest: neither config nor manifests",
            )),
        }
    }

    /// The manifest's media type (the signed schema 1 type for schema 1).
    pub fn media_type(&self) -> &str {
        match self {
            Manifest::Image { media_type, .. } | Manifest::Index { media_type, .. } => media_type,
            Manifest::Schema1 { .. } => media::DOCKER_SCHEMA1_SIGNED,
        }
    }
}

/// The entry of an index for a platform (`reference` names the index, for the message).
pub fn child_for<'a>(
    manifests: &'a [Descriptor],
    wanted: &Platform,
    reference: &crate::oci::Reference,
) -> Result<&'a Descriptor> {
    manifests
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| p.satisfies(wanted)))
        .ok_or_else(|| Error::not_found(format!("{reference}: no manifest for platform {wanted}")))
}

/// Builds the manifest of an alias naming `blobs` (docs/alias-format.md).
/// OCI form: artifact type `application/vnd.regtool.blobs.v1`, the empty config.
pub fn oci_alias(blobs: &[Descriptor]) -> Vec<u8> {
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "artifactType": media::REGTOOL_BLOBS,
        "config": Descriptor::new(media::OCI_EMPTY, Digest::sha256(media::EMPTY_JSON), media::EMPTY_JSON.len() as u64),
        "layers": blobs,
    });
    to_bytes(&manifest)
}

/// dxf's form, for registries without OCI support: Docker schema 2 whose config is the first
/// blob (dxf did this to avoid uploading a config of its own). Keys sorted as dxf writes them.
pub fn docker_alias(blobs: &[Descriptor]) -> Result<Vec<u8>> {
    let first = blobs
        .first()
        .ok_or_else(|| Error::usage("an alias needs at least one blob"))?;
    let layers: Vec<Value> = blobs
        .iter()
        .map(|b| serde_json::json!({"digest": b.digest, "mediaType": media::OCTET_STREAM, "size": b.size}))
        .collect();
    let manifest = serde_json::json!({
        "config": {"digest": first.digest, "mediaType": media::DOCKER_CONFIG, "size": first.size},
        "layers": layers,
        "mediaType": media::DOCKER_MANIFEST,
        "schemaVersion": 2,
    });
    Ok(to_bytes(&manifest))
}

fn to_bytes(value: &Value) -> Vec<u8> {
    // Serialising a Value built from strings and numbers cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// The blob descriptor an alias manifest lists for a blob.
pub fn alias_layer(digest: Digest, size: u64, title: Option<&str>) -> Descriptor {
    let mut d = Descriptor::new(media::OCTET_STREAM, digest, size);
    if let Some(title) = title {
        d.annotations
            .insert(media::TITLE_ANNOTATION.to_string(), title.to_string());
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::sha256(&[n])
    }

    /// The layer digests a manifest lists (oldest first).
    fn layer_digests(m: &Manifest) -> Vec<Digest> {
        match m {
            Manifest::Image { layers, .. } => layers.iter().map(|l| l.digest.clone()).collect(),
            Manifest::Schema1 { layers } => layers.clone(),
            Manifest::Index { .. } => Vec::new(),
        }
    }

    #[test]
    fn oci_alias_round_trips() {
        let blobs = vec![
            alias_layer(d(1), 1, Some("a.bin")),
            alias_layer(d(2), 1, None),
        ];
        let bytes = oci_alias(&blobs);
        let m = Manifest::parse(&bytes, None).unwrap();
        assert_eq!(layer_digests(&m), vec![d(1), d(2)]);
        assert_eq!(m.media_type(), media::OCI_MANIFEST);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["artifactType"], media::REGTOOL_BLOBS);
        assert_eq!(
            v["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(
            v["layers"][0]["annotations"][media::TITLE_ANNOTATION],
            "a.bin"
        );
    }

    #[test]
    fn docker_alias_is_what_dxf_writes() {
        let bytes = docker_alias(&[alias_layer(d(1), 1, None)]).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(r#"{"config":{"digest":""#), "{text}");
        match Manifest::parse(&bytes, None).unwrap() {
            Manifest::Image { config, layers, .. } => {
                assert_eq!(config.digest, d(1));
                assert_eq!(layers.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        assert!(docker_alias(&[]).is_err());
    }

    #[test]
    fn reads_indexes_and_schema1() {
        let index = br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a","size":3,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}"#;
        match Manifest::parse(index, None).unwrap() {
            Manifest::Index {
                manifests,
                media_type,
            } => {
                assert_eq!(media_type, media::OCI_INDEX);
                assert_eq!(
                    manifests[0].platform.as_ref().unwrap().to_string(),
                    "linux/arm64/v8"
                );
            }
            other => panic!("{other:?}"),
        }
        let s1 = format!(
            r#"{{"schemaVersion":1,"fsLayers":[{{"blobSum":"{}"}},{{"blobSum":"{}"}}]}}"#,
            d(2),
            d(1)
        );
        assert_eq!(
            layer_digests(&Manifest::parse(s1.as_bytes(), None).unwrap()),
            vec![d(1), d(2)]
        );
    }

    #[test]
    fn rejects_malformed_manifests() {
        for bad in [
            &b"not json"[..],
            b"{}",
            br#"{"schemaVersion":3}"#,
            br#"{"schemaVersion":2}"#,
            br#"{"schemaVersion":2,"config":{"digest":"sha256:xx","size":1,"mediaType":"a"}}"#,
        ] {
            assert_eq!(
                Manifest::parse(bad, None).unwrap_err().kind,
                crate::error::Kind::Data
            );
        }
    }
}
