//! `copy <src-ref> <dst-ref>`: copies an image or an index (every platform, or only
//! REGTOOL_PLATFORM's) between repositories and registries: mounted within a registry,
//! streamed across, existing blobs skipped. Prints the destination digest.

use regtool::error::Result;
use regtool::image::copy;
use serde_json::json;

use super::Ctx;

/// Copy an image or index to another repository or registry
#[derive(clap::Args)]
pub struct Args {
    /// Source image: [host[:port]/]repo[:tag|@digest]
    pub src: String,
    /// Destination: [host[:port]/]repo[:tag] (no tag: the source's tag, or by digest)
    pub dst: String,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let (src, dst) = super::locate_pair(ctx, &args.src, &args.dst)?;
    let tag = dst
        .reference
        .tag
        .clone()
        .or_else(|| src.reference.tag.clone());
    let digest = copy::copy(
        src.side(),
        &src.reference.reference(),
        dst.side(),
        tag.as_ref(),
        ctx.settings.platform.as_ref(),
        ctx.settings.jobs,
    )?;
    let text = digest.to_string();
    ctx.out.result(
        &text,
        json!({"digest": digest, "destination": dst.pinned(&digest)}),
    )
}
