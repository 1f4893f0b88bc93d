//! `del-blob <repo> <digest|@alias>...`: deletes blobs; an alias deletes its blobs and its
//! manifest (dxf's behaviour). Every argument is validated before anything is deleted.

use std::collections::BTreeSet;

use regtool::alias::{self, PerPlatform};
use regtool::error::Result;
use regtool::oci::{Digest, Target};

use super::Ctx;

/// Delete blobs; an @alias deletes its blobs and the alias
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
    let store = ctx.store();
    for target in super::targets(&args.targets)? {
        match target {
            Target::Digest(d) => store.delete_blob(repo, &d)?,
            Target::Alias(a) => {
                let top = store.get_manifest(repo, &a)?;
                let mut blobs = BTreeSet::new();
                let mut children: Vec<Digest> = Vec::new();
                match alias::read(store, repo, &top.digest.to_string(), None)? {
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
                            children.push(r.fetched.digest);
                        }
                    }
                }
                store.delete_manifest(repo, &top.digest)?;
                for child in children {
                    store.delete_manifest(repo, &child)?;
                }
                for blob in blobs {
                    store.delete_blob(repo, &blob)?;
                }
            }
        }
    }
    Ok(())
}
