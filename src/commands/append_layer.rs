//! `append-layer <src-ref> <dst-ref> [tarball...]` (and appendlayer's `append-layer <repo>
//! <old-tag> <new-tag>`): adds each tarball (stdin when none or `-`) as a new layer to an
//! image and pushes the result, moving only the new bytes. Prints `repo@sha256:...`.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use regtool::error::{Error, Result};
use regtool::image::append::{self, Options};
use regtool::oci::{Tag, name};
use serde_json::json;

use super::Ctx;

/// Append tarballs as new layers to an image in a registry, without pulling it
#[derive(clap::Args)]
pub struct Args {
    /// Source image: [host[:port]/]repo[:tag|@digest] (or, appendlayer's form: a repository)
    pub src: String,
    /// Destination: [host[:port]/]repo[:tag] (or, appendlayer's form: the old tag)
    pub dst: String,
    /// Tarballs to append, in order (- or none: stdin) (or, appendlayer's form: the new tag)
    #[arg(allow_hyphen_values = true)]
    pub tarballs: Vec<String>,
}

/// appendlayer's form: `<repo> <old-tag> <new-tag>`, two bare tags, no file among them.
fn appendlayer_form(args: &Args) -> Option<(String, String)> {
    let [new_tag] = args.tarballs.as_slice() else {
        return None;
    };
    let bare = |t: &str| name::check_tag(t).is_ok() && !Path::new(t).exists();
    (name::check_repo(&args.src).is_ok() && bare(&args.dst) && bare(new_tag)).then(|| {
        (
            format!("{}:{}", args.src, args.dst),
            format!("{}:{new_tag}", args.src),
        )
    })
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let (src_text, dst_text, files) = match appendlayer_form(&args) {
        Some((s, d)) => (s, d, Vec::new()),
        None => (args.src.clone(), args.dst.clone(), args.tarballs.clone()),
    };
    let (src, dst) = super::locate_pair(ctx, &src_text, &dst_text)?;
    let tag = dst.reference.tag.clone().unwrap_or_else(Tag::latest);
    if files.iter().filter(|f| *f == "-").count() > 1 {
        return Err(Error::usage("stdin (-) can be appended only once"));
    }
    // Open every file before the first request.
    let mut opened: Vec<Box<dyn Read>> = Vec::new();
    for f in &files {
        if f == "-" {
            opened.push(Box::new(std::io::stdin().lock()));
        } else {
            opened.push(Box::new(
                File::open(f).map_err(|e| Error::io(format!("opening {f}"), &e))?,
            ));
        }
    }
    if opened.is_empty() {
        opened.push(Box::new(std::io::stdin().lock()));
    }
    let bar = ctx.bars.bar("layer", None);
    let mut wrapped: Vec<Box<dyn Read>> = opened
        .into_iter()
        .map(|r| Box::new(bar.wrap_read(r)) as Box<dyn Read>)
        .collect();
    let inputs: Vec<&mut dyn Read> = wrapped
        .iter_mut()
        .map(|r| r.as_mut() as &mut dyn Read)
        .collect();
    let opts = Options {
        compression: ctx.settings.compression,
        created: ctx.settings.created.clone(),
        platform: ctx.settings.platform.clone(),
        jobs: ctx.settings.jobs,
    };
    let digest = append::append(
        src.side(),
        &src.reference.reference(),
        dst.side(),
        &tag,
        inputs,
        &opts,
    );
    bar.finish_and_clear();
    let digest = digest?;
    let pinned = dst.pinned(&digest);
    ctx.out
        .result(&pinned, json!({"digest": digest, "reference": pinned}))
}
