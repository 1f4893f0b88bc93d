//! `push-blob <repo> <file>... [@alias]`: uploads files (or stdin as `-`), concurrently, and
//! prints one digest per file in argument order. A file is hashed first, so a blob the
//! registry already has is not uploaded again; stdin is uploaded in one pass while hashing.

use std::fs::File;
use std::path::Path;

use regtool::alias::{self, Member};
use regtool::error::{Error, Result};
use regtool::oci::digest::hash_reader;
use regtool::oci::{Algorithm, Digest, name};
use serde_json::json;

use super::Ctx;

/// Upload files (or - for stdin) as blobs; name them with @alias
///
/// Prints one digest per file, in argument order. The alias needs its @ here: a last argument
/// without @ is a file like the others, so a mistyped file name fails as not found (status 2)
/// and nothing is pushed.
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
fn split_alias(items: &[String]) -> Result<(&[String], Option<String>)> {
    match items.split_last() {
        Some((last, rest)) if last.starts_with('@') => {
            let a = &last[1..];
            name::check_tag(a)?;
            Ok((rest, Some(a.to_string())))
        }
        _ => Ok((items, None)),
    }
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let repo = super::repo(&args.repo)?;
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
        if f == "-" {
            inputs.push(None);
        } else {
            let file = File::open(f).map_err(|e| Error::io(format!("opening {f}"), &e))?;
            if file.metadata().is_ok_and(|m| m.is_dir()) {
                return Err(Error::usage(format!("{f} is a directory")));
            }
            inputs.push(Some(file));
        }
    }
    let results = push_all(ctx, repo, files, inputs);
    // Digests in argument order, up to the first failure.
    let mut members = Vec::new();
    for (path, result) in files.iter().zip(results) {
        let (digest, size) = result?;
        ctx.out.result(
            &digest.to_string(),
            json!({"file": path, "digest": digest, "size": size}),
        )?;
        let title = (path != "-")
            .then(|| {
                Path::new(path)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .flatten();
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

/// Pushes every input with up to `REGTOOL_JOBS` at once; results in input order.
fn push_all(
    ctx: &Ctx,
    repo: &str,
    names: &[String],
    inputs: Vec<Option<File>>,
) -> Vec<Result<(Digest, u64)>> {
    regtool::parallel::map(ctx.settings.jobs, inputs, |i, input| match input {
        Some(file) => push_file(ctx, repo, &names[i], file),
        None => push_stdin(ctx, repo),
    })
}

fn push_file(ctx: &Ctx, repo: &str, path: &str, file: File) -> Result<(Digest, u64)> {
    let size = file
        .metadata()
        .map_err(|e| Error::io(format!("reading {path}"), &e))?
        .len();
    let hashing = ctx.bars.bar(&format!("hash {path}"), Some(size));
    let (digest, hashed) = hash_reader(&mut hashing.wrap_read(&file), Algorithm::Sha256)
        .map_err(|e| e.context(path))?;
    hashing.finish_and_clear();
    if hashed != size {
        return Err(Error::data(format!("{path} changed while it was read")));
    }
    if ctx.store().has_blob(repo, &digest, size)? {
        return Ok((digest, size));
    }
    let bar = ctx.bars.bar(path, Some(size));
    // A broken upload starts over from a new session, with the file read again.
    regtool::resume::again(ctx.settings.remote.retries, || {
        bar.set_position(0);
        let file = File::open(path).map_err(|e| Error::io(format!("opening {path}"), &e))?;
        ctx.store()
            .put_blob(repo, &digest, size, &mut bar.wrap_read(file))
    })
    .map_err(|e| e.context(format!("pushing {path}")))?;
    bar.finish_and_clear();
    Ok((digest, size))
}

fn push_stdin(ctx: &Ctx, repo: &str) -> Result<(Digest, u64)> {
    let bar = ctx.bars.bar("stdin", None);
    let result = ctx.store().put_blob_stream(
        repo,
        &mut bar.wrap_read(std::io::stdin().lock()),
        Algorithm::Sha256,
    );
    bar.finish_and_clear();
    result.map_err(|e| e.context("pushing stdin"))
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
            (&items[..1], Some("may15".into()))
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
