//! `mount-blob <repo> <from-repo> <digest> [@alias]`: cross-repository mount. A registry that
//! answers 202 (no mount) is reported as a failure, and the upload session it opened is
//! cancelled by the library.

use regtool::alias::{self, Member};
use regtool::error::{Error, Result};
use regtool::oci::{Digest, name};
use regtool::store::Mount;
use serde_json::json;

use super::Ctx;

/// Make a blob of another repository available in this one, without copying it
///
/// Against a registry, a cross-repository mount: a registry that answers with an upload
/// session instead (202) is a failure. In the local store, the blob of from-repo is hashed
/// first and a corrupt one is refused (65); it is then hard-linked into repo (copied and
/// verified across file systems), replacing a corrupt copy that repo may hold.
#[derive(clap::Args)]
pub struct Args {
    /// Repository to mount into
    pub repo: String,
    /// Repository that has the blob
    pub from_repo: String,
    /// Digest of the blob
    pub digest: String,
    /// Name the mounted blob with this alias
    pub alias: Option<String>,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let repo = &super::repo(&args.repo)?;
    let from = &super::repo(&args.from_repo)?;
    let digest: Digest = args.digest.parse()?;
    let alias_name = args.alias.as_deref().map(name::alias_name).transpose()?;
    if ctx.store().mount_blob(repo, from, &digest)? == Mount::Declined {
        return Err(Error::other(format!(
            "mounting {digest} from {from} into {repo}: the registry did not mount the blob (it answered 202)"
        ))
        .with_hint(
            "push the blob instead: regtool pull-blob FROM DIGEST | regtool push-blob REPO -",
        ));
    }
    if let Some(a) = &alias_name {
        let size = ctx
            .store()
            .blob_size(repo, &digest)?
            .ok_or_else(|| Error::not_found(format!("{repo}: no blob {digest} after mounting")))?;
        alias::write(
            ctx.store(),
            repo,
            a,
            &[Member {
                digest: digest.clone(),
                size,
                title: None,
            }],
        )?;
    }
    ctx.out
        .result(&digest.to_string(), json!({"digest": digest}))
}
