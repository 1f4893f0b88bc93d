//! `list-aliases <repo>`: every tag, one per line, following pagination to the end. A tag
//! outside the distribution spec's grammar fails the listing (65) before anything is printed.

use regtool::error::Result;
use regtool::oci::name;
use serde_json::json;

use super::Ctx;

/// List the aliases (tags) of a repository
///
/// Follows the registry's pagination (Link headers) to the end. Every tag is checked against
/// the distribution spec's grammar (up to 128 letters, digits, _ . -, not starting with . or
/// -) before anything is printed: a registry that lists a tag outside it (one that could
/// carry terminal escapes or newlines) fails the whole listing with status 65, the tag shown
/// escaped in the message. The same holds with REGTOOL_FORMAT=json.
#[derive(clap::Args)]
pub struct Args {
    /// Repository, like fred/logs
    pub repo: String,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let repo = &super::repo(&args.repo)?;
    let tags = ctx.store().list_tags(repo)?;
    // All or nothing: a listing with a name outside the spec's grammar is refused whole.
    name::check_listed(&tags, name::check_tag).map_err(|e| {
        e.context(format!(
            "listing aliases of {repo}: {} sent",
            ctx.store().location()
        ))
    })?;
    for tag in tags {
        ctx.out.result(&tag, json!({"alias": tag}))?;
    }
    ctx.out.flush()
}
