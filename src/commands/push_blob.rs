//! `push-blob <repo> <file>... [@alias]`: uploads files (or stdin as `-`), concurrently, and
//! prints one digest per file in argument order. A regular file (of 8 MiB or more, on a
//! registry) is hashed while it is uploaded (the upload trailing the hash; once the hash is
//! done, a blob the registry has is not uploaded further) from the same open file, read at positions (again when a request
//! must be resent); its digest is kept in the digest cache, so a file pushed again is not
//! read again. Anything else (stdin, a FIFO, `/dev/stdin`, `<(cmd)`) is a stream, uploaded
//! in one pass while hashing.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use regtool::alias::{self, Member};
use regtool::digest_cache::{DigestCache, Stamp};
use regtool::error::{Error, Kind, Result};
use regtool::oci::{Algorithm, Digest, Repository, Tag};
use regtool::store::ReadAt;
use serde_json::json;

use super::Ctx;

/// Upload files (or - for stdin) as blobs; name them with @alias
///
/// Prints one digest per file, in argument order. The alias needs its @ here: a last argument
/// without @ is a file like the others, so a mistyped file name fails as not found (status 2)
/// and nothing is pushed. One alias only: another @word before it is a usage error (64).
/// With the alias, each blob from a named regular file gets its file name as title
/// annotation; -, FIFOs, devices and descriptor paths (/dev/fd/N of <(cmd)) get none.
///
/// A regular file of 8 MiB or more is hashed while it is uploaded, from the same open file:
/// once the hash is done, a blob the registry has is not uploaded further (the session is
/// cancelled); a smaller file is hashed first. A request that fails is sent again from the
/// file, never from memory. The digest of a file
/// is kept (REGTOOL_DIGEST_CACHE): pushed again unchanged, it costs one request. Anything else (-, a FIFO, /dev/stdin, <(cmd))
/// is a stream, uploaded in one pass while it is hashed; with REGTOOL_CHUNK_SIZE at most 16 MiB
/// of it is held, to send a chunk again.
#[derive(clap::Args)]
pub struct Args {
    /// Repository, like fred/logs
    pub repo: String,
    /// Files to upload (- for stdin), optionally followed by @alias
    #[arg(required = true, allow_hyphen_values = true)]
    pub files: Vec<String>,
}

/// Splits off the alias: a last argument starting with `@`. Without its `@` the last argument
/// is a file like the others, so a mistyped file name is a not-found error, never an alias.
fn split_alias(items: &[String]) -> Result<(&[String], Option<Tag>)> {
    let (files, alias) = match items.split_last() {
        Some((last, rest)) if last.starts_with('@') => (rest, Some(Tag::new(&last[1..])?)),
        _ => (items, None),
    };
    if let Some(other) = files.iter().find(|f| f.starts_with('@')) {
        return Err(Error::usage(format!(
            "push-blob takes one alias only, as its last argument: {other} is another"
        )));
    }
    Ok((files, alias))
}

/// The title annotation of a pushed file: its name, when it names a regular file of its own.
/// `-`, a FIFO or device, and the descriptor paths of `<(cmd)` (`/dev/fd/63`,
/// `/proc/self/fd/N`, `/dev/stdin`) have no name worth keeping.
fn title(path: &str, input: &Input) -> Option<String> {
    let descriptor = path.starts_with("/dev/") || path.starts_with("/proc/");
    if path == "-" || descriptor || !matches!(input, Input::File(..)) {
        return None;
    }
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let repo = &super::repo(&args.repo)?;
    let (files, alias_name) = split_alias(&args.files)?;
    if files.is_empty() {
        return Err(Error::usage("push-blob needs at least one file"));
    }
    if files.iter().filter(|f| *f == "-").count() > 1 {
        return Err(Error::usage("stdin (-) can be pushed only once"));
    }
    // Open every file before the first request: a typo fails fast and uploads nothing.
    let mut inputs = Vec::new();
    for f in files {
        inputs.push(open_input(f)?);
    }
    let titles: Vec<Option<String>> = files
        .iter()
        .zip(&inputs)
        .map(|(f, i)| title(f, i))
        .collect();
    let results = push_all(ctx, repo, files, inputs);
    // Digests in argument order, up to the first failure.
    let mut members = Vec::new();
    for ((path, result), title) in files.iter().zip(results).zip(titles) {
        let (digest, size) = result?;
        ctx.out.result(
            &digest.to_string(),
            json!({"file": path, "digest": digest, "size": size}),
        )?;
        members.push(Member {
            digest,
            size,
            title,
        });
    }
    if let Some(a) = alias_name {
        alias::write(ctx.store(), repo, &a, &members)?;
    }
    Ok(())
}

/// What one argument names: a regular file (hashed, then uploaded from the same open file),
/// with its stamp for the digest cache, or a stream read once (stdin, a FIFO, a character
/// device, `/dev/fd/N` of a pipe).
enum Input {
    File(File, Stamp),
    Stream(Box<dyn Read + Send>),
}

fn open_input(f: &str) -> Result<Input> {
    if f == "-" {
        return Ok(Input::Stream(Box::new(std::io::stdin())));
    }
    let file = File::open(f).map_err(|e| Error::io(format!("opening {f}"), &e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("reading {f}"), &e))?;
    if meta.is_dir() {
        return Err(Error::usage(format!("{f} is a directory")));
    }
    Ok(match meta.is_file() {
        true => Input::File(file, Stamp::new(Path::new(f), &meta)),
        false => Input::Stream(Box::new(file)),
    })
}

/// Pushes every input with up to `REGTOOL_JOBS` at once; results in input order.
fn push_all(
    ctx: &Ctx,
    repo: &Repository,
    names: &[String],
    inputs: Vec<Input>,
) -> Vec<Result<(Digest, u64)>> {
    regtool::parallel::map(ctx.settings.jobs, inputs, |i, input| {
        let name = &names[i];
        let result = match input {
            Input::File(file, stamp) => push_file(ctx, repo, name, &file, &stamp),
            Input::Stream(reader) => push_stream(ctx, repo, name, reader),
        };
        let shown = if name == "-" { "stdin" } else { name };
        result.map_err(|e| e.context(format!("pushing {shown}")))
    })
}

/// Pushes a regular file: its digest from the digest cache when its stamp is there (then
/// one HEAD, and an upload only if the repository lacks the blob), else hashed while it is
/// uploaded (see `Store::push_file`) and then recorded. A cached digest the store refuses as
/// not the content's (the registry verifies every upload) is forgotten, and the file pushed
/// again, hashed.
fn push_file(
    ctx: &Ctx,
    repo: &Repository,
    path: &str,
    file: &File,
    stamp: &Stamp,
) -> Result<(Digest, u64)> {
    let size = stamp.size();
    let cache = match &ctx.settings.digest_cache {
        Some(dir) if stamp.worth_caching() => Some(DigestCache::new(dir)),
        _ => None,
    };
    if let Some(digest) = cache.as_ref().and_then(|c| c.get(stamp)) {
        match push_known(ctx, repo, path, file, &digest, size) {
            Err(e) if e.kind == Kind::Data => {
                if let Some(c) = &cache {
                    c.forget(stamp);
                }
            }
            done => return done.map(|()| (digest, size)),
        }
    }
    let bar = ctx.bars.bar(path, Some(size));
    let (digest, _) = ctx.store().push_file(
        repo,
        file,
        &Progress { file, bar: &bar },
        size,
        Algorithm::Sha256,
    )?;
    bar.finish_and_clear();
    // What went up is what was hashed (the registry checked); but a file written meanwhile
    // was pushed as it was at some moment of the push, which is no state it was ever meant
    // to have. Removing or renaming it is no change: the open file is what was pushed.
    let now = file
        .metadata()
        .map_err(|e| Error::io(format!("reading {path}"), &e))?;
    let after = Stamp::new(Path::new(path), &now);
    if !after.same_content(stamp) {
        return Err(Error::data("the file changed while it was pushed"));
    }
    // Recorded only when the file's stat is still the one it was opened with.
    if let Some(c) = &cache
        && after == *stamp
    {
        c.put(stamp, &digest);
    }
    Ok((digest, size))
}

/// Pushes a file of known digest, unless the repository has it.
fn push_known(
    ctx: &Ctx,
    repo: &Repository,
    path: &str,
    file: &File,
    digest: &Digest,
    size: u64,
) -> Result<()> {
    if ctx.store().has_blob(repo, digest, size)? {
        return Ok(());
    }
    let bar = ctx.bars.bar(path, Some(size));
    ctx.store()
        .put_blob_file(repo, digest, size, &Progress { file, bar: &bar })?;
    bar.finish_and_clear();
    Ok(())
}

/// A file read at positions that moves a progress bar to the furthest byte read.
struct Progress<'a> {
    file: &'a File,
    bar: &'a indicatif::ProgressBar,
}

impl ReadAt for Progress<'_> {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, pos)?;
        self.bar.set_position(pos + n as u64);
        Ok(n)
    }
}

/// Uploads a stream in one pass. It is read on a thread of its own, so that an interrupt
/// ends the upload's body even while the input has nothing to give.
fn push_stream(
    ctx: &Ctx,
    repo: &Repository,
    name: &str,
    reader: Box<dyn Read + Send>,
) -> Result<(Digest, u64)> {
    let bar = ctx.bars.bar(if name == "-" { "stdin" } else { name }, None);
    let result = ctx.store().put_blob_stream(
        repo,
        &mut bar.wrap_read(regtool::pipe::Prefetch::new(reader, ctx.cancel.clone())),
        Algorithm::Sha256,
    );
    bar.finish_and_clear();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_an_argument_with_at_is_the_alias() {
        let items = v(&["Cargo.toml", "@may15"]);
        assert_eq!(
            split_alias(&items).unwrap(),
            (&items[..1], Some(Tag::new("may15").unwrap()))
        );
        // Without `@`, even a name that is no file is a file (a typo fails as not found).
        let items = v(&["Cargo.toml", "may15"]);
        assert_eq!(split_alias(&items).unwrap(), (&items[..], None));
        // An existing file is a file, never an alias.
        let items = v(&["Cargo.toml", "Cargo.lock"]);
        assert_eq!(split_alias(&items).unwrap(), (&items[..], None));
        let items = v(&["may15"]);
        assert_eq!(split_alias(&items).unwrap(), (&items[..], None));
        assert!(split_alias(&v(&["a", "@bad/alias"])).is_err());
    }
}
