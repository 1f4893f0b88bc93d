//! `make-layer <path[=dest]>... [--prefix DIR] [--site-packages DIR] [-o out.tar]`: a
//! reproducible layer tar from files, directories and wheels (`regtool::image::make_layer`).

use std::path::PathBuf;

use regtool::error::Result;
use regtool::image::make_layer::{self, Options};

use super::Ctx;

/// Make a reproducible layer tar from files, directories and Python wheels
///
/// Each PATH goes to /PREFIX/<its name>, or to DEST with PATH=DEST (a built program, say:
/// prog=/usr/local/bin/prog). Directories go in with everything below them; symlinks stay
/// symlinks; every parent directory is an entry of its own (mode 0755). The tar depends only
/// on the content, the permission bits and the file types: entries are sorted by path, owned
/// by 0:0 with no user or group names, and their mtimes are SOURCE_DATE_EPOCH (unset: 0), so
/// the same tree gives the same bytes whatever its mtimes, owners or creation order.
///
/// A PATH ending in .whl is installed as pip installs it (PEP 427): its packages and
/// .dist-info into the site-packages directory, <name>.data/purelib and platlib there too,
/// <name>.data/scripts into PREFIX/bin (a #!python first line becomes #!/usr/bin/python3),
/// <name>.data/data into PREFIX, and a script in PREFIX/bin for each console_scripts and
/// gui_scripts entry point. INSTALLER and REQUESTED are added and RECORD lists every
/// installed file with its sha256 and size. A file that does not match the wheel's own
/// RECORD is refused (status 65).
///
/// Two inputs that would write the same path, or a path below a file, are a usage error
/// (status 64); a missing input is not-found (status 2).
#[derive(clap::Args)]
pub struct Args {
    /// PATH or PATH=DEST: a file, directory, symlink or .whl
    #[arg(required = true, value_name = "PATH[=DEST]")]
    pub inputs: Vec<String>,
    /// Where inputs without a DEST go, and the root of a wheel's bin/ and data
    #[arg(long, value_name = "DIR", default_value = "/usr/local")]
    pub prefix: String,
    /// Where wheels install their packages
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/usr/lib/python3/dist-packages"
    )]
    pub site_packages: String,
    /// Write the tar to FILE instead of stdout: a regular file (or a symlink's target) complete
    /// or not at all, keeping its mode; a device, FIFO or /dev/fd/N as the tar is made; - is
    /// stdout
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let inputs: Vec<make_layer::Input> = args
        .inputs
        .iter()
        .map(|a| make_layer::parse_input(a))
        .collect();
    let opts = Options {
        prefix: args.prefix,
        site_packages: args.site_packages,
        // A time before 1970 cannot be a tar mtime here; it is taken as 0.
        mtime: ctx.settings.epoch.map_or(0, |e| e.max(0) as u64),
    };
    super::tar_out::write_to(&mut ctx.out, args.output.as_ref(), &ctx.cancel, |out| {
        make_layer::make_layer(&inputs, &opts, out).map(|_| ())
    })
}
