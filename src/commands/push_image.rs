//! `push-image <image> <ref>`: uploads an image or a whole index from an OCI layout to a
//! registry (`regtool::image::copy` from a `Layout::at`), byte for byte so that digests are
//! kept. Prints `repo@sha256:...`.

use regtool::error::{Error, Result};
use regtool::image::copy::{self, Side};
use regtool::image::endpoint::Endpoint;
use regtool::layout::Layout;
use serde_json::json;

use super::Ctx;

/// Upload an image from an OCI layout or a docker archive to a registry
///
/// IMAGE is oci:PATH[:TAG], or a bare path (never a registry reference here): a directory is
/// a layout. Without a tag, the layout's only image. REF is [host[:port]/]repo[:tag], in the
/// registry it names or in the store of REGTOOL_HOST; without a tag, the layout's tag (else
/// the manifest is stored by digest only). Prints repo@sha256:... of the manifest.
///
/// Manifests and blobs go as they are in the layout, so the digest is the layout's. An index
/// goes whole (children first), unless REGTOOL_PLATFORM picks one. Every blob the manifests
/// name must be in the layout before anything is sent (missing: status 2; another size: 65).
/// Blobs the registry has are not sent again; REGTOOL_JOBS at a time.
///
/// A docker archive (docker-archive:PATH, or PATH.tar; docker-archive:- or - reads stdin): plain layers
/// are compressed on the way in one pass (REGTOOL_COMPRESSION; reproducibly, so the same
/// archive always gives the same digest, the one `regtool digest` prints), compressed ones go
/// as they are, each diff_id checked against the config; the manifest is OCI. Without a tag,
/// the archive's own (its first RepoTags entry), else by digest only. The compressed digest
/// of each layer of an archive file is kept (REGTOOL_DIGEST_CACHE; `regtool digest` keeps it
/// too): pushed again unchanged, a layer the registry has is neither read nor compressed.
#[derive(clap::Args)]
pub struct Args {
    /// Source: oci:PATH[:TAG], docker-archive:PATH, or a path (a directory: a layout; a name
    /// ending in .tar: an archive)
    pub image: String,
    /// Destination: [host[:port]/]repo[:tag]
    pub reference: String,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let source = match Endpoint::parse_local(&args.image)? {
        Endpoint::Layout(layout) => layout,
        Endpoint::Archive(a) => {
            let dst = super::locate(ctx, &args.reference)?;
            if dst.reference.digest.is_some() {
                return Err(Error::usage("the destination takes a tag, not a digest"));
            }
            let tag =
                (dst.reference.tag.as_ref()).or(a.reference.as_ref().and_then(|r| r.tag.as_ref()));
            let (top, _) = super::archive_io::push(ctx, &a, dst.side(), tag)?;
            let pinned = dst.pinned(&top.digest);
            drop(dst);
            return ctx
                .out
                .result(&pinned, json!({"digest": top.digest, "reference": pinned}));
        }
        Endpoint::Registry(_) => {
            return Err(Error::usage("push-image reads a layout, not a registry")
                .with_hint("to copy between registries: regtool copy"));
        }
    };
    let dst = super::locate(ctx, &args.reference)?;
    if dst.reference.digest.is_some() {
        return Err(Error::usage("the destination takes a tag, not a digest"));
    }
    let layout = source.open(&ctx.cancel);
    let repo = Layout::repo();
    let reference = source.reference(&layout)?;
    let tag = dst.reference.tag.clone().or_else(|| source.tag.clone());
    let watch = crate::progress::BlobBars::new(&ctx.bars);
    let opts = copy::Options {
        platform: ctx.settings.platform.as_ref(),
        jobs: ctx.settings.jobs,
        watch: &watch,
    };
    let src = Side {
        store: &layout,
        repo: &repo,
    };
    let top = copy::copy_with(src, &reference, dst.side(), tag.as_ref(), &opts)?;
    let pinned = dst.pinned(&top.digest);
    ctx.out
        .result(&pinned, json!({"digest": top.digest, "reference": pinned}))
}
