//! Where an image is, as the image commands name it: an [`Endpoint`] is a registry reference,
//! an OCI image layout (`oci:PATH[:TAG]`) or a docker archive (`docker-archive:PATH[:REF]`),
//! the names skopeo gives them.
//!
//! The rules, for users and for the commands that parse:
//! - `oci:` and `docker-archive:` prefixes always name a local image. As in skopeo, the path
//!   ends at the first `:` after the prefix (a path with a `:` in it cannot be named), and what
//!   follows is the tag (a layout) or an archive's image name (`RepoTags`): written into an
//!   archive being made, and picking one image of an archive being read.
//! - Anything else is a registry reference in [`Endpoint::parse`] (`copy`, `digest`,
//!   `flatten`).
//! - [`Endpoint::parse_local`] is for the side of a command that can only be local
//!   (`pull-image`'s target, `push-image`'s source), so a bare argument there is always a path,
//!   never a registry reference: an existing directory is a layout, a path ending in `.tar` an
//!   archive, a path that does not exist a layout to create; any other existing file is
//!   refused (it could be either: name it with a prefix). A bare path names no tag. `-` is
//!   `docker-archive:-`: an archive on stdin.

use std::path::{Path, PathBuf};

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::oci::{ImageRef, Reference, Tag};

/// The prefix of an OCI image layout.
pub const OCI_PREFIX: &str = "oci:";
/// The prefix of a docker archive.
pub const ARCHIVE_PREFIX: &str = "docker-archive:";

/// Where an image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// In a registry (or, without a host, in the store the caller configured).
    Registry(ImageRef),
    /// In an OCI image layout.
    Layout(LayoutRef),
    /// In a docker archive (`docker save` / `docker load`).
    Archive(ArchiveRef),
}

/// An image in an OCI image layout: `oci:PATH[:TAG]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRef {
    /// The layout's directory.
    pub path: PathBuf,
    /// The tag (`org.opencontainers.image.ref.name`); None: the only image in the layout.
    pub tag: Option<Tag>,
}

/// A docker archive: `docker-archive:PATH[:REF]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRef {
    /// The archive file.
    pub path: PathBuf,
    /// The image's name in the archive (`RepoTags`), when named: written into an archive
    /// being made; picks one image of an archive being read.
    pub reference: Option<ImageRef>,
}

/// What a path on this machine is, for [`Endpoint::parse_local`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// Nothing there.
    Missing,
    /// A directory (symbolic links followed).
    Directory,
    /// Anything else: a file, a device, a pipe.
    File,
}

impl PathKind {
    /// What is at `path` now.
    pub fn of(path: &Path) -> PathKind {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => PathKind::Directory,
            Ok(_) => PathKind::File,
            Err(_) => PathKind::Missing,
        }
    }
}

fn shown(text: &str) -> String {
    crate::oci::host::shown(text)
}

impl Endpoint {
    /// Parses an `<image>`: `oci:PATH[:TAG]`, `docker-archive:PATH[:REF]`, else a registry
    /// reference `[host[:port]/]repo[:tag|@digest]`. Anything malformed is a usage error.
    pub fn parse(text: &str) -> Result<Endpoint> {
        if let Some(endpoint) = Endpoint::prefixed(text)? {
            return Ok(endpoint);
        }
        // A path is no reference (no host starts with `.`), and says what the user meant.
        if text.starts_with('/') || text.starts_with('.') {
            return Err(Error::usage(format!(
                "invalid image {:?}: a path, not a registry reference",
                shown(text)
            ))
            .with_hint(format!(
                "a local image is {OCI_PREFIX}PATH[:TAG] or {ARCHIVE_PREFIX}PATH"
            )));
        }
        ImageRef::parse(text).map(Endpoint::Registry)
    }

    /// Parses the `<image>` of a side that can only be local, looking at the file system for a
    /// bare path (see the module doc).
    pub fn parse_local(text: &str) -> Result<Endpoint> {
        Endpoint::parse_local_with(text, PathKind::of)
    }

    /// [`Endpoint::parse_local`], with `kind` saying what is at a path.
    pub fn parse_local_with(text: &str, kind: impl Fn(&Path) -> PathKind) -> Result<Endpoint> {
        if let Some(endpoint) = Endpoint::prefixed(text)? {
            return Ok(endpoint);
        }
        if text.is_empty() {
            return Err(Error::usage("an empty path names no image"));
        }
        // `-` is stdin, as everywhere: what `docker save` pipes in is an archive.
        if text == "-" {
            return Ok(Endpoint::Archive(ArchiveRef {
                path: PathBuf::from(text),
                reference: None,
            }));
        }
        let path = PathBuf::from(text);
        match kind(&path) {
            PathKind::Directory => Ok(Endpoint::Layout(LayoutRef { path, tag: None })),
            _ if text.ends_with(".tar") => Ok(Endpoint::Archive(ArchiveRef {
                path,
                reference: None,
            })),
            PathKind::Missing => Ok(Endpoint::Layout(LayoutRef { path, tag: None })),
            PathKind::File => Err(Error::usage(format!(
                "{}: neither a layout directory nor a .tar archive",
                shown(text)
            ))
            .with_hint(format!(
                "name it {ARCHIVE_PREFIX}{} if it is a docker archive",
                shown(text)
            ))),
        }
    }

    /// The `oci:` and `docker-archive:` forms; None for anything else.
    fn prefixed(text: &str) -> Result<Option<Endpoint>> {
        if let Some(rest) = text.strip_prefix(OCI_PREFIX) {
            let (path, tag) = split(text, rest)?;
            let tag = tag
                .map(|t| {
                    Tag::new(t).map_err(|e| {
                        Error::usage(format!("invalid image {:?}: {}", shown(text), e.message))
                    })
                })
                .transpose()?;
            return Ok(Some(Endpoint::Layout(LayoutRef { path, tag })));
        }
        if let Some(rest) = text.strip_prefix(ARCHIVE_PREFIX) {
            let (path, reference) = split(text, rest)?;
            let reference = reference
                .map(|r| {
                    ImageRef::parse(r).map_err(|e| {
                        Error::usage(format!("invalid image {:?}: {}", shown(text), e.message))
                    })
                })
                .transpose()?;
            return Ok(Some(Endpoint::Archive(ArchiveRef { path, reference })));
        }
        Ok(None)
    }

    /// Whether the image is on this machine (a layout or an archive).
    pub fn is_local(&self) -> bool {
        !matches!(self, Endpoint::Registry(_))
    }
}

/// Splits `PATH[:REST]` at the first `:` (skopeo's rule); an empty path or an empty rest after
/// a `:` is a usage error.
fn split<'a>(text: &str, rest: &'a str) -> Result<(PathBuf, Option<&'a str>)> {
    let bad = |why: &str| Error::usage(format!("invalid image {:?}: {why}", shown(text)));
    let (path, after) = match rest.split_once(':') {
        Some((p, a)) => (p, Some(a)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(bad("no path"));
    }
    if after == Some("") {
        return Err(bad("nothing after the ':' that ends the path"));
    }
    Ok((PathBuf::from(path), after))
}

impl LayoutRef {
    /// The layout, its temporaries removed and writes stopped on `cancel`. Pass
    /// [`Layout::repo`] as the repository to its [`crate::store::Store`] methods.
    pub fn open(&self, cancel: &Cancel) -> Layout {
        Layout::at(&self.path).with_cancel(cancel.clone())
    }

    /// The manifest the reference names in `layout`: by its tag, else the only image there
    /// (a layout without it is a not-found error; with several images, a usage error).
    pub fn reference(&self, layout: &Layout) -> Result<Reference> {
        match &self.tag {
            Some(tag) => Ok(Reference::Tag(tag.clone())),
            None => Ok(Reference::Digest(
                layout.only_image(&Layout::repo())?.digest,
            )),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Registry(r) => write!(f, "{r}"),
            Endpoint::Layout(l) => {
                write!(f, "{OCI_PREFIX}{}", l.path.display())?;
                match &l.tag {
                    Some(t) => write!(f, ":{t}"),
                    None => Ok(()),
                }
            }
            Endpoint::Archive(a) => {
                write!(f, "{ARCHIVE_PREFIX}{}", a.path.display())?;
                match &a.reference {
                    Some(r) => write!(f, ":{r}"),
                    None => Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;
    use crate::oci::{Descriptor, Digest, media};
    use crate::store::Store;

    fn layout(path: &str, tag: Option<&str>) -> Endpoint {
        Endpoint::Layout(LayoutRef {
            path: path.into(),
            tag: tag.map(|t| Tag::new(t).unwrap()),
        })
    }

    fn archive(path: &str, reference: Option<&str>) -> Endpoint {
        Endpoint::Archive(ArchiveRef {
            path: path.into(),
            reference: reference.map(|r| ImageRef::parse(r).unwrap()),
        })
    }

    #[test]
    fn prefixes_name_layouts_and_archives() {
        let p = |t: &str| Endpoint::parse(t).unwrap();
        assert_eq!(p("oci:/tmp/x"), layout("/tmp/x", None));
        assert_eq!(p("oci:dir:v1"), layout("dir", Some("v1")));
        assert_eq!(p("oci:./a/b:latest"), layout("./a/b", Some("latest")));
        assert_eq!(p("docker-archive:x.tar"), archive("x.tar", None));
        assert_eq!(
            p("docker-archive:/t/x.tar:fred/x:v1"),
            archive("/t/x.tar", Some("fred/x:v1"))
        );
        assert_eq!(
            p("127.0.0.1:5000/fred/x:v1"),
            Endpoint::Registry(ImageRef::parse("127.0.0.1:5000/fred/x:v1").unwrap())
        );
        assert_eq!(
            p("fred/x"),
            Endpoint::Registry(ImageRef::parse("fred/x").unwrap())
        );
        // What is printed parses back.
        for text in [
            "oci:d:v1",
            "oci:d",
            "docker-archive:x.tar:fred/x:v1",
            "a/b:c",
        ] {
            assert_eq!(p(text).to_string(), text);
        }
        assert!(p("oci:d").is_local() && p("docker-archive:d").is_local());
        assert!(!p("fred/x").is_local());
    }

    #[test]
    fn malformed_images_are_usage_errors() {
        for bad in [
            "oci:",
            "oci::v1",
            "oci:dir:",
            "oci:dir:bad tag",
            "oci:/a:b/c:v1",
            "docker-archive:",
            "docker-archive:x.tar:",
            "docker-archive:x.tar:Bad/Name",
            "/abs/dir",
            "",
        ] {
            let e = Endpoint::parse(bad).unwrap_err();
            assert_eq!(e.kind, Kind::Usage, "{bad}");
        }
        let e = Endpoint::parse("./dir").unwrap_err();
        assert!(e.hint.unwrap().contains("oci:PATH"));
    }

    #[test]
    fn a_bare_local_path_is_a_layout_or_an_archive() {
        let kind = |p: &Path| match p.to_str().unwrap() {
            "dir" | "dir.tar" => PathKind::Directory,
            "file.tar" | "file" => PathKind::File,
            _ => PathKind::Missing,
        };
        let p = |t: &str| Endpoint::parse_local_with(t, kind);
        assert_eq!(p("dir").unwrap(), layout("dir", None));
        // An existing directory is a layout, whatever its name.
        assert_eq!(p("dir.tar").unwrap(), layout("dir.tar", None));
        assert_eq!(p("file.tar").unwrap(), archive("file.tar", None));
        assert_eq!(p("new.tar").unwrap(), archive("new.tar", None));
        assert_eq!(p("-").unwrap(), archive("-", None));
        // Never a registry reference: a name that is not there is a layout to create.
        assert_eq!(p("fred/logs").unwrap(), layout("fred/logs", None));
        assert_eq!(p("oci:file:v2").unwrap(), layout("file", Some("v2")));
        assert_eq!(p("file").unwrap_err().kind, Kind::Usage);
        assert_eq!(p("").unwrap_err().kind, Kind::Usage);
        assert_eq!(p("oci:").unwrap_err().kind, Kind::Usage);
    }

    fn put_image(store: &Layout, tag: Option<&str>, content: &[u8]) -> Descriptor {
        let repo = Layout::repo();
        store
            .put_blob(
                &repo,
                &Digest::sha256(media::EMPTY_JSON),
                2,
                &mut &media::EMPTY_JSON[..],
            )
            .unwrap();
        let (d, n) = store
            .put_blob_stream(&repo, &mut &content[..], crate::oci::Algorithm::Sha256)
            .unwrap();
        let manifest =
            crate::oci::manifest::oci_alias(&[crate::oci::manifest::alias_layer(d, n, None)]);
        let reference = match tag {
            Some(t) => Reference::Tag(Tag::new(t).unwrap()),
            None => Reference::Digest(Digest::sha256(&manifest)),
        };
        let digest = store
            .put_manifest(&repo, &reference, &manifest, media::OCI_MANIFEST)
            .unwrap();
        Descriptor::new(media::OCI_MANIFEST, digest, manifest.len() as u64)
    }

    #[test]
    fn a_layout_without_a_tag_names_its_only_image() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        let Endpoint::Layout(bare) = Endpoint::parse(&format!("oci:{}", path.display())).unwrap()
        else {
            unreachable!()
        };
        let store = bare.open(&Cancel::new());
        // No layout there yet.
        assert_eq!(bare.reference(&store).unwrap_err().kind, Kind::NotFound);
        assert!(!store.exists(&Layout::repo()).unwrap());
        let one = put_image(&store, Some("v1"), b"one");
        assert!(path.join("oci-layout").is_file() && path.join("index.json").is_file());
        assert_eq!(
            bare.reference(&store).unwrap(),
            Reference::Digest(one.digest.clone())
        );
        // The tag is the ref.name annotation skopeo reads.
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path.join("index.json")).unwrap()).unwrap();
        assert_eq!(
            index["manifests"][0]["annotations"][media::REF_NAME_ANNOTATION],
            "v1"
        );
        // Any repository name means the layout.
        let other = crate::oci::Repository::new("some/other").unwrap();
        assert_eq!(
            store
                .resolve(&other, &Reference::Tag(Tag::new("v1").unwrap()))
                .unwrap(),
            one.digest
        );
        let missing = store
            .resolve(&other, &Reference::Tag(Tag::new("v9").unwrap()))
            .unwrap_err();
        assert_eq!(missing.kind, Kind::NotFound);
        assert!(missing.message.starts_with(&path.display().to_string()));
        // A second image (untagged) makes the bare name ambiguous.
        let two = put_image(&store, None, b"two");
        store.add_untagged(&Layout::repo(), &two).unwrap();
        store.add_untagged(&Layout::repo(), &two).unwrap();
        let e = bare.reference(&store).unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
        assert!(e.message.contains("2 images"), "{}", e.message);
        assert_eq!(e.hint.as_deref(), Some("its tags: v1"));
        assert_eq!(store.list_tags(&Layout::repo()).unwrap(), ["v1"]);
        assert!(store.list_repos().unwrap().is_empty());
    }

    #[test]
    fn a_malformed_index_is_bad_data() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("index.json"), "{not json").unwrap();
        let store = Layout::at(dir.path());
        let e = store.only_image(&Layout::repo()).unwrap_err();
        assert_eq!(e.kind, Kind::Data);
        std::fs::write(dir.path().join("index.json"), r#"{"manifests":{}}"#).unwrap();
        let e = store
            .resolve(&Layout::repo(), &Reference::Tag(Tag::latest()))
            .unwrap_err();
        assert_eq!(e.kind, Kind::Data);
    }
}
