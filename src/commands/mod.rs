//! One module per verb. Each owns its clap `Args` and one `run` that orchestrates library calls
//! and prints through [`Output`]. What several verbs share lives here.

pub mod append_layer;
pub mod archive_io;
pub mod auth;
pub mod blob_size;
pub mod copy;
pub mod del_alias;
pub mod del_blob;
pub mod digest;
pub mod flatten;
pub mod get_alias;
pub mod get_digest;
pub mod get_manifest;
pub mod image_arg;
pub mod list_aliases;
pub mod list_repos;
pub mod make_image;
pub mod make_layer;
pub mod mount_blob;
pub mod pull_blob;
pub mod pull_image;
pub mod push_blob;
pub mod push_image;
pub mod resolve;
pub mod set_alias;
pub mod squash;
pub mod tar_out;

use std::io::Read;

use crate::settings::Settings;
use regtool::alias::{self, PerPlatform, Resolved};
use regtool::error::{Error, Result};
use regtool::oci::{ImageRef, Manifest, Repository, Tag, Target, media, name};
use regtool::store::{Fetched, Store};
use serde_json::{Value, json};

use crate::cli::Command;
use crate::output::Output;
use crate::progress::Bars;

/// What every command gets: the settings, the store they name, stdout, the progress bars and
/// the run's cancellation token (cancelled by the signal thread).
pub struct Ctx {
    pub settings: Settings,
    pub cancel: regtool::Cancel,
    pub store: Box<dyn Store>,
    pub out: Output,
    pub bars: Bars,
}

impl Ctx {
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }
}

pub fn run(ctx: &mut Ctx, command: Command) -> Result<()> {
    match command {
        Command::PushBlob(a) => push_blob::run(ctx, a),
        Command::PullBlob(a) => pull_blob::run(ctx, a),
        Command::BlobSize(a) => blob_size::run(ctx, a),
        Command::MountBlob(a) => mount_blob::run(ctx, a),
        Command::DelBlob(a) => del_blob::run(ctx, a),
        Command::SetAlias(a) => set_alias::run(ctx, a),
        Command::GetAlias(a) => get_alias::run(ctx, a),
        Command::DelAlias(a) => del_alias::run(ctx, a),
        Command::GetDigest(a) => get_digest::run(ctx, a),
        Command::Resolve(a) => resolve::run(ctx, a),
        Command::GetManifest(a) => get_manifest::run(ctx, a),
        Command::ListAliases(a) => list_aliases::run(ctx, a),
        Command::ListRepos(a) => list_repos::run(ctx, a),
        Command::Auth(a) => auth::run(ctx, a),
        Command::AppendLayer(a) => append_layer::run(ctx, a),
        Command::Copy(a) => copy::run(ctx, a),
        Command::PullImage(a) => pull_image::run(ctx, a),
        Command::PushImage(a) => push_image::run(ctx, a),
        Command::Digest(a) => digest::run(ctx, a),
        Command::Squash(a) => squash::run(ctx, a),
        Command::MakeLayer(a) => make_layer::run(ctx, a),
        Command::MakeImage(a) => make_image::run(ctx, a),
        Command::Flatten(a) => flatten::run(ctx, a),
    }
}

/// Validates a repository argument before any request.
/// The file `-o` names, None for stdout: unset, or `-` (as `push-blob -` reads stdin, and
/// curl and tar take `-o -`; a file named `-` is `./-`).
pub fn output_file(output: Option<&std::path::PathBuf>) -> Option<&std::path::PathBuf> {
    output.filter(|p| p.as_os_str() != "-")
}

pub fn repo(arg: &str) -> Result<Repository> {
    Repository::new(arg)
}

/// Validates every `digest|@alias` argument up front, so that a typo in the last one does not
/// leave the first ones done.
pub fn targets(args: &[String]) -> Result<Vec<Target>> {
    args.iter().map(|a| Target::parse(a)).collect()
}

/// Validates alias arguments (with or without `@`).
pub fn aliases(args: &[String]) -> Result<Vec<Tag>> {
    args.iter().map(|a| name::alias_name(a)).collect()
}

/// dxf reads a manifest from stdin when a command that takes aliases is given none.
pub fn stdin_manifest() -> Result<PerPlatform<Resolved>> {
    parse_stdin_manifest(read_stdin_manifest()?)
}

/// As dxf, a manifest on stdin when `arg` (`<alias>`) is not given; but a missing argument
/// with nothing piped in (a terminal, which would wait for input, or an empty stdin) is the
/// usage error it looks like.
pub fn stdin_manifest_instead_of(arg: &str) -> Result<PerPlatform<Resolved>> {
    use std::io::IsTerminal;
    let missing = || {
        Error::usage(format!(
            "missing {arg}: give one, or pipe a manifest on stdin"
        ))
    };
    if std::io::stdin().is_terminal() {
        return Err(missing());
    }
    let bytes = read_stdin_manifest()?;
    if bytes.is_empty() {
        return Err(missing());
    }
    parse_stdin_manifest(bytes)
}

fn read_stdin_manifest() -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(media::MAX_MANIFEST + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("reading a manifest from stdin", &e))?;
    Ok(bytes)
}

fn parse_stdin_manifest(bytes: Vec<u8>) -> Result<PerPlatform<Resolved>> {
    if bytes.len() as u64 > media::MAX_MANIFEST {
        return Err(Error::data("the manifest on stdin is larger than 4 MiB"));
    }
    let manifest = Manifest::parse(&bytes, None).map_err(|e| e.context("the manifest on stdin"))?;
    if matches!(manifest, Manifest::Index { .. }) {
        return Err(Error::usage(
            "the manifest on stdin is an index: give an alias instead",
        ));
    }
    let digest = regtool::oci::Digest::sha256(&bytes);
    Ok(PerPlatform::One(Resolved {
        fetched: Fetched {
            bytes,
            media_type: None,
            digest,
        },
        manifest,
    }))
}

/// The manifests named by alias arguments, or by the manifest on stdin when there are none.
pub fn alias_manifests(
    ctx: &Ctx,
    repo: &Repository,
    args: &[String],
) -> Result<Vec<(String, PerPlatform<Resolved>)>> {
    if args.is_empty() {
        return Ok(vec![(
            "-".to_string(),
            stdin_manifest_instead_of("<alias>")?,
        )]);
    }
    let names = aliases(args)?;
    let platform = ctx.settings.platform.as_ref();
    names
        .into_iter()
        .map(|a| {
            Ok((
                a.to_string(),
                alias::read(ctx.store(), repo, &a.into(), platform)?,
            ))
        })
        .collect()
}

/// Prints one result per alias: the lines of a single manifest, or one JSON line with a key per
/// platform (sorted) for a multi-platform index (dxf's format).
pub fn print_per_platform<T>(
    out: &mut Output,
    key: &str,
    name: &str,
    value: PerPlatform<T>,
    lines: impl Fn(&T) -> Vec<String>,
    json: impl Fn(&T) -> Value,
) -> Result<()> {
    match value {
        PerPlatform::One(v) => out.lines(&lines(&v), json!({key: name, "result": json(&v)})),
        PerPlatform::Many(map) => {
            let obj: serde_json::Map<String, Value> =
                map.iter().map(|(k, v)| (k.clone(), json(v))).collect();
            let text = Value::Object(obj.clone()).to_string();
            out.result(&text, json!({key: name, "platforms": obj}))
        }
    }
}

/// An image reference and the store it lives in: the registry it names, or (no host) the
/// store of REGTOOL_HOST.
pub struct Located<'a> {
    pub reference: ImageRef,
    owned: Option<Box<dyn Store>>,
    shared: &'a dyn Store,
}

impl Located<'_> {
    pub fn store(&self) -> &dyn Store {
        self.owned.as_deref().unwrap_or(self.shared)
    }
    pub fn side(&self) -> regtool::image::copy::Side<'_> {
        regtool::image::copy::Side {
            store: self.store(),
            repo: &self.reference.repo,
        }
    }
    /// `host/repo@digest` (or `repo@digest` without a host), as append-layer prints it.
    pub fn pinned(&self, digest: &regtool::oci::Digest) -> String {
        match &self.reference.host {
            Some(h) => format!("{h}/{}@{digest}", self.reference.repo),
            None => format!("{}@{digest}", self.reference.repo),
        }
    }
}

/// Parses an image reference and opens the store it names.
pub fn locate<'a>(ctx: &'a Ctx, text: &str) -> Result<Located<'a>> {
    let reference = ImageRef::parse(text)?;
    let owned: Option<Box<dyn Store>> = match &reference.host {
        Some(host) => {
            let opts = ctx.settings.registry_for(host)?;
            Some(Box::new(
                regtool::registry::Registry::new(&opts).with_cancel(ctx.cancel.clone()),
            ))
        }
        None => None,
    };
    Ok(Located {
        reference,
        owned,
        shared: ctx.store(),
    })
}

/// The source and destination of an image command; the destination must be a tag.
pub fn locate_pair<'a>(ctx: &'a Ctx, src: &str, dst: &str) -> Result<(Located<'a>, Located<'a>)> {
    let (src, dst) = (locate(ctx, src)?, locate(ctx, dst)?);
    if dst.reference.digest.is_some() {
        return Err(Error::usage("the destination takes a tag, not a digest"));
    }
    Ok((src, dst))
}
