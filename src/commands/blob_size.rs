//! `blob-size <repo> <digest|@alias>...`: one size per argument; an alias gives the sum of its
//! blobs (a multi-platform alias: a JSON line with a sum per platform, as dxf prints it).

use regtool::alias::{self, PerPlatform};
use regtool::error::{Error, Result};
use regtool::oci::Target;
use serde_json::json;

use super::Ctx;

/// Print the size of blobs, or the total size of an alias's blobs
///
/// An alias gives the sum of the sizes its manifest declares; sizes that add up past
/// 2^64-1 bytes are a malformed manifest (status 65), never a wrapped number.
#[derive(clap::Args)]
pub struct Args {
    /// Repository, like fred/logs
    pub repo: String,
    /// Blob digests or @aliases; none: read a manifest piped on stdin (none and nothing piped: a usage error)
    pub targets: Vec<String>,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let repo = &super::repo(&args.repo)?;
    let sized: Vec<(String, PerPlatform<u64>)> = if args.targets.is_empty() {
        let m = super::stdin_manifest_instead_of("<digest|@alias>")?;
        vec![(
            "-".into(),
            m.map(|r| alias::total_size(&alias::blobs(ctx.store(), repo, &r.manifest)?))?,
        )]
    } else {
        let mut out = Vec::new();
        for target in super::targets(&args.targets)? {
            let size = match &target {
                Target::Digest(d) => PerPlatform::One(
                    ctx.store()
                        .blob_size(repo, d)?
                        .ok_or_else(|| Error::not_found(format!("{repo}: no blob {d}")))?,
                ),
                Target::Alias(a) => {
                    alias::read(ctx.store(), repo, &a.into(), ctx.settings.platform.as_ref())?.map(
                        |r| {
                            alias::total_size(&alias::blobs(ctx.store(), repo, &r.manifest)?)
                                .map_err(|e| e.context(format!("@{a}")))
                        },
                    )?
                }
            };
            out.push((target.to_string(), size));
        }
        out
    };
    for (name, size) in sized {
        super::print_per_platform(
            &mut ctx.out,
            "target",
            &name,
            size,
            |s| vec![s.to_string()],
            |s| json!(s),
        )?;
    }
    Ok(())
}
