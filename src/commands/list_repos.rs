//! `list-repos`: every repository in the registry's catalog (or the local store), one per line.
//! A name outside the distribution spec's grammar fails the listing (65) before anything is
//! printed.

use regtool::error::Result;
use regtool::oci::name;
use serde_json::json;

use super::Ctx;

/// List the repositories of the registry
#[derive(clap::Args)]
pub struct Args {}

pub fn run(ctx: &mut Ctx, _args: Args) -> Result<()> {
    let repos = ctx.store().list_repos()?;
    // All or nothing: a listing with a name outside the spec's grammar is refused whole.
    name::check_listed(&repos, name::check_repo).map_err(|e| {
        e.context(format!(
            "listing repositories: {} sent",
            ctx.store().describe()
        ))
    })?;
    for repo in repos {
        ctx.out.result(&repo, json!({"repository": repo}))?;
    }
    ctx.out.flush()
}
