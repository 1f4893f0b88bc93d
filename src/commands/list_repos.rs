//! `list-repos`: every repository in the registry's catalog (or the local store), one per line.

use regtool::error::Result;
use serde_json::json;

use super::Ctx;

/// List the repositories of the registry
#[derive(clap::Args)]
pub struct Args {}

pub fn run(ctx: &mut Ctx, _args: Args) -> Result<()> {
    for repo in ctx.store().list_repos()? {
        ctx.out.result(&repo, json!({"repository": repo}))?;
    }
    ctx.out.flush()
}
