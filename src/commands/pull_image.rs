//! `pull-image <ref> <image>`: saves an image or a whole index from a registry into an OCI
//! layout (`regtool::image::copy` over a `Layout::at`): blobs first, `REGTOOL_JOBS` at a
//! time, verified while they stream and resumed after a cut; the index.json entry last. A
//! failed pull leaves no entry, and no layout directory where there was none.

use std::path::{Path, PathBuf};

use regtool::error::{Error, Result};
use regtool::image::copy::{self, Side};
use regtool::image::endpoint::{Endpoint, LayoutRef};
use regtool::layout::Layout;
use regtool::oci::Tag;
use regtool::store::Store;
use serde_json::json;

use super::Ctx;

/// Save a registry image to an OCI layout
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
#[derive(clap::Args)]
pub struct Args {
    /// Source image: [host[:port]/]repo[:tag|@digest]
    pub reference: String,
    /// Destination: oci:PATH[:TAG], or a path (a directory: a layout)
    pub image: String,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let target = match Endpoint::parse_local(&args.image)? {
        Endpoint::Layout(layout) => layout,
        Endpoint::Archive(_) => {
            return Err(Error::usage(format!(
                "{}: pulling into a docker archive is not supported yet",
                args.image
            ))
            .with_hint("pull into an OCI layout: oci:PATH[:TAG]"));
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
    let repo = Layout::repo();
    let fresh = Fresh::prepare(&target, &layout, &ctx.cancel)?;
    let watch = crate::progress::BlobBars::new(&ctx.bars);
    let opts = copy::Options {
        platform: ctx.settings.platform.as_ref(),
        jobs: ctx.settings.jobs,
        watch: &watch,
    };
    let dst = Side {
        store: &layout,
        repo: &repo,
    };
    let pulled = copy::copy_with(
        src.side(),
        &src.reference.reference(),
        dst,
        tag.as_ref(),
        &opts,
    )
    .and_then(|top| {
        if tag.is_none() {
            layout.add_untagged(&repo, &top)?;
        }
        Ok(top)
    });
    let top = match pulled {
        Ok(top) => top,
        Err(e) => {
            fresh.undo();
            return Err(e);
        }
    };
    drop(fresh);
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

/// What a pull must undo when it fails: the layout it is creating (removed on cancel too, by
/// the signal thread, since the process exits from there).
struct Fresh {
    /// The directory, and whether it is ours (else it was empty, and only its contents are).
    created: Option<(PathBuf, bool)>,
    _guard: Option<regtool::cancel::Guard>,
}

impl Fresh {
    /// Checks the target before any download: an existing layout must have a readable index
    /// (a malformed one is bad data); an existing directory without a layout must be empty.
    fn prepare(target: &LayoutRef, layout: &Layout, cancel: &regtool::Cancel) -> Result<Fresh> {
        let path = &target.path;
        let repo = Layout::repo();
        if layout.exists(&repo)? {
            layout.list_tags(&repo)?;
            return Ok(Fresh {
                created: None,
                _guard: None,
            });
        }
        let whole = match std::fs::read_dir(path) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(Error::usage(format!(
                        "{}: not an OCI layout (no oci-layout file), and not empty",
                        path.display()
                    ))
                    .with_hint("pull into a new or empty directory"));
                }
                false
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), &e)),
        };
        let undo = path.clone();
        let guard = cancel.on_cancel(move || remove(&undo, whole));
        Ok(Fresh {
            created: Some((path.clone(), whole)),
            _guard: Some(guard),
        })
    }

    fn undo(self) {
        if let Some((path, whole)) = &self.created {
            remove(path, *whole);
        }
    }
}

/// Removes a layout the pull created: the directory itself, or (`whole` false) what it put in
/// a directory that was empty.
fn remove(path: &Path, whole: bool) {
    if whole {
        let _ = std::fs::remove_dir_all(path);
        return;
    }
    for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
        let p = entry.path();
        let _ = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
    }
}
