//! Docker archives: what `docker save` writes and `docker load` reads (go-containerregistry's
//! `tarball` package). An archive is a tar holding `manifest.json` (a list of images, each
//! `{"Config": member, "RepoTags": [...], "Layers": [members]}`), the config JSON and the
//! layers as tar files (plain, or gzip/zstd compressed). The legacy form (Docker before 1.10)
//! has no `manifest.json`: a `repositories` file (`{"name": {"tag": "id"}}`) and one directory
//! per layer with `json` (its v1 metadata and its `parent`), `VERSION` and `layer.tar`.
//!
//! Reading indexes the members in one pass over the tar headers (seeking past the data), then
//! reads members by range from the file: no layer is held in memory. A stream (a pipe, stdin)
//! or a compressed archive is first spooled, decompressed, to a temporary file. A truncated
//! archive, a missing member, a member whose path leaves the root and malformed JSON are data
//! errors naming the archive.
//!
//! [`mod@write`] makes archives, [`push`] uploads them (and computes the digest an upload gives).

pub mod push;
pub mod write;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use serde_json::{Value, json};

use crate::cancel::{self, Cancel};
use crate::digest_cache::Stamp;
use crate::error::{Error, Result};
use crate::image::layer::{Compression, sniff};
use crate::image::source::LayerSource;
use crate::oci::digest::{Algorithm, hash_reader};
use crate::oci::{Digest, ImageRef, Platform};
use crate::store::FileRange;

/// The largest JSON member read (manifest.json, a config, a legacy `json`).
const MAX_JSON: u64 = 16 * 1024 * 1024;
/// Symbolic links followed from one member before giving up (docker's legacy save links
/// repeated `layer.tar` files to the first one).
const MAX_LINKS: usize = 8;

/// Where a member's data is in the archive file.
#[derive(Debug, Clone)]
enum Member {
    File {
        offset: u64,
        size: u64,
    },
    /// A symbolic link (target relative to the member's directory) or a hard link (target
    /// relative to the root), normalised to a path from the root.
    Link(String),
}

/// An open docker archive, its members indexed.
pub struct Archive {
    name: String,
    file: File,
    members: HashMap<String, Member>,
    _spool: Option<(tempfile::NamedTempFile, cancel::Guard)>,
    /// A regular file read in place: its path and its stamp when opened, which key the
    /// digest cache's entries of its layers.
    stamp: Option<(std::path::PathBuf, Stamp)>,
}

/// One image of an archive.
#[derive(Debug, Clone)]
pub struct Image {
    /// The config, as stored (the legacy form gets one made from its top layer's metadata).
    pub config: Vec<u8>,
    /// The names `docker load` tags the image with (`name:tag`).
    pub repo_tags: Vec<String>,
    /// The members holding the layers, bottom first.
    pub layers: Vec<String>,
    /// The layers' diff_ids from the config (`rootfs.diff_ids`), bottom first.
    pub diff_ids: Vec<Digest>,
}

impl Image {
    /// The image's platform, from its config (`os`, `architecture`, `variant`).
    pub fn platform(&self) -> Option<Platform> {
        let cfg: Value = serde_json::from_slice(&self.config).ok()?;
        let text = |k: &str| cfg[k].as_str().map(str::to_string);
        Some(Platform {
            os: text("os")?,
            architecture: text("architecture")?,
            variant: text("variant"),
        })
    }
}

/// The `RepoTags` entry docker writes for an image name: `name:tag` (`latest` without a
/// tag), Docker Hub names short (`debian:12`, `fred/app:v1`); None for a name with only a
/// digest (docker gives such an image no tag).
pub fn repo_tag(name: &ImageRef) -> Option<String> {
    let tag = match (&name.tag, &name.digest) {
        (Some(t), _) => t.to_string(),
        (None, Some(_)) => return None,
        (None, None) => "latest".to_string(),
    };
    let repo = name.repo.to_string();
    let short = match &name.host {
        Some(h) if h.to_string() != "registry-1.docker.io" => format!("{h}/{repo}"),
        Some(_) => repo.strip_prefix("library/").unwrap_or(&repo).to_string(),
        None => repo,
    };
    Some(format!("{short}:{tag}"))
}

/// The tar reader's complaint in the words of an archive: its own for what it names well.
fn tar_reason(e: &io::Error) -> String {
    let reason = crate::error::io_reason(e);
    if reason.contains("failed to read entire block") {
        return "it ends inside a tar header (truncated, or not a tar)".to_string();
    }
    if reason.contains("checksum mismatch") {
        return "a tar header's checksum is wrong (corrupt, or not a tar)".to_string();
    }
    // The tar crate quotes the header's bytes in some messages: never echo them.
    if reason.contains("numeric field") || reason.contains("cksum") {
        return "a tar header is malformed (corrupt, or not a tar)".to_string();
    }
    crate::text::sanitize(&reason, 100)
}

/// Normalises a member path: no leading `./`, no empty or `.` parts; None when it is absolute
/// or goes up (`..`).
fn clean(path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Joins a symbolic link's target to the directory of the link, staying under the root.
fn join_link(link: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return clean(target);
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

impl Archive {
    /// Opens the archive at `path`. A regular uncompressed file is read in place; a stream or
    /// a compressed archive is spooled (decompressed) to a temporary file in `tmp`, removed on
    /// `cancel`. A missing file is a not-found error.
    pub fn open(path: &Path, tmp: &Path, cancel: &Cancel) -> Result<Archive> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|e| Error::io(format!("opening {name}"), &e))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io(format!("opening {name}"), &e))?;
        if meta.is_dir() {
            return Err(Error::usage(format!(
                "{name} is a directory, not a docker archive"
            )));
        }
        if meta.is_file() {
            let mut head = [0u8; 4];
            let n = crate::store::ReadAt::read_at(&file, &mut head, 0)
                .map_err(|e| Error::io(format!("reading {name}"), &e))?;
            if sniff(&head[..n]).is_none() {
                let mut archive = Archive::index(name, file, None)?;
                archive.stamp = Some((path.to_path_buf(), Stamp::new(path, &meta)));
                return Ok(archive);
            }
        }
        Archive::spooled(name, Box::new(file), tmp, cancel)
    }

    /// Reads an archive from a stream (stdin), spooled to a temporary file in `tmp`.
    pub fn from_stream(
        name: impl Into<String>,
        stream: Box<dyn Read + '_>,
        tmp: &Path,
        cancel: &Cancel,
    ) -> Result<Archive> {
        Archive::spooled(name.into(), stream, tmp, cancel)
    }

    fn spooled(
        name: String,
        stream: Box<dyn Read + '_>,
        tmp: &Path,
        cancel: &Cancel,
    ) -> Result<Archive> {
        let (mut spool, guard) = cancel
            .tempfile(".regtool-archive-", tmp)
            .map_err(|e| Error::io(format!("creating a file in {}", tmp.display()), &e))?;
        let mut buffered = BufReader::with_capacity(256 * 1024, cancel.reader(stream));
        let head = buffered
            .fill_buf()
            .map_err(|e| crate::error::from_io(format!("reading {name}"), e))?;
        let mut decoded: Box<dyn Read + '_> = match sniff(head) {
            Some(Compression::Gzip) => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
            Some(Compression::Zstd) => Box::new(
                zstd::stream::read::Decoder::with_buffer(buffered)
                    .map_err(|e| Error::io("starting zstd", &e))?,
            ),
            _ => Box::new(buffered),
        };
        io::copy(&mut decoded, spool.as_file_mut()).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidInput
            | io::ErrorKind::InvalidData
            | io::ErrorKind::UnexpectedEof => Error::data(format!(
                "{name}: not a docker archive: {}",
                crate::error::io_reason(&e)
            )),
            _ => crate::error::from_io(format!("reading {name}"), e),
        })?;
        let file = spool
            .reopen()
            .map_err(|e| Error::io("reading the spool file", &e))?;
        Archive::index(name, file, Some((spool, guard)))
    }

    fn bad(name: &str, why: impl std::fmt::Display) -> Error {
        Error::data(format!("{name}: not a docker archive: {why}"))
    }

    /// One pass over the headers, seeking past the data.
    fn index(
        name: String,
        file: File,
        spool: Option<(tempfile::NamedTempFile, cancel::Guard)>,
    ) -> Result<Archive> {
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("reading {name}"), &e))?
            .len();
        let mut members = HashMap::new();
        {
            let mut tar = tar::Archive::new(&file);
            let entries = tar
                .entries_with_seek()
                .map_err(|e| Archive::bad(&name, tar_reason(&e)))?;
            for entry in entries {
                let entry = entry.map_err(|e| Archive::bad(&name, tar_reason(&e)))?;
                let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                let shown = crate::text::sanitize(&raw, 200);
                let Some(path) = clean(&raw) else {
                    return Err(Error::data(format!(
                        "{name}: the member {shown:?} leaves the archive's root"
                    )));
                };
                let kind = entry.header().entry_type();
                let target = || {
                    entry
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default()
                };
                let member = match kind {
                    tar::EntryType::Regular | tar::EntryType::Continuous => {
                        let (offset, size) = (entry.raw_file_position(), entry.size());
                        if offset.saturating_add(size) > len {
                            return Err(Error::data(format!(
                                "{name}: the archive is truncated (in {shown})"
                            )));
                        }
                        Member::File { offset, size }
                    }
                    tar::EntryType::Symlink => match join_link(&path, &target()) {
                        Some(t) => Member::Link(t),
                        None => {
                            return Err(Error::data(format!(
                                "{name}: the link {shown:?} leaves the archive's root"
                            )));
                        }
                    },
                    tar::EntryType::Link => match clean(&target()) {
                        Some(t) => Member::Link(t),
                        None => {
                            return Err(Error::data(format!(
                                "{name}: the link {shown:?} leaves the archive's root"
                            )));
                        }
                    },
                    _ => continue,
                };
                members.insert(path, member);
            }
        }
        if members.is_empty() {
            return Err(Archive::bad(&name, "no members"));
        }
        Ok(Archive {
            name,
            file,
            members,
            _spool: spool,
            stamp: None,
        })
    }

    /// How messages name the archive (its path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The offset and size of a member's data, links followed.
    fn locate(&self, member: &str) -> Result<(u64, u64)> {
        let missing = || {
            Error::data(format!(
                "{}: the member {:?} is missing",
                self.name,
                crate::text::sanitize(member, 200)
            ))
        };
        let mut path = clean(member).ok_or_else(missing)?;
        for _ in 0..MAX_LINKS {
            match self.members.get(&path).ok_or_else(missing)? {
                Member::File { offset, size } => return Ok((*offset, *size)),
                Member::Link(target) => path = target.clone(),
            }
        }
        Err(Error::data(format!(
            "{}: too many links from {member:?}",
            self.name
        )))
    }

    /// The digest cache's key of a member's layer compressed as `compression` asks (see
    /// [`Stamp::part`]): the archive's stamp and the member's offset and size. None for an
    /// archive that is not a regular file read in place (a stream, a compressed archive).
    pub fn member_stamp(&self, member: &str, compression: Compression) -> Option<Stamp> {
        let (_, stamp) = self.stamp.as_ref()?;
        let (offset, size) = self.locate(member).ok()?;
        Some(stamp.part(&format!("layer {offset} {size} {compression:?}")))
    }

    /// Whether the archive file's stat is still the one it was opened with (false for an
    /// archive that is not a regular file read in place).
    pub fn unchanged(&self) -> bool {
        let Some((path, stamp)) = &self.stamp else {
            return false;
        };
        self.file
            .metadata()
            .is_ok_and(|meta| Stamp::new(path, &meta) == *stamp)
    }

    /// Whether the archive has this member.
    pub fn has(&self, member: &str) -> bool {
        self.locate(member).is_ok()
    }

    /// A member's size.
    pub fn size(&self, member: &str) -> Result<u64> {
        Ok(self.locate(member)?.1)
    }

    /// A member's bytes, read by range from the archive file.
    pub fn open_member(&self, member: &str) -> Result<FileRange<'_>> {
        let (offset, size) = self.locate(member)?;
        Ok(FileRange::new(&self.file, offset, size))
    }

    /// A JSON member, parsed.
    fn json(&self, member: &str) -> Result<Value> {
        let bytes = self.read_small(member)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::data(format!(
                "{}: malformed {}: {e}",
                self.name,
                crate::text::sanitize(member, 200)
            ))
        })
    }

    /// A small member's bytes (JSON documents).
    fn read_small(&self, member: &str) -> Result<Vec<u8>> {
        let size = self.size(member)?;
        if size > MAX_JSON {
            return Err(Error::data(format!(
                "{}: {member} is larger than 16 MiB",
                self.name
            )));
        }
        let mut bytes = Vec::new();
        self.open_member(member)?
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(format!("reading {}", self.name), &e))?;
        Ok(bytes)
    }

    /// The images of the archive, in `manifest.json` order (or the legacy `repositories`).
    pub fn images(&self) -> Result<Vec<Image>> {
        if !self.has("manifest.json") {
            if self.has("repositories") {
                return self.legacy_images();
            }
            return Err(Archive::bad(&self.name, "no manifest.json"));
        }
        let manifest = self.json("manifest.json")?;
        let malformed =
            |why: &str| Error::data(format!("{}: malformed manifest.json: {why}", self.name));
        let list = manifest.as_array().ok_or_else(|| malformed("not a list"))?;
        if list.is_empty() {
            return Err(malformed("no image"));
        }
        list.iter()
            .map(|entry| {
                let config = entry["Config"]
                    .as_str()
                    .ok_or_else(|| malformed("an image without Config"))?;
                let layers = entry["Layers"]
                    .as_array()
                    .ok_or_else(|| malformed("an image without Layers"))?
                    .iter()
                    .map(|l| l.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| malformed("a layer that is not a string"))?;
                let repo_tags = match &entry["RepoTags"] {
                    Value::Null => Vec::new(),
                    Value::Array(tags) => tags
                        .iter()
                        .map(|t| t.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| malformed("a tag that is not a string"))?,
                    _ => return Err(malformed("RepoTags is not a list")),
                };
                let config = self.read_small(config)?;
                let diff_ids = self.diff_ids(&config)?;
                if diff_ids.len() != layers.len() {
                    return Err(Error::data(format!(
                        "{}: the config has {} diff_ids for {} layers",
                        self.name,
                        diff_ids.len(),
                        layers.len()
                    )));
                }
                for layer in &layers {
                    self.locate(layer)?;
                }
                Ok(Image {
                    config,
                    repo_tags,
                    layers,
                    diff_ids,
                })
            })
            .collect()
    }

    /// The one image of the archive (an archive of several is refused).
    pub fn image(&self) -> Result<Image> {
        self.image_named(None)
    }

    /// The image `name` names (one of its `RepoTags`, compared as docker names: see
    /// [`repo_tag`]), or without a name the only image (an archive of several is refused,
    /// its names listed).
    pub fn image_named(&self, name: Option<&ImageRef>) -> Result<Image> {
        let mut images = self.images()?;
        if let Some(name) = name {
            let wanted = repo_tag(name);
            let named = |t: &String| ImageRef::parse(t).ok().and_then(|r| repo_tag(&r)) == wanted;
            return match images.iter().position(|i| i.repo_tags.iter().any(named)) {
                Some(i) => Ok(images.swap_remove(i)),
                None => Err(Error::not_found(format!(
                    "{}: no image named {name}",
                    self.name
                ))),
            };
        }
        if images.len() > 1 {
            let names: Vec<String> = images.iter().flat_map(|i| i.repo_tags.clone()).collect();
            return Err(Error::usage(format!(
                "{} holds {} images: name one (docker-archive:PATH:NAME)",
                self.name,
                images.len()
            ))
            .with_hint(format!("its names: {}", names.join(", "))));
        }
        images
            .pop()
            .ok_or_else(|| Archive::bad(&self.name, "no image"))
    }

    fn diff_ids(&self, config: &[u8]) -> Result<Vec<Digest>> {
        let cfg: Value = serde_json::from_slice(config)
            .map_err(|e| Error::data(format!("{}: malformed config: {e}", self.name)))?;
        let ids = cfg["rootfs"]["diff_ids"].as_array().ok_or_else(|| {
            Error::data(format!("{}: the config has no rootfs.diff_ids", self.name))
        })?;
        ids.iter()
            .map(|d| {
                d.as_str()
                    .and_then(|d| d.parse().ok())
                    .ok_or_else(|| Error::data(format!("{}: a malformed diff_id", self.name)))
            })
            .collect()
    }

    /// The legacy form: `repositories` names the top layer of each tag; each layer's `json`
    /// names its parent. The config is made as docker did when it loaded such an archive: the
    /// top layer's metadata without the v1 ids, with `rootfs.diff_ids` (each layer hashed,
    /// decompressed) and one history entry per layer.
    fn legacy_images(&self) -> Result<Vec<Image>> {
        let repositories = self.json("repositories")?;
        let malformed =
            |why: &str| Error::data(format!("{}: malformed repositories: {why}", self.name));
        let repos = repositories
            .as_object()
            .ok_or_else(|| malformed("not an object"))?;
        // Tags naming the same top layer are one image.
        let mut tops: Vec<(String, Vec<String>)> = Vec::new();
        for (repo, tags) in repos {
            let tags = tags.as_object().ok_or_else(|| malformed("not an object"))?;
            for (tag, id) in tags {
                let id = id
                    .as_str()
                    .ok_or_else(|| malformed("an id is not a string"))?;
                let name = format!("{repo}:{tag}");
                match tops.iter_mut().find(|(t, _)| t == id) {
                    Some((_, names)) => names.push(name),
                    None => tops.push((id.to_string(), vec![name])),
                }
            }
        }
        if tops.is_empty() {
            return Err(malformed("no image"));
        }
        tops.into_iter()
            .map(|(top, repo_tags)| self.legacy_image(&top, repo_tags))
            .collect()
    }

    fn legacy_image(&self, top: &str, repo_tags: Vec<String>) -> Result<Image> {
        let mut chain = Vec::new();
        let mut id = top.to_string();
        loop {
            if clean(&id).is_none_or(|c| c.contains('/') || c.is_empty()) || chain.len() > 1000 {
                return Err(Error::data(format!(
                    "{}: malformed layer id {:?}",
                    self.name,
                    crate::text::sanitize(&id, 100)
                )));
            }
            let meta = self.json(&format!("{id}/json"))?;
            let parent = meta["parent"].as_str().map(str::to_string);
            chain.push((id, meta));
            match parent {
                Some(p) if !p.is_empty() => id = p,
                _ => break,
            }
        }
        chain.reverse();
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        let mut history = Vec::new();
        for (id, meta) in &chain {
            let member = format!("{id}/layer.tar");
            diff_ids.push(self.hash_layer(&member)?);
            layers.push(member);
            let mut entry = serde_json::Map::new();
            if let Some(created) = meta["created"].as_str() {
                entry.insert("created".into(), json!(created));
            }
            if let Some(cmd) = meta["container_config"]["Cmd"].as_array() {
                let words: Vec<&str> = cmd.iter().filter_map(Value::as_str).collect();
                entry.insert("created_by".into(), json!(words.join(" ")));
            }
            history.push(Value::Object(entry));
        }
        let Some((_, top_meta)) = chain.last() else {
            return Err(Archive::bad(&self.name, "no layer"));
        };
        let mut config = top_meta.clone();
        let Some(obj) = config.as_object_mut() else {
            return Err(Error::data(format!("{}: malformed layer json", self.name)));
        };
        for key in ["id", "parent", "Size", "parent_id", "layer_id", "throwaway"] {
            obj.remove(key);
        }
        obj.insert(
            "rootfs".into(),
            json!({"type": "layers", "diff_ids": diff_ids}),
        );
        obj.insert("history".into(), Value::Array(history));
        let config = serde_json::to_vec(&config).map_err(|e| Error::other(e.to_string()))?;
        Ok(Image {
            config,
            repo_tags,
            layers,
            diff_ids,
        })
    }

    /// The diff_id of a layer member: the sha256 of its tar, decompressed if it is compressed.
    pub fn hash_layer(&self, member: &str) -> Result<Digest> {
        let mut reader = BufReader::with_capacity(256 * 1024, self.open_member(member)?);
        let head = reader
            .fill_buf()
            .map_err(|e| Error::io(format!("reading {}", self.name), &e))?;
        let what = format!("{}: {member}", self.name);
        let (digest, _) = match sniff(head) {
            Some(Compression::Gzip) => hash_reader(
                &mut flate2::bufread::MultiGzDecoder::new(reader),
                Algorithm::Sha256,
            ),
            Some(Compression::Zstd) => hash_reader(
                &mut zstd::stream::read::Decoder::with_buffer(reader)
                    .map_err(|e| Error::io("starting zstd", &e))?,
                Algorithm::Sha256,
            ),
            _ => hash_reader(&mut reader, Algorithm::Sha256),
        }
        .map_err(|e| e.context(&what))?;
        Ok(digest)
    }
}

/// A layer member as a [`LayerSource`] (read by range, as often as needed).
struct MemberSource<'a> {
    archive: &'a Archive,
    member: String,
    diff_id: Digest,
}

impl LayerSource for MemberSource<'_> {
    fn describe(&self) -> String {
        format!("{}: {}", self.archive.name, self.member)
    }
    fn open(&mut self) -> Result<Box<dyn Read + '_>> {
        Ok(Box::new(self.archive.open_member(&self.member)?))
    }
    fn diff_id(&self) -> Option<Digest> {
        Some(self.diff_id.clone())
    }
}

impl Archive {
    /// The layers of `image` as sources for the merge engine (flatten), bottom first, each
    /// checked against its diff_id as it is read (the archive's only word on its layers).
    pub fn layer_sources(&self, image: &Image) -> Vec<Box<dyn LayerSource + '_>> {
        image
            .layers
            .iter()
            .zip(&image.diff_ids)
            .map(|(member, diff_id)| {
                Box::new(MemberSource {
                    archive: self,
                    member: member.clone(),
                    diff_id: diff_id.clone(),
                }) as Box<dyn LayerSource + '_>
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_stay_under_the_root() {
        assert_eq!(clean("./a//b/./c").as_deref(), Some("a/b/c"));
        assert_eq!(clean("/a"), None);
        assert_eq!(clean("a/../b"), None);
        assert_eq!(
            join_link("x/layer.tar", "../y/layer.tar").as_deref(),
            Some("y/layer.tar")
        );
        assert_eq!(join_link("layer.tar", "../y"), None);
    }
}

#[cfg(test)]
mod round_trip {
    use std::io::{Read, Seek, Write};

    use super::write::{Output, Writer};
    use super::*;

    /// A one-file layer tar.
    fn layer(name: &str, data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
        b.into_inner().unwrap()
    }

    fn config(diff_ids: &[Digest]) -> Vec<u8> {
        serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids}}))
        .unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    fn write(out: Output<'_>, layers: &[Vec<u8>]) {
        let dir = std::env::temp_dir();
        let mut w = Writer::new(out, &dir, &Cancel::new());
        let ids: Vec<Digest> = layers
            .iter()
            .map(|l| w.add_layer(&mut &l[..], None, "layer").unwrap())
            .collect();
        w.finish(&config(&ids), &["x/y:z".to_string()]).unwrap();
    }

    fn open(bytes: &[u8]) -> Result<Archive> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        let cancel = Cancel::new();
        let a = Archive::open(f.path(), &std::env::temp_dir(), &cancel);
        drop(f);
        a
    }

    #[test]
    fn seekable_and_streamed_archives_are_the_same_bytes_and_read_back() {
        let one = layer("a.txt", b"one\n");
        let two = layer("b.txt", &[7u8; 3000]);
        let three = layer("c.txt", b"three\n");
        let zstd = zstd::encode_all(&three[..], 3).unwrap();
        let layers = vec![one.clone(), gzip(&two), one.clone(), zstd];
        let mut file = tempfile::tempfile().unwrap();
        write(Output::Seekable(&mut file), &layers);
        let mut seekable = Vec::new();
        file.rewind().unwrap();
        file.read_to_end(&mut seekable).unwrap();
        let mut streamed = Vec::new();
        write(Output::Stream(&mut streamed), &layers);
        assert!(seekable == streamed);

        let archive = open(&seekable).unwrap();
        let image = archive.image().unwrap();
        assert_eq!(image.repo_tags, vec!["x/y:z"]);
        assert_eq!(image.layers.len(), 4);
        assert_eq!(image.layers[0], image.layers[2]);
        // Every layer is stored plain: its sha256 is the diff_id.
        assert_eq!(image.diff_ids[3], Digest::sha256(&three));
        assert_eq!(
            archive.hash_layer(&image.layers[3]).unwrap(),
            Digest::sha256(&three)
        );
        let mut got = Vec::new();
        archive
            .open_member(&image.layers[1])
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert!(got == two);
        assert_eq!(image.diff_ids[1], Digest::sha256(&two));
        assert_eq!(
            archive.hash_layer(&image.layers[0]).unwrap(),
            Digest::sha256(&one)
        );
        // The whole archive gzipped is spooled and reads the same.
        let again = open(&gzip(&seekable)).unwrap().image().unwrap();
        assert_eq!(again.layers, image.layers);

        // Pushing computes the same digest twice; zstd makes an OCI manifest.
        let d1 = push::digest(&archive, &image, Compression::Gzip, 2, None).unwrap();
        let d2 = push::digest(&archive, &image, Compression::Gzip, 1, None).unwrap();
        assert_eq!(d1, d2);
        assert_ne!(
            d1,
            push::digest(&archive, &image, Compression::Zstd, 2, None).unwrap()
        );
    }

    #[test]
    fn a_layer_that_is_not_a_tar_is_a_data_error() {
        let mut out = Vec::new();
        let mut w = Writer::new(
            Output::Stream(&mut out),
            &std::env::temp_dir(),
            &Cancel::new(),
        );
        let e = w
            .add_layer(&mut &b"hello, not a tar"[..], None, "l.tar")
            .unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Data, "{e}");
        assert!(e.message.starts_with("l.tar: "), "{e}");
        let e = w
            .add_layer(&mut &gzip(&layer("a", b"a"))[..20], None, "l.tar.gz")
            .unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Data, "{e}");
        let wrong = Digest::sha256(b"x");
        let e = w
            .add_layer(&mut &layer("a", b"a")[..], Some(&wrong), "l")
            .unwrap_err();
        assert!(e.message.contains("diff_id"), "{e}");
    }

    #[test]
    fn truncated_escaping_and_incomplete_archives_are_data_errors() {
        let mut good = Vec::new();
        write(Output::Stream(&mut good), &[layer("a.txt", &[1u8; 5000])]);
        let kind = |bytes: &[u8]| match open(bytes).and_then(|a| a.image()) {
            Ok(_) => panic!("accepted"),
            Err(e) => (e.kind, e.message),
        };
        // Cut inside the first layer's data, and inside a header.
        let (k, m) = kind(&good[..3000]);
        assert_eq!(k, crate::error::Kind::Data, "{m}");
        assert!(m.contains("truncated"), "{m}");
        let (k, m) = kind(&good[..good.len() - 1024 - 512 - 100]);
        assert_eq!(k, crate::error::Kind::Data, "{m}");
        assert_eq!(kind(b"not a tar at all").0, crate::error::Kind::Data);
        // Random bytes: the reason names no byte of them.
        let noise: Vec<u8> = (0..2048u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let (k, m) = kind(&noise);
        assert_eq!(k, crate::error::Kind::Data);
        assert!(m.is_ascii() && m.len() < 200, "{m}");
        assert_eq!(kind(&[]).0, crate::error::Kind::Data);

        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_cksum();
        b.append_data(&mut h, "ok", &b"x"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.as_gnu_mut().unwrap().name[..5].copy_from_slice(b"../x\0");
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let (k, m) = kind(&b.into_inner().unwrap());
        assert_eq!(k, crate::error::Kind::Data);
        assert!(m.contains("leaves the archive's root"), "{m}");

        let mut b = tar::Builder::new(Vec::new());
        let manifest = br#"[{"Config": "c.json", "RepoTags": [], "Layers": ["l.tar"]}]"#;
        let mut h = tar::Header::new_gnu();
        h.set_size(manifest.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, "manifest.json", &manifest[..])
            .unwrap();
        let (k, m) = kind(&b.into_inner().unwrap());
        assert_eq!(k, crate::error::Kind::Data);
        assert!(m.contains("\"c.json\" is missing"), "{m}");
    }
}
