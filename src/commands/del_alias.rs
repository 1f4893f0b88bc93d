//! `del-alias <repo> <alias>...`: deletes alias manifests by digest and prints what
//! `get-alias` would have printed for them (the blob digests; per platform for an index, or
//! REGTOOL_PLATFORM's); the blobs stay. Deleting by digest removes every tag naming the
//! manifest, so tags the user did not name are named on stderr first.

use regtool::alias::{self, PerPlatform};
use regtool::error::Result;
use regtool::oci::{Digest, Repository, Tag};
use serde_json::json;

use super::Ctx;

/// Delete aliases (not their blobs) and print the blob digests they named
///
/// Prints what get-alias prints for each alias (with REGTOOL_PLATFORM, that platform's
/// blobs; without it, an index gives one JSON line with a key per platform), then deletes
/// the alias's manifest by digest. Other aliases naming the same manifest go with it: each is
/// named on stderr (`regtool: note: ...`) before the delete. The blobs and an index's
/// platform manifests stay. Every alias is read before the first delete (a missing one
/// fails with status 2 and deletes nothing); aliases given together that name one manifest
/// each print their digests, and the manifest is deleted once.
#[derive(clap::Args)]
pub struct Args {
    /// Repository, like fred/logs
    pub repo: String,
    /// Aliases to delete (with or without @)
    #[arg(required = true)]
    pub aliases: Vec<String>,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let repo = &super::repo(&args.repo)?;
    let names = super::aliases(&args.aliases)?;
    // Every alias is read first: a missing one fails before anything is deleted.
    let mut plans = Vec::new();
    for name in &names {
        let (top, digests) = read(ctx, repo, name)?;
        plans.push((name, top, digests));
    }
    let mut deleted = std::collections::BTreeSet::new();
    for (name, top, digests) in plans {
        // Two arguments naming one manifest: it is deleted once.
        if deleted.insert(top.clone()) {
            note_removed(ctx, repo, name, &names, &[(top.clone(), "same manifest")]);
            ctx.store().delete_manifest(repo, &top)?;
        }
        super::print_per_platform(
            &mut ctx.out,
            "alias",
            name.as_str(),
            digests,
            |d: &Vec<String>| d.clone(),
            |d| json!(d),
        )?;
    }
    Ok(())
}

/// The manifest an alias names now, and what get-alias prints for it (read by digest, so
/// that what is printed is what is deleted).
fn read(ctx: &Ctx, repo: &Repository, name: &Tag) -> Result<(Digest, PerPlatform<Vec<String>>)> {
    let store = ctx.store();
    let top = store.get_manifest(repo, &name.into())?.digest;
    let value = alias::read(store, repo, &(&top).into(), ctx.settings.platform.as_ref())
        .map_err(|e| e.context(format!("@{name}")))?;
    let digests = value.map(|r| {
        Ok(alias::blobs(store, repo, &r.manifest)?
            .into_iter()
            .map(|b| b.0.to_string())
            .collect::<Vec<_>>())
    })?;
    Ok((top, digests))
}

/// Says on stderr, before `manifests` are deleted for `@alias`, which tags not in `named`
/// go with them. Each manifest comes with how it relates to the alias, for the message.
/// When the tags cannot be checked, says that instead: never a silent removal.
pub(super) fn note_removed(
    ctx: &Ctx,
    repo: &Repository,
    alias: &Tag,
    named: &[Tag],
    manifests: &[(Digest, &str)],
) {
    let digests: Vec<Digest> = manifests.iter().map(|(d, _)| d.clone()).collect();
    let clean = |t: &str| regtool::text::sanitize(t, 200);
    match alias::tags_naming(ctx.store(), repo, &digests, named, ctx.settings.jobs) {
        Ok(found) => {
            for (digest, relation) in manifests {
                if let Some(tags) = found.get(digest) {
                    let tags: Vec<String> = tags
                        .iter()
                        .map(|t| format!("@{}", clean(t.as_str())))
                        .collect();
                    crate::output::stderr_line(format_args!(
                        "regtool: note: deleting @{alias} also removes {} ({relation} {digest})",
                        tags.join(", ")
                    ));
                }
            }
        }
        Err(e) => crate::output::stderr_line(format_args!(
            "regtool: warning: deleting @{alias}: could not check which other aliases name its manifests, and they go too: {}",
            clean(&e.message)
        )),
    }
}
