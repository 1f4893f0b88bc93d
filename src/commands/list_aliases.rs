//! `list-aliases <repo>`: every tag, one per line, following pagination to the end.

use regtool::error::Result;
use serde_json::json;

use super::Ctx;

/// List the aliases (tags) of a repository
#[derive(clap::Args)]
pub struct Args {
    /// Repository, like fred/logs
    pub repo: String,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let repo = super::repo(&args.repo)?;
    for tag in ctx.store().list_tags(repo)? {
        ctx.out.result(&tag, json!({"alias": tag}))?;
    }
    ctx.out.flush()
}
