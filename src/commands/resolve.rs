//! `resolve <repo> <alias>...`: the manifest digest each alias names (HEAD, falling back to
//! GET when the registry gives no usable `Docker-Content-Digest`).

use regtool::error::Result;
use serde_json::json;

use super::Ctx;

/// Print the manifest digest an alias points at
#[derive(clap::Args)]
pub struct Args {
    /// Repository, like fred/logs
    pub repo: String,
    /// Aliases (with or without @)
    #[arg(required = true)]
    pub aliases: Vec<String>,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let repo = &super::repo(&args.repo)?;
    for name in super::aliases(&args.aliases)? {
        let digest = ctx.store().resolve(repo, &(&name).into())?;
        ctx.out.result(
            &digest.to_string(),
            json!({"alias": name.as_str(), "digest": digest}),
        )?;
    }
    Ok(())
}
