//! `del-blob <repo> <digest|@alias>...`: deletes blobs; an alias deletes its blobs and its
//! manifest (dxf's behaviour), and an index its platform manifests too. Every argument is
//! validated before anything is deleted, and aliases the user did not name that go with a
//! deleted manifest are named on stderr first.

use std::collections::BTreeSet;

use regtool::alias::{self, PerPlatform};
use regtool::error::Result;
use regtool::oci::{Digest, Repository, Tag, Target};

use super::Ctx;
use super::del_alias::note_removed;

/// Delete blobs; an @alias deletes its blobs and the alias
///
/// An @alias deletes the blobs it names and its manifest; an index also deletes its
/// platform manifests and their blobs. Manifests are deleted by digest, which removes every
/// alias naming them: aliases not given as arguments that go this way are named on stderr
/// (`regtool: note: ...`) before anything is deleted. Every alias is looked up before the
/// first delete (a missing one fails with status 2 and deletes nothing), and a manifest or
/// blob that several arguments share is deleted once.
#[derive(clap::Args)]
pub struct Args {
    /// Repository, like fred/logs
    pub repo: String,
    /// Blob digests or @aliases
    #[arg(required = true)]
    pub targets: Vec<String>,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let repo = &super::repo(&args.repo)?;
    let targets = super::targets(&args.targets)?;
    let named: Vec<Tag> = targets
        .iter()
        .filter_map(|t| match t {
            Target::Alias(a) => Some(a.clone()),
            Target::Digest(_) => None,
        })
        .collect();
    // Every alias is looked up first: a missing one fails before anything is deleted.
    let mut tops = Vec::new();
    for target in &targets {
        if let Target::Alias(a) = target {
            tops.push(ctx.store().get_manifest(repo, &a.into())?.digest);
        }
    }
    let mut tops = tops.into_iter();
    // What this run deleted already: two arguments may share a manifest or blobs.
    let mut done = Deleted::default();
    for target in targets {
        match target {
            Target::Digest(d) => {
                if done.blobs.insert(d.clone()) {
                    ctx.store().delete_blob(repo, &d)?;
                }
            }
            Target::Alias(a) => {
                let Some(top) = tops.next() else { continue };
                if !done.manifests.contains(&top) {
                    delete_alias(ctx, repo, &a, &top, &named, &mut done)?;
                }
            }
        }
    }
    Ok(())
}

#[derive(Default)]
struct Deleted {
    manifests: BTreeSet<Digest>,
    blobs: BTreeSet<Digest>,
}

/// Deletes the manifest `top` of an alias, an index's platform manifests, and every blob
/// they name (but none this run deleted already).
fn delete_alias(
    ctx: &Ctx,
    repo: &Repository,
    alias_name: &Tag,
    top: &Digest,
    named: &[Tag],
    done: &mut Deleted,
) -> Result<()> {
    let store = ctx.store();
    let mut blobs = BTreeSet::new();
    let mut manifests: Vec<(Digest, &str)> = vec![(top.clone(), "same manifest")];
    match alias::read(store, repo, &top.into(), None)
        .map_err(|e| e.context(format!("@{alias_name}")))?
    {
        PerPlatform::One(r) => blobs.extend(
            alias::blobs(store, repo, &r.manifest)?
                .into_iter()
                .map(|b| b.0),
        ),
        PerPlatform::Many(map) => {
            for r in map.into_values() {
                blobs.extend(
                    alias::blobs(store, repo, &r.manifest)?
                        .into_iter()
                        .map(|b| b.0),
                );
                if !manifests.iter().any(|(d, _)| *d == r.fetched.digest) {
                    manifests.push((r.fetched.digest, "platform manifest"));
                }
            }
        }
    }
    manifests.retain(|(d, _)| !done.manifests.contains(d));
    note_removed(ctx, repo, alias_name, named, &manifests);
    for (digest, _) in manifests {
        store.delete_manifest(repo, &digest)?;
        done.manifests.insert(digest);
    }
    for blob in blobs {
        if done.blobs.insert(blob.clone()) {
            store.delete_blob(repo, &blob)?;
        }
    }
    Ok(())
}
