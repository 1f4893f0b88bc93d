//! `squash <layer>... [-o out.tar]`: merges layer tarballs into one plain layer tar with the
//! merge engine (`regtool::image::merge`).

use std::path::PathBuf;

use regtool::Cancel;
use regtool::error::{Error, Result};
use regtool::image::merge;
use regtool::image::source::{self, LayerSource};

use super::Ctx;

/// Merge layer tarballs into one plain layer tar
///
/// Each layer may be a plain tar, or gzip- or zstd-compressed (told by its first bytes).
/// Layers apply in order, as a container runtime stacks them: a whiteout (dir/.wh.name)
/// removes what lower layers put at dir/name, an opaque marker (dir/.wh..wh..opq) hides what
/// lower layers put in dir, later entries win, and no whiteout is left in the output.
/// Modes, owners (ids and names), mtimes, symlinks, hard links and xattrs (PAX
/// SCHILY.xattr.*) are kept. A layer with an absolute path, a `..` component or a hard link
/// to nothing below it is refused (status 65).
///
/// The output is reproducible: the same content gives the same bytes, whatever the
/// compression of the inputs. Entries come in layer order, each directory where it first
/// appeared with the metadata of its last declaration.
///
/// Each layer is read twice and no file content is held in memory. A layer that cannot be
/// read twice (- for stdin, a pipe, a process substitution like <(zcat x.tar.gz)) is copied
/// to a temporary file (in TMPDIR, as it came, compressed or not) while it is read the first
/// time.
#[derive(clap::Args)]
pub struct Args {
    /// Layer tarballs, bottom first (- for stdin)
    #[arg(required = true)]
    pub layers: Vec<PathBuf>,
    /// Write the tar to FILE instead of stdout: a regular file (or a symlink's target) complete
    /// or not at all, keeping its mode; a device, FIFO or /dev/fd/N as the tar is made; - is
    /// stdout
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let cancel = ctx.cancel.clone();
    let mut sources = open_all(&args.layers, &cancel)?;
    super::tar_out::write_to(&mut ctx.out, args.output.as_ref(), &cancel, |out| {
        merge::merge(&mut sources, out, &cancel).map(|_| ())
    })
}

/// Opens every layer before anything is written, so a missing one fails first.
pub fn open_all(paths: &[PathBuf], cancel: &Cancel) -> Result<Vec<Box<dyn LayerSource>>> {
    let stdin = paths.iter().filter(|p| p.as_os_str() == "-").count();
    if stdin > 1 {
        return Err(Error::usage("stdin (-) can be read only once"));
    }
    // Streams are spooled in TMPDIR (else /tmp): the library reads no environment.
    let tmp = std::env::temp_dir();
    paths
        .iter()
        .map(|p| {
            if p.as_os_str() == "-" {
                Ok(source::stdin(&tmp, cancel))
            } else {
                source::open_path(p, &tmp, cancel)
            }
        })
        .collect()
}
