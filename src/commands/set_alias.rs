//! `set-alias <repo> <alias> <digest|file>...`: writes an alias manifest naming blobs that are
//! already in the repository. An argument containing `/` or naming an existing file is hashed
//! locally (not uploaded). Prints the manifest digest.

use std::fs::File;
use std::path::Path;

use regtool::alias::{self, Member};
use regtool::error::{Error, Result};
use regtool::oci::digest::hash_reader;
use regtool::oci::{Algorithm, Digest, name};
use serde_json::json;

use super::Ctx;

/// Name blobs (by digest, or by hashing local files) with an alias
#[derive(clap::Args)]
pub struct Args {
    /// Repository, like fred/logs
    pub repo: String,
    /// The alias to set (with or without @)
    pub alias: String,
    /// Blob digests, or files to hash (their blobs must already be in the repository)
    #[arg(required = true)]
    pub blobs: Vec<String>,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let repo = &super::repo(&args.repo)?;
    let alias_name = name::alias_name(&args.alias)?;
    let mut members = Vec::new();
    for arg in &args.blobs {
        let is_file = arg.contains('/') || Path::new(arg).is_file();
        let (digest, title) = if is_file {
            let mut file = File::open(arg).map_err(|e| Error::io(format!("opening {arg}"), &e))?;
            let (d, _) = hash_reader(&mut file, Algorithm::Sha256).map_err(|e| e.context(arg))?;
            (
                d,
                Path::new(arg)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned()),
            )
        } else {
            (
                arg.parse::<Digest>()
                    .map_err(|_| Error::usage(format!("{arg:?} is neither a digest nor a file")))?,
                None,
            )
        };
        members.push((digest, title));
    }
    let mut resolved = Vec::new();
    for (digest, title) in members {
        let size = ctx.store().blob_size(repo, &digest)?.ok_or_else(|| {
            Error::not_found(format!("{repo}: no blob {digest}"))
                .with_hint("push it first: regtool push-blob REPO FILE")
        })?;
        resolved.push(Member {
            digest,
            size,
            title,
        });
    }
    let digest = alias::write(ctx.store(), repo, &alias_name, &resolved)?;
    ctx.out.result(
        &digest.to_string(),
        json!({"alias": alias_name.as_str(), "digest": digest}),
    )
}
