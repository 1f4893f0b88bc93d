//! `get-digest <repo> <alias>...`: the config digest of each alias (dxf semantics: for a dxf
//! alias, its first blob; for an image, the image ID).

use regtool::alias;
use regtool::error::Result;
use serde_json::json;

use super::Ctx;

/// Print the config digest of aliases (dxf's get-digest)
#[derive(clap::Args)]
pub struct Args {
    /// Repository, like fred/logs
    pub repo: String,
    /// Aliases (with or without @); none: read a manifest piped on stdin (none and nothing piped: a usage error)
    pub aliases: Vec<String>,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let repo = &super::repo(&args.repo)?;
    for (name, value) in super::alias_manifests(ctx, repo, &args.aliases)? {
        let digest = value.map(|r| Ok(alias::config_digest(&r.manifest)?.to_string()))?;
        super::print_per_platform(
            &mut ctx.out,
            "alias",
            &name,
            digest,
            |d| vec![d.clone()],
            |d| json!(d),
        )?;
    }
    Ok(())
}
