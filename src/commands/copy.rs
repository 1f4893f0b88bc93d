//! `copy <image> <image>`: copies an image or an index (every platform, or only
//! REGTOOL_PLATFORM's) between repositories, registries and OCI layouts: mounted within a
//! registry, streamed across, existing blobs skipped; into a layout as `pull-image` saves
//! (the index.json entry last, nothing left by a failure). Prints the destination digest.

use regtool::error::{Error, Result};
use regtool::image::copy;
use regtool::image::endpoint::Endpoint;
use serde_json::json;

use super::Ctx;
use super::image_arg::{self, Opened};

/// Copy an image or index between registries, repositories and OCI layouts
///
/// Each side is a registry reference, [host[:port]/]repo[:tag|@digest] (in the registry it
/// names, or in the store of REGTOOL_HOST), or an OCI layout, oci:PATH[:TAG] (the source's
/// only image without a tag). The destination takes no digest; without a tag it gets the
/// source's, else the manifest is stored by digest (an untagged entry in a layout).
/// Manifests and blobs are copied byte for byte, so digests are kept.
#[derive(clap::Args)]
pub struct Args {
    /// Source image: [host[:port]/]repo[:tag|@digest] or oci:PATH[:TAG]
    pub src: String,
    /// Destination: [host[:port]/]repo[:tag] or oci:PATH[:TAG]
    pub dst: String,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let (src_end, dst_end) = (Endpoint::parse(&args.src)?, Endpoint::parse(&args.dst)?);
    let src = image_arg::open(ctx, src_end, &args.src, "copy")?;
    let dst = image_arg::open(ctx, dst_end, &args.dst, "copy")?;
    if dst.digest().is_some() {
        return Err(Error::usage("the destination takes a tag, not a digest"));
    }
    let tag = dst.tag().or(src.tag()).cloned();
    let reference = src.reference()?;
    let top = match &dst {
        Opened::Layout { target, layout, .. } => {
            image_arg::save_to_layout(ctx, src.side(), &reference, target, layout, tag.as_ref())?
        }
        Opened::Registry(_) => {
            let watch = crate::progress::BlobBars::new(&ctx.bars);
            let opts = copy::Options {
                platform: ctx.settings.platform.as_ref(),
                jobs: ctx.settings.jobs,
                watch: &watch,
            };
            copy::copy_with(src.side(), &reference, dst.side(), tag.as_ref(), &opts)?
        }
    };
    let text = top.digest.to_string();
    let destination = dst.pinned(&top.digest);
    drop((src, dst));
    ctx.out.result(
        &text,
        json!({"digest": top.digest, "destination": destination}),
    )
}
