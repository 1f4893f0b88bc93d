//! What the image commands share about docker archives: opening one (`-` is stdin, spooled),
//! writing one atomically through `regtool::outfile` (a seekable temporary file, or a device
//! or pipe written as it goes), and the `RepoTags` an image name gives.

use std::path::Path;

use regtool::Cancel;
use regtool::archive::write::{self, Output, Writer};
use regtool::archive::{Archive, push};
use regtool::digest_cache::DigestCache;
use regtool::error::Result;
use regtool::image::copy::Side;
use regtool::image::endpoint::ArchiveRef;
use regtool::oci::{Descriptor, Digest, ImageRef, Platform, Reference, Tag};
use regtool::outfile::OutFile;

use super::Ctx;

/// This machine's platform, as images name it (Go's GOOS/GOARCH): what an archive gets from
/// a multi-platform index without REGTOOL_PLATFORM.
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

/// Saves the image `reference` names in `src` as the archive at `path` (one platform:
/// REGTOOL_PLATFORM or this machine's), named `name` in its RepoTags. Returns the image ID
/// (the config's digest, as `docker load` reports it).
pub fn save(
    ctx: &Ctx,
    src: Side<'_>,
    reference: &Reference,
    name: Option<&ImageRef>,
    path: &Path,
) -> Result<Digest> {
    let platform = ctx.settings.platform.clone().unwrap_or_else(own_platform);
    let tags = repo_tags(name);
    let retries = ctx.settings.remote.retries;
    let mut id = None;
    // One progress bar per layer, as it downloads.
    let watch = crate::progress::BlobBars::new(&ctx.bars);
    create(path, &ctx.cancel, |writer| {
        id = Some(write::save(
            src,
            reference,
            &platform,
            &tags,
            writer,
            &write::Fetch {
                retries,
                jobs: ctx.settings.jobs,
                watch: &watch,
            },
        )?);
        Ok(())
    })?;
    id.ok_or_else(|| regtool::Error::other("the archive was not written"))
}

/// Copies the image `src` names (its only one without a name) into a new archive at `dst`
/// named `name` (else with the source image's RepoTags). Returns the image ID.
pub fn copy(ctx: &Ctx, src: &ArchiveRef, name: Option<&ImageRef>, dst: &Path) -> Result<Digest> {
    let archive = open(&src.path, &ctx.cancel)?;
    let image = archive.image_named(src.reference.as_ref())?;
    let tags = match name {
        Some(_) => repo_tags(name),
        None => image.repo_tags.clone(),
    };
    create(dst, &ctx.cancel, |writer| {
        write::copy(&archive, &image, &tags, writer)
    })?;
    Ok(Digest::sha256(&image.config))
}

/// The tag an archive's image is pushed under when the destination names none: the one in
/// its first RepoTags entry, if any.
pub fn archive_tag(image: &regtool::archive::Image) -> Option<Tag> {
    let first = image.repo_tags.first()?;
    ImageRef::parse(first).ok()?.tag
}

/// Uploads the image `src` names (its only one without a name) to `dst` under `tag` (None:
/// the archive's own tag, else by digest), plain layers compressed as REGTOOL_COMPRESSION
/// says. Returns the manifest's descriptor and the tag it was stored under, if any.
pub fn push(
    ctx: &Ctx,
    src: &ArchiveRef,
    dst: Side<'_>,
    tag: Option<&Tag>,
) -> Result<(Descriptor, Option<Tag>)> {
    let archive = open(&src.path, &ctx.cancel)?;
    let image = archive.image_named(src.reference.as_ref())?;
    let tag = tag.cloned().or_else(|| archive_tag(&image));
    let reference = tag.clone().map(Reference::Tag);
    // One progress bar per layer, as it is read (compressed on its way).
    let watch = crate::progress::BlobBars::new(&ctx.bars);
    let top = push::push(
        &archive,
        &image,
        dst,
        reference.as_ref(),
        ctx.settings.compression,
        ctx.settings.jobs,
        digest_cache(ctx).as_ref(),
        &watch,
    )?;
    Ok((top, tag))
}

/// The manifest digest [`push`] will give the image `src` names.
pub fn digest(ctx: &Ctx, src: &ArchiveRef) -> Result<Digest> {
    let archive = open(&src.path, &ctx.cancel)?;
    let image = archive.image_named(src.reference.as_ref())?;
    push::digest(
        &archive,
        &image,
        ctx.settings.compression,
        ctx.settings.jobs,
        digest_cache(ctx).as_ref(),
    )
}

/// The digest cache (REGTOOL_DIGEST_CACHE), which keeps the compressed digest and size of an
/// archive's layers: `digest`, then `push-image`, or a second push, compresses them once.
fn digest_cache(ctx: &Ctx) -> Option<DigestCache> {
    ctx.settings.digest_cache.as_deref().map(DigestCache::new)
}

/// Opens the archive at `path` (`-`: stdin), its spool files removed on `cancel`.
pub fn open(path: &Path, cancel: &Cancel) -> Result<Archive> {
    let tmp = std::env::temp_dir();
    if path.as_os_str() == "-" {
        return Archive::from_stream("stdin", Box::new(std::io::stdin().lock()), &tmp, cancel);
    }
    Archive::open(path, &tmp, cancel)
}

/// Writes an archive at `path` with `write`: a regular file complete or not at all.
pub fn create(
    path: &Path,
    cancel: &Cancel,
    write: impl FnOnce(Writer<'_>) -> Result<()>,
) -> Result<()> {
    // `-` reads stdin where an archive is read; as an output it made a file named `-`.
    if path.as_os_str() == "-" {
        return Err(regtool::Error::usage(
            "docker-archive:- reads an archive from stdin; it names no output",
        )
        .with_hint("name a file to write the archive to"));
    }
    let tmp = std::env::temp_dir();
    let mut out = OutFile::create(path, cancel)?;
    {
        let writer = match out.seekable() {
            Some(file) => Writer::new(Output::Seekable(file), &tmp, cancel),
            None => Writer::new(Output::Stream(&mut out), &tmp, cancel),
        };
        write(writer)?;
    }
    out.commit()
}

/// The `RepoTags` of an archive named `name` (none without a name or with a digest only).
pub fn repo_tags(name: Option<&ImageRef>) -> Vec<String> {
    name.and_then(regtool::archive::repo_tag)
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn repo_tags_are_docker_names() {
        let t = |text: &str| super::repo_tags(Some(&regtool::oci::ImageRef::parse(text).unwrap()));
        assert_eq!(t("fred/app"), ["fred/app:latest"]);
        assert_eq!(t("debian:12"), ["debian:12"]);
        assert_eq!(t("docker.io/library/debian:12"), ["debian:12"]);
        assert_eq!(t("127.0.0.1:5000/t/x:v1"), ["127.0.0.1:5000/t/x:v1"]);
        let pinned = format!("fred/app@sha256:{}", "a".repeat(64));
        assert!(t(&pinned).is_empty());
        assert!(super::repo_tags(None).is_empty());
    }
}
