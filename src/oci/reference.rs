//! Image references, `[host[:port]/]repo[:tag|@digest]`, with docker's rules: the first
//! component is a host when it has a `.` or a `:` or is `localhost`; `docker.io` names get
//! `library/` for one-word repositories and talk to `registry-1.docker.io`.

use std::fmt;

use crate::error::{Error, Result};
use crate::oci::digest::Digest;
use crate::oci::name::{check_repo, check_tag};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The registry host, when the reference names one (already mapped for Docker Hub).
    pub host: Option<String>,
    pub repo: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

const DOCKER_HUB: &str = "registry-1.docker.io";

impl Reference {
    pub fn parse(text: &str) -> Result<Reference> {
        let bad = |why: &str| Error::usage(format!("invalid image reference {text:?}: {why}"));
        if text.is_empty() {
            return Err(bad("empty"));
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
        if let Some(t) = tag {
            check_tag(t).map_err(|_| bad("bad tag"))?;
        }
        let (host, repo) = match host {
            Some("docker.io" | "index.docker.io") => {
                (Some(DOCKER_HUB.to_string()), docker_hub_repo(repo))
            }
            Some(h) => (Some(h.to_string()), repo.to_string()),
            None => (None, repo.to_string()),
        };
        check_repo(&repo).map_err(|e| bad(&e.message))?;
        Ok(Reference {
            host,
            repo,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// What to ask the manifest endpoint for: the digest if given, else the tag, else `latest`.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
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

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(h) = &self.host {
            write!(f, "{h}/")?;
        }
        f.write_str(&self.repo)?;
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

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn hosts_repos_tags_and_digests() {
        let d = Digest::sha256(b"x");
        assert_eq!(
            r("fred/logs"),
            Reference {
                host: None,
                repo: "fred/logs".into(),
                tag: None,
                digest: None
            }
        );
        assert_eq!(r("fred/logs:v1").tag.as_deref(), Some("v1"));
        let full = r(&format!("127.0.0.1:5000/fred/logs:v1@{d}"));
        assert_eq!(full.host.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(full.reference(), d.to_string());
        assert_eq!(r("localhost/x").host.as_deref(), Some("localhost"));
        assert_eq!(r("reg.example/a/b").repo, "a/b");
        assert_eq!(r("docker.io/ubuntu").repo, "library/ubuntu");
        assert_eq!(r("docker.io/ubuntu").host.as_deref(), Some(DOCKER_HUB));
        assert_eq!(r("docker.io/apache/airflow:2").repo, "apache/airflow");
        assert_eq!(r("fred/logs").reference(), "latest");
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
        ] {
            assert_eq!(
                Reference::parse(bad).unwrap_err().kind,
                crate::error::Kind::Usage,
                "{bad}"
            );
        }
    }
}
