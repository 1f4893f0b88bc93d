//! `del-blob <repo> <digest|@alias>...`: deletes blobs; an alias deletes its blobs and its
//! manifest (dxf's behaviour), and an index its platform manifests too. Every argument is
//! validated before anything is deleted, and aliases the user did not name that go with a
//! deleted manifest are named on stderr first.

use std::collections::BTreeSet;

use regtool::alias::{self, PerPlatform};
use regtool::error::Result;
use regtool::oci::{Digest, Target};

use super::Ctx;
use super::del_alias::note_removed;

/// Delete blobs; an @alias deletes its blobs and the alias
///
/// An @alias deletes the blobs it names and its manifest; an index also deletes its
/// platform manifests and their blobs. Manifests are deleted by digest, which removes every
/// alias naming them: aliases not given as arguments that go this way are named on stderr
/// (`regtool: note: ...`) before anything is deleted.
#[derive(clap::Args)]
pub struct Args {
    /// Repository, like fred/logs
    pub repo: String,
    /// Blob digests or @aliases
    #[arg(required = true)]
    pub targets: Vec<String>,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let repo = super::repo(&args.repo)?;
    let targets = super::targets(&args.targets)?;
    let named: Vec<String> = targets
        .iter()
        .filter_map(|t| match t {
            Target::Alias(a) => Some(a.clone()),
            Target::Digest(_) => None,
        })
        .collect();
    for target in targets {
        match target {
            Target::Digest(d) => ctx.store().delete_blob(repo, &d)?,
            Target::Alias(a) => delete_alias(ctx, repo, &a, &named)?,
        }
    }
    Ok(())
}

/// Deletes an alias's manifest, an index's platform manifests, and every blob they name.
fn delete_alias(ctx: &Ctx, repo: &str, alias_name: &str, named: &[String]) -> Result<()> {
    let store = ctx.store();
    let top = store.get_manifest(repo, alias_name)?;
    let mut blobs = BTreeSet::new();
    let mut manifests: Vec<(Digest, &str)> = vec![(top.digest.clone(), "same manifest")];
    match alias::read(store, repo, &top.digest.to_string(), None)
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
    note_removed(ctx, repo, alias_name, named, &manifests);
    for (digest, _) in &manifests {
        store.delete_manifest(repo, digest)?;
    }
    for blob in blobs {
        store.delete_blob(repo, &blob)?;
    }
    Ok(())
}
