//! `digest <image|manifest-file>`: google/containerregistry's digester. The manifest digest of
//! a registry image (asked of the registry), of an image in an OCI layout (its manifest read
//! and verified), or of a manifest file (`-`: stdin), hashed here: what `push-image` will
//! give, since manifests are pushed byte for byte.

use std::io::Read;
use std::path::Path;

use regtool::error::{Error, Result};
use regtool::image::endpoint::{
    ARCHIVE_PREFIX, ArchiveRef, Endpoint, LayoutRef, OCI_PREFIX, PathKind,
};
use regtool::oci::{Digest, Manifest, media};
use serde_json::json;

use super::Ctx;
use super::image_arg::{self, Opened};

/// Print the manifest digest of an image or a manifest file
///
/// IMAGE is oci:PATH[:TAG] (an OCI layout; without a tag, its only image), an existing file
/// (a manifest, hashed as it is; - reads one from stdin) or directory (a layout), or else a
/// registry reference, [host[:port]/]repo[:tag|@digest] (in the registry it names, or in the
/// store of REGTOOL_HOST). A file that is not a manifest is refused (65). The digest is
/// the one the registry reports after push-image: manifests keep their bytes.
///
/// A docker archive (docker-archive:PATH, or a file ending in .tar) gives the digest
/// push-image will produce for it: its plain layers are compressed as REGTOOL_COMPRESSION
/// says into a hashing sink (as long as compressing them takes; nothing is stored). Their
/// digests are kept (REGTOOL_DIGEST_CACHE), so that digest and push-image of the same
/// archive file compress it once.
#[derive(clap::Args)]
pub struct Args {
    /// oci:PATH[:TAG], docker-archive:PATH, a manifest file (- for stdin), a layout directory,
    /// or a reference
    pub image: String,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let text = args.image.as_str();
    let prefixed = text.starts_with(OCI_PREFIX) || text.starts_with(ARCHIVE_PREFIX);
    let endpoint = if prefixed {
        Endpoint::parse(text)?
    } else if text == "-" {
        return print(ctx, manifest_digest(&mut std::io::stdin().lock(), "stdin")?);
    } else {
        match PathKind::of(Path::new(text)) {
            PathKind::Directory => Endpoint::Layout(LayoutRef {
                path: text.into(),
                tag: None,
            }),
            PathKind::File if text.ends_with(".tar") => Endpoint::Archive(ArchiveRef {
                path: text.into(),
                reference: None,
            }),
            PathKind::File => {
                let mut file = std::fs::File::open(text)
                    .map_err(|e| Error::io(format!("opening {text}"), &e))?;
                return print(ctx, manifest_digest(&mut file, text)?);
            }
            PathKind::Missing => Endpoint::parse(text)?,
        }
    };
    if let Endpoint::Archive(a) = &endpoint {
        // What push-image will give: the layers compressed into a hashing sink.
        let digest = super::archive_io::digest(ctx, a)?;
        return print(ctx, digest);
    }
    let image = image_arg::open(ctx, endpoint, text, "digest")?;
    let reference = image.reference()?;
    let side = image.side();
    let digest = match &image {
        // A registry says which manifest a tag names (HEAD, else GET).
        Opened::Registry(_) => side.store.resolve(side.repo, &reference)?,
        // A layout's manifest is read, so that a corrupt one is not vouched for.
        Opened::Layout { .. } => side.store.get_manifest(side.repo, &reference)?.digest,
    };
    drop(image);
    print(ctx, digest)
}

/// The sha256 of a manifest's bytes, once they are known to be a manifest (4 MiB at most).
fn manifest_digest(input: &mut dyn Read, name: &str) -> Result<Digest> {
    let mut bytes = Vec::new();
    input
        .take(media::MAX_MANIFEST + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(format!("reading {name}"), &e))?;
    if bytes.len() as u64 > media::MAX_MANIFEST {
        return Err(Error::data(format!(
            "{name}: larger than a manifest can be (4 MiB)"
        )));
    }
    Manifest::parse(&bytes, None).map_err(|e| e.context(name))?;
    Ok(Digest::sha256(&bytes))
}

fn print(ctx: &mut Ctx, digest: Digest) -> Result<()> {
    let text = digest.to_string();
    ctx.out.result(&text, json!({"digest": digest}))
}
