//! `pull-image <ref> <image>`: saves an image or a whole index from a registry into an OCI
//! layout (`regtool::image::copy` over a `Layout::at`): blobs first, `REGTOOL_JOBS` at a
//! time, verified while they stream and resumed after a cut; the index.json entry last. A
//! failed pull leaves no entry, and no layout directory where there was none.

use regtool::error::{Error, Result};
use regtool::image::endpoint::{Endpoint, LayoutRef};
use regtool::oci::Tag;
use serde_json::json;

use super::Ctx;

/// Save a registry image to an OCI layout or a docker archive
///
/// REF is [host[:port]/]repo[:tag|@digest], in the registry it names or in the store of
/// REGTOOL_HOST. IMAGE is oci:PATH[:TAG], or a bare path (never a registry reference here):
/// an existing directory or a new name is a layout; a name ending in .tar is a docker archive.
/// Without a tag the layout entry takes REF's tag (none for a digest). Prints the manifest
/// digest.
///
/// An index goes whole into the layout (every platform, children before the index), unless
/// REGTOOL_PLATFORM picks one. Blobs move REGTOOL_JOBS at a time, each verified against its
/// digest while it streams and resumed after a broken connection; one progress bar per blob.
/// Blobs the layout has (checked by hashing them) are not downloaded again. The index.json
/// entry is written last: a pull that fails or is interrupted leaves none, and removes the
/// layout directory it created. A directory that holds other files and no layout is refused.
///
/// Into a docker archive (docker-archive:PATH[:NAME], or PATH.tar): one platform
/// (REGTOOL_PLATFORM, else this machine's); layers download REGTOOL_JOBS at a time into
/// temporary files in TMPDIR (as they came, verified), and each is decompressed into the
/// archive in order as a plain tar named by its diff_id and checked against the config, RepoTags NAME (else REF): what docker load and
/// skopeo read. A regular file is written complete or not at all. Prints the image ID (the
/// config's digest, as docker load reports it).
#[derive(clap::Args)]
pub struct Args {
    /// Source image: [host[:port]/]repo[:tag|@digest]
    pub reference: String,
    /// Destination: oci:PATH[:TAG], docker-archive:PATH[:NAME], or a path (a directory: a
    /// layout; a name ending in .tar: an archive)
    pub image: String,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let target = match Endpoint::parse_local(&args.image)? {
        Endpoint::Layout(layout) => layout,
        Endpoint::Archive(a) => {
            let src = super::locate(ctx, &args.reference)?;
            let name = a.reference.as_ref().unwrap_or(&src.reference);
            let id = super::archive_io::save(
                ctx,
                src.side(),
                &src.reference.reference(),
                Some(name),
                &a.path,
            )?;
            drop(src);
            let text = id.to_string();
            let written = Endpoint::Archive(a);
            return ctx
                .out
                .result(&text, json!({"id": id, "destination": written.to_string()}));
        }
        Endpoint::Registry(_) => {
            return Err(Error::usage("pull-image saves to a layout, not a registry")
                .with_hint("to copy between registries: regtool copy"));
        }
    };
    let src = super::locate(ctx, &args.reference)?;
    let tag = target.tag.clone().or_else(|| match &src.reference.digest {
        Some(_) => src.reference.tag.clone(),
        None => Some(src.reference.tag.clone().unwrap_or_else(Tag::latest)),
    });
    let layout = target.open(&ctx.cancel);
    let top = super::image_arg::save_to_layout(
        ctx,
        src.side(),
        &src.reference.reference(),
        &target,
        &layout,
        tag.as_ref(),
    )?;
    let text = top.digest.to_string();
    let written = Endpoint::Layout(LayoutRef {
        path: target.path.clone(),
        tag,
    });
    ctx.out.result(
        &text,
        json!({"digest": top.digest, "destination": written.to_string()}),
    )
}
