//! Image references, `[host[:port]/]repo[:tag|@digest]`, with docker's rules: the first
//! component is a host when it has a `.` or a `:` or is `localhost`; `docker.io` names get
//! `library/` for one-word repositories and talk to `registry-1.docker.io`.

use std::fmt;

use crate::error::{Error, Result};
use crate::oci::digest::Digest;
use crate::oci::host::Host;
use crate::oci::name::{Reference, Repository, Tag};

/// An image reference: where (host and repository) and which manifest (tag, digest, or both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry host, when the reference names one (already mapped for Docker Hub).
    pub host: Option<Host>,
    /// The repository.
    pub repo: Repository,
    /// The tag, when given.
    pub tag: Option<Tag>,
    /// The digest, when given (it wins over the tag).
    pub digest: Option<Digest>,
}

const DOCKER_HUB: &str = "registry-1.docker.io";

impl ImageRef {
    /// Parses `[host[:port]/]repo[:tag][@digest]`; anything else is a usage error.
    pub fn parse(text: &str) -> Result<ImageRef> {
        let shown = crate::oci::host::shown(text);
        let bad = |why: &str| Error::usage(format!("invalid image reference {shown:?}: {why}"));
        if text.is_empty() {
            return Err(bad("empty"));
        }
        // `user:password@host/repo`: the `@` is no digest's, and what is before it is secret.
        if text
            .split_once('/')
            .is_some_and(|(first, _)| first.contains('@'))
        {
            return Err(bad(crate::oci::host::HostError::Credentials.reason()).with_hint(
                "a reference carries no credentials: give them as the registry's user name and password",
            ));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => (
                r,
                Some(
                    d.parse::<Digest>()
                        .map_err(|_| bad("the part after @ is not a digest"))?,
                ),
            ),
            None => (text, None),
        };
        let (host, path) = match rest.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first), path)
            }
            _ => (None, rest),
        };
        // A tag is after the last ':' of the path (a host's port was split off above).
        let (repo, tag) = match path.rsplit_once(':') {
            Some((r, t)) => (r, Some(t)),
            None => (path, None),
        };
        let tag = tag
            .map(|t| Tag::new(t).map_err(|_| bad("bad tag")))
            .transpose()?;
        let (host, repo) = match host {
            Some("docker.io" | "index.docker.io") => (Some(DOCKER_HUB), docker_hub_repo(repo)),
            Some(h) => (Some(h), repo.to_string()),
            None => (None, repo.to_string()),
        };
        let host = host
            .map(|h| Host::parse(h).map_err(|why| bad(&format!("{why} in the host {h:?}"))))
            .transpose()?;
        let repo = Repository::new(&repo).map_err(|e| bad(&e.message))?;
        Ok(ImageRef {
            host,
            repo,
            tag,
            digest,
        })
    }

    /// What to ask the manifest endpoint for: the digest if given, else the tag, else `latest`.
    pub fn reference(&self) -> Reference {
        match (&self.digest, &self.tag) {
            (Some(d), _) => Reference::Digest(d.clone()),
            (None, Some(t)) => Reference::Tag(t.clone()),
            (None, None) => Reference::Tag(Tag::latest()),
        }
    }
}

fn docker_hub_repo(repo: &str) -> String {
    if repo.contains('/') {
        repo.to_string()
    } else {
        format!("library/{repo}")
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(h) = &self.host {
            write!(f, "{h}/")?;
        }
        write!(f, "{}", self.repo)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    fn host(s: &str) -> Option<Host> {
        Some(Host::parse(s).unwrap())
    }

    #[test]
    fn hosts_repos_tags_and_digests() {
        let d = Digest::sha256(b"x");
        assert_eq!(
            r("fred/logs"),
            ImageRef {
                host: None,
                repo: Repository::new("fred/logs").unwrap(),
                tag: None,
                digest: None
            }
        );
        assert_eq!(r("fred/logs:v1").tag, Some(Tag::new("v1").unwrap()));
        let full = r(&format!("127.0.0.1:5000/fred/logs:v1@{d}"));
        assert_eq!(full.host, host("127.0.0.1:5000"));
        assert_eq!(full.reference(), Reference::Digest(d));
        assert_eq!(r("localhost/x").host, host("localhost"));
        assert_eq!(r("reg.example/a/b").repo.as_str(), "a/b");
        assert_eq!(r("docker.io/ubuntu").repo.as_str(), "library/ubuntu");
        assert_eq!(r("docker.io/ubuntu").host, host(DOCKER_HUB));
        assert_eq!(
            r("docker.io/apache/airflow:2").repo.as_str(),
            "apache/airflow"
        );
        assert_eq!(r("fred/logs").reference().to_string(), "latest");
        assert_eq!(
            r("reg.example:5000/a:b").to_string(),
            "reg.example:5000/a:b"
        );
    }

    #[test]
    fn malformed_references_are_usage_errors() {
        for bad in [
            "",
            "Fred/logs",
            "fred/logs:",
            "fred/logs@sha256:abc",
            "fred//logs",
            "reg.example:5000/",
            ":tag",
            "a:b:c",
            "x.y?z/repo:t",
            "x.y#z/repo",
            "reg.example:0/repo",
            "[::1/repo",
        ] {
            assert_eq!(
                ImageRef::parse(bad).unwrap_err().kind,
                crate::error::Kind::Usage,
                "{bad}"
            );
        }
    }
}
