//! `get-alias <repo> <alias>...`: the blob digests an alias names, one per line. Reads
//! regtool's and dxf's aliases and real images (their layers); a multi-platform index without
//! REGTOOL_PLATFORM gives one JSON line `{"os/arch": [digests]}`.

use regtool::alias;
use regtool::error::Result;
use serde_json::json;

use super::Ctx;

/// Print the blob digests an alias names
///
/// A multi-platform index without REGTOOL_PLATFORM gives one JSON line with a key
/// os/arch[/variant] per platform; an index that declares a platform with anything but
/// letters, digits, _ . - in its parts is refused with status 65 (as in get-digest,
/// blob-size and del-alias).
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
        let digests = value.map(|r| {
            Ok(alias::blobs(ctx.store(), repo, &r.manifest)?
                .into_iter()
                .map(|b| b.0.to_string())
                .collect::<Vec<_>>())
        })?;
        super::print_per_platform(
            &mut ctx.out,
            "alias",
            &name,
            digests,
            |d| d.clone(),
            |d| json!(d),
        )?;
    }
    Ok(())
}
