//! Aliases: reading what an alias names (regtool's alias manifests, dxf's, real images and
//! multi-platform indexes) and writing alias manifests (docs/alias-format.md).

use std::collections::BTreeMap;

use crate::error::{Error, Kind, Result};
use crate::oci::manifest::{alias_layer, docker_alias, oci_alias};
use crate::oci::{Descriptor, Digest, Manifest, Platform, Reference, Repository, Tag, media};
use crate::store::{Fetched, Store};

/// One value, or one per platform of a multi-platform index (keys `os/arch[/variant]`).
#[derive(Debug, Clone, PartialEq)]
pub enum PerPlatform<T> {
    /// The same for every platform: an image, or the one platform asked for.
    One(T),
    /// One per platform of an index, keyed `os/arch[/variant]`.
    Many(BTreeMap<String, T>),
}

impl<T> PerPlatform<T> {
    /// Applies `f` to each value, keeping the shape; the first error ends it.
    pub fn map<U>(self, mut f: impl FnMut(T) -> Result<U>) -> Result<PerPlatform<U>> {
        Ok(match self {
            PerPlatform::One(t) => PerPlatform::One(f(t)?),
            PerPlatform::Many(m) => PerPlatform::Many(
                m.into_iter()
                    .map(|(k, v)| Ok((k, f(v)?)))
                    .collect::<Result<_>>()?,
            ),
        })
    }
}

/// A parsed manifest with the bytes and digest it came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The bytes, media type and digest as the store gave them.
    pub fetched: Fetched,
    /// What the bytes say.
    pub manifest: Manifest,
}

impl Resolved {
    /// Fetches the manifest `reference` names and parses it.
    pub fn fetch(store: &dyn Store, repo: &Repository, reference: &Reference) -> Result<Resolved> {
        let fetched = store.get_manifest(repo, reference)?;
        let manifest = Manifest::parse(&fetched.bytes, fetched.media_type.as_deref())
            .map_err(|e| e.context(reference))?;
        Ok(Resolved { fetched, manifest })
    }
}

fn fetch(store: &dyn Store, repo: &Repository, reference: &Reference) -> Result<Resolved> {
    Resolved::fetch(store, repo, reference)
}

/// Reads the manifest `reference` names. An index becomes the child for `platform` or, with
/// no platform, every child that declares one.
pub fn read(
    store: &dyn Store,
    repo: &Repository,
    reference: &Reference,
    platform: Option<&Platform>,
) -> Result<PerPlatform<Resolved>> {
    let top = fetch(store, repo, reference)?;
    if let Some(wanted) = platform {
        return Ok(PerPlatform::One(pick(store, repo, reference, top, wanted)?));
    }
    let Manifest::Index { manifests, .. } = &top.manifest else {
        return Ok(PerPlatform::One(top));
    };
    let mut out = BTreeMap::new();
    for child in manifests {
        if let Some(p) = &child.platform {
            // The key is printed: it must be a plain os/arch[/variant].
            p.check().map_err(|e| e.context(reference))?;
            out.insert(p.to_string(), fetch(store, repo, &(&child.digest).into())?);
        }
    }
    Ok(PerPlatform::Many(out))
}

/// Reads the manifest `reference` names for one platform: the image itself, or an index's
/// child for that platform.
pub fn read_for(
    store: &dyn Store,
    repo: &Repository,
    reference: &Reference,
    wanted: &Platform,
) -> Result<Resolved> {
    let top = fetch(store, repo, reference)?;
    pick(store, repo, reference, top, wanted)
}

fn pick(
    store: &dyn Store,
    repo: &Repository,
    reference: &Reference,
    top: Resolved,
    wanted: &Platform,
) -> Result<Resolved> {
    let Manifest::Index { manifests, .. } = &top.manifest else {
        return Ok(top);
    };
    let child = crate::oci::manifest::child_for(manifests, wanted, reference)?;
    fetch(store, repo, &(&child.digest).into())
}

/// The blobs (digest and size) an image or alias manifest names. Schema 1 carries no sizes,
/// so those are asked of the store.
pub fn blobs(
    store: &dyn Store,
    repo: &Repository,
    manifest: &Manifest,
) -> Result<Vec<(Digest, u64)>> {
    match manifest {
        Manifest::Image { layers, .. } => {
            Ok(layers.iter().map(|l| (l.digest.clone(), l.size)).collect())
        }
        Manifest::Schema1 { layers } => layers
            .iter()
            .map(|d| {
                let size = store
                    .blob_size(repo, d)?
                    .ok_or_else(|| Error::not_found(format!("{repo}: no blob {d}")))?;
                Ok((d.clone(), size))
            })
            .collect(),
        Manifest::Index { .. } => Err(Error::data("a nested index is not an alias")),
    }
}

/// The total size of blobs as a manifest declares them. Sizes come from the registry, so the
/// sum is checked: declared sizes that add up past 2^64-1 bytes are malformed, not a number
/// to print wrapped.
pub fn total_size(blobs: &[(Digest, u64)]) -> Result<u64> {
    blobs
        .iter()
        .try_fold(0u64, |sum, (_, size)| sum.checked_add(*size))
        .ok_or_else(|| {
            Error::data("the blob sizes the manifest declares add up to more than 2^64-1 bytes")
        })
}

/// The config digest (dxf's `get-digest`: for a dxf alias, its first blob).
pub fn config_digest(manifest: &Manifest) -> Result<Digest> {
    match manifest {
        Manifest::Image { config, .. } => Ok(config.digest.clone()),
        _ => Err(Error::data(
            "the manifest has no config (schema 1 or index)",
        )),
    }
}

/// A blob to name in an alias: its digest, its size, and the file name it came from.
pub struct Member {
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// The file name it came from, kept as the layer's title annotation.
    pub title: Option<String>,
}

/// Writes an alias naming `members` in order and returns the manifest digest. The OCI form
/// first (with the empty config blob, which registries require to exist); dxf's Docker form
/// when the registry refuses OCI manifests.
pub fn write(
    store: &dyn Store,
    repo: &Repository,
    alias: &Tag,
    members: &[Member],
) -> Result<Digest> {
    let alias = Reference::from(alias);
    if members.is_empty() {
        return Err(Error::usage("an alias needs at least one blob"));
    }
    let layers: Vec<Descriptor> = members
        .iter()
        .map(|m| alias_layer(m.digest.clone(), m.size, m.title.as_deref()))
        .collect();
    let empty = Digest::sha256(media::EMPTY_JSON);
    if store.blob_size(repo, &empty)?.is_none() {
        store.put_blob(
            repo,
            &empty,
            media::EMPTY_JSON.len() as u64,
            &mut &media::EMPTY_JSON[..],
        )?;
    }
    match store.put_manifest(repo, &alias, &oci_alias(&layers), media::OCI_MANIFEST) {
        Ok(d) => Ok(d),
        Err(e) if matches!(e.kind, Kind::Data | Kind::Other | Kind::Usage) => {
            let docker = docker_alias(&layers)?;
            store
                .put_manifest(repo, &alias, &docker, media::DOCKER_MANIFEST)
                .map_err(|_| e)
        }
        Err(e) => Err(e),
    }
}

/// The tags of `repo`, other than those in `named`, that name one of `digests`, by digest:
/// deleting a manifest (by digest, as registries require) removes every tag naming it, and
/// the user must hear of those they did not name. Every tag is resolved, `jobs` at a time
/// (one request each); a tag that vanishes meanwhile is skipped.
pub fn tags_naming(
    store: &dyn Store,
    repo: &Repository,
    digests: &[Digest],
    named: &[Tag],
    jobs: usize,
) -> Result<BTreeMap<Digest, Vec<Tag>>> {
    let others: Vec<String> = store
        .list_tags(repo)?
        .into_iter()
        .filter(|t| !named.iter().any(|n| n.as_str() == t))
        .collect();
    // A listed name outside the grammar is the store's fault: a data error.
    let others = others
        .iter()
        .map(|t| Tag::new(t).map_err(|e| Error::data(e.message)))
        .collect::<Result<Vec<_>>>()?;
    let resolved = crate::parallel::map(jobs, others, |_, tag| {
        (store.resolve(repo, &Reference::from(&tag)), tag)
    });
    let mut out: BTreeMap<Digest, Vec<Tag>> = BTreeMap::new();
    for (digest, tag) in resolved {
        match digest {
            Ok(d) if digests.contains(&d) => out.entry(d).or_default().push(tag),
            Ok(_) => {}
            Err(e) if e.kind == Kind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    out.values_mut().for_each(|tags| tags.sort());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_sizes_are_checked() {
        let d = Digest::sha256(b"x");
        let big = (d.clone(), i64::MAX as u64);
        assert_eq!(total_size(&[big.clone(), (d.clone(), 1)]).unwrap(), 1 << 63);
        let err = total_size(&[big.clone(), big.clone(), big]).unwrap_err();
        assert_eq!(err.kind, Kind::Data);
        assert_eq!(total_size(&[]).unwrap(), 0);
    }
}
