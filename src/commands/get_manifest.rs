//! `get-manifest <repo> <alias|digest>...`: the raw manifest bytes, each followed by a
//! newline. With REGTOOL_PLATFORM, an index gives the matching child's manifest. With
//! REGTOOL_FORMAT=json, one compact line per manifest: `{"target", "digest", "manifest"}`. Bytes
//! that are not JSON are refused (65) rather than printed.

use regtool::alias;
use regtool::error::{Error, Result};
use serde_json::{Value, json};

use super::Ctx;
use crate::output::write_error;

/// Print raw manifests
///
/// Each manifest's bytes as the registry holds them, followed by a newline. With
/// REGTOOL_FORMAT=json: one compact JSON line per manifest, {"target", "digest", "manifest"}.
/// Bytes that are not JSON are refused with status 65 instead of reaching the terminal.
#[derive(clap::Args)]
pub struct Args {
    /// Repository, like fred/logs
    pub repo: String,
    /// Aliases or manifest digests
    #[arg(required = true)]
    pub targets: Vec<String>,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let repo = &super::repo(&args.repo)?;
    for target in super::targets(&args.targets)? {
        let reference = target.reference();
        let fetched = match &ctx.settings.platform {
            Some(p) => alias::read_for(ctx.store(), repo, &reference, p)?.fetched,
            None => ctx.store().get_manifest(repo, &reference)?,
        };
        // The bytes are printed as stored, but a manifest is JSON (no raw control characters
        // can be in it): anything else is malformed, and not sent to the terminal.
        let manifest: Value = serde_json::from_slice(&fetched.bytes).map_err(|_| {
            Error::data(format!(
                "getting manifest {reference} from {repo}: the manifest is not JSON"
            ))
        })?;
        if ctx.out.is_json() {
            // One compact line per manifest; the digest is of the bytes as the registry holds them.
            let json = json!({"target": target.to_string(), "digest": fetched.digest, "manifest": manifest});
            ctx.out.result("", json)?;
            continue;
        }
        let out = ctx.out.raw();
        out.write_all(&fetched.bytes)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(write_error)?;
    }
    ctx.out.flush()
}
