//! `make-image [--base <image>] <layer>... -o <image>`: layertool's `image`. Builds an image
//! from a base (a registry image, a layout or an archive; none: scratch) and layer tarballs
//! into a docker archive (`regtool::image::make_image`), touching no registry except to read
//! a registry base.

use std::path::{Path, PathBuf};

use regtool::archive::Archive;
use regtool::archive::write::{Output, Writer};
use regtool::error::{Error, Result};
use regtool::image::make_image::{self, Base};
use regtool::oci::Platform;
use regtool::outfile::OutFile;

use super::Ctx;

/// Build an image from a base and layer tarballs, without touching a registry
///
/// The base is a registry image ([host[:port]/]repo[:tag|@digest], only read) or a docker
/// archive (docker-archive:PATH); without --base the image starts empty (scratch), for
/// REGTOOL_PLATFORM or this machine's platform. A multi-platform base gives the image of
/// REGTOOL_PLATFORM or of this machine.
///
/// Each layer is a tar, plain or gzip- or zstd-compressed (- for stdin); it is checked to be
/// a tar and stored uncompressed in the archive, so that its sha256 is the diff_id the config
/// gets. The config keeps every field of the base's, with the new diff_ids and one history
/// entry per layer added; its `created` and the history's are SOURCE_DATE_EPOCH (else
/// 1970-01-01T00:00:00Z), so the same inputs give the same archive, byte for byte.
///
/// The output is a docker archive (docker-archive:PATH[:NAME], or a PATH ending in .tar),
/// with NAME as its RepoTags when given: what docker load and skopeo read, and push-image
/// uploads. A regular file is written complete or not at all.
#[derive(clap::Args)]
pub struct Args {
    /// The base image (none: scratch)
    #[arg(long, value_name = "IMAGE")]
    pub base: Option<String>,
    /// Layer tarballs, bottom first (- for stdin)
    #[arg(required = true)]
    pub layers: Vec<PathBuf>,
    /// Where to write the image: docker-archive:PATH[:NAME] or PATH.tar
    #[arg(short = 'o', long = "output", value_name = "IMAGE", required = true)]
    pub output: String,
}

/// This machine's platform, as images name it (Go's GOOS/GOARCH).
pub fn own_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "arm" => "arm",
        other => other,
    };
    Platform {
        os: std::env::consts::OS.to_string(),
        architecture: architecture.to_string(),
        variant: None,
    }
}

/// `docker-archive:PATH[:NAME]` or a bare `PATH.tar`: the path and the RepoTags.
fn archive_output(text: &str) -> Result<(PathBuf, Vec<String>)> {
    if let Some(rest) = text.strip_prefix("docker-archive:") {
        return match rest.split_once(':') {
            Some((path, name)) if !path.is_empty() && !name.is_empty() => {
                regtool::oci::ImageRef::parse(name)?;
                Ok((PathBuf::from(path), vec![name.to_string()]))
            }
            None if !rest.is_empty() => Ok((PathBuf::from(rest), Vec::new())),
            _ => Err(Error::usage(format!("invalid image {text:?}"))),
        };
    }
    if text.ends_with(".tar") {
        return Ok((PathBuf::from(text), Vec::new()));
    }
    Err(Error::usage(format!(
        "{text}: make-image writes a docker archive (docker-archive:PATH or PATH.tar)"
    )))
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let (path, repo_tags) = archive_output(&args.output)?;
    let cancel = ctx.cancel.clone();
    let tmp = std::env::temp_dir();
    let platform = ctx.settings.platform.clone().unwrap_or_else(own_platform);
    let created = ctx
        .settings
        .created
        .clone()
        .unwrap_or_else(|| regtool::image::append::rfc3339(0));
    // Everything is opened before the output is created, so a missing input writes nothing.
    let mut layers = super::squash::open_all(&args.layers, &cancel)?;
    let archive;
    let located;
    let base = match args.base.as_deref() {
        None => Base::Scratch(platform),
        Some(text) if text.starts_with("docker-archive:") => {
            let p = &text["docker-archive:".len()..];
            archive = Archive::open(Path::new(p), &tmp, &cancel)?;
            Base::Archive(&archive)
        }
        Some(text) => {
            located = super::locate(ctx, text)?;
            Base::Store {
                side: located.side(),
                reference: located.reference.reference(),
                platform,
                retries: ctx.settings.remote.retries,
            }
        }
    };
    let mut out = OutFile::create(&path, &cancel)?;
    {
        let writer = match out.seekable() {
            Some(file) => Writer::new(Output::Seekable(file), &tmp, &cancel),
            None => Writer::new(Output::Stream(&mut out), &tmp, &cancel),
        };
        make_image::make_image(&base, &mut layers, &created, &repo_tags, writer)?;
    }
    out.commit()
}
