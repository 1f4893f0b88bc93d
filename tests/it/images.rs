//! append-layer and copy against the real registry, with real images built by umoci and
//! pushed by skopeo (OCI and Docker schema-2 forms, and a two-platform index), checked by
//! skopeo and umoci afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::harness::*;

pub(crate) fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A base image with two layers (/etc/one.txt, /etc/two.txt) in an OCI layout, for amd64
/// and arm64, pushed to the plain registry as t/base:oci, t/base:docker, t/base:arm and a
/// two-platform index t/base:multi.
pub(crate) struct Base {
    layout: PathBuf,
}

pub(crate) fn base() -> &'static Base {
    static B: OnceLock<Base> = OnceLock::new();
    B.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("umoci-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap().keep();
        run(&dir, "umoci", &["init", "--layout", "L"]);
        run(&dir, "umoci", &["new", "--image", "L:base"]);
        for (name, text) in [("one.txt", "base one\n"), ("two.txt", "base two\n")] {
            let _ = std::fs::remove_dir_all(dir.join("bundle"));
            run(&dir, "umoci", &["unpack", "--image", "L:base", "bundle"]);
            std::fs::create_dir_all(dir.join("bundle/rootfs/etc")).unwrap();
            std::fs::write(dir.join("bundle/rootfs/etc").join(name), text).unwrap();
            run(&dir, "umoci", &["repack", "--image", "L:base", "bundle"]);
        }
        run(&dir, "umoci", &["config", "--image", "L:base", "--tag", "arm", "--architecture", "arm64"]);
        let reg = plain();
        let push = |tag: &str, dest: &str, format: Option<&str>| {
            let mut args = vec!["copy", "--dest-tls-verify=false"];
            if let Some(f) = format {
                args.extend(["--format", f]);
            }
            let (src, dst) = (format!("oci:L:{tag}"), format!("docker://{}/t/base:{dest}", reg.host));
            args.extend([src.as_str(), dst.as_str()]);
            run(&dir, "skopeo", &args);
        };
        push("base", "oci", None);
        push("base", "docker", Some("v2s2"));
        push("arm", "arm", None);
        // get-manifest adds one newline after the raw bytes.
        let manifest = |tag: &str| {
            let out = regtool(&["get-manifest", "t/base", tag]).host(reg).run().ok();
            out.strip_suffix('\n').unwrap_or(&out).to_string()
        };
        let (amd, arm) = (manifest("oci"), manifest("arm"));
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(amd.as_bytes()), "size": amd.len(), "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(arm.as_bytes()), "size": arm.len(), "platform": {"os": "linux", "architecture": "arm64"}},
            ]
        })
        .to_string();
        let store = regtool::registry::Registry::new(&regtool::registry::Options::new(reg.host.parse().unwrap()));
        regtool::Store::put_manifest(&store, &"t/base".parse().unwrap(), &"multi".parse().unwrap(), index.as_bytes(), "application/vnd.oci.image.index.v1+json").unwrap();
        Base { layout: dir }
    })
}

/// A tar of `files` (path, content), made by the tar command.
fn tarball(dir: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let root = dir.join(format!("{name}.d"));
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let out = dir.join(name);
    run(
        dir,
        "tar",
        &[
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-C",
            root.to_str().unwrap(),
            "-cf",
            out.to_str().unwrap(),
            ".",
        ],
    );
    out
}

pub(crate) fn manifest(reg: &Registry, repo: &str, tag: &str) -> Value {
    serde_json::from_str(&regtool(&["get-manifest", repo, tag]).host(reg).run().ok()).unwrap()
}

pub(crate) fn config(reg: &Registry, repo: &str, m: &Value) -> Value {
    let digest = m["config"]["digest"].as_str().unwrap();
    serde_json::from_slice(&regtool(&["pull-blob", repo, digest]).host(reg).run().stdout).unwrap()
}

/// The files of an image, as skopeo copies it out and umoci unpacks it.
fn unpacked_files(reg: &Registry, image: &str) -> Vec<String> {
    let dir = tempdir();
    run(
        dir.path(),
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{}/{image}", reg.host),
            "oci:OUT:x",
        ],
    );
    run(
        dir.path(),
        "umoci",
        &["unpack", "--image", "OUT:x", "bundle"],
    );
    let mut files = Vec::new();
    let root = dir.path().join("bundle/rootfs");
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files.push(
                    e.path()
                        .strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    files.sort();
    files
}

#[test]
fn append_to_oci_and_docker_images_keeps_their_family() {
    base();
    let reg = plain();
    let dir = tempdir();
    let tar = tarball(
        dir.path(),
        "dags.tar",
        &[("opt/dags/d.py", "print('dag')\n")],
    );
    for (form, layer_type, config_type) in [
        (
            "oci",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.config.v1+json",
        ),
        (
            "docker",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "application/vnd.docker.container.image.v1+json",
        ),
    ] {
        let out = regtool(&[
            "append-layer",
            &format!("t/base:{form}"),
            &format!("t/appended:{form}"),
            tar.to_str().unwrap(),
        ])
        .host(reg)
        .run();
        let printed = out.ok();
        let m = manifest(reg, "t/appended", form);
        assert_eq!(
            printed.trim(),
            format!(
                "t/appended@{}",
                sha256(serde_json::to_string(&m).unwrap().as_bytes())
            )
        );
        let layers = m["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 3);
        assert!(
            layers.iter().all(
                |l| l["mediaType"].as_str().unwrap().contains(if form == "oci" {
                    "oci"
                } else {
                    "docker"
                })
            ),
            "{m}"
        );
        assert_eq!(layers[2]["mediaType"], layer_type);
        assert_eq!(m["config"]["mediaType"], config_type);
        // The config keeps every field in order, with one more diff_id and history entry.
        let (old_m, new_c) = (manifest(reg, "t/base", form), config(reg, "t/appended", &m));
        let old_c = config(reg, "t/base", &old_m);
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&old_c), keys(&new_c));
        assert_eq!(new_c["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
        assert_eq!(
            new_c["rootfs"]["diff_ids"][2],
            sha256(&std::fs::read(&tar).unwrap())
        );
        assert_eq!(
            new_c["history"].as_array().unwrap().len(),
            old_c["history"].as_array().unwrap().len() + 1
        );
        assert_eq!(new_c["architecture"], old_c["architecture"]);
        // Tools no one here wrote accept it, and see the new files on top of the base.
        assert_eq!(
            unpacked_files(reg, &format!("t/appended:{form}")),
            ["etc/one.txt", "etc/two.txt", "opt/dags/d.py"]
        );
    }
}

#[test]
fn appendlayer_form_stdin_and_reproducibility() {
    base();
    let reg = plain();
    let dir = tempdir();
    let tar = tarball(dir.path(), "x.tar", &[("x/file", "same input\n")]);
    let bytes = std::fs::read(&tar).unwrap();
    let a = regtool(&["append-layer", "t/base", "oci", "repro1"])
        .host(reg)
        .stdin(bytes.clone())
        .run()
        .ok();
    let b = regtool(&["append-layer", "t/base:oci", "t/base:repro2", "-"])
        .host(reg)
        .stdin(bytes.clone())
        .run()
        .ok();
    let digest = |s: &str| s.trim().split('@').nth(1).unwrap().to_string();
    assert_eq!(
        digest(&a),
        digest(&b),
        "the same base and tar give the same image"
    );
    assert_eq!(a.trim(), format!("t/base@{}", digest(&a)));
    // With SOURCE_DATE_EPOCH the history entry carries that time, and is just as reproducible.
    let run_epoch = || {
        regtool(&[
            "append-layer",
            "t/base:oci",
            "t/base:epoch",
            tar.to_str().unwrap(),
        ])
        .host(reg)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .run()
        .ok()
    };
    assert_eq!(run_epoch(), run_epoch());
    let c = config(reg, "t/base", &manifest(reg, "t/base", "epoch"));
    assert_eq!(
        c["history"].as_array().unwrap().last().unwrap()["created"],
        "2023-11-14T22:13:20Z"
    );
    // A digest names the source as well as a tag does.
    let base_digest = regtool(&["resolve", "t/base", "oci"]).host(reg).run().ok();
    let by_digest = regtool(&[
        "append-layer",
        &format!("t/base@{}", base_digest.trim()),
        "t/base:repro3",
        tar.to_str().unwrap(),
    ])
    .host(reg)
    .run()
    .ok();
    assert_eq!(digest(&by_digest), digest(&a));
    // Several tarballs: several layers, in order.
    let t2 = tarball(dir.path(), "y.tar", &[("y/file", "second\n")]);
    regtool(&[
        "append-layer",
        "t/base:oci",
        "t/base:two",
        tar.to_str().unwrap(),
        t2.to_str().unwrap(),
    ])
    .host(reg)
    .run()
    .ok();
    let m = manifest(reg, "t/base", "two");
    assert_eq!(m["layers"].as_array().unwrap().len(), 4);
    assert_eq!(
        unpacked_files(reg, "t/base:two"),
        ["etc/one.txt", "etc/two.txt", "x/file", "y/file"]
    );
}

#[test]
fn compressed_input_and_zstd() {
    base();
    let reg = plain();
    let dir = tempdir();
    let tar = tarball(dir.path(), "z.tar", &[("z/file", "zzz\n")]);
    let raw = std::fs::read(&tar).unwrap();
    // Already gzipped: uploaded as is, the diff_id still that of the tar.
    let gz = dir.path().join("z.tar.gz");
    let out = Command::new("gzip")
        .args(["-n", "-c"])
        .arg(&tar)
        .output()
        .unwrap();
    std::fs::write(&gz, &out.stdout).unwrap();
    regtool(&[
        "append-layer",
        "t/base:oci",
        "t/base:gz",
        gz.to_str().unwrap(),
    ])
    .host(reg)
    .run()
    .ok();
    let m = manifest(reg, "t/base", "gz");
    assert_eq!(m["layers"][2]["digest"], sha256(&out.stdout));
    assert_eq!(
        config(reg, "t/base", &m)["rootfs"]["diff_ids"][2],
        sha256(&raw)
    );
    // zstd on an OCI image; refused on a Docker image (no media type for it), tag untouched.
    regtool(&[
        "append-layer",
        "t/base:oci",
        "t/base:zstd",
        tar.to_str().unwrap(),
    ])
    .host(reg)
    .env("REGTOOL_COMPRESSION", "zstd")
    .run()
    .ok();
    let m = manifest(reg, "t/base", "zstd");
    assert_eq!(
        m["layers"][2]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    // Debian's umoci cannot unpack zstd layers: decompress ours and compare with the tar.
    let blob = regtool(&[
        "pull-blob",
        "t/base",
        m["layers"][2]["digest"].as_str().unwrap(),
    ])
    .host(reg)
    .run()
    .stdout;
    assert_eq!(zstd::decode_all(&blob[..]).unwrap(), raw);
    let out = regtool(&[
        "append-layer",
        "t/base:docker",
        "t/base:docker-zstd",
        tar.to_str().unwrap(),
    ])
    .host(reg)
    .env("REGTOOL_COMPRESSION", "zstd")
    .run();
    assert!(out.fails(65).contains("zstd"), "{}", out.stderr);
    regtool(&["resolve", "t/base", "docker-zstd"])
        .host(reg)
        .run()
        .fails(2);
    regtool(&[
        "append-layer",
        "t/base:oci",
        "t/base:none",
        tar.to_str().unwrap(),
    ])
    .host(reg)
    .env("REGTOOL_COMPRESSION", "none")
    .run()
    .ok();
    assert_eq!(
        manifest(reg, "t/base", "none")["layers"][2]["digest"],
        sha256(&raw)
    );
    regtool(&["append-layer", "t/base:oci", "t/base:x", "-"])
        .host(reg)
        .env("REGTOOL_COMPRESSION", "lzma")
        .stdin(raw)
        .run()
        .fails(78);
}

#[test]
fn bad_input_leaves_the_destination_untouched() {
    base();
    let reg = plain();
    let dir = tempdir();
    let tar = tarball(dir.path(), "ok.tar", &[("ok", "ok\n")]);
    let before = regtool(&[
        "append-layer",
        "t/base:oci",
        "t/guarded:v1",
        tar.to_str().unwrap(),
    ])
    .host(reg)
    .run()
    .ok();
    let not_tar = dir.path().join("notes.txt");
    std::fs::write(
        &not_tar,
        "these are not the tar bytes you are looking for".repeat(100),
    )
    .unwrap();
    let out = regtool(&[
        "append-layer",
        "t/base:oci",
        "t/guarded:v1",
        not_tar.to_str().unwrap(),
    ])
    .host(reg)
    .run();
    assert!(out.fails(65).contains("not a tar"), "{}", out.stderr);
    // A tar whose entry climbs out of the root.
    let evil = dir.path().join("evil.tar");
    run(
        dir.path(),
        "tar",
        &[
            "-cf",
            evil.to_str().unwrap(),
            "-P",
            "--transform=s,^,../,",
            "ok.tar",
        ],
    );
    let out = regtool(&[
        "append-layer",
        "t/base:oci",
        "t/guarded:v1",
        evil.to_str().unwrap(),
    ])
    .host(reg)
    .run();
    assert!(out.fails(65).contains("leaves"), "{}", out.stderr);
    regtool(&[
        "append-layer",
        "t/base:nope",
        "t/guarded:v1",
        tar.to_str().unwrap(),
    ])
    .host(reg)
    .run()
    .fails(2);
    regtool(&[
        "append-layer",
        "t/base:oci",
        "t/guarded:v1",
        "/nonexistent.tar",
    ])
    .host(reg)
    .run()
    .fails(2);
    let after = regtool(&["resolve", "t/guarded", "v1"])
        .host(reg)
        .run()
        .ok();
    assert_eq!(format!("t/guarded@{}", after.trim()), before.trim());
}

#[test]
fn appending_across_repositories_mounts_the_base_layers() {
    base();
    let reg = plain();
    let dir = tempdir();
    let tar = tarball(dir.path(), "m.tar", &[("m", "mounted\n")]);
    let out = regtool(&[
        "append-layer",
        "t/base:oci",
        "t/mounted:v1",
        tar.to_str().unwrap(),
    ])
    .host(reg)
    .env("REGTOOL_DEBUG", "1")
    .run();
    out.ok();
    // A POST answered 201 is a mount; every other upload starts with 202 and ends with a PUT.
    let mounts = out
        .stderr
        .lines()
        .filter(|l| l.contains("POST") && l.ends_with("-> 201"))
        .count();
    let uploads = out
        .stderr
        .lines()
        .filter(|l| l.contains("PUT") && l.contains("/blobs/uploads/"))
        .count();
    assert_eq!(mounts, 2, "both base layers mounted: {}", out.stderr);
    assert_eq!(
        uploads, 2,
        "only the new layer and the new config uploaded: {}",
        out.stderr
    );
    assert_eq!(
        unpacked_files(reg, "t/mounted:v1"),
        ["etc/one.txt", "etc/two.txt", "m"]
    );
}

#[test]
fn appending_across_registries_streams_the_base_layers() {
    base();
    let (src, dst) = (plain(), basic());
    let dir = tempdir();
    let tar = tarball(dir.path(), "c.tar", &[("c", "crossed\n")]);
    let source = format!("{}/t/base:oci", src.host);
    let out = regtool(&[
        "append-layer",
        &source,
        "t/crossed:v1",
        tar.to_str().unwrap(),
    ])
    .host(dst)
    .creds()
    .run();
    let printed = out.ok();
    assert!(printed.starts_with("t/crossed@sha256:"), "{printed}");
    // Every layer is in the destination, whole and right (pull-blob verifies each).
    let layers = regtool(&["get-alias", "t/crossed", "v1"])
        .host(dst)
        .creds()
        .run()
        .lines();
    assert_eq!(layers.len(), 3);
    for l in &layers {
        regtool(&["pull-blob", "t/crossed", l])
            .host(dst)
            .creds()
            .run()
            .ok();
    }
    // Copied back to the plain registry and unpacked: base and new files.
    let back = format!("{}/t/crossed-back:v1", src.host);
    regtool(&["copy", "t/crossed:v1", &back])
        .host(dst)
        .creds()
        .run()
        .ok();
    assert_eq!(
        unpacked_files(src, "t/crossed-back:v1"),
        ["c", "etc/one.txt", "etc/two.txt"]
    );
}

#[test]
fn append_to_every_platform_or_one() {
    base();
    let reg = plain();
    let dir = tempdir();
    let tar = tarball(dir.path(), "p.tar", &[("p", "platform\n")]);
    let old = manifest(reg, "t/base", "multi");
    regtool(&[
        "append-layer",
        "t/base:multi",
        "t/multi:all",
        tar.to_str().unwrap(),
    ])
    .host(reg)
    .run()
    .ok();
    let all = manifest(reg, "t/multi", "all");
    for i in 0..2 {
        assert_ne!(all["manifests"][i]["digest"], old["manifests"][i]["digest"]);
        assert_eq!(
            all["manifests"][i]["platform"],
            old["manifests"][i]["platform"]
        );
    }
    let arm = regtool(&["get-alias", "t/multi", "all"])
        .host(reg)
        .env("REGTOOL_PLATFORM", "linux/arm64")
        .run()
        .lines();
    assert_eq!(arm.len(), 3);
    regtool(&[
        "append-layer",
        "t/base:multi",
        "t/multi:arm",
        tar.to_str().unwrap(),
    ])
    .host(reg)
    .env("REGTOOL_PLATFORM", "linux/arm64")
    .run()
    .ok();
    let one = manifest(reg, "t/multi", "arm");
    assert_eq!(
        one["manifests"][0]["digest"], old["manifests"][0]["digest"],
        "amd64 unchanged"
    );
    assert_ne!(one["manifests"][1]["digest"], old["manifests"][1]["digest"]);
    // The index and both children are complete in the new repository.
    regtool(&["copy", "t/multi:arm", "t/multi-copy:arm"])
        .host(reg)
        .run()
        .ok();
}

#[test]
fn copy_images_and_indexes() {
    base();
    let (reg, other) = (plain(), basic());
    // Same registry: mounted, nothing uploaded; the digest is unchanged.
    let out = regtool(&["copy", "t/base:multi", "t/copies:multi"])
        .host(reg)
        .env("REGTOOL_DEBUG", "1")
        .run();
    let digest = out.ok();
    assert_eq!(
        digest.trim(),
        regtool(&["resolve", "t/base", "multi"])
            .host(reg)
            .run()
            .ok()
            .trim()
    );
    assert!(
        !out.stderr.contains("PATCH")
            && !out.stderr.contains("/blobs/uploads/1")
            && out.stderr.contains("-> 201"),
        "{}",
        out.stderr
    );
    // One platform only: the child image itself.
    let child = regtool(&["copy", "t/base:multi", "t/copies:arm"])
        .host(reg)
        .env("REGTOOL_PLATFORM", "linux/arm64")
        .run()
        .ok();
    assert_eq!(
        child.trim(),
        regtool(&["resolve", "t/base", "arm"])
            .host(reg)
            .run()
            .ok()
            .trim()
    );
    // Another registry: streamed; a second copy finds every blob there and uploads nothing.
    let source = format!("{}/t/base:docker", reg.host);
    let first = regtool(&["copy", &source, "t/copies:docker"])
        .host(other)
        .creds()
        .run()
        .ok();
    let again = regtool(&["copy", &source, "t/copies:docker"])
        .host(other)
        .creds()
        .env("REGTOOL_DEBUG", "1")
        .run();
    assert_eq!(again.ok(), first);
    assert!(!again.stderr.contains("POST"), "{}", again.stderr);
    let _ = base().layout.exists();
    regtool(&["copy", "t/base:nope", "t/copies:x"])
        .host(reg)
        .run()
        .fails(2);
    regtool(&[
        "copy",
        "t/base:oci",
        "t/copies@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ])
    .host(reg)
    .run()
    .fails(64);
}
