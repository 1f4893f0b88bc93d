//! The digest cache: a file pushed again is not hashed again (one HEAD), an entry is kept in
//! REGTOOL_CACHE_DIR (0600 in a 0700 directory), a wrong entry never makes a wrong blob (the
//! registry refuses the upload, and the file is hashed and pushed again), a file modified in
//! the second its entry was written is not trusted, and REGTOOL_DIGEST_CACHE=0 turns it off.
//! The layers of a docker archive have entries too: an archive pushed again compresses and
//! uploads no layer.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::faults::FaultProxy;
use crate::harness::*;

/// A file of `len` pseudo-random bytes whose mtime is `mtime`.
fn file_at(dir: &Path, len: usize, seed: u64, mtime: SystemTime) -> (PathBuf, Vec<u8>) {
    let data = bytes(len, seed);
    let path = dir.join(format!("f{seed}.bin"));
    std::fs::write(&path, &data).unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(mtime).unwrap();
    (path, data)
}

fn an_hour_ago() -> SystemTime {
    SystemTime::now() - Duration::from_secs(3600)
}

/// push-blob through a logging proxy, with the digest cache in `cache`.
fn push(cache: &Path, repo: &str, file: &Path) -> (Run, Vec<String>) {
    let proxy = FaultProxy::start(&plain().host, vec![]);
    let out = regtool(&["push-blob", repo, file.to_str().unwrap()])
        .env("REGTOOL_HOST", &proxy.host)
        .env("REGTOOL_INSECURE", "1")
        .env("REGTOOL_CACHE_DIR", cache)
        .run();
    (out, proxy.lines())
}

/// Replaces one digest by another in every entry of the cache, as a corrupt cache would.
fn forge(cache: &Path, from: &str, to: &str) -> usize {
    let (from, to) = (&from["sha256:".len()..], &to["sha256:".len()..]);
    let mut forged = 0;
    for shard in std::fs::read_dir(cache.join("digests")).unwrap().flatten() {
        let text = std::fs::read_to_string(shard.path()).unwrap();
        forged += text.matches(from).count();
        std::fs::write(shard.path(), text.replace(from, to)).unwrap();
    }
    forged
}

fn mentions(lines: &[String], digest: &str) -> bool {
    lines.iter().any(|l| l.contains(&digest["sha256:".len()..]))
}

#[test]
fn a_file_pushed_again_costs_one_head_and_a_wrong_entry_is_caught() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let (file, data) = file_at(dir.path(), 200_000, 801, an_hour_ago());
    let want = sha256(&data);
    let (out, _) = push(&cache, "t/dcache", &file);
    assert_eq!(out.ok().trim(), want);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&cache.join("digests")), 0o700);
    let shards: Vec<PathBuf> = std::fs::read_dir(cache.join("digests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(shards.len(), 1, "{shards:?}");
    assert_eq!(mode(&shards[0]), 0o600);

    // Pushed again: one HEAD, nothing else.
    let (out, lines) = push(&cache, "t/dcache", &file);
    assert_eq!(out.ok().trim(), want);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("HEAD /v2/t/dcache/blobs/sha256:"),
        "{lines:?}"
    );

    // A wrong entry: the registry refuses the upload under that digest; the file is then
    // hashed and pushed under its own, and the entry is right again.
    let wrong = sha256(b"not the file");
    assert_eq!(forge(&cache, &want, &wrong), 1);
    let (out, lines) = push(&cache, "t/dcache-2", &file);
    assert_eq!(out.ok().trim(), want, "{}", out.stderr);
    assert!(
        mentions(&lines, &wrong),
        "the forged entry was used: {lines:?}"
    );
    assert_eq!(pulled_blob("t/dcache-2", &want), data);
    assert_eq!(
        regtool(&["blob-size", "t/dcache-2", &wrong])
            .host(plain())
            .run()
            .status,
        2,
        "no blob under the wrong digest"
    );
    let (out, lines) = push(&cache, "t/dcache-2", &file);
    assert_eq!(out.ok().trim(), want);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(!mentions(&lines, &wrong));
}

fn pulled_blob(repo: &str, digest: &str) -> Vec<u8> {
    regtool(&["pull-blob", repo, digest])
        .host(plain())
        .run()
        .stdout
}

#[test]
fn a_file_modified_in_the_second_of_its_entry_is_hashed_again() {
    // An mtime in the future is never in an earlier second than the entry: racy forever.
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let future = SystemTime::now() + Duration::from_secs(3600);
    let (file, data) = file_at(dir.path(), 200_000, 802, future);
    let want = sha256(&data);
    assert_eq!(push(&cache, "t/dcache-racy", &file).0.ok().trim(), want);
    let wrong = sha256(b"not this file either");
    assert_eq!(forge(&cache, &want, &wrong), 1);
    let (out, lines) = push(&cache, "t/dcache-racy", &file);
    assert_eq!(out.ok().trim(), want);
    assert!(
        !mentions(&lines, &wrong),
        "a racy entry was trusted: {lines:?}"
    );
}

#[test]
fn digest_cache_0_never_reads_nor_writes_the_cache() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let (file, data) = file_at(dir.path(), 200_000, 803, an_hour_ago());
    let want = sha256(&data);
    assert_eq!(push(&cache, "t/dcache-off", &file).0.ok().trim(), want);
    let wrong = sha256(b"forged");
    assert_eq!(forge(&cache, &want, &wrong), 1);
    let before = std::fs::read_dir(cache.join("digests")).unwrap().count();
    for off in ["0", "false"] {
        let proxy = FaultProxy::start(&plain().host, vec![]);
        let out = regtool(&["push-blob", "t/dcache-off", file.to_str().unwrap()])
            .env("REGTOOL_HOST", &proxy.host)
            .env("REGTOOL_INSECURE", "1")
            .env("REGTOOL_CACHE_DIR", &cache)
            .env("REGTOOL_DIGEST_CACHE", off)
            .run();
        assert_eq!(out.ok().trim(), want);
        assert!(!mentions(&proxy.lines(), &wrong), "{:?}", proxy.lines());
    }
    // Nothing was written: the forged entry is still there.
    assert_eq!(forge(&cache, &wrong, &wrong), 1);
    assert_eq!(
        std::fs::read_dir(cache.join("digests")).unwrap().count(),
        before
    );
    // A value that is no boolean is a configuration error before any request.
    let out = regtool(&["push-blob", "t/dcache-off", file.to_str().unwrap()])
        .host(plain())
        .env("REGTOOL_DIGEST_CACHE", "sometimes")
        .run();
    assert!(
        out.fails(78).contains("REGTOOL_DIGEST_CACHE"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_large_file_pushed_again_opens_no_upload() {
    // From 8 MiB a file not in the cache is hashed while an upload starts (a session opened,
    // then cancelled when the blob is there); in the cache, it costs one HEAD.
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let (file, data) = file_at(dir.path(), 9 << 20, 804, an_hour_ago());
    let want = sha256(&data);
    let (out, lines) = push(&cache, "t/dcache-large", &file);
    assert_eq!(out.ok().trim(), want);
    assert!(lines.iter().any(|l| l.starts_with("PATCH ")), "{lines:?}");
    let (out, lines) = push(&cache, "t/dcache-large", &file);
    assert_eq!(out.ok().trim(), want);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("HEAD /v2/t/dcache-large/blobs/sha256:"),
        "{lines:?}"
    );
    // Without the cache: a session opened and cancelled, nothing closed.
    let proxy = FaultProxy::start(&plain().host, vec![]);
    let out = regtool(&["push-blob", "t/dcache-large", file.to_str().unwrap()])
        .env("REGTOOL_HOST", &proxy.host)
        .env("REGTOOL_INSECURE", "1")
        .env("REGTOOL_CACHE_DIR", &cache)
        .env("REGTOOL_DIGEST_CACHE", "0")
        .run();
    assert_eq!(out.ok().trim(), want);
    let lines = proxy.lines();
    assert!(lines.iter().any(|l| l.starts_with("POST ")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("DELETE ")), "{lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("PUT ")), "{lines:?}");
}

/// A docker archive of two plain layers of 100 kB each (make-image), an hour old.
fn old_archive(dir: &Path) -> PathBuf {
    let mut layers = Vec::new();
    for (name, seed) in [("one", 811), ("two", 812)] {
        let root = dir.join(format!("root-{name}"));
        std::fs::create_dir_all(root.join("srv")).unwrap();
        std::fs::write(root.join("srv").join(name), bytes(100_000, seed)).unwrap();
        let tar = dir.join(format!("{name}.tar"));
        let status = std::process::Command::new("tar")
            .args(["-cf", tar.to_str().unwrap(), "srv"])
            .current_dir(&root)
            .status()
            .unwrap();
        assert!(status.success());
        layers.push(tar.display().to_string());
    }
    let archive = dir.join("img.tar");
    regtool(&[
        "make-image",
        &layers[0],
        &layers[1],
        "-o",
        archive.to_str().unwrap(),
    ])
    .run()
    .ok();
    let f = std::fs::File::options().write(true).open(&archive).unwrap();
    f.set_modified(an_hour_ago()).unwrap();
    archive
}

/// push-image of `archive` through a logging proxy, with the digest cache in `cache`.
fn push_archive(
    cache: &Path,
    archive: &Path,
    dst: &str,
    env: &[(&str, &str)],
) -> (Run, Vec<String>) {
    let proxy = FaultProxy::start(&plain().host, vec![]);
    let mut cmd = regtool(&["push-image", archive.to_str().unwrap(), dst])
        .env("REGTOOL_HOST", &proxy.host)
        .env("REGTOOL_INSECURE", "1")
        .env("REGTOOL_CACHE_DIR", cache);
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    (cmd.run(), proxy.lines())
}

/// Whether a request uploaded a blob (opened, sent or closed an upload).
fn uploads(lines: &[String]) -> bool {
    lines.iter().any(|l| {
        l.starts_with("POST ")
            || l.starts_with("PATCH ")
            || l.starts_with("PUT /v2/t/arc-cache/blobs/")
    })
}

#[test]
fn an_archive_pushed_again_uploads_no_layer_and_a_wrong_entry_is_caught() {
    let dir = tempdir();
    let d = dir.path();
    let cache = d.join("cache");
    let archive = old_archive(d);
    let (out, lines) = push_archive(&cache, &archive, "t/arc-cache:v1", &[]);
    let first = out.ok().trim().to_string();
    assert!(first.starts_with("t/arc-cache@sha256:"), "{first}");
    assert!(uploads(&lines), "{lines:?}");
    let digest = &first["t/arc-cache@".len()..];

    // Again: a HEAD per layer and the config, then the manifest; no upload.
    let (out, lines) = push_archive(&cache, &archive, "t/arc-cache:v2", &[]);
    assert_eq!(out.ok().trim(), first);
    assert!(!uploads(&lines), "{lines:?}");
    let heads = lines
        .iter()
        .filter(|l| l.starts_with("HEAD /v2/t/arc-cache/blobs/"))
        .count();
    assert_eq!(heads, 3, "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("PUT /v2/t/arc-cache/manifests/v2")),
        "{lines:?}"
    );

    // REGTOOL_DIGEST_CACHE=0: compressed and uploaded again, the same image.
    let (out, lines) = push_archive(
        &cache,
        &archive,
        "t/arc-cache:v3",
        &[("REGTOOL_DIGEST_CACHE", "0")],
    );
    assert_eq!(out.ok().trim(), first);
    assert!(uploads(&lines), "{lines:?}");

    // Wrong entries (every layer's digest forged): the registry has no such blob, so the
    // layers are compressed and uploaded as if not cached, the image is right, and the
    // entries are right again.
    let manifest: serde_json::Value = serde_json::from_slice(
        &regtool(&["get-manifest", "t/arc-cache", digest])
            .host(plain())
            .run()
            .stdout,
    )
    .unwrap();
    let wrong = sha256(b"no such layer");
    for l in manifest["layers"].as_array().unwrap() {
        assert_eq!(forge(&cache, l["digest"].as_str().unwrap(), &wrong), 1);
    }
    let (out, lines) = push_archive(&cache, &archive, "t/arc-cache:v4", &[]);
    assert_eq!(out.ok().trim(), first, "{}", out.stderr);
    assert!(
        mentions(&lines, &wrong),
        "the forged entries were not used: {lines:?}"
    );
    assert!(uploads(&lines), "{lines:?}");
    let (out, lines) = push_archive(&cache, &archive, "t/arc-cache:v5", &[]);
    assert_eq!(out.ok().trim(), first);
    assert!(!uploads(&lines) && !mentions(&lines, &wrong), "{lines:?}");

    // `digest` fills the cache as well: then push-image has nothing to compress.
    let fresh = d.join("fresh");
    let predicted = regtool(&["digest", archive.to_str().unwrap()])
        .env("REGTOOL_CACHE_DIR", &fresh)
        .run()
        .ok();
    assert_eq!(predicted.trim(), digest);
    let (out, lines) = push_archive(&fresh, &archive, "t/arc-cache:v6", &[]);
    assert_eq!(out.ok().trim(), first);
    assert!(!uploads(&lines), "{lines:?}");
}
