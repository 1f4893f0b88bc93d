//! Docker archives and make-image: archives written by skopeo (and by hand in docker's legacy
//! form) read by regtool; archives regtool writes read by skopeo and unpacked by umoci; bad
//! archives and layers refused with 65 and nothing written.

use std::collections::BTreeSet;
use std::path::Path;

use crate::harness::*;
use crate::images::{base, run};

/// The files (not directories) `umoci unpack` makes of the archive's image.
fn unpacked_files(dir: &Path, archive: &Path) -> BTreeSet<String> {
    let layout = dir.join(format!(
        "L-{}",
        archive.file_name().unwrap().to_str().unwrap()
    ));
    let src = format!("docker-archive:{}", archive.display());
    let dst = format!("oci:{}:x", layout.display());
    run(dir, "skopeo", &["copy", "-q", &src, &dst]);
    let bundle = dir.join(format!(
        "B-{}",
        archive.file_name().unwrap().to_str().unwrap()
    ));
    let image = format!("{}:x", layout.display());
    run(
        dir,
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &image,
            bundle.to_str().unwrap(),
        ],
    );
    let rootfs = bundle.join("rootfs");
    let mut files = BTreeSet::new();
    let mut stack = vec![rootfs.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.insert(p.strip_prefix(&rootfs).unwrap().display().to_string());
            }
        }
    }
    files
}

/// A layer tar with one file at `path`.
fn layer(dir: &Path, name: &str, path: &str, text: &str) -> String {
    let root = dir.join(format!("root-{name}"));
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, text).unwrap();
    let top = path.split('/').next().unwrap();
    let out = dir.join(name);
    run(&root, "tar", &["-cf", out.to_str().unwrap(), top]);
    out.display().to_string()
}

/// An archive made by make-image of one layer holding `etc/ok` (the layer is `d/ok.tar`), as
/// `d/good.tar`.
fn one_file_archive(d: &Path) -> std::path::PathBuf {
    let l = layer(d, "ok.tar", "etc/ok", "ok\n");
    let good = d.join("good.tar");
    regtool(&["make-image", &l, "-o", good.to_str().unwrap()])
        .run()
        .ok();
    good
}

fn manifest_json(archive: &Path) -> serde_json::Value {
    let mut a = tar::Archive::new(std::fs::File::open(archive).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some("manifest.json") {
            return serde_json::from_reader(&mut e).unwrap();
        }
    }
    panic!("no manifest.json in {}", archive.display());
}

#[test]
fn make_image_from_scratch_then_on_an_archive_base_unpacks_with_umoci() {
    let dir = tempdir();
    let d = dir.path();
    let l1 = layer(d, "l1.tar", "etc/one", "one\n");
    let l2 = layer(d, "l2.tar", "usr/two", "two\n");
    run(d, "gzip", &["-n", "-k", &l1]);
    let a = d.join("a.tar");
    let a_arg = format!("docker-archive:{}:fred/app:v1", a.display());
    regtool(&["make-image", &format!("{l1}.gz"), "-o", &a_arg])
        .run()
        .ok();
    // What docker load needs: manifest.json with RepoTags, the config, the layers.
    let m = manifest_json(&a);
    assert_eq!(m[0]["RepoTags"], serde_json::json!(["fred/app:v1"]));
    assert_eq!(m[0]["Layers"].as_array().unwrap().len(), 1);
    assert!(m[0]["Config"].as_str().unwrap().ends_with(".json"));
    let inspect = run(
        d,
        "skopeo",
        &["inspect", &format!("docker-archive:{}", a.display())],
    );
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Created"], "1970-01-01T00:00:00Z");

    let b = d.join("b.tar");
    let base_arg = format!("docker-archive:{}", a.display());
    regtool(&[
        "make-image",
        "--base",
        &base_arg,
        &l2,
        "-o",
        b.to_str().unwrap(),
    ])
    .run()
    .ok();
    assert_eq!(
        unpacked_files(d, &b),
        BTreeSet::from(["etc/one".to_string(), "usr/two".to_string()])
    );
    // Reproducible: the same inputs give the same bytes (stdin spooled, the layer gzipped
    // this time); another SOURCE_DATE_EPOCH another image.
    let again = d.join("again.tar");
    regtool(&[
        "make-image",
        "--base",
        &base_arg,
        "-",
        "-o",
        again.to_str().unwrap(),
    ])
    .stdin(std::fs::read(&l2).unwrap())
    .run()
    .ok();
    assert!(std::fs::read(&again).unwrap() == std::fs::read(&b).unwrap());
    regtool(&[
        "make-image",
        "--base",
        &base_arg,
        &l2,
        "-o",
        again.to_str().unwrap(),
    ])
    .env("SOURCE_DATE_EPOCH", "1700000000")
    .run()
    .ok();
    assert!(std::fs::read(&again).unwrap() != std::fs::read(&b).unwrap());
}

#[test]
fn make_image_on_a_registry_base_and_on_skopeos_archive() {
    let b = base();
    let _ = b;
    let reg = plain();
    let dir = tempdir();
    let d = dir.path();
    let l = layer(d, "new.tar", "opt/new.txt", "new\n");
    let from_registry = d.join("r.tar");
    let src = format!("{}/t/base:multi", reg.host);
    regtool(&[
        "make-image",
        "--base",
        &src,
        &l,
        "-o",
        from_registry.to_str().unwrap(),
    ])
    .env("REGTOOL_PLATFORM", "linux/amd64")
    .run()
    .ok();
    let want = BTreeSet::from([
        "etc/one.txt".to_string(),
        "etc/two.txt".to_string(),
        "opt/new.txt".to_string(),
    ]);
    assert_eq!(unpacked_files(d, &from_registry), want);

    // skopeo's docker-archive (Docker schema 2 source) as the base.
    let skopeo_archive = d.join("s.tar");
    run(
        d,
        "skopeo",
        &[
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{}/t/base:docker", reg.host),
            &format!("docker-archive:{}:t/base:docker", skopeo_archive.display()),
        ],
    );
    let on_skopeo = d.join("s2.tar");
    let base_arg = format!("docker-archive:{}", skopeo_archive.display());
    regtool(&[
        "make-image",
        "--base",
        &base_arg,
        &l,
        "-o",
        on_skopeo.to_str().unwrap(),
    ])
    .run()
    .ok();
    assert_eq!(unpacked_files(d, &on_skopeo), want);
}

/// docker's legacy `docker save` form: `repositories`, and per layer `json` (with `parent`),
/// `VERSION` and `layer.tar`; the second layer's tar a symlink to a copy of the first's.
const LEGACY_PY: &str = r#"
import io, json, sys, tarfile
def data(t, name, b):
    i = tarfile.TarInfo(name); i.size = len(b); t.addfile(i, io.BytesIO(b))
def layer(path, text):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        data(t, path, text)
    return out.getvalue()
with tarfile.open(sys.argv[1], "w") as t:
    ids = ["a" * 64, "b" * 64, "c" * 64]
    parents = [None, ids[0], ids[1]]
    tars = [layer("etc/legacy", b"legacy\n"), layer("usr/legacy2", b"two\n"), None]
    for i, (id, parent) in enumerate(zip(ids, parents)):
        meta = {"id": id, "created": "2015-01-01T00:00:00Z", "os": "linux", "architecture": "amd64",
                "container_config": {"Cmd": ["/bin/sh", "-c", "step %d" % i]}, "config": {"Env": ["A=1"]}}
        if parent: meta["parent"] = parent
        data(t, id + "/json", json.dumps(meta).encode())
        data(t, id + "/VERSION", b"1.0")
        if tars[i] is not None:
            data(t, id + "/layer.tar", tars[i])
        else:
            i = tarfile.TarInfo(id + "/layer.tar"); i.type = tarfile.SYMTYPE; i.linkname = "../" + ids[0] + "/layer.tar"
            t.addfile(i)
    data(t, "repositories", json.dumps({"old/app": {"v1": ids[2]}}).encode())
"#;

#[test]
fn the_legacy_form_is_read() {
    let dir = tempdir();
    let d = dir.path();
    let legacy = d.join("legacy.tar");
    run(d, "python3", &["-c", LEGACY_PY, legacy.to_str().unwrap()]);
    let l = layer(d, "new.tar", "opt/new.txt", "new\n");
    let out = d.join("out.tar");
    let base_arg = format!("docker-archive:{}", legacy.display());
    regtool(&[
        "make-image",
        "--base",
        &base_arg,
        &l,
        "-o",
        out.to_str().unwrap(),
    ])
    .run()
    .ok();
    assert_eq!(
        unpacked_files(d, &out),
        BTreeSet::from([
            "etc/legacy".to_string(),
            "usr/legacy2".to_string(),
            "opt/new.txt".to_string()
        ])
    );
    let inspect = run(
        d,
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("docker-archive:{}", out.display()),
        ],
    );
    let cfg: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(cfg["config"]["Env"], serde_json::json!(["A=1"]));
    assert_eq!(cfg["history"][0]["created_by"], "/bin/sh -c step 0");
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 4);
    // Pushed as it is: the digest `digest` predicts, under the archive's own tag.
    let reg = plain();
    let predicted = regtool(&["digest", &base_arg]).run().ok();
    let pushed = regtool(&["push-image", &base_arg, &format!("{}/old/app", reg.host)])
        .run()
        .ok();
    assert_eq!(
        pushed.trim(),
        format!("{}/old/app@{}", reg.host, predicted.trim())
    );
    let tagged = skopeo_digest(d, &format!("docker://{}/old/app:v1", reg.host));
    assert_eq!(tagged, predicted.trim());
}

#[test]
fn bad_archives_and_layers_are_data_errors_that_write_nothing() {
    let dir = tempdir();
    let d = dir.path();
    let good = one_file_archive(d);
    let l = d.join("ok.tar").display().to_string();
    let bytes = std::fs::read(&good).unwrap();
    let out = d.join("out.tar");
    let out_s = out.to_str().unwrap();
    let make = |base: &Path, layer: &str| {
        let base_arg = format!("docker-archive:{}", base.display());
        let r = regtool(&["make-image", "--base", &base_arg, layer, "-o", out_s]).run();
        assert!(!out.exists(), "{}", r.stderr);
        r
    };
    let truncated = d.join("truncated.tar");
    std::fs::write(&truncated, &bytes[..3000]).unwrap();
    assert!(make(&truncated, &l).fails(65).contains("truncated"));
    let not_tar = d.join("text.tar");
    std::fs::write(&not_tar, "just some text, no tar here\n".repeat(40)).unwrap();
    assert!(
        make(&not_tar, &l)
            .fails(65)
            .contains("not a docker archive")
    );
    // A layer that is not a tar, after the base's layers were written: nothing stays.
    let bad_layer = d.join("bad-layer.tar");
    std::fs::write(&bad_layer, "not a tar either\n".repeat(64)).unwrap();
    let e = make(&good, bad_layer.to_str().unwrap())
        .fails(65)
        .to_string();
    assert!(e.contains("bad-layer.tar"), "{e}");
    // Missing files: 2.
    make(&d.join("missing.tar"), &l).fails(2);
    make(&good, d.join("missing-layer.tar").to_str().unwrap()).fails(2);
    assert!(!std::fs::read_dir(d).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".regtool")
    }));
}

#[test]
fn make_image_into_and_on_top_of_an_oci_layout() {
    let dir = tempdir();
    let d = dir.path();
    let l1 = layer(d, "l1.tar", "etc/one", "one\n");
    let l2 = layer(d, "l2.tar", "usr/two", "two\n");
    let lay = d.join("lay");
    let v1 = format!("oci:{}:v1", lay.display());
    let digest = regtool(&["make-image", &l1, "-o", &v1]).run().ok();
    let inspect = run(d, "skopeo", &["inspect", &v1]);
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Digest"].as_str(), Some(digest.trim()));
    let v2 = format!("oci:{}:v2", lay.display());
    regtool(&["make-image", "--base", &v1, &l2, "-o", &v2])
        .env("REGTOOL_COMPRESSION", "zstd")
        .run()
        .ok();
    let manifest = run(d, "skopeo", &["inspect", "--raw", &v2]);
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    // The same image as an archive, copied into a layout by skopeo, unpacks the same.
    let a = d.join("a.tar");
    regtool(&["make-image", "--base", &v1, &l2, "-o", a.to_str().unwrap()])
        .run()
        .ok();
    assert_eq!(
        unpacked_files(d, &a),
        BTreeSet::from(["etc/one".to_string(), "usr/two".to_string()])
    );
    // From the layout into an archive (copy saves as pull-image does).
    let saved = d.join("saved.tar");
    regtool(&["copy", &v2, &format!("docker-archive:{}", saved.display())])
        .run()
        .ok();
    assert_eq!(
        unpacked_files(d, &saved),
        BTreeSet::from(["etc/one".to_string(), "usr/two".to_string()])
    );
    // A layout without the tag: 2, nothing written.
    let missing = format!("oci:{}:nope", lay.display());
    let out = d.join("out.tar");
    regtool(&[
        "make-image",
        "--base",
        &missing,
        &l2,
        "-o",
        out.to_str().unwrap(),
    ])
    .run()
    .fails(2);
    assert!(!out.exists());
}

#[test]
fn flatten_reads_archives_and_layouts_as_it_reads_the_registry() {
    let layers = crate::layertools::layers();
    let reg = plain();
    let dir = tempdir();
    let d = dir.path();
    let src = format!("docker://{}/t/flat:v1", reg.host);
    let archive = d.join("flat.tar");
    let archive_arg = format!("docker-archive:{}", archive.display());
    run(
        d,
        "skopeo",
        &["copy", "-q", "--src-tls-verify=false", &src, &archive_arg],
    );
    let from_registry = regtool(&["flatten", &format!("{}/t/flat:v1", reg.host)]).run();
    let want = from_registry.ok();
    assert!(!want.is_empty());
    let from_archive = regtool(&["flatten", &archive_arg]).run();
    assert!(
        from_archive.stdout == from_registry.stdout,
        "{}",
        from_archive.stderr
    );
    let layout_arg = format!("oci:{}:flat", layers.dir.join("L").display());
    let from_layout = regtool(&["flatten", &layout_arg]).run();
    assert!(
        from_layout.stdout == from_registry.stdout,
        "{}",
        from_layout.stderr
    );
    // --config gives the archive's config as stored.
    let cfg = d.join("config.json");
    regtool(&[
        "flatten",
        &archive_arg,
        "-o",
        "/dev/null",
        "--config",
        cfg.to_str().unwrap(),
    ])
    .run()
    .ok();
    let inspect = run(d, "skopeo", &["inspect", "--raw", "--config", &archive_arg]);
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap().trim_end(),
        inspect.trim_end()
    );
}

fn skopeo_digest(d: &Path, image: &str) -> String {
    let out = run(d, "skopeo", &["inspect", "--tls-verify=false", image]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

#[test]
fn skopeos_archive_pushes_with_the_digest_digest_predicts() {
    let _ = base();
    let reg = plain();
    let dir = tempdir();
    let d = dir.path();
    let archive = d.join("s.tar");
    let archive_arg = format!("docker-archive:{}", archive.display());
    run(
        d,
        "skopeo",
        &[
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{}/t/base:docker", reg.host),
            &format!("{archive_arg}:t/base:docker"),
        ],
    );
    let predicted = regtool(&["digest", &archive_arg])
        .run()
        .ok()
        .trim()
        .to_string();
    // A bare .tar path is an archive too.
    assert_eq!(
        regtool(&["digest", archive.to_str().unwrap()])
            .run()
            .ok()
            .trim(),
        predicted
    );
    let dst = format!("{}/t/archived:v1", reg.host);
    let run_push = regtool(&["push-image", archive.to_str().unwrap(), &dst])
        .env("REGTOOL_PROGRESS", "1")
        .run();
    let pushed = run_push.ok();
    assert_eq!(
        pushed.trim(),
        format!("{}/t/archived@{predicted}", reg.host)
    );
    // One progress bar per layer, named by its diff_id (skopeo names the members after them).
    for member in manifest_json(&archive)[0]["Layers"].as_array().unwrap() {
        let hex = member.as_str().unwrap().trim_end_matches(".tar");
        let label = format!("sha256:{}", &hex[..12]);
        assert!(run_push.stderr.contains(&label), "{}", run_push.stderr);
    }
    assert_eq!(skopeo_digest(d, &format!("docker://{dst}")), predicted);
    // The same archive pushed again (another tag): the same digest.
    let again = regtool(&[
        "push-image",
        &archive_arg,
        &format!("{}/t/archived:v2", reg.host),
    ])
    .run()
    .ok();
    assert!(again.trim().ends_with(&predicted), "{again}");
    // zstd: another digest, predicted as well.
    let zstd = regtool(&["digest", &archive_arg])
        .env("REGTOOL_COMPRESSION", "zstd")
        .run()
        .ok();
    assert_ne!(zstd.trim(), predicted);
    let pushed = regtool(&[
        "push-image",
        &archive_arg,
        &format!("{}/t/archived:zstd", reg.host),
    ])
    .env("REGTOOL_COMPRESSION", "zstd")
    .run()
    .ok();
    assert!(pushed.trim().ends_with(zstd.trim()), "{pushed}");
    // The archive's own tag when the destination names none.
    let untagged = regtool(&[
        "push-image",
        &archive_arg,
        &format!("{}/t/archived", reg.host),
    ])
    .run()
    .ok();
    assert!(untagged.trim().ends_with(&predicted));
    assert_eq!(
        skopeo_digest(d, &format!("docker://{}/t/archived:docker", reg.host)),
        predicted
    );
    // The importer: copy into a layout, the same digest; umoci unpacks it.
    let layout = d.join("L");
    let layout_arg = format!("oci:{}:v1", layout.display());
    let copied = regtool(&["copy", &archive_arg, &layout_arg]).run().ok();
    assert_eq!(copied.trim(), predicted);
    assert_eq!(skopeo_digest(d, &layout_arg), predicted);
    run(
        d,
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:v1", layout.display()),
            "bundle",
        ],
    );
    assert!(d.join("bundle/rootfs/etc/two.txt").is_file());
}

#[test]
fn pull_image_to_an_archive_is_read_by_skopeo_and_copied_back() {
    let _ = base();
    let reg = plain();
    let dir = tempdir();
    let d = dir.path();
    let archive = d.join("arm.tar");
    let src = format!("{}/t/base:multi", reg.host);
    let pulled = regtool(&["pull-image", &src, archive.to_str().unwrap()])
        .env("REGTOOL_PLATFORM", "linux/arm64")
        .env("REGTOOL_PROGRESS", "1")
        .run();
    let id = pulled.ok();
    // One progress bar per layer.
    let arm = crate::images::manifest(reg, "t/base", "arm");
    for blob in arm["layers"].as_array().unwrap() {
        let digest = blob["digest"].as_str().unwrap();
        assert!(pulled.stderr.contains(&digest[..19]), "{}", pulled.stderr);
    }
    let archive_arg = format!("docker-archive:{}", archive.display());
    let inspect = run(d, "skopeo", &["inspect", &archive_arg]);
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Architecture"], "arm64");
    let m = manifest_json(&archive);
    assert_eq!(m[0]["RepoTags"], serde_json::json!([src]));
    assert_eq!(
        format!(
            "sha256:{}",
            m[0]["Config"].as_str().unwrap().trim_end_matches(".json")
        ),
        id.trim()
    );
    // The same pull gives the same bytes.
    let again = d.join("again.tar");
    regtool(&[
        "pull-image",
        &src,
        &format!("docker-archive:{}:fred/x:v9", again.display()),
    ])
    .env("REGTOOL_PLATFORM", "linux/arm64")
    .run()
    .ok();
    assert_eq!(
        manifest_json(&again)[0]["RepoTags"],
        serde_json::json!(["fred/x:v9"])
    );
    assert_eq!(manifest_json(&again)[0]["Layers"], m[0]["Layers"]);
    // skopeo copies it back to the registry; its flattened tree is the original's.
    let back = format!("{}/t/back:arm", reg.host);
    run(
        d,
        "skopeo",
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &archive_arg,
            &format!("docker://{back}"),
        ],
    );
    let original = regtool(&["flatten", &src])
        .env("REGTOOL_PLATFORM", "linux/arm64")
        .run();
    let returned = regtool(&["flatten", &back]).run();
    assert!(original.ok() == returned.ok());
    // copy from a layout or a registry into an archive (an archive holds one platform).
    let copied = d.join("copied.tar");
    regtool(&[
        "copy",
        &format!("{}/t/base:oci", reg.host),
        &format!("docker-archive:{}", copied.display()),
    ])
    .run()
    .ok();
    let archive_copy = d.join("copy2.tar");
    regtool(&[
        "copy",
        &format!("docker-archive:{}", copied.display()),
        &format!("docker-archive:{}:a/b:c", archive_copy.display()),
    ])
    .run()
    .ok();
    assert_eq!(
        manifest_json(&archive_copy)[0]["RepoTags"],
        serde_json::json!(["a/b:c"])
    );
    assert_eq!(
        manifest_json(&archive_copy)[0]["Layers"],
        manifest_json(&copied)[0]["Layers"]
    );
    // Not there: 2, and no archive.
    let missing = d.join("missing.tar");
    regtool(&[
        "pull-image",
        &format!("{}/t/base:nope", reg.host),
        missing.to_str().unwrap(),
    ])
    .run()
    .fails(2);
    assert!(!missing.exists());
    let left: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        !left.iter().any(|n| n.to_string_lossy().starts_with('.')),
        "{left:?}"
    );
    // An index without REGTOOL_PLATFORM: this machine's platform.
    let own = d.join("own.tar");
    regtool(&["pull-image", &src, own.to_str().unwrap()])
        .run()
        .ok();
    let own_arg = format!("docker-archive:{}", own.display());
    let inspect = run(d, "skopeo", &["inspect", &own_arg]);
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(inspect["Architecture"], arch);
}

#[test]
fn bad_archives_push_nothing() {
    let reg = plain();
    let dir = tempdir();
    let d = dir.path();
    let good = one_file_archive(d);
    let bytes = std::fs::read(&good).unwrap();
    let truncated = d.join("truncated.tar");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let dst = format!("{}/t/badarchive:v1", reg.host);
    regtool(&["push-image", truncated.to_str().unwrap(), &dst])
        .run()
        .fails(65);
    regtool(&["digest", &format!("docker-archive:{}", truncated.display())])
        .run()
        .fails(65);
    // A layer member that is not a tar: the archive rewritten with text in its place.
    let mut out = tar::Builder::new(Vec::new());
    let mut a = tar::Archive::new(&bytes[..]);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if name.ends_with(".tar") {
            data = b"this is no tar at all\n".repeat(30);
        }
        let mut h = e.header().clone();
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.append(&h, &data[..]).unwrap();
    }
    let not_tar = d.join("not-a-tar-layer.tar");
    std::fs::write(&not_tar, out.into_inner().unwrap()).unwrap();
    let e = regtool(&["push-image", not_tar.to_str().unwrap(), &dst]).run();
    assert!(e.fails(65).contains("not-a-tar-layer.tar"), "{}", e.stderr);
    regtool(&["push-image", d.join("absent.tar").to_str().unwrap(), &dst])
        .run()
        .fails(2);
    // Into a new layout (the importer): no layout left behind.
    let layout = d.join("new-layout");
    let into = format!("oci:{}:v1", layout.display());
    regtool(&[
        "copy",
        &format!("docker-archive:{}", not_tar.display()),
        &into,
    ])
    .run()
    .fails(65);
    assert!(!layout.exists());
    regtool(&["get-manifest", "t/badarchive", "v1"])
        .host(reg)
        .run()
        .fails(2);
}

#[test]
fn an_archive_on_stdin_is_spooled() {
    let reg = plain();
    let dir = tempdir();
    let d = dir.path();
    let good = one_file_archive(d);
    let predicted = regtool(&["digest", good.to_str().unwrap()]).run().ok();
    // docker save | gzip | regtool push-image docker-archive:- ...
    run(d, "gzip", &["-k", "-n", good.to_str().unwrap()]);
    let gz = std::fs::read(d.join("good.tar.gz")).unwrap();
    let pushed = regtool(&[
        "push-image",
        "docker-archive:-",
        &format!("{}/t/stdin-archive:v1", reg.host),
    ])
    .stdin(gz)
    .run()
    .ok();
    assert!(pushed.trim().ends_with(predicted.trim()), "{pushed}");
}

#[test]
fn make_image_then_push_image_unpacks_to_the_base_plus_the_layers() {
    let _ = base();
    let reg = plain();
    let dir = tempdir();
    let d = dir.path();
    let l = layer(d, "new.tar", "srv/app.txt", "app\n");
    run(d, "zstd", &["-q", &l]);
    let made = d.join("made.tar");
    let src = format!("{}/t/base:oci", reg.host);
    regtool(&[
        "make-image",
        "--base",
        &src,
        &format!("{l}.zst"),
        "-o",
        made.to_str().unwrap(),
    ])
    .run()
    .ok();
    let dst = format!("{}/t/made:v1", reg.host);
    regtool(&["push-image", made.to_str().unwrap(), &dst])
        .run()
        .ok();
    let layout = d.join("L");
    run(
        d,
        "skopeo",
        &[
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{dst}"),
            &format!("oci:{}:v1", layout.display()),
        ],
    );
    run(
        d,
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:v1", layout.display()),
            "bundle",
        ],
    );
    for f in ["etc/one.txt", "etc/two.txt", "srv/app.txt"] {
        assert!(d.join("bundle/rootfs").join(f).is_file(), "{f}");
    }
}

#[test]
fn an_interrupted_make_image_leaves_no_archive_and_no_spool() {
    let dir = tempdir();
    let d = dir.path();
    let tmp = d.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();
    let l = layer(d, "first.tar", "etc/first", &"x".repeat(100_000));
    // The first layer is written, then the second (stdin) never ends.
    let mut child = regtool(&[
        "make-image",
        &l,
        "-",
        "-o",
        out.join("img.tar").to_str().unwrap(),
    ])
    .env("TMPDIR", &tmp)
    .spawn();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, &std::fs::read(&l).unwrap()[..20_000]).unwrap();
    wait_until("the archive is being written", || {
        std::fs::read_dir(&out)
            .unwrap()
            .flatten()
            .any(|e| e.metadata().is_ok_and(|m| m.len() > 100_000))
    });
    interrupt(&child);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    drop(stdin);
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "a partial archive was left"
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "a spool file was left"
    );
}

/// Merges docker archives into one (`docker save a b`): every member, one manifest.json.
const MERGE_PY: &str = r#"
import io, json, sys, tarfile
out, inputs = sys.argv[1], sys.argv[2:]
manifest, seen = [], set()
with tarfile.open(out, "w") as t:
    for path in inputs:
        with tarfile.open(path) as src:
            for m in src.getmembers():
                data = src.extractfile(m).read()
                if m.name == "manifest.json":
                    manifest += json.loads(data)
                elif m.name not in seen:
                    seen.add(m.name)
                    t.addfile(m, io.BytesIO(data))
    data = json.dumps(manifest).encode()
    i = tarfile.TarInfo("manifest.json"); i.size = len(data); t.addfile(i, io.BytesIO(data))
"#;

#[test]
fn an_archive_of_several_images_is_read_by_name() {
    let dir = tempdir();
    let d = dir.path();
    let (one, two, both) = (d.join("one.tar"), d.join("two.tar"), d.join("both.tar"));
    let l1 = layer(d, "l1.tar", "etc/one", "one\n");
    let l2 = layer(d, "l2.tar", "etc/two", "two\n");
    regtool(&[
        "make-image",
        &l1,
        "-o",
        &format!("docker-archive:{}:fred/one:v1", one.display()),
    ])
    .run()
    .ok();
    regtool(&[
        "make-image",
        &l2,
        "-o",
        &format!("docker-archive:{}:debian:12", two.display()),
    ])
    .run()
    .ok();
    run(
        d,
        "python3",
        &[
            "-c",
            MERGE_PY,
            both.to_str().unwrap(),
            one.to_str().unwrap(),
            two.to_str().unwrap(),
        ],
    );
    let all = format!("docker-archive:{}", both.display());
    let e = regtool(&["digest", &all]).run();
    assert!(e.fails(64).contains("holds 2 images"), "{}", e.stderr);
    assert!(
        e.stderr.contains("hint: its names: fred/one:v1, debian:12"),
        "{}",
        e.stderr
    );
    // By name, Docker Hub names in either form.
    let two_digest = regtool(&["digest", two.to_str().unwrap()]).run().ok();
    for name in ["debian:12", "docker.io/library/debian:12"] {
        let got = regtool(&["digest", &format!("{all}:{name}")]).run().ok();
        assert_eq!(got, two_digest, "{name}");
    }
    let tree = regtool(&["flatten", &format!("{all}:fred/one:v1")])
        .run()
        .ok();
    assert!(tree.contains("etc/one") && !tree.contains("etc/two"));
    regtool(&["digest", &format!("{all}:fred/one:v2")])
        .run()
        .fails(2);
}

#[test]
fn an_archive_pull_fetches_layers_concurrently_and_an_interrupt_leaves_nothing() {
    use crate::faults::{Fault, FaultProxy, rule};
    let _ = base();
    let m = crate::images::manifest(plain(), "t/base", "oci");
    let first = m["layers"][0]["digest"].as_str().unwrap();
    let second_size = m["layers"][1]["size"].as_u64().unwrap();
    let path: &'static str = Box::leak(format!("/blobs/{first}").into_boxed_str());
    let proxy = FaultProxy::start(&plain().host, vec![rule("GET", path, Fault::Stall(10), 1)]);
    let work = tempdir();
    let (tmp, out) = (work.path().join("tmp"), work.path().join("out"));
    std::fs::create_dir(&tmp).unwrap();
    std::fs::create_dir(&out).unwrap();
    let child = regtool(&[
        "pull-image",
        &format!("{}/t/base:oci", proxy.host),
        out.join("x.tar").to_str().unwrap(),
    ])
    .env("TMPDIR", &tmp)
    .spawn();
    wait_until("the first layer stalls", || proxy.count("FAULT") == 1);
    // The second layer lands meanwhile (in its spool): layers are fetched concurrently, not
    // behind the stalled one.
    wait_until("the second layer lands", || {
        std::fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .any(|e| e.metadata().is_ok_and(|m| m.len() == second_size))
    });
    interrupt(&child);
    let done = child.wait_with_output().unwrap();
    assert_eq!(
        done.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "a partial archive was left"
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "a spool was left"
    );
}
