//! `get-manifest <repo> <alias|digest>...`: the raw manifest bytes, each followed by a
//! newline. With REGTOOL_PLATFORM, an index gives the matching child's manifest.

use regtool::alias;
use regtool::error::Result;

use super::Ctx;
use crate::output::write_error;

/// Print raw manifests
#[derive(clap::Args)]
pub struct Args {
    /// Repository, like fred/logs
    pub repo: String,
    /// Aliases or manifest digests
    #[arg(required = true)]
    pub targets: Vec<String>,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let repo = super::repo(&args.repo)?;
    for target in super::targets(&args.targets)? {
        let reference = target.reference();
        let bytes = match &ctx.settings.platform {
            Some(p) => {
                alias::read_for(ctx.store(), repo, &reference, p)?
                    .fetched
                    .bytes
            }
            None => ctx.store().get_manifest(repo, &reference)?.bytes,
        };
        let out = ctx.out.raw();
        out.write_all(&bytes)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(write_error)?;
    }
    ctx.out.flush()
}
