//! `del-alias <repo> <alias>...`: deletes alias manifests by digest and prints the digests of
//! the blobs they named (the blobs stay). Deleting by digest removes every tag pointing at the
//! manifest, so other such tags are named on stderr first.

use regtool::alias::{self, PerPlatform};
use regtool::error::Result;
use serde_json::json;

use super::Ctx;

/// Delete aliases (not their blobs) and print the blob digests they named
#[derive(clap::Args)]
pub struct Args {
    /// Repository, like fred/logs
    pub repo: String,
    /// Aliases to delete (with or without @)
    #[arg(required = true)]
    pub aliases: Vec<String>,
}

/// How many tags are checked for sharing the deleted manifest (each costs a request).
const SHARING_CHECK_LIMIT: usize = 200;

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let repo = super::repo(&args.repo)?;
    for name in super::aliases(&args.aliases)? {
        let store = ctx.store();
        let top = store.get_manifest(repo, &name)?;
        let value = alias::read(store, repo, &top.digest.to_string(), None)?;
        let digests = match value {
            PerPlatform::One(r) => PerPlatform::One(
                alias::blobs(store, repo, &r.manifest)?
                    .into_iter()
                    .map(|b| b.0.to_string())
                    .collect(),
            ),
            many => many.map(|r| Ok(vec![r.fetched.digest.to_string()]))?,
        };
        let others = alias::sharing_tags(store, repo, &name, &top.digest, SHARING_CHECK_LIMIT)
            .unwrap_or_default();
        if !others.is_empty() {
            eprintln!(
                "regtool: note: deleting @{name} also removes {} (same manifest {})",
                others
                    .iter()
                    .map(|t| format!("@{t}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                top.digest
            );
        }
        store.delete_manifest(repo, &top.digest)?;
        super::print_per_platform(
            &mut ctx.out,
            "alias",
            &name,
            digests,
            |d: &Vec<String>| d.clone(),
            |d| json!(d),
        )?;
    }
    Ok(())
}
