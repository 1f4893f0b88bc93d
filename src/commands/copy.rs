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
///
/// Either side may be a docker archive, docker-archive:PATH[:NAME]: from one, as push-image
/// uploads it (into a layout: google/containerregistry's importer); into one, as pull-image
/// saves it (one platform; prints the image ID).
#[derive(clap::Args)]
pub struct Args {
    /// Source image: [host[:port]/]repo[:tag|@digest], oci:PATH[:TAG] or docker-archive:PATH
    pub src: String,
    /// Destination: [host[:port]/]repo[:tag], oci:PATH[:TAG] or docker-archive:PATH[:NAME]
    pub dst: String,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let registry_src = matches!(Endpoint::parse(&args.src)?, Endpoint::Registry(_));
    let src = args.src.clone();
    copy(ctx, args).map_err(|e| {
        if registry_src {
            image_arg::local_hint(e, &src)
        } else {
            e
        }
    })
}

fn copy(ctx: &mut Ctx, args: Args) -> Result<()> {
    let (src_end, dst_end) = (Endpoint::parse(&args.src)?, Endpoint::parse(&args.dst)?);
    if matches!(src_end, Endpoint::Archive(_)) || matches!(dst_end, Endpoint::Archive(_)) {
        return with_archive(ctx, &args, src_end, dst_end);
    }
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

/// A copy with a docker archive on either side: an archive's image is pushed (plain layers
/// compressed as REGTOOL_COMPRESSION says; the importer when the destination is a layout);
/// an image is saved into an archive (one platform). Into an archive, prints the image ID
/// (the config's digest, as docker load reports it).
fn with_archive(ctx: &mut Ctx, args: &Args, src_end: Endpoint, dst_end: Endpoint) -> Result<()> {
    let (text, value) = match (src_end, dst_end) {
        (Endpoint::Archive(a), Endpoint::Archive(b)) => {
            let id = super::archive_io::copy(ctx, &a, b.reference.as_ref(), &b.path)?;
            let destination = Endpoint::Archive(b).to_string();
            (
                id.to_string(),
                json!({"id": id, "destination": destination}),
            )
        }
        (Endpoint::Archive(a), dst_end) => {
            let dst = image_arg::open(ctx, dst_end, &args.dst, "copy")?;
            if dst.digest().is_some() {
                return Err(Error::usage("the destination takes a tag, not a digest"));
            }
            let tag = dst
                .tag()
                .or(a.reference.as_ref().and_then(|r| r.tag.as_ref()))
                .cloned();
            let push = || {
                let (top, stored) = super::archive_io::push(ctx, &a, dst.side(), tag.as_ref())?;
                if let (Opened::Layout { layout, repo, .. }, None) = (&dst, &stored) {
                    layout.add_untagged(repo, &top)?;
                }
                Ok(top)
            };
            // Into a layout as pull-image saves: a failure leaves nothing.
            let top = match &dst {
                Opened::Layout { target, layout, .. } => {
                    image_arg::into_layout(ctx, target, layout, push)?
                }
                Opened::Registry(_) => push()?,
            };
            let destination = dst.pinned(&top.digest);
            (
                top.digest.to_string(),
                json!({"digest": top.digest, "destination": destination}),
            )
        }
        (src_end, Endpoint::Archive(b)) => {
            let src = image_arg::open(ctx, src_end, &args.src, "copy")?;
            let reference = src.reference()?;
            let name = match (&b.reference, &src) {
                (Some(name), _) => Some(name.clone()),
                (None, Opened::Registry(located)) => Some(located.reference.clone()),
                (None, Opened::Layout { .. }) => None,
            };
            let id = super::archive_io::save(ctx, src.side(), &reference, name.as_ref(), &b.path)?;
            drop(src);
            let destination = Endpoint::Archive(b).to_string();
            (
                id.to_string(),
                json!({"id": id, "destination": destination}),
            )
        }
        _ => return Err(Error::other("no archive in this copy")),
    };
    ctx.out.result(&text, value)
}
