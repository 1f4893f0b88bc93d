//! The layer-merge engine behind `squash` and `flatten`: layers in order in, one plain tar
//! out, as the OCI image spec's "Applying Changesets" describes. A whiteout `dir/.wh.name`
//! removes `dir/name` (and everything below it) put there by lower layers; an opaque marker
//! `dir/.wh..wh..opq` hides everything lower layers put in `dir`; later entries replace
//! earlier ones, and a file that replaces a directory takes its contents with it. No whiteout
//! reaches the output, and no entry is absolute or contains `..` (such a layer is refused).
//! The directories on an entry's way are resolved through the symbolic links entries before
//! it made, inside the root, as runtimes and umoci extract layers: over a merged-/usr base
//! (`bin -> usr/bin`), `bin/prog` is `usr/bin/prog` and the link stays.
//!
//! Two passes, so that memory stays flat however big the layers are: contents are never
//! held, only one small record per path.
//!
//! 1. The first pass reads every layer's headers (skipping the contents) and keeps, per
//!    surviving path, which entry wins: `(layer, ordinal in the layer)`. A directory also
//!    keeps where it was first declared, and the metadata of its last declaration when a
//!    later layer declared it again.
//! 2. The second pass reads the layers again and streams out each winning entry at its
//!    position, so the output follows layer order, then entry order: reproducible, and
//!    independent of the compression of the inputs. A directory is written where it was first
//!    declared (its parents and children keep their order) with the metadata of its last
//!    declaration.
//!
//! Hard links point at an entry of the same layer or below. When a link's target survives
//! unchanged, the link is kept. When the target was later replaced or removed, the link still
//! means the old content: the first surviving link of that file is written, as a copy of the
//! target's entry, where the target was, and the other links point at it.
//!
//! Each layer is therefore read twice: streams that cannot be read again are spooled to a
//! temporary file (see [`crate::image::source`]).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};

use tar::EntryType;

use crate::cancel::Cancel;
use crate::error::from_write as write_error;
use crate::error::{Error, Result};
use crate::image::source::{LayerSource, read_entries, tar_error};
use crate::image::tarout::{Kind, Meta, TarWriter};
use crate::text::sanitize;

/// An entry: its layer and its ordinal in that layer.
type Id = (u32, u64);

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";
/// Symbolic links followed on the way to one path (Linux's limit).
const MAX_HOPS: usize = 40;

enum Node {
    Dir {
        first: Id,
        last: Id,
        /// The metadata of the last declaration, when it is not the first.
        meta: Option<Box<Meta>>,
    },
    /// A file, symlink (with its target, as written), device or FIFO.
    Entry { id: Id, symlink: Option<Vec<u8>> },
    /// A hard link to the content entry `anchor`.
    Link { id: Id, anchor: Id },
}

impl Node {
    /// The layer that last set this path (whiteouts of that layer do not touch it).
    fn layer(&self) -> u32 {
        match self {
            Node::Dir { last, .. } => last.0,
            Node::Entry { id, .. } | Node::Link { id, .. } => id.0,
        }
    }
}

/// What the second pass does with an entry.
enum Action {
    /// Writes it at `path` (with `meta` instead of its own, for a re-declared directory).
    Emit {
        path: Vec<u8>,
        meta: Option<Box<Meta>>,
    },
    /// Writes it as a hard link `path` → `target`.
    Link { path: Vec<u8>, target: Vec<u8> },
}

/// What a merge wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// How many entries the merged tar has.
    pub entries: u64,
}

/// Merges `layers` (bottom first) into one plain tar on `out`, checking `cancel` at every
/// entry of both passes.
pub fn merge(
    layers: &mut [Box<dyn LayerSource + '_>],
    out: &mut dyn Write,
    cancel: &Cancel,
) -> Result<Summary> {
    let mut state = State::default();
    for (l, source) in layers.iter_mut().enumerate() {
        let layer = l as u32;
        let name = source.describe();
        read_entries(source.as_mut(), |i, entry| {
            cancel.check()?;
            state.visit((layer, i), &name, entry)
        })?;
    }
    let mut plan = state.plan();
    let mut writer = TarWriter::new(out);
    let mut summary = Summary::default();
    for (l, source) in layers.iter_mut().enumerate() {
        let layer = l as u32;
        let name = source.describe();
        read_entries(source.as_mut(), |i, entry| {
            cancel.check()?;
            let Some(action) = plan.remove(&(layer, i)) else {
                return Ok(());
            };
            summary.entries += 1;
            emit(&mut writer, &name, action, entry)
        })?;
    }
    if !plan.is_empty() {
        return Err(Error::data(
            "a layer changed between the two passes over it",
        ));
    }
    writer
        .finish()
        .map_err(|e| write_error("writing the tar", e))?;
    Ok(summary)
}

/// The relative form of an entry's path: no `./`, no empty components, no trailing `/`;
/// absolute paths and `..` are refused. The root is the empty path.
pub fn normalize(raw: &[u8], layer: &str) -> Result<Vec<u8>> {
    let refuse = |why: &str| {
        Error::data(format!(
            "{layer}: the tar entry {:?} {why}",
            sanitize(&String::from_utf8_lossy(raw), 200)
        ))
    };
    if raw.first() == Some(&b'/') {
        return Err(refuse("is absolute"));
    }
    let mut out = Vec::with_capacity(raw.len());
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(refuse("leaves the layer's root")),
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(part);
            }
        }
    }
    Ok(out)
}

fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = dir.to_vec();
    if !out.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

/// The keys strictly below `path` (all of them for the root).
fn below(path: &[u8]) -> (std::ops::Bound<Vec<u8>>, std::ops::Bound<Vec<u8>>) {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    if path.is_empty() {
        return (Excluded(Vec::new()), Unbounded);
    }
    let mut start = path.to_vec();
    start.push(b'/');
    let mut end = path.to_vec();
    end.push(b'/' + 1);
    (Included(start), Excluded(end))
}

/// Reads the metadata of an entry: the header, with PAX records (uid, gid, names, mtime,
/// `SCHILY.xattr.*`) taking precedence.
pub fn read_meta(entry: &mut tar::Entry<'_, &mut dyn Read>, layer: &str) -> Result<Meta> {
    let h = entry.header();
    let bad = |e: io::Error| tar_error(layer, e);
    let mut meta = Meta {
        mode: h.mode().map_err(bad)? & 0o7777,
        uid: h.uid().map_err(bad)?,
        gid: h.gid().map_err(bad)?,
        uname: h.username_bytes().unwrap_or_default().to_vec(),
        gname: h.groupname_bytes().unwrap_or_default().to_vec(),
        mtime: h.mtime().map_err(bad)?,
        xattrs: Vec::new(),
    };
    let Some(records) = entry.pax_extensions().map_err(bad)? else {
        return Ok(meta);
    };
    for record in records {
        let record = record.map_err(bad)?;
        let (key, value) = (record.key_bytes(), record.value_bytes());
        let number = || {
            let text = String::from_utf8_lossy(value);
            text.split('.').next().and_then(|s| s.parse::<u64>().ok())
        };
        match key {
            b"uid" => meta.uid = number().unwrap_or(meta.uid),
            b"gid" => meta.gid = number().unwrap_or(meta.gid),
            b"mtime" => meta.mtime = number().unwrap_or(meta.mtime),
            b"uname" => meta.uname = value.to_vec(),
            b"gname" => meta.gname = value.to_vec(),
            _ => {
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    meta.xattrs.push((name.to_vec(), value.to_vec()));
                }
            }
        }
    }
    Ok(meta)
}

/// Which surviving path each entry gives, built by the first pass.
#[derive(Default)]
struct State {
    nodes: BTreeMap<Vec<u8>, Node>,
}

impl State {
    /// `path` with the directories on its way resolved through the symbolic links entries
    /// before it made, as a runtime (containerd, umoci) extracting the layer into the tree
    /// does: `bin/prog` over a merged-/usr base (`bin -> usr/bin`) is `usr/bin/prog`, and the
    /// link stays. Resolution stays in the root (`..` stops there, an absolute target starts
    /// from it); the last component is not followed (the entry replaces what is there).
    fn resolve(&self, path: &[u8], layer: &str) -> Result<Vec<u8>> {
        let (dir, name) = split(path);
        if dir.is_empty() {
            return Ok(path.to_vec());
        }
        let mut todo: Vec<&[u8]> = dir.split(|&b| b == b'/').rev().collect();
        let mut done: Vec<u8> = Vec::with_capacity(path.len());
        let mut hops = 0;
        while let Some(part) = todo.pop() {
            match part {
                b"" | b"." => continue,
                b".." => {
                    done.truncate(split(&done).0.len());
                    continue;
                }
                _ => {}
            }
            let before = done.len();
            if !done.is_empty() {
                done.push(b'/');
            }
            done.extend_from_slice(part);
            if let Some(Node::Entry {
                symlink: Some(target),
                ..
            }) = self.nodes.get(&done)
            {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(Error::data(format!(
                        "{layer}: too many levels of symbolic links on the way to {:?}",
                        sanitize(&String::from_utf8_lossy(path), 200)
                    )));
                }
                done.truncate(before);
                if target.first() == Some(&b'/') {
                    done.clear();
                }
                todo.extend(target.split(|&b| b == b'/').rev());
            }
        }
        Ok(join(&done, name))
    }
    fn visit(
        &mut self,
        id: Id,
        layer: &str,
        entry: &mut tar::Entry<'_, &mut dyn Read>,
    ) -> Result<()> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let path = self.resolve(&normalize(&entry.path_bytes(), layer)?, layer)?;
        let (dir, name) = split(&path);
        if name == OPAQUE {
            self.remove_below(dir, id.0);
            return Ok(());
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT) {
            // `.wh..wh.*` other than the opaque marker is aufs bookkeeping: nothing to apply.
            if !hidden.starts_with(WHITEOUT) {
                self.remove(&join(dir, hidden), id.0);
            }
            return Ok(());
        }
        match kind {
            EntryType::Directory => {
                if let Some(Node::Dir { last, meta, .. }) = self.nodes.get_mut(&path) {
                    *last = id;
                    *meta = Some(Box::new(read_meta(entry, layer)?));
                    return Ok(());
                }
                self.replace(
                    path,
                    Node::Dir {
                        first: id,
                        last: id,
                        meta: None,
                    },
                );
            }
            EntryType::Link => {
                let raw = entry.link_name_bytes().unwrap_or_default().into_owned();
                let target = self.resolve(&normalize(&raw, layer)?, layer)?;
                let anchor = match self.nodes.get(&target) {
                    Some(Node::Entry { id, .. }) => *id,
                    Some(Node::Link { anchor, .. }) => *anchor,
                    Some(Node::Dir { .. }) => {
                        return Err(Error::data(format!(
                            "{layer}: the hard link {:?} points at a directory",
                            sanitize(&String::from_utf8_lossy(&path), 200)
                        )));
                    }
                    None => {
                        return Err(Error::data(format!(
                            "{layer}: the hard link {:?} points at {:?}, which is in neither this layer (before it) nor a lower one",
                            sanitize(&String::from_utf8_lossy(&path), 200),
                            sanitize(&String::from_utf8_lossy(&target), 200)
                        )));
                    }
                };
                self.replace(path, Node::Link { id, anchor });
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                self.replace(
                    path,
                    Node::Entry {
                        id,
                        symlink: Some(target),
                    },
                )
            }
            _ => self.replace(path, Node::Entry { id, symlink: None }),
        }
        Ok(())
    }

    /// Sets `path`, replacing what was there: a directory replaced by something else takes
    /// its contents with it, and a non-directory on the way to `path` gives way to it.
    fn replace(&mut self, path: Vec<u8>, node: Node) {
        let mut end = 0;
        while let Some(i) = path[end..].iter().position(|&b| b == b'/') {
            end += i;
            if matches!(
                self.nodes.get(&path[..end]),
                Some(Node::Entry { .. } | Node::Link { .. })
            ) {
                self.nodes.remove(&path[..end]);
            }
            end += 1;
        }
        let was_dir = matches!(self.nodes.get(&path), Some(Node::Dir { .. }));
        if was_dir && !matches!(node, Node::Dir { .. }) {
            self.remove_below(&path, u32::MAX);
        }
        self.nodes.insert(path, node);
    }

    /// A whiteout of layer `layer`: removes `path` and everything below it that lower layers
    /// put there.
    fn remove(&mut self, path: &[u8], layer: u32) {
        if self.nodes.get(path).is_some_and(|n| n.layer() < layer) {
            self.nodes.remove(path);
        }
        self.remove_below(path, layer);
    }

    /// Removes what lower layers than `layer` put below `path`.
    fn remove_below(&mut self, path: &[u8], layer: u32) {
        let doomed: Vec<Vec<u8>> = self
            .nodes
            .range(below(path))
            .filter(|(_, n)| n.layer() < layer)
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    /// Turns the surviving paths into what the second pass does at each entry.
    fn plan(self) -> HashMap<Id, Action> {
        let mut plan = HashMap::new();
        let mut content: HashMap<Id, Vec<u8>> = HashMap::new();
        let mut links: BTreeMap<Id, Vec<(Id, Vec<u8>)>> = BTreeMap::new();
        for (path, node) in self.nodes {
            match node {
                Node::Dir { first, meta, .. } => {
                    plan.insert(first, Action::Emit { path, meta });
                }
                Node::Entry { id, .. } => {
                    content.insert(id, path.clone());
                    plan.insert(id, Action::Emit { path, meta: None });
                }
                Node::Link { id, anchor } => links.entry(anchor).or_default().push((id, path)),
            }
        }
        for (anchor, mut members) in links {
            members.sort();
            let target = match content.get(&anchor) {
                Some(path) => path.clone(),
                None => {
                    // The file itself is gone: its first surviving link takes its place.
                    let (first_id, first_path) = members.remove(0);
                    let _ = first_id;
                    plan.insert(
                        anchor,
                        Action::Emit {
                            path: first_path.clone(),
                            meta: None,
                        },
                    );
                    first_path
                }
            };
            for (id, path) in members {
                plan.insert(
                    id,
                    Action::Link {
                        path,
                        target: target.clone(),
                    },
                );
            }
        }
        plan
    }
}

/// Writes one entry of the second pass.
fn emit(
    writer: &mut TarWriter<&mut dyn Write>,
    layer: &str,
    action: Action,
    entry: &mut tar::Entry<'_, &mut dyn Read>,
) -> Result<()> {
    let own = read_meta(entry, layer)?;
    let h = entry.header();
    let device = |h: &tar::Header| -> io::Result<(u32, u32)> {
        Ok((
            h.device_major()?.unwrap_or(0),
            h.device_minor()?.unwrap_or(0),
        ))
    };
    let (path, meta, kind) = match action {
        Action::Link { path, target } => (path, None, Kind::Link(target)),
        Action::Emit { path, meta } => {
            let kind = match h.entry_type() {
                EntryType::Directory => Kind::Dir,
                EntryType::Symlink => {
                    Kind::Symlink(entry.link_name_bytes().unwrap_or_default().into_owned())
                }
                EntryType::Char => {
                    let (a, b) = device(h).map_err(|e| tar_error(layer, e))?;
                    Kind::Char(a, b)
                }
                EntryType::Block => {
                    let (a, b) = device(h).map_err(|e| tar_error(layer, e))?;
                    Kind::Block(a, b)
                }
                EntryType::Fifo => Kind::Fifo,
                _ => Kind::File,
            };
            (path, meta, kind)
        }
    };
    let meta = meta.map_or(own, |m| *m);
    let size = if kind == Kind::File { entry.size() } else { 0 };
    writer
        .entry(&path, &kind, &meta, size, entry)
        .map_err(|e| emit_error(layer, e))
}

/// A failure of the second pass: a layer that ends early is the layer's fault; the rest is
/// about the output (see [`write_error`]).
fn emit_error(layer: &str, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return tar_error(layer, e);
    }
    write_error("writing the tar", e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::tarout::TarWriter;

    /// An in-memory layer (tests only: real layers stream).
    struct Mem(Vec<u8>);
    impl LayerSource for Mem {
        fn describe(&self) -> String {
            "mem".into()
        }
        fn open(&mut self) -> Result<Box<dyn Read + '_>> {
            Ok(Box::new(&self.0[..]))
        }
    }

    enum E<'a> {
        D(&'a str),
        F(&'a str, &'a str),
        L(&'a str, &'a str),
        S(&'a str, &'a str),
    }

    fn layer(entries: &[E<'_>]) -> Mem {
        let mut w = TarWriter::new(Vec::new());
        let meta = Meta {
            mode: 0o644,
            ..Meta::default()
        };
        for e in entries {
            let r = match e {
                E::D(p) => w.entry(p.as_bytes(), &Kind::Dir, &meta, 0, &mut io::empty()),
                E::F(p, c) => w.entry(
                    p.as_bytes(),
                    &Kind::File,
                    &meta,
                    c.len() as u64,
                    &mut c.as_bytes(),
                ),
                E::L(p, t) => w.entry(
                    p.as_bytes(),
                    &Kind::Link(t.as_bytes().to_vec()),
                    &meta,
                    0,
                    &mut io::empty(),
                ),
                E::S(p, t) => w.entry(
                    p.as_bytes(),
                    &Kind::Symlink(t.as_bytes().to_vec()),
                    &meta,
                    0,
                    &mut io::empty(),
                ),
            };
            r.unwrap();
        }
        Mem(w.finish().unwrap())
    }

    /// `path type [content|target]` per entry of the merge of `layers`.
    fn boxed(layers: Vec<Mem>) -> Vec<Box<dyn LayerSource>> {
        layers
            .into_iter()
            .map(|l| Box::new(l) as Box<dyn LayerSource>)
            .collect()
    }

    fn merged(layers: Vec<Mem>) -> Result<Vec<String>> {
        let mut out = Vec::new();
        merge(&mut boxed(layers), &mut out, &Cancel::new())?;
        let mut archive = tar::Archive::new(&out[..]);
        let mut lines = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let path = String::from_utf8(e.path_bytes().to_vec()).unwrap();
            let line = match e.header().entry_type() {
                EntryType::Directory => format!("{path} d"),
                EntryType::Link => format!(
                    "{path} h {}",
                    String::from_utf8_lossy(&e.link_name_bytes().unwrap())
                ),
                EntryType::Symlink => format!(
                    "{path} s {}",
                    String::from_utf8_lossy(&e.link_name_bytes().unwrap())
                ),
                _ => {
                    let mut s = String::new();
                    e.read_to_string(&mut s).unwrap();
                    format!("{path} f {s}")
                }
            };
            lines.push(line);
        }
        Ok(lines)
    }

    #[test]
    fn whiteouts_opaque_dirs_and_later_layers_apply() {
        let out = merged(vec![
            layer(&[
                E::D("etc"),
                E::F("etc/a", "1"),
                E::F("etc/b", "1"),
                E::D("opt"),
                E::F("opt/x", "1"),
                E::D("var"),
                E::D("var/lib"),
                E::F("var/lib/y", "1"),
            ]),
            layer(&[
                E::F("etc/.wh.a", ""),
                E::F("etc/b", "2"),
                E::D("opt"),
                E::F("opt/.wh..wh..opq", ""),
                E::F("opt/new", "2"),
                E::F(".wh.var", ""),
            ]),
        ])
        .unwrap();
        assert_eq!(
            out,
            ["etc/ d", "opt/ d", "etc/b f 2", "opt/new f 2"],
            "layer order, directories where first declared, no whiteout"
        );
    }

    #[test]
    fn a_whiteout_spares_its_own_layer_and_a_file_replaces_a_directory() {
        let out = merged(vec![
            layer(&[E::D("d"), E::F("d/old", "1")]),
            layer(&[E::F("d/mine", "2"), E::F("d/.wh.mine", "")]),
            layer(&[E::F("d", "file")]),
        ])
        .unwrap();
        assert_eq!(out, ["d f file"]);
    }

    #[test]
    fn hard_links_keep_their_content_when_the_target_goes() {
        let out = merged(vec![
            layer(&[E::F("a", "content"), E::L("b", "a"), E::L("c", "./a")]),
            layer(&[E::F(".wh.a", ""), E::S("s", "/a")]),
        ])
        .unwrap();
        assert_eq!(out, ["b f content", "c h b", "s s /a"]);
        let kept = merged(vec![
            layer(&[E::F("a", "content")]),
            layer(&[E::L("b", "a")]),
        ])
        .unwrap();
        assert_eq!(kept, ["a f content", "b h a"]);
    }

    #[test]
    fn redeclared_directories_stay_first_with_the_later_metadata() {
        let mut second = TarWriter::new(Vec::new());
        let meta = Meta {
            mode: 0o700,
            uid: 7,
            ..Meta::default()
        };
        second
            .entry(b"d", &Kind::Dir, &meta, 0, &mut io::empty())
            .unwrap();
        let layers = vec![
            layer(&[E::D("d"), E::F("d/f", "x")]),
            Mem(second.finish().unwrap()),
        ];
        let mut out = Vec::new();
        merge(&mut boxed(layers), &mut out, &Cancel::new()).unwrap();
        let mut archive = tar::Archive::new(&out[..]);
        let heads: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    String::from_utf8(e.path_bytes().to_vec()).unwrap(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                )
            })
            .collect();
        assert_eq!(heads, [("d/".into(), 0o700, 7), ("d/f".into(), 0o644, 0)]);
    }

    #[test]
    fn escaping_and_dangling_entries_are_refused() {
        assert_eq!(normalize(b"./a//b/", "l").unwrap(), b"a/b");
        assert_eq!(normalize(b"./", "l").unwrap(), b"");
        assert!(
            normalize(b"/etc", "l")
                .unwrap_err()
                .message
                .contains("absolute")
        );
        assert!(
            normalize(b"a/../../b", "l")
                .unwrap_err()
                .message
                .contains("leaves")
        );
        let err = merged(vec![layer(&[E::L("b", "nowhere")])]).unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Data);
        assert!(
            err.message.contains("neither this layer"),
            "{}",
            err.message
        );
    }
}
