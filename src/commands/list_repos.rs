//! `list-repos`: every repository in the registry's catalog (or the local store), one per line.
//! A name outside the distribution spec's grammar fails the listing (65) before anything is
//! printed.

use regtool::error::Result;
use regtool::oci::name;
use serde_json::json;

use super::Ctx;

/// List the repositories of the registry
///
/// Asks for pages of 1000 and, when the registry allows fewer (distribution's
/// catalog.maxentries answers PAGINATION_NUMBER_INVALID), lets it choose the page size;
/// either way the Link headers are followed to the end. Every name is checked against the
/// distribution spec's repository grammar before anything is printed: a name outside it
/// fails the whole listing with status 65, the name shown escaped in the message. The same
/// holds with REGTOOL_FORMAT=json.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(ctx: &mut Ctx, _args: Args) -> Result<()> {
    let repos = ctx.store().list_repos()?;
    // All or nothing: a listing with a name outside the spec's grammar is refused whole.
    name::check_listed(&repos, name::check_repo).map_err(|e| {
        e.context(format!(
            "listing repositories: {} sent",
            ctx.store().location()
        ))
    })?;
    for repo in repos {
        ctx.out.result(&repo, json!({"repository": repo}))?;
    }
    ctx.out.flush()
}
