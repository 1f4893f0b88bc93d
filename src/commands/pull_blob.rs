//! `pull-blob <repo> <digest|@alias>... [-o FILE]`: writes blobs, concatenated and verified,
//! to stdout or to FILE (through `regtool::outfile`: a regular FILE is replaced atomically
//! after every byte was verified, devices and pipes are written as the bytes arrive). With no
//! arguments the manifest on stdin names the blobs.

use regtool::retry::RetryPolicy;
use std::io::Write;
use std::path::PathBuf;

use regtool::alias::{self, PerPlatform};
use regtool::error::{Error, Result};

use regtool::oci::{Digest, Repository, Target};
use regtool::outfile::OutFile;
use regtool::pipe::{self, Hash};
use regtool::store::BlobStream;

use super::Ctx;

/// Download blobs (verified) to stdout or a file
///
/// Every byte is checked against its digest. On stdout the bytes are written as they arrive
/// and a mismatch exits 65 afterwards, so scripts must check the status.
///
/// With -o FILE: a regular FILE, or one that does not exist yet, is written to a temporary
/// file beside it, synced to disk and renamed over FILE only after verification, so FILE is
/// never partial or wrong; an existing FILE keeps its permission bits (and, when regtool runs
/// as root, its owner). A symlink is followed and its target replaced that way; the link
/// stays. Anything else (a device such as /dev/null, a FIFO, /dev/stdout, or /dev/fd/N as a
/// shell's >(command) gives) is written directly, as stdout is: a mismatch exits 65 after
/// the bytes were written. A directory is refused.
///
/// FILE's directory must be writable, for the rename. A symlink in a sticky world-writable
/// directory (/tmp) is followed only when it belongs to the user running regtool or to the
/// directory's owner, the rule of the kernel's fs.protected_symlinks; another user's link is
/// refused with status 1, so nobody can plant one to have a file replaced or created. Any
/// problem with the output path (a missing directory, a refused permission) exits 1, never 2
/// (which means a missing blob). A temporary file left by a killed pull (SIGKILL) is removed
/// by the next write to the same FILE.
///
/// Every blob is read up to its size and no further: the size an alias's manifest declares,
/// else the registry's Content-Length. A registry that announces another length than the
/// manifest (or, resuming a broken download, than what remains), or keeps sending past the
/// size, fails with status 65 (nothing past the size is written to stdout; with -o, no file
/// is left). Pulled by digest alone, a blob whose body stops short of the registry's
/// Content-Length is waited for REGTOOL_TIMEOUT seconds, resumed, and given up on with 69.
#[derive(clap::Args)]
pub struct Args {
    /// Repository, like fred/logs
    pub repo: String,
    /// Blob digests or @aliases; none: read a manifest from stdin
    pub targets: Vec<String>,
    /// Write to FILE instead of stdout (a regular file atomically, after verification); - is
    /// stdout
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// The blobs to pull, in order, with their sizes when a manifest told them.
fn plan(ctx: &Ctx, repo: &Repository, args: &Args) -> Result<Vec<(Digest, Option<u64>)>> {
    let of_manifest = |label: &str,
                       value: PerPlatform<alias::Resolved>|
     -> Result<Vec<(Digest, Option<u64>)>> {
        match value {
            PerPlatform::One(r) => Ok(alias::blobs(ctx.store(), repo, &r.manifest)?
                .into_iter()
                .map(|(d, s)| (d, Some(s)))
                .collect()),
            PerPlatform::Many(_) => Err(Error::usage(format!("{label} is a multi-platform index"))
                .with_hint("set REGTOOL_PLATFORM, like linux/amd64")),
        }
    };
    if args.targets.is_empty() {
        return of_manifest("the manifest on stdin", super::stdin_manifest()?);
    }
    let mut blobs = Vec::new();
    for target in super::targets(&args.targets)? {
        match target {
            Target::Digest(d) => blobs.push((d, None)),
            Target::Alias(a) => blobs.extend(of_manifest(
                &format!("@{a}"),
                alias::read(ctx.store(), repo, &a.into(), ctx.settings.platform.as_ref())?,
            )?),
        }
    }
    Ok(blobs)
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let repo = &super::repo(&args.repo)?;
    let blobs = plan(ctx, repo, &args)?;
    let Some(path) = super::output_file(args.output.as_ref()) else {
        return pull_all(ctx, repo, &blobs, None);
    };
    let mut file = OutFile::create(path, &ctx.cancel)?;
    // Dropping `file` on an error discards a temporary file; only verified content is
    // renamed into place.
    pull_all(ctx, repo, &blobs, Some(&mut file))?;
    file.commit()
}

/// Pulls every blob, in order, into `file` or (None) stdout; with REGTOOL_BLOB_INFO a
/// `<digest> <size>` line on stdout before each.
fn pull_all(
    ctx: &mut Ctx,
    repo: &Repository,
    blobs: &[(Digest, Option<u64>)],
    mut file: Option<&mut OutFile>,
) -> Result<()> {
    let Ctx {
        store,
        out,
        bars,
        settings,
        cancel,
        ..
    } = ctx;
    for (digest, known) in blobs {
        let (mut blob, size) = open(
            store.as_ref(),
            repo,
            digest,
            *known,
            settings.remote.retries,
            cancel,
        )?;
        if settings.blob_info {
            let size = size.unwrap_or(0);
            out.result(
                &format!("{digest} {size}"),
                serde_json::json!({"digest": digest, "size": size}),
            )?;
        }
        let sink = match file.as_deref_mut() {
            Some(f) => Sink::File(f),
            None => Sink::Stdout(out.raw()),
        };
        copy(bars, &mut blob, digest, size, sink)?;
    }
    out.flush()
}

enum Sink<'a> {
    Stdout(&'a mut dyn Write),
    File(&'a mut OutFile),
}

/// Opens a blob and learns its size: from the manifest, the response, or a HEAD.
/// The stream resumes by itself after a broken connection (`regtool::resume`).
fn open<'a>(
    store: &'a dyn regtool::Store,
    repo: &Repository,
    digest: &Digest,
    known: Option<u64>,
    retries: u32,
    cancel: &regtool::Cancel,
) -> Result<(BlobStream<'a>, Option<u64>)> {
    // One blob is one operation: its requests and its resumptions draw from one budget, and
    // an interrupt ends its waits.
    let budget = RetryPolicy::new(retries)
        .budget()
        .with_cancel(cancel.clone());
    let mut blob = budget.enter(|| store.open_blob(repo, digest))?;
    // The manifest's size is the promise; an answer announcing another length is refused
    // before a byte of it is written.
    if let (Some(declared), Some(offered)) = (known, blob.size)
        && declared != offered
    {
        return Err(Error::data(format!(
            "pulling {digest}: the registry offers {offered} bytes, the manifest declares {declared}"
        )));
    }
    let size = match known.or(blob.size) {
        Some(s) => Some(s),
        None => budget.enter(|| store.blob_size(repo, digest))?,
    };
    let reader = std::mem::replace(&mut blob.reader, Box::new(std::io::empty()));
    blob.reader = Box::new(
        regtool::resume::Resuming::new(store, repo, digest, reader, budget).with_size(size),
    );
    Ok((blob, size))
}

/// Streams one blob into `sink`, verifying every byte against its digest, reading on one
/// thread and writing on this one (see `regtool::pipe`).
fn copy(
    bars: &crate::progress::Bars,
    blob: &mut BlobStream<'_>,
    digest: &Digest,
    size: Option<u64>,
    sink: Sink<'_>,
) -> Result<()> {
    let bar = bars.bar(&digest.to_string(), size);
    // See regtool::pipe for why the hashing goes where it does.
    let result = match sink {
        Sink::Stdout(w) => pipe::copy_verified(
            &mut blob.reader,
            &mut bar.wrap_write(w),
            digest,
            size,
            Hash::WhileWriting,
        ),
        Sink::File(f) => {
            // Into a device or a pipe, writing is cheap: hash there, as for stdout.
            let hash = if f.in_place() {
                Hash::WhileWriting
            } else {
                Hash::WhileReading
            };
            pipe::copy_verified(&mut blob.reader, &mut bar.wrap_write(f), digest, size, hash)
        }
    };

    bar.finish_and_clear();
    result.map(|_| ()).map_err(|e| {
        if e.kind == regtool::Kind::Closed {
            e
        } else {
            e.context(format!("pulling {digest}"))
        }
    })
}
