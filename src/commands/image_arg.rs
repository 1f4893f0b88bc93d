//! What the image commands share: an `<image>` argument (`regtool::image::endpoint`) opened as
//! a store and a repository in it, a registry's or a layout's; and saving into a layout so that
//! a failure leaves nothing (`Fresh`).

use std::path::{Path, PathBuf};

use regtool::error::{Error, Kind, Result};
use regtool::image::copy::{self, Side};
use regtool::image::endpoint::{Endpoint, LayoutRef};
use regtool::layout::Layout;
use regtool::oci::{Descriptor, Digest, Reference, Repository, Tag};
use regtool::store::Store;

use super::{Ctx, Located};

/// An image argument, opened: a registry image (or one of REGTOOL_HOST's store), or a layout.
pub enum Opened<'a> {
    Registry(Located<'a>),
    Layout {
        target: LayoutRef,
        layout: Layout,
        repo: Repository,
    },
}

/// Opens a registry reference or a layout; an archive is refused as `what` cannot take it.
pub fn open<'a>(ctx: &'a Ctx, endpoint: Endpoint, text: &str, what: &str) -> Result<Opened<'a>> {
    match endpoint {
        Endpoint::Registry(_) => Ok(Opened::Registry(super::locate(ctx, text)?)),
        Endpoint::Layout(target) => Ok(Opened::Layout {
            layout: target.open(&ctx.cancel),
            target,
            repo: Layout::repo(),
        }),
        Endpoint::Archive(_) => Err(Error::usage(format!(
            "{what} does not take a docker archive ({})",
            regtool::text::sanitize(text, 200)
        ))),
    }
}

impl Opened<'_> {
    pub fn side(&self) -> Side<'_> {
        match self {
            Opened::Registry(located) => located.side(),
            Opened::Layout { layout, repo, .. } => Side {
                store: layout,
                repo,
            },
        }
    }

    /// The manifest the argument names: a reference's tag or digest (`latest` without
    /// either); a layout's tag, else its only image.
    pub fn reference(&self) -> Result<Reference> {
        match self {
            Opened::Registry(located) => Ok(located.reference.reference()),
            Opened::Layout { target, layout, .. } => target.reference(layout),
        }
    }

    /// The tag the argument names, if any.
    pub fn tag(&self) -> Option<&Tag> {
        match self {
            Opened::Registry(located) => located.reference.tag.as_ref(),
            Opened::Layout { target, .. } => target.tag.as_ref(),
        }
    }

    /// Whether the argument names a digest (a destination cannot).
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Opened::Registry(located) => located.reference.digest.as_ref(),
            Opened::Layout { .. } => None,
        }
    }

    /// How the result is named: `repo@digest` (with its host) or `oci:PATH@digest`.
    pub fn pinned(&self, digest: &Digest) -> String {
        match self {
            Opened::Registry(located) => located.pinned(digest),
            Opened::Layout { target, .. } => {
                format!(
                    "{}{}@{digest}",
                    regtool::image::endpoint::OCI_PREFIX,
                    target.path.display()
                )
            }
        }
    }
}

/// Copies the image `reference` names in `src` into the layout of `dst` under `tag` (none: an
/// untagged entry). The index.json entry comes last; on failure, the layout directory this
/// created is removed (and an empty directory emptied again).
pub fn save_to_layout(
    ctx: &Ctx,
    src: Side<'_>,
    reference: &Reference,
    dst: &LayoutRef,
    layout: &Layout,
    tag: Option<&Tag>,
) -> Result<Descriptor> {
    let repo = Layout::repo();
    let fresh = Fresh::prepare(dst, layout, &ctx.cancel)?;
    let watch = crate::progress::BlobBars::new(&ctx.bars);
    let opts = copy::Options {
        platform: ctx.settings.platform.as_ref(),
        jobs: ctx.settings.jobs,
        watch: &watch,
    };
    let side = Side {
        store: layout,
        repo: &repo,
    };
    let saved = copy::copy_with(src, reference, side, tag, &opts).and_then(|top| {
        if tag.is_none() {
            layout.add_untagged(&repo, &top)?;
        }
        Ok(top)
    });
    if saved.is_err() {
        fresh.undo();
    }
    saved
}

/// Runs `write` (which fills the layout of `dst`) so that a failure or an interrupt leaves
/// nothing: the layout directory it created is removed, an empty one emptied again. The
/// target is checked first (an existing layout must have a readable index; an existing
/// directory without a layout must be empty).
pub fn into_layout<T>(
    ctx: &Ctx,
    dst: &LayoutRef,
    layout: &Layout,
    write: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let fresh = Fresh::prepare(dst, layout, &ctx.cancel)?;
    let written = write();
    if written.is_err() {
        fresh.undo();
    }
    written
}

/// What a save must undo when it fails: the layout it is creating (removed on cancel too, by
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
                    .with_hint("name a new or empty directory"));
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

/// Removes a layout a save created: the directory itself, or (`whole` false) what it put in
/// a directory that was empty.
fn remove(path: &Path, whole: bool) {
    // On cancel, a writer that checked the token just before it was cancelled may still
    // create a file: the removal is tried again until nothing comes back.
    for _ in 0..10 {
        if whole {
            let _ = std::fs::remove_dir_all(path);
        } else {
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                let p = entry.path();
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(30));
        let gone = match std::fs::read_dir(path) {
            Ok(mut entries) => !whole && entries.next().is_none(),
            Err(_) => true,
        };
        if gone {
            return;
        }
    }
}

/// A registry image not found whose name is also a local directory or file: only pull-image,
/// push-image and digest take bare paths, so `flatten ./dir` looked `dir` up in the registry.
/// The hint names the local forms.
pub fn local_hint(err: Error, text: &str) -> Error {
    if err.kind != Kind::NotFound || err.hint.is_some() {
        return err;
    }
    let shown = regtool::text::sanitize(text, 200);
    match std::fs::metadata(text) {
        Ok(m) if m.is_dir() => err.with_hint(format!(
            "{shown} is a local directory: name an OCI layout oci:{shown}"
        )),
        Ok(m) if m.is_file() => err.with_hint(format!(
            "{shown} is a local file: name a docker archive docker-archive:{shown}"
        )),
        _ => err,
    }
}
