//! pull-image, push-image, digest and copy with OCI layouts, against the real registry and the
//! images of `images::base` (OCI and Docker schema-2 forms, a two-platform index), with skopeo
//! and umoci as the independent readers and writers of the layouts.

use std::path::Path;

use serde_json::Value;

use crate::faults::{Fault, FaultProxy, rule};
use crate::harness::*;
use crate::images::{base, run};

fn resolve(reg: &Registry, repo: &str, tag: &str) -> String {
    regtool(&["resolve", repo, tag])
        .host(reg)
        .run()
        .ok()
        .trim()
        .to_string()
}

fn skopeo_digest(dir: &Path, image: &str) -> String {
    let out = run(dir, "skopeo", &["inspect", "--raw", image]);
    sha256(out.as_bytes())
}

fn index(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap()
}

/// The blob GETs a run made (REGTOOL_DEBUG=1 logs every request).
fn blob_gets(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.contains("GET") && l.contains("/blobs/sha256:"))
        .count()
}

#[test]
fn pull_image_writes_layouts_skopeo_and_umoci_read() {
    base();
    let reg = plain();
    let work = tempdir();
    let dir = work.path();
    // An image into a new layout, by oci:PATH:TAG; one progress bar per blob.
    let pulled = regtool(&["pull-image", "t/base:oci", "oci:L:v1"])
        .host(reg)
        .dir(dir)
        .env("REGTOOL_PROGRESS", "1")
        .run();
    let out = pulled.ok();
    let m = crate::images::manifest(reg, "t/base", "oci");
    for blob in m["layers"].as_array().unwrap().iter().chain([&m["config"]]) {
        let digest = blob["digest"].as_str().unwrap();
        assert!(pulled.stderr.contains(&digest[..19]), "{}", pulled.stderr);
    }
    let oci = resolve(reg, "t/base", "oci");
    assert_eq!(out.trim(), oci);
    assert_eq!(skopeo_digest(dir, "oci:L:v1"), oci);
    run(dir, "umoci", &["unpack", "--image", "L:v1", "bundle"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("bundle/rootfs/etc/two.txt")).unwrap(),
        "base two\n"
    );
    // The Docker form, the tag from the reference, into the same layout as a bare path: kept
    // as it is, so its digest stays (skopeo and umoci read only OCI media types in a layout).
    let out = regtool(&["pull-image", "t/base:docker", "L"])
        .host(reg)
        .dir(dir)
        .run()
        .ok();
    assert_eq!(out.trim(), resolve(reg, "t/base", "docker"));
    // The whole index: both children are in the layout, skopeo reads each platform.
    let out = regtool(&["pull-image", "t/base:multi", "oci:L:multi"])
        .host(reg)
        .dir(dir)
        .run()
        .ok();
    assert_eq!(out.trim(), resolve(reg, "t/base", "multi"));
    assert_eq!(skopeo_digest(dir, "oci:L:multi"), out.trim());
    let arm = run(
        dir,
        "skopeo",
        &["--override-arch", "arm64", "inspect", "oci:L:multi"],
    );
    assert!(arm.contains("\"Architecture\": \"arm64\""), "{arm}");
    let tags: Vec<String> = index(&dir.join("L"))["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["annotations"]["org.opencontainers.image.ref.name"].to_string())
        .collect();
    assert_eq!(tags, ["\"v1\"", "\"docker\"", "\"multi\""]);
    // Again: the manifests are read, no blob is downloaded.
    let again = regtool(&["pull-image", "t/base:multi", "oci:L:multi"])
        .host(reg)
        .dir(dir)
        .env("REGTOOL_DEBUG", "1")
        .run();
    assert_eq!(again.ok().trim(), out.trim());
    assert_eq!(blob_gets(&again.stderr), 0, "{}", again.stderr);
    // The children are read from the layout: the registry is asked for the index alone.
    let manifest_gets: Vec<&str> = again
        .stderr
        .lines()
        .filter(|l| l.contains("GET") && l.contains("/manifests/"))
        .collect();
    assert_eq!(manifest_gets.len(), 1, "{}", again.stderr);
    // By digest, into a layout named without a tag: one untagged entry, which is the layout's
    // only image.
    let pinned = format!("t/base@{oci}");
    regtool(&["pull-image", &pinned, "oci:D"])
        .host(reg)
        .dir(dir)
        .run()
        .ok();
    let entries = index(&dir.join("D"))["manifests"].clone();
    assert_eq!(entries.as_array().unwrap().len(), 1);
    assert_eq!(entries[0]["digest"], oci.as_str());
    assert!(entries[0].get("annotations").is_none(), "{entries}");
    assert_eq!(skopeo_digest(dir, "oci:D"), oci);
}

#[test]
fn pull_image_resumes_a_cut_blob() {
    base();
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("GET", "/blobs/sha256:", Fault::CutResponse(20), 1)],
    );
    let work = tempdir();
    let out = regtool(&[
        "pull-image",
        &format!("{}/t/base:oci", proxy.host),
        "oci:L:x",
    ])
    .dir(work.path())
    .env("REGTOOL_RETRIES", "2")
    .run()
    .ok();
    assert_eq!(out.trim(), resolve(plain(), "t/base", "oci"));
    assert_eq!(proxy.count("FAULT"), 1, "{:?}", proxy.lines());
    assert!(
        proxy.lines().iter().any(|l| l.contains("bytes=20-")),
        "{:?}",
        proxy.lines()
    );
    run(work.path(), "umoci", &["unpack", "--image", "L:x", "b"]);
    // Cut every time, no retries: unavailable (69), and nothing is left.
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("GET", "/blobs/sha256:", Fault::CutResponse(20), 100)],
    );
    regtool(&[
        "pull-image",
        &format!("{}/t/base:oci", proxy.host),
        "oci:Cut:x",
    ])
    .dir(work.path())
    .run()
    .fails(69);
    assert!(!work.path().join("Cut").exists());
}

#[test]
fn a_failed_pull_leaves_nothing_behind() {
    base();
    let reg = plain();
    let work = tempdir();
    let dir = work.path();
    // Not found: no layout is created.
    let e = regtool(&["pull-image", "t/base:nope", "oci:New:v1"])
        .host(reg)
        .dir(dir)
        .run();
    e.fails(2);
    assert!(!dir.join("New").exists());
    // A blob missing in the registry (deleted after the push): 2, and nothing is left of the
    // new layout; in an existing layout, no entry.
    regtool(&["copy", "t/base:oci", "t/holes:v1"])
        .host(reg)
        .run()
        .ok();
    let m: Value = serde_json::from_str(
        &regtool(&["get-manifest", "t/holes", "v1"])
            .host(reg)
            .run()
            .ok(),
    )
    .unwrap();
    let layer = m["layers"][1]["digest"].as_str().unwrap();
    regtool(&["del-blob", "t/holes", layer])
        .host(reg)
        .run()
        .ok();
    regtool(&["pull-image", "t/holes:v1", "oci:New:v1"])
        .host(reg)
        .dir(dir)
        .run()
        .fails(2);
    assert!(!dir.join("New").exists());
    std::fs::create_dir(dir.join("Empty")).unwrap();
    regtool(&["pull-image", "t/holes:v1", "Empty"])
        .host(reg)
        .dir(dir)
        .run()
        .fails(2);
    assert_eq!(std::fs::read_dir(dir.join("Empty")).unwrap().count(), 0);
    let blob = dir.join("blob");
    std::fs::write(&blob, "other").unwrap();
    regtool(&["push-blob", "t/other", blob.to_str().unwrap(), "@v1"])
        .host(reg)
        .run()
        .ok();
    regtool(&["pull-image", "t/other:v1", "oci:Old:d"])
        .host(reg)
        .dir(dir)
        .run()
        .ok();
    let before = std::fs::read(dir.join("Old/index.json")).unwrap();
    regtool(&["pull-image", "t/holes:v1", "oci:Old:v1"])
        .host(reg)
        .dir(dir)
        .run()
        .fails(2);
    assert_eq!(std::fs::read(dir.join("Old/index.json")).unwrap(), before);
    // A malformed index.json in the target: 65 before any download.
    std::fs::create_dir(dir.join("Bad")).unwrap();
    std::fs::write(
        dir.join("Bad/oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(dir.join("Bad/index.json"), "{").unwrap();
    let out = regtool(&["pull-image", "t/base:oci", "oci:Bad:v1"])
        .host(reg)
        .dir(dir)
        .env("REGTOOL_DEBUG", "1")
        .run();
    out.fails(65);
    assert_eq!(blob_gets(&out.stderr), 0, "{}", out.stderr);
    assert!(!dir.join("Bad/blobs").exists());
    // A directory that is no layout and holds files is not written into.
    std::fs::create_dir(dir.join("Mine")).unwrap();
    std::fs::write(dir.join("Mine/notes"), "mine").unwrap();
    regtool(&["pull-image", "t/base:oci", "Mine"])
        .host(reg)
        .dir(dir)
        .run()
        .fails(64);
    assert_eq!(std::fs::read_dir(dir.join("Mine")).unwrap().count(), 1);
    // Usage errors before any request.
    for bad in ["oci:", "oci:X:bad tag", "notes.txt"] {
        std::fs::write(dir.join("notes.txt"), "x").unwrap();
        regtool(&["pull-image", "t/base:oci", bad])
            .host(reg)
            .dir(dir)
            .run()
            .fails(64);
    }
}

#[test]
fn an_interrupted_pull_removes_the_layout_it_created_and_blobs_move_concurrently() {
    base();
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("GET", "/blobs/sha256:", Fault::Stall(10), 1)],
    );
    let work = tempdir();
    let child = regtool(&[
        "pull-image",
        &format!("{}/t/base:oci", proxy.host),
        "oci:L:x",
    ])
    .dir(work.path())
    .spawn();
    wait_until("a blob stalls", || proxy.count("FAULT") == 1);
    // The other blobs (the config, the other layer) land meanwhile: they are fetched
    // concurrently, not behind the stalled one.
    let blobs = work.path().join("L/blobs/sha256");
    wait_until("the other blobs land", || {
        std::fs::read_dir(&blobs).is_ok_and(|d| d.count() == 2)
    });
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!work.path().join("L").exists());
}

#[test]
fn pull_then_push_keeps_every_digest() {
    base();
    let reg = plain();
    let work = tempdir();
    let dir = work.path();
    for tag in ["docker", "oci", "multi"] {
        let source = resolve(reg, "t/base", tag);
        let pulled = regtool(&[
            "pull-image",
            &format!("t/base:{tag}"),
            &format!("oci:L:{tag}"),
        ])
        .host(reg)
        .dir(dir)
        .run()
        .ok();
        assert_eq!(pulled.trim(), source);
        let out = regtool(&[
            "push-image",
            &format!("oci:L:{tag}"),
            &format!("t/back:{tag}"),
        ])
        .host(reg)
        .dir(dir)
        .run()
        .ok();
        assert_eq!(out.trim(), format!("t/back@{source}"));
        assert_eq!(resolve(reg, "t/back", tag), source);
    }
    // Both platforms of the index are whole in the registry.
    let arm = regtool(&["get-alias", "t/back", "multi"])
        .host(reg)
        .env("REGTOOL_PLATFORM", "linux/arm64")
        .run()
        .ok();
    assert_eq!(arm.lines().count(), 2, "{arm}");
}

#[test]
fn push_image_uploads_what_skopeo_wrote() {
    base();
    let reg = plain();
    let work = tempdir();
    let dir = work.path();
    let source = resolve(reg, "t/base", "oci");
    run(
        dir,
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{}/t/base:oci", reg.host),
            "oci:S:v1",
        ],
    );
    // A bare directory: its only image; the tag of the destination.
    let out = regtool(&["push-image", "S", "t/fromskopeo:v2"])
        .host(reg)
        .dir(dir)
        .run()
        .ok();
    assert_eq!(out.trim(), format!("t/fromskopeo@{source}"));
    // Without a destination tag, the layout's; a second push sends no blob.
    let again = regtool(&["push-image", "oci:S:v1", "t/fromskopeo"])
        .host(reg)
        .dir(dir)
        .env("REGTOOL_DEBUG", "1")
        .run();
    assert_eq!(again.ok().trim(), format!("t/fromskopeo@{source}"));
    assert!(!again.stderr.contains("POST"), "{}", again.stderr);
    assert_eq!(resolve(reg, "t/fromskopeo", "v1"), source);
}

#[test]
fn push_image_refuses_layouts_that_are_not_what_they_claim() {
    base();
    let reg = plain();
    let work = tempdir();
    let dir = work.path();
    regtool(&["pull-image", "t/base:oci", "oci:L:v1"])
        .host(reg)
        .dir(dir)
        .run()
        .ok();
    let push = |image: &str, dst: &str| {
        regtool(&["push-image", image, dst])
            .host(reg)
            .dir(dir)
            .env("REGTOOL_DEBUG", "1")
            .run()
    };
    // No such tag, no layout at all: not found.
    push("oci:L:nope", "t/refused:v1").fails(2);
    push("oci:Nothing:v1", "t/refused:v1").fails(2);
    push("Nothing", "t/refused:v1").fails(2);
    // Two images and no tag: which one?
    regtool(&["pull-image", "t/base:docker", "oci:L:docker"])
        .host(reg)
        .dir(dir)
        .run()
        .ok();
    assert!(push("L", "t/refused:v1").fails(64).contains("v1, docker"));
    // A blob missing from the layout: 2 before anything is sent; one of another size: 65.
    let m = crate::images::manifest(reg, "t/base", "oci");
    let layer = m["layers"][0]["digest"].as_str().unwrap();
    let blob = dir.join("L/blobs/sha256").join(&layer[7..]);
    let bytes = std::fs::read(&blob).unwrap();
    std::fs::remove_file(&blob).unwrap();
    let out = push("oci:L:v1", "t/refused:v1");
    out.fails(2);
    assert!(
        !out.stderr.contains("POST") && !out.stderr.contains("PUT"),
        "{}",
        out.stderr
    );
    std::fs::write(&blob, &bytes[1..]).unwrap();
    let out = push("oci:L:v1", "t/refused:v1");
    out.fails(65);
    assert!(
        !out.stderr.contains("POST") && !out.stderr.contains("PUT"),
        "{}",
        out.stderr
    );
    regtool(&["resolve", "t/refused", "v1"])
        .host(reg)
        .run()
        .fails(2);
    // A malformed index.json: 65.
    std::fs::write(dir.join("L/index.json"), "[]").unwrap();
    push("oci:L:v1", "t/refused:v1").fails(65);
    // Usage errors.
    push(
        "oci:L:v1",
        "t/refused@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    )
    .fails(64);
    push("docker.io/library/debian:12", "t/refused:v1").fails(2);
}

#[test]
fn digest_of_a_layout_a_manifest_file_and_the_registry_agree() {
    base();
    let reg = plain();
    let work = tempdir();
    let dir = work.path();
    let digest = |arg: &str| {
        regtool(&["digest", arg])
            .host(reg)
            .dir(dir)
            .run()
            .ok()
            .trim()
            .to_string()
    };
    for tag in ["docker", "oci", "multi"] {
        let source = resolve(reg, "t/base", tag);
        regtool(&[
            "pull-image",
            &format!("t/base:{tag}"),
            &format!("oci:L:{tag}"),
        ])
        .host(reg)
        .dir(dir)
        .run()
        .ok();
        assert_eq!(digest(&format!("oci:L:{tag}")), source);
        assert_eq!(digest(&format!("t/base:{tag}")), source);
        assert_eq!(digest(&format!("{}/t/base:{tag}", reg.host)), source);
        let raw = regtool(&["get-manifest", "t/base", tag])
            .host(reg)
            .run()
            .ok();
        let file = dir.join(format!("{tag}.json"));
        std::fs::write(&file, raw.strip_suffix('\n').unwrap()).unwrap();
        assert_eq!(digest(file.to_str().unwrap()), source);
        let piped = regtool(&["digest", "-"])
            .stdin(raw.strip_suffix('\n').unwrap())
            .run()
            .ok();
        assert_eq!(piped.trim(), source);
    }
    // A bare directory with one image.
    regtool(&["pull-image", "t/base:arm", "One"])
        .host(reg)
        .dir(dir)
        .run()
        .ok();
    assert_eq!(digest("One"), resolve(reg, "t/base", "arm"));
    assert_eq!(digest("oci:One"), resolve(reg, "t/base", "arm"));
    // Not found, not a manifest, ambiguous, corrupt.
    let fails = |arg: &str, status: i32| {
        regtool(&["digest", arg])
            .host(reg)
            .dir(dir)
            .run()
            .fails(status)
            .to_string()
    };
    fails("oci:L:nope", 2);
    fails("oci:Nothing:v1", 2);
    fails("t/base:nope", 2);
    std::fs::write(dir.join("notes.txt"), "not a manifest").unwrap();
    fails("notes.txt", 65);
    fails("L", 64);
    let oci = resolve(reg, "t/base", "oci");
    std::fs::write(dir.join("L/blobs/sha256").join(&oci[7..]), "{}").unwrap();
    fails("oci:L:oci", 65);
}

#[test]
fn copy_between_layouts_and_registries_keeps_digests() {
    base();
    let reg = plain();
    let work = tempdir();
    let dir = work.path();
    let copy = |src: &str, dst: &str| {
        regtool(&["copy", src, dst])
            .host(reg)
            .dir(dir)
            .run()
            .ok()
            .trim()
            .to_string()
    };
    let multi = resolve(reg, "t/base", "multi");
    assert_eq!(copy("t/base:multi", "oci:C:m"), multi);
    assert_eq!(copy("oci:C:m", "t/copied:m"), multi);
    assert_eq!(resolve(reg, "t/copied", "m"), multi);
    // Layout to layout; the destination's tag is the source's.
    assert_eq!(copy("oci:C:m", "oci:C2"), multi);
    assert_eq!(skopeo_digest(dir, "oci:C2:m"), multi);
    // One platform of a layout's index.
    let arm = regtool(&["copy", "oci:C2:m", "t/copied:arm"])
        .host(reg)
        .dir(dir)
        .env("REGTOOL_PLATFORM", "linux/arm64")
        .run()
        .ok();
    assert_eq!(arm.trim(), resolve(reg, "t/base", "arm"));
    // A failed copy into a new layout leaves no directory.
    regtool(&["copy", "t/base:nope", "oci:X:v1"])
        .host(reg)
        .dir(dir)
        .run()
        .fails(2);
    assert!(!dir.join("X").exists());
    regtool(&["copy", "oci:C:m", &format!("t/copied@{multi}")])
        .host(reg)
        .dir(dir)
        .run()
        .fails(64);
}
