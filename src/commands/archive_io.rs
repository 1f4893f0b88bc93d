//! What the image commands share about docker archives: opening one (`-` is stdin, spooled),
//! writing one atomically through `regtool::outfile` (a seekable temporary file, or a device
//! or pipe written as it goes), and the `RepoTags` an image name gives.

use std::path::Path;

use regtool::Cancel;
use regtool::archive::Archive;
use regtool::archive::write::{Output, Writer};
use regtool::error::Result;
use regtool::oci::{ImageRef, Platform};
use regtool::outfile::OutFile;

/// This machine's platform, as images name it (Go's GOOS/GOARCH): what an archive gets from
/// a multi-platform index without REGTOOL_PLATFORM.
pub fn own_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "arm" => "arm",
        other => other,
    };
    Platform {
        os: std::env::consts::OS.to_string(),
        architecture: architecture.to_string(),
        variant: None,
    }
}

/// Opens the archive at `path` (`-`: stdin), its spool files removed on `cancel`.
pub fn open(path: &Path, cancel: &Cancel) -> Result<Archive> {
    let tmp = std::env::temp_dir();
    if path.as_os_str() == "-" {
        return Archive::from_stream("stdin", Box::new(std::io::stdin().lock()), &tmp, cancel);
    }
    Archive::open(path, &tmp, cancel)
}

/// Writes an archive at `path` with `write`: a regular file complete or not at all.
pub fn create(
    path: &Path,
    cancel: &Cancel,
    write: impl FnOnce(Writer<'_>) -> Result<()>,
) -> Result<()> {
    let tmp = std::env::temp_dir();
    let mut out = OutFile::create(path, cancel)?;
    {
        let writer = match out.seekable() {
            Some(file) => Writer::new(Output::Seekable(file), &tmp, cancel),
            None => Writer::new(Output::Stream(&mut out), &tmp, cancel),
        };
        write(writer)?;
    }
    out.commit()
}

/// The `RepoTags` entry for an image name, as docker writes it: `name:tag` (`latest` when
/// no tag is given), Docker Hub names short (`debian:12`, `fred/app:v1`); none for a name
/// that has only a digest.
pub fn repo_tags(name: Option<&ImageRef>) -> Vec<String> {
    let Some(r) = name else {
        return Vec::new();
    };
    let tag = match (&r.tag, &r.digest) {
        (Some(t), _) => t.to_string(),
        (None, Some(_)) => return Vec::new(),
        (None, None) => "latest".to_string(),
    };
    let repo = r.repo.to_string();
    let name = match &r.host {
        Some(h) if h.to_string() != "registry-1.docker.io" => format!("{h}/{repo}"),
        Some(_) => repo.strip_prefix("library/").unwrap_or(&repo).to_string(),
        None => repo,
    };
    vec![format!("{name}:{tag}")]
}

#[cfg(test)]
mod tests {
    #[test]
    fn repo_tags_are_docker_names() {
        let t = |text: &str| super::repo_tags(Some(&regtool::oci::ImageRef::parse(text).unwrap()));
        assert_eq!(t("fred/app"), ["fred/app:latest"]);
        assert_eq!(t("debian:12"), ["debian:12"]);
        assert_eq!(t("docker.io/library/debian:12"), ["debian:12"]);
        assert_eq!(t("127.0.0.1:5000/t/x:v1"), ["127.0.0.1:5000/t/x:v1"]);
        let pinned = format!("fred/app@sha256:{}", "a".repeat(64));
        assert!(t(&pinned).is_empty());
        assert!(super::repo_tags(None).is_empty());
    }
}
