//! `make-image [--base <image>] <layer>... -o <image>`: layertool's `image`. Builds an image
//! from a base (a registry image, a layout or an archive; none: scratch) and layer tarballs
//! (`regtool::image::make_image`) into a docker archive, or into an OCI layout (the archive
//! made in a temporary file, then pushed into the layout). No registry is touched except to
//! read a registry base.

use std::path::PathBuf;

use regtool::archive::push;
use regtool::error::{Error, Result};
use regtool::image::copy::Side;
use regtool::image::endpoint::Endpoint;
use regtool::image::make_image::{self, Base};
use regtool::layout::Layout;
use serde_json::json;

use super::Ctx;

/// Build an image from a base and layer tarballs, without touching a registry
///
/// The base is a registry image ([host[:port]/]repo[:tag|@digest], only read), an OCI layout
/// (oci:PATH[:TAG]) or a docker archive (docker-archive:PATH); without --base the image
/// starts empty (scratch), for REGTOOL_PLATFORM or this machine's platform. A multi-platform
/// base gives the image of REGTOOL_PLATFORM or of this machine.
///
/// Each layer is a tar, plain or gzip- or zstd-compressed (- for stdin); it is checked to be
/// a tar and stored uncompressed in the archive, so that its sha256 is the diff_id the config
/// gets. The config keeps every field of the base's, with the new diff_ids and one history
/// entry per layer added; its `created` and the history's are SOURCE_DATE_EPOCH (else
/// 1970-01-01T00:00:00Z), so the same inputs give the same archive, byte for byte.
///
/// The output is a docker archive (docker-archive:PATH[:NAME], or a PATH ending in .tar),
/// with NAME as its RepoTags when given: what docker load and skopeo read, and push-image
/// uploads; a regular file is written complete or not at all. Or an OCI layout
/// (oci:PATH[:TAG], or a directory), its layers compressed as REGTOOL_COMPRESSION says.
/// Prints the manifest digest for a layout.
#[derive(clap::Args)]
pub struct Args {
    /// The base image (none: scratch)
    #[arg(long, value_name = "IMAGE")]
    pub base: Option<String>,
    /// Layer tarballs, bottom first (- for stdin)
    #[arg(required = true)]
    pub layers: Vec<PathBuf>,
    /// Where to write the image: docker-archive:PATH[:NAME], PATH.tar, or oci:PATH[:TAG]
    #[arg(short = 'o', long = "output", value_name = "IMAGE", required = true)]
    pub output: String,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let output = Endpoint::parse_local(&args.output)?;
    let cancel = ctx.cancel.clone();
    let platform = ctx
        .settings
        .platform
        .clone()
        .unwrap_or_else(super::archive_io::own_platform);
    let created = ctx
        .settings
        .created
        .clone()
        .unwrap_or_else(|| regtool::image::append::rfc3339(0));
    let base_endpoint = args.base.as_deref().map(Endpoint::parse).transpose()?;
    if args.layers.iter().filter(|p| p.as_os_str() == "-").count() > 0
        && let Some(Endpoint::Archive(a)) = &base_endpoint
        && a.path.as_os_str() == "-"
    {
        return Err(Error::usage("stdin (-) can be read only once"));
    }
    // Everything is opened before the output is created, so a missing input writes nothing.
    let mut layers = super::squash::open_all(&args.layers, &cancel)?;
    let archive;
    let layout;
    let layout_repo = Layout::repo();
    let located;
    let base = match &base_endpoint {
        None => Base::Scratch(platform),
        Some(Endpoint::Archive(a)) => {
            archive = super::archive_io::open(&a.path, &cancel)?;
            let image = archive.image_named(a.reference.as_ref())?;
            Base::Archive(&archive, image)
        }
        Some(Endpoint::Layout(l)) => {
            layout = l.open(&cancel);
            Base::Store {
                reference: l.reference(&layout)?,
                side: Side {
                    store: &layout,
                    repo: &layout_repo,
                },
                platform,
                retries: 0,
            }
        }
        Some(Endpoint::Registry(_)) => {
            located = super::locate(ctx, args.base.as_deref().unwrap_or_default())?;
            Base::Store {
                side: located.side(),
                reference: located.reference.reference(),
                platform,
                retries: ctx.settings.remote.retries,
            }
        }
    };
    match output {
        Endpoint::Archive(a) => {
            let tags = super::archive_io::repo_tags(a.reference.as_ref());
            super::archive_io::create(&a.path, &cancel, |writer| {
                make_image::make_image(&base, &mut layers, &created, &tags, writer)
            })
        }
        Endpoint::Layout(l) => {
            // The archive first (in TMPDIR), then pushed into the layout: one code path
            // makes images, and the layout's index entry comes last.
            let tmp = tempfile::Builder::new()
                .prefix(".regtool-image-")
                .tempfile_in(std::env::temp_dir())
                .map_err(|e| Error::io("creating a temporary file", &e))?;
            let _guard = cancel.remove_on_cancel(tmp.path());
            super::archive_io::create(tmp.path(), &cancel, |writer| {
                make_image::make_image(&base, &mut layers, &created, &[], writer)
            })?;
            let made = super::archive_io::open(tmp.path(), &cancel)?;
            let image = made.image()?;
            let store = l.open(&cancel);
            let repo = Layout::repo();
            let tag = l.tag.clone().map(regtool::oci::Reference::Tag);
            // A failure leaves no layout behind (nor an index entry in an existing one).
            let top = super::image_arg::into_layout(ctx, &l, &store, || {
                let top = push::push(
                    &made,
                    &image,
                    Side {
                        store: &store,
                        repo: &repo,
                    },
                    tag.as_ref(),
                    ctx.settings.compression,
                    ctx.settings.jobs,
                    None,
                    &regtool::image::copy::Unwatched,
                )?;
                if tag.is_none() {
                    store.add_untagged(&repo, &top)?;
                }
                Ok(top)
            })?;
            let text = top.digest.to_string();
            ctx.out.result(&text, json!({"digest": top.digest}))
        }
        Endpoint::Registry(_) => Err(Error::usage(
            "make-image writes an archive or a layout, never to a registry",
        )
        .with_hint("push the result with: regtool push-image")),
    }
}
