//! `flatten <image> [-o out.tar] [--config FILE]`: the merged root filesystem of an image as
//! one tar (`regtool::image::flatten` finds the layers, `regtool::image::merge` merges them).

use std::path::PathBuf;

use regtool::Cancel;
use regtool::error::{Error, Result};
use regtool::image::copy::Side;
use regtool::image::endpoint::Endpoint;
use regtool::image::{flatten, merge};
use regtool::layout::Layout;

use super::Ctx;

/// Write the merged root filesystem of an image as one tar
///
/// IMAGE is [host[:port]/]repo[:tag|@digest], in the registry it names or in the store of
/// REGTOOL_HOST; or an OCI layout (oci:PATH[:TAG]) or a docker archive (docker-archive:PATH,
/// the legacy form too). A multi-platform index needs REGTOOL_PLATFORM.
///
/// The layers are applied in order, as a container runtime stacks them: whiteouts and
/// opaque directories remove what lower layers put there, later layers win, and no whiteout
/// is left. Modes, owners (ids and names), mtimes, symlinks, hard links and xattrs are kept;
/// an entry that is absolute or escapes the root is refused (status 65). The output is
/// reproducible: the same image gives the same bytes.
///
/// Each layer is downloaded once, verified against its digest, and kept (compressed, as it
/// came) in a temporary file in TMPDIR until the tar is written: the merge reads every layer
/// twice, and holds no file content in memory.
#[derive(clap::Args)]
pub struct Args {
    /// The image: [host[:port]/]repo[:tag|@digest], oci:PATH[:TAG] or docker-archive:PATH
    pub image: String,
    /// Write the tar to FILE instead of stdout: a regular file (or a symlink's target) complete
    /// or not at all, keeping its mode; a device, FIFO or /dev/fd/N as the tar is made; - is
    /// stdout
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write the image's config (JSON, as stored) to FILE
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let output = super::output_file(args.output.as_ref());
    if args.config.is_some() && output == super::output_file(args.config.as_ref()) {
        return Err(Error::usage("--config and -o name the same file"));
    }
    let platform = ctx.settings.platform.clone();
    let retries = ctx.settings.remote.retries;
    let cancel = ctx.cancel.clone();
    let (archive, layout);
    let layout_repo = Layout::repo();
    let mut image = match Endpoint::parse(&args.image)? {
        Endpoint::Archive(a) => {
            archive = super::archive_io::open(&a.path, &cancel)?;
            let image = archive.image_named(a.reference.as_ref())?;
            flatten::Image {
                layers: archive.layer_sources(&image),
                config: image.config,
            }
        }
        Endpoint::Layout(l) => {
            layout = l.open(&cancel);
            let side = Side {
                store: &layout,
                repo: &layout_repo,
            };
            let reference = l.reference(&layout)?;
            let tmp = std::env::temp_dir();
            flatten::open(side, &reference, platform.as_ref(), retries, &tmp, &cancel)?
        }
        Endpoint::Registry(_) => {
            let located = super::locate(ctx, &args.image)?;
            let reference = located.reference.reference();
            return flatten_located(ctx, located, &reference, &args, platform, retries)
                .map_err(|e| super::image_arg::local_hint(e, &args.image));
        }
    };
    write(ctx, &mut image, &args, &cancel)
}

fn flatten_located(
    ctx: &Ctx,
    located: super::Located<'_>,
    reference: &regtool::oci::Reference,
    args: &Args,
    platform: Option<regtool::oci::Platform>,
    retries: u32,
) -> Result<()> {
    let cancel = ctx.cancel.clone();
    let mut image = flatten::open(
        located.side(),
        reference,
        platform.as_ref(),
        retries,
        // The library reads no environment: TMPDIR (else /tmp) is the binary's to read.
        &std::env::temp_dir(),
        &cancel,
    )?;
    write(ctx, &mut image, args, &cancel)
}

fn write(ctx: &Ctx, image: &mut flatten::Image<'_>, args: &Args, cancel: &Cancel) -> Result<()> {
    // A stdout of its own: the image may borrow the context (its store) while the tar streams.
    let mut out = crate::output::Output::new(ctx.settings.format);
    super::tar_out::write_to(&mut out, args.output.as_ref(), cancel, |w| {
        merge::merge(&mut image.layers, w, cancel).map(|_| ())
    })?;
    if let Some(path) = &args.config {
        super::tar_out::write_to(&mut out, Some(path), cancel, |w| {
            w.write_all(&image.config)
                .map_err(|e| regtool::error::from_io(format!("writing {}", path.display()), e))
        })?;
    }
    Ok(())
}
