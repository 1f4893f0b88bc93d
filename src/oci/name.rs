//! Repository names, tags (aliases) and the `digest|@alias` arguments of the blob commands,
//! validated with the grammar of the distribution spec so that bad input is a usage error
//! before any request is made.

use std::fmt;

use crate::error::{Error, Result};
use crate::oci::digest::Digest;

/// Checks a repository name: `/`-separated components of `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
/// (distribution spec, "Pulling manifests"), 255 characters at most.
pub fn check_repo(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::usage(format!(
            "invalid repository name {name:?}: {why}"
        )))
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 255 {
        return bad("longer than 255 characters");
    }
    for component in name.split('/') {
        if !component_ok(component) {
            return bad(
                "use lower-case letters, digits and single separators (. _ __ -) between them, parts joined by /",
            );
        }
    }
    Ok(())
}

fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or any number of "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Checks a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn check_tag(tag: &str) -> Result<()> {
    let b = tag.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    if b.is_empty()
        || b.len() > 128
        || !word(b[0])
        || !b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
    {
        return Err(Error::usage(format!(
            "invalid alias {tag:?}: up to 128 letters, digits, _ . - (not starting with . or -)"
        )));
    }
    Ok(())
}

/// A repository name, valid by construction (see [`check_repo`]): a relative `/`-separated
/// path of lower-case words that no backend has to check again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository(String);

impl Repository {
    /// Validates `name`; a bad one is a usage error.
    pub fn new(name: &str) -> Result<Repository> {
        check_repo(name)?;
        Ok(Repository(name.to_string()))
    }

    /// `image`: the name a single OCI layout is reached by (it has one repository, and
    /// ignores the name; see `Layout::at`).
    pub fn single_layout() -> Repository {
        Repository("image".to_string())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `/`-separated parts, each a non-empty word (never `.` or `..`).
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Repository {
    type Err = Error;
    fn from_str(s: &str) -> Result<Repository> {
        Repository::new(s)
    }
}

/// A tag (what the CLI calls an alias), valid by construction (see [`check_tag`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Validates `name`; a bad one is a usage error.
    pub fn new(name: &str) -> Result<Tag> {
        check_tag(name)?;
        Ok(Tag(name.to_string()))
    }

    /// `latest`, what an image reference without tag or digest names.
    pub fn latest() -> Tag {
        Tag("latest".to_string())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Tag {
    type Err = Error;
    fn from_str(s: &str) -> Result<Tag> {
        Tag::new(s)
    }
}

/// What a manifest is named by in a repository: a tag or a digest (the `<reference>` of the
/// distribution spec's `/v2/<name>/manifests/<reference>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A tag, which the store resolves.
    Tag(Tag),
    /// A digest, which names the content itself.
    Digest(Digest),
}

impl Reference {
    /// The digest, when the reference is one.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Reference::Digest(d) => Some(d),
            Reference::Tag(_) => None,
        }
    }
}

/// A digest-shaped text (`sha256:…`, `sha512:…`) is a digest, anything else a tag.
impl std::str::FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Reference> {
        if s.starts_with("sha256:") || s.starts_with("sha512:") {
            return Ok(Reference::Digest(s.parse()?));
        }
        Ok(Reference::Tag(Tag::new(s)?))
    }
}

impl From<Tag> for Reference {
    fn from(t: Tag) -> Reference {
        Reference::Tag(t)
    }
}

impl From<Digest> for Reference {
    fn from(d: Digest) -> Reference {
        Reference::Digest(d)
    }
}

impl From<&Tag> for Reference {
    fn from(t: &Tag) -> Reference {
        Reference::Tag(t.clone())
    }
}

impl From<&Digest> for Reference {
    fn from(d: &Digest) -> Reference {
        Reference::Digest(d.clone())
    }
}

/// The tag or the digest, as it goes in a manifest URL.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => write!(f, "{t}"),
            Reference::Digest(d) => write!(f, "{d}"),
        }
    }
}

/// Checks names a registry or store listed (tags, repositories) with `check`, the grammar an
/// argument must follow, before anything prints them: a name outside it could carry terminal
/// escapes or newlines to the user's screen, and could not be given back to regtool. Such a
/// name is the store's fault, so it is a data error, not a usage error.
pub fn check_listed(names: &[String], check: fn(&str) -> Result<()>) -> Result<()> {
    names
        .iter()
        .try_for_each(|n| check(n).map_err(|e| Error::data(e.message)))
}

/// The name of an alias given with or without its `@`.
pub fn alias_name(arg: &str) -> Result<Tag> {
    Tag::new(arg.strip_prefix('@').unwrap_or(arg))
}

/// A `digest|@alias` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A blob digest.
    Digest(Digest),
    /// An alias (a tag), without its `@`.
    Alias(Tag),
}

impl Target {
    /// `@name` is an alias; a digest-shaped word is a digest; any other valid tag is an alias
    /// (aliases are accepted with or without `@`, as dxf took them); anything else is a usage
    /// error.
    pub fn parse(arg: &str) -> Result<Target> {
        if let Some(name) = arg.strip_prefix('@') {
            return Ok(Target::Alias(Tag::new(name)?));
        }
        if arg.starts_with("sha256:") || arg.starts_with("sha512:") {
            return Ok(Target::Digest(arg.parse()?));
        }
        if let Ok(tag) = Tag::new(arg) {
            return Ok(Target::Alias(tag));
        }
        Err(Error::usage(format!(
            "{arg:?} is neither a digest (sha256:<64 hex>) nor an alias"
        )))
    }

    /// The manifest reference: the tag or the digest.
    pub fn reference(&self) -> Reference {
        match self {
            Target::Digest(d) => Reference::Digest(d.clone()),
            Target::Alias(a) => Reference::Tag(a.clone()),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Digest(d) => write!(f, "{d}"),
            Target::Alias(a) => write!(f, "@{a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_the_spec() {
        for good in [
            "fred",
            "fred/logs",
            "a.b_c__d---e/f0",
            "library/ubuntu",
            "0",
        ] {
            assert!(check_repo(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Fred",
            "fred/",
            "/fred",
            "fred//logs",
            "a..b",
            "a___b",
            "-a",
            "a-",
            "a b",
            "a:b",
            &"a".repeat(256),
        ] {
            assert!(check_repo(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tags_follow_the_spec() {
        for good in ["latest", "may15", "_x", "A.b-c", &"a".repeat(128)] {
            assert!(check_tag(good).is_ok(), "{good}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", "a b", &"a".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn listed_names_outside_the_grammar_are_data_errors() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_listed(&names(&["v1", "latest"]), check_tag).is_ok());
        let err = check_listed(&names(&["v1", "a\u{1b}[2Jb"]), check_tag).unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Data);
        assert!(err.message.contains(r#""a\u{1b}[2Jb""#), "{}", err.message);
        assert!(check_listed(&names(&["x\ny"]), check_tag).is_err());
        assert!(check_listed(&names(&["fred/logs", "Evil\u{202e}"]), check_repo).is_err());
    }

    #[test]
    fn targets_tell_digests_from_aliases() {
        let d = Digest::sha256(b"x");
        assert_eq!(Target::parse(&d.to_string()).unwrap(), Target::Digest(d));
        assert_eq!(
            Target::parse("@may15").unwrap(),
            Target::Alias(Tag::new("may15").unwrap())
        );
        assert_eq!(
            Target::parse("may15").unwrap(),
            Target::Alias(Tag::new("may15").unwrap())
        );
        for bad in ["sha256:abc", "@", "@a/b", "a/b", "sha1:abc", "md5:00"] {
            assert_eq!(
                Target::parse(bad).unwrap_err().kind,
                crate::error::Kind::Usage,
                "{bad}"
            );
        }
    }
}
