//! The blob-store commands against the real registry.

use crate::harness::*;

fn write(dir: &std::path::Path, name: &str, data: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn push_alias_pull_round_trip() {
    let reg = plain();
    let repo = repo("roundtrip");
    let dir = tempdir();
    let a = bytes(3_000_000, 1);
    let b = b"hello\n".to_vec();
    let (fa, fb) = (
        write(dir.path(), "a.bin", &a),
        write(dir.path(), "b.txt", &b),
    );
    let out = regtool(&["push-blob", &repo, &fa, &fb, "@may15"])
        .host(reg)
        .run();
    assert_eq!(out.lines(), [sha256(&a), sha256(&b)], "{}", out.stderr);

    assert_eq!(
        regtool(&["get-alias", &repo, "may15"])
            .host(reg)
            .run()
            .lines(),
        [sha256(&a), sha256(&b)]
    );
    assert_eq!(
        regtool(&["get-alias", &repo, "@may15"])
            .host(reg)
            .run()
            .lines(),
        [sha256(&a), sha256(&b)]
    );
    assert_eq!(
        regtool(&["blob-size", &repo, "@may15", &sha256(&b)])
            .host(reg)
            .run()
            .lines(),
        ["3000006", "6"]
    );
    let whole = [a.clone(), b.clone()].concat();
    assert_eq!(
        regtool(&["pull-blob", &repo, "@may15"])
            .host(reg)
            .run()
            .stdout,
        whole
    );
    assert_eq!(
        regtool(&["pull-blob", &repo, &sha256(&b), &sha256(&b)])
            .host(reg)
            .run()
            .stdout,
        [b.clone(), b.clone()].concat()
    );

    // The alias manifest is the OCI artifact of docs/alias-format.md, with file names as titles.
    let manifest = regtool(&["get-manifest", &repo, "may15"])
        .host(reg)
        .run()
        .ok();
    let v: serde_json::Value = serde_json::from_str(manifest.trim_end()).unwrap();
    assert_eq!(v["artifactType"], "application/vnd.regtool.blobs.v1");
    assert_eq!(v["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        v["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(
        v["layers"][0]["annotations"]["org.opencontainers.image.title"],
        "a.bin"
    );
    assert_eq!(v["layers"][1]["mediaType"], "application/octet-stream");

    let digest = regtool(&["resolve", &repo, "may15"]).host(reg).run().ok();
    assert_eq!(digest.trim(), sha256(manifest.trim_end().as_bytes()));
    assert_eq!(
        regtool(&["get-digest", &repo, "may15"])
            .host(reg)
            .run()
            .ok()
            .trim(),
        sha256(b"{}")
    );
    assert_eq!(
        regtool(&["list-aliases", &repo]).host(reg).run().lines(),
        ["may15"]
    );
    assert!(
        regtool(&["list-repos"])
            .host(reg)
            .run()
            .lines()
            .contains(&repo)
    );
}

#[test]
fn pull_to_file_is_verified_and_atomic() {
    let reg = plain();
    let repo = repo("pullfile");
    let dir = tempdir();
    let data = bytes(1_500_000, 2);
    let f = write(dir.path(), "in.bin", &data);
    let digest = regtool(&["push-blob", &repo, &f]).host(reg).run().ok();
    let target = dir.path().join("out.bin");
    let out = regtool(&[
        "pull-blob",
        &repo,
        digest.trim(),
        "-o",
        target.to_str().unwrap(),
    ])
    .host(reg)
    .run();
    assert!(out.ok().is_empty());
    assert_eq!(std::fs::read(&target).unwrap(), data);

    // A failure leaves neither FILE nor a temporary file behind, and an old FILE untouched.
    std::fs::write(&target, b"old").unwrap();
    let missing = sha256(b"not pushed");
    regtool(&[
        "pull-blob",
        &repo,
        digest.trim(),
        &missing,
        "-o",
        target.to_str().unwrap(),
    ])
    .host(reg)
    .run()
    .fails(2);
    assert_eq!(std::fs::read(&target).unwrap(), b"old");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn blob_info_precedes_each_blob() {
    let reg = plain();
    let repo = repo("blobinfo");
    let out = regtool(&["push-blob", &repo, "-", "@x"])
        .host(reg)
        .stdin("abc")
        .run()
        .ok();
    let d = out.trim();
    let pulled = regtool(&["pull-blob", &repo, "x"])
        .host(reg)
        .env("REGTOOL_BLOB_INFO", "1")
        .run()
        .ok();
    assert_eq!(pulled, format!("{d} 3\nabc"));
    let pulled = regtool(&["pull-blob", &repo, d])
        .host(reg)
        .env("DXF_BLOB_INFO", "1")
        .run()
        .ok();
    assert_eq!(pulled, format!("{d} 3\nabc"));
}

#[test]
fn stdin_pushes_stream_in_one_pass_and_in_chunks() {
    let reg = plain();
    let repo = repo("stdin");
    let data = bytes(2_500_000, 3);
    let out = regtool(&["push-blob", &repo, "-"])
        .host(reg)
        .stdin(data.clone())
        .env("REGTOOL_DEBUG", "1")
        .run();
    assert_eq!(out.ok().trim(), sha256(&data));
    // One pass: a chunked PATCH of the whole stream, then PUT ?digest=, no HEAD first.
    assert!(
        out.stderr.contains("PATCH") && out.stderr.contains("PUT"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("HEAD"), "{}", out.stderr);
    assert_eq!(
        regtool(&["pull-blob", &repo, &sha256(&data)])
            .host(reg)
            .run()
            .stdout,
        data
    );

    let data = bytes(2_500_000, 4);
    let out = regtool(&["push-blob", &repo, "-"])
        .host(reg)
        .stdin(data.clone())
        .env("REGTOOL_CHUNK_SIZE", "1M")
        .env("REGTOOL_DEBUG", "1")
        .run();
    assert_eq!(out.ok().trim(), sha256(&data));
    assert_eq!(out.stderr.matches("PATCH").count(), 3, "{}", out.stderr);
    assert_eq!(
        regtool(&["pull-blob", &repo, &sha256(&data)])
            .host(reg)
            .run()
            .stdout,
        data
    );
    // An empty stdin is a valid (empty) blob.
    assert_eq!(
        regtool(&["push-blob", &repo, "-"])
            .host(reg)
            .stdin("")
            .run()
            .ok()
            .trim(),
        sha256(b"")
    );
}

#[test]
fn files_upload_in_chunks_and_existing_blobs_are_skipped() {
    let reg = plain();
    let repo = repo("chunks");
    let dir = tempdir();
    let data = bytes(300_000, 5);
    let f = write(dir.path(), "c.bin", &data);
    let out = regtool(&["push-blob", &repo, &f])
        .host(reg)
        .env("DXF_CHUNK_SIZE", "100k")
        .env("REGTOOL_DEBUG", "1")
        .run();
    assert_eq!(out.ok().trim(), sha256(&data));
    assert_eq!(out.stderr.matches("PATCH").count(), 3, "{}", out.stderr);
    assert_eq!(
        regtool(&["pull-blob", &repo, &sha256(&data)])
            .host(reg)
            .run()
            .stdout,
        data
    );
    // Pushed again: hashed, found by HEAD, not uploaded.
    let again = regtool(&["push-blob", &repo, &f])
        .host(reg)
        .env("REGTOOL_DEBUG", "1")
        .run();
    assert_eq!(again.ok().trim(), sha256(&data));
    assert!(
        again.stderr.contains("HEAD") && !again.stderr.contains("POST"),
        "{}",
        again.stderr
    );
}

#[test]
fn many_files_push_concurrently_in_argument_order() {
    let reg = plain();
    let repo = repo("concurrent");
    let dir = tempdir();
    let blobs: Vec<Vec<u8>> = (0..7)
        .map(|i| bytes(200_000 + i * 1000, 100 + i as u64))
        .collect();
    let files: Vec<String> = blobs
        .iter()
        .enumerate()
        .map(|(i, b)| write(dir.path(), &format!("f{i}"), b))
        .collect();
    let mut args = vec!["push-blob", &repo];
    args.extend(files.iter().map(String::as_str));
    args.push("@all");
    let out = regtool(&args).host(reg).env("REGTOOL_JOBS", "3").run();
    let expected: Vec<String> = blobs.iter().map(|b| sha256(b)).collect();
    assert_eq!(out.lines(), expected, "{}", out.stderr);
    assert_eq!(
        regtool(&["get-alias", &repo, "all"])
            .host(reg)
            .run()
            .lines(),
        expected
    );
    assert_eq!(
        regtool(&["pull-blob", &repo, "@all"])
            .host(reg)
            .run()
            .stdout,
        blobs.concat()
    );
}

#[test]
fn set_alias_hashes_files_and_takes_digests() {
    let reg = plain();
    let repo = repo("setalias");
    let dir = tempdir();
    let a = write(dir.path(), "a", b"aaa");
    let b = write(dir.path(), "b", b"bbb");
    regtool(&["push-blob", &repo, &a, &b]).host(reg).run().ok();
    let out = regtool(&["set-alias", &repo, "@pair", &a, &sha256(b"bbb")])
        .host(reg)
        .run();
    let digest = out.ok();
    assert_eq!(
        regtool(&["resolve", &repo, "pair"]).host(reg).run().ok(),
        digest
    );
    assert_eq!(
        regtool(&["get-alias", &repo, "pair"])
            .host(reg)
            .run()
            .lines(),
        [sha256(b"aaa"), sha256(b"bbb")]
    );
    // A file in the current directory is hashed too (it names an existing file).
    let out = regtool(&["set-alias", &repo, "one", "a"])
        .host(reg)
        .dir(dir.path())
        .run();
    out.ok();
    assert_eq!(
        regtool(&["get-alias", &repo, "one"])
            .host(reg)
            .run()
            .lines(),
        [sha256(b"aaa")]
    );
    // A blob that is not in the repository: not found, and the alias is not written.
    let c = write(dir.path(), "c", b"ccc");
    let err = regtool(&["set-alias", &repo, "bad", &c]).host(reg).run();
    assert!(err.fails(2).contains("no blob"));
    regtool(&["resolve", &repo, "bad"]).host(reg).run().fails(2);
}

#[test]
fn mount_blob_between_repositories() {
    let reg = plain();
    let (src, dst) = (repo("mount-src"), repo("mount-dst"));
    let d = regtool(&["push-blob", &src, "-"])
        .host(reg)
        .stdin("mounted")
        .run()
        .ok();
    // The blob's bytes do not move: one POST ?mount= answered 201, no upload.
    let out = regtool(&["mount-blob", &dst, &src, d.trim()])
        .host(reg)
        .env("REGTOOL_DEBUG", "1")
        .run();
    assert_eq!(out.ok(), d);
    assert!(
        out.stderr.contains("POST") && out.stderr.contains("-> 201"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("PATCH") && !out.stderr.contains("PUT"),
        "{}",
        out.stderr
    );
    let out = regtool(&["mount-blob", &dst, &src, d.trim(), "@m"])
        .host(reg)
        .run();
    assert_eq!(out.ok(), d);
    assert_eq!(
        regtool(&["pull-blob", &dst, "m"]).host(reg).run().stdout,
        b"mounted"
    );
    // The source does not have the blob: the registry opens an upload instead (202);
    // regtool cancels that session and says not found.
    let missing = sha256(b"nowhere");
    let out = regtool(&["mount-blob", &dst, &src, &missing])
        .host(reg)
        .env("REGTOOL_DEBUG", "1")
        .run();
    assert!(out.stderr.contains("DELETE"), "{}", out.stderr);
    out.fails(2);
}

#[test]
fn deleting_aliases_and_blobs() {
    let reg = plain();
    let repo = repo("delete");
    let d1 = regtool(&["push-blob", &repo, "-", "@one"])
        .host(reg)
        .stdin("first")
        .run()
        .ok();
    regtool(&["set-alias", &repo, "twin", d1.trim()])
        .host(reg)
        .run()
        .ok();
    // del-alias prints the blobs, keeps them, and says that the twin tag goes too.
    let out = regtool(&["del-alias", &repo, "one"]).host(reg).run();
    assert_eq!(out.ok(), d1);
    assert!(out.stderr.contains("@twin"), "{}", out.stderr);
    regtool(&["get-alias", &repo, "one"])
        .host(reg)
        .run()
        .fails(2);
    regtool(&["get-alias", &repo, "twin"])
        .host(reg)
        .run()
        .fails(2);
    assert_eq!(
        regtool(&["pull-blob", &repo, d1.trim()])
            .host(reg)
            .run()
            .stdout,
        b"first"
    );

    // del-blob of an alias deletes its blobs and the alias.
    let d2 = regtool(&["push-blob", &repo, "-", "@two"])
        .host(reg)
        .stdin("second")
        .run()
        .ok();
    regtool(&["del-blob", &repo, "@two"]).host(reg).run().ok();
    regtool(&["get-alias", &repo, "two"])
        .host(reg)
        .run()
        .fails(2);
    regtool(&["pull-blob", &repo, d2.trim()])
        .host(reg)
        .run()
        .fails(2);
    regtool(&["del-blob", &repo, d1.trim()])
        .host(reg)
        .run()
        .ok();
    regtool(&["blob-size", &repo, d1.trim()])
        .host(reg)
        .run()
        .fails(2);
    regtool(&["del-blob", &repo, d1.trim()])
        .host(reg)
        .run()
        .fails(2);
}

#[test]
fn multi_platform_indexes() {
    let reg = plain();
    let repo = repo("platforms");
    let amd = regtool(&["push-blob", &repo, "-", "@amd"])
        .host(reg)
        .stdin("amd64 bits")
        .run()
        .ok();
    let arm = regtool(&["push-blob", &repo, "-", "@arm"])
        .host(reg)
        .stdin("arm64 bits")
        .run()
        .ok();
    let manifest = |tag: &str| {
        regtool(&["get-manifest", &repo, tag])
            .host(reg)
            .run()
            .ok()
            .trim_end()
            .to_string()
    };
    let (ma, mr) = (manifest("amd"), manifest("arm"));
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(ma.as_bytes()), "size": ma.len(), "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(mr.as_bytes()), "size": mr.len(), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ]
    })
    .to_string();
    let opts = regtool::registry::Options::new(reg.host.parse().unwrap());
    let store = regtool::registry::Registry::new(&opts);
    regtool::Store::put_manifest(
        &store,
        &repo.parse().unwrap(),
        &"multi".parse().unwrap(),
        index.as_bytes(),
        "application/vnd.oci.image.index.v1+json",
    )
    .unwrap();

    let all = regtool(&["get-alias", &repo, "multi"]).host(reg).run().ok();
    assert_eq!(
        all.trim(),
        format!(
            r#"{{"linux/amd64":["{}"],"linux/arm64/v8":["{}"]}}"#,
            amd.trim(),
            arm.trim()
        )
    );
    let one = regtool(&["get-alias", &repo, "multi"])
        .host(reg)
        .env("REGTOOL_PLATFORM", "linux/arm64")
        .run()
        .ok();
    assert_eq!(one, arm);
    assert_eq!(
        regtool(&["pull-blob", &repo, "multi"])
            .host(reg)
            .env("DXF_PLATFORM", "linux/amd64")
            .run()
            .stdout,
        b"amd64 bits"
    );
    regtool(&["pull-blob", &repo, "multi"])
        .host(reg)
        .run()
        .fails(64);
    regtool(&["pull-blob", &repo, "multi"])
        .host(reg)
        .env("REGTOOL_PLATFORM", "linux/s390x")
        .run()
        .fails(2);
    let child = regtool(&["get-manifest", &repo, "multi"])
        .host(reg)
        .env("REGTOOL_PLATFORM", "linux/arm64/v8")
        .run()
        .ok();
    assert_eq!(child.trim_end(), mr);
    assert_eq!(
        regtool(&["get-manifest", &repo, "multi"])
            .host(reg)
            .run()
            .ok()
            .trim_end(),
        index
    );
    let sizes = regtool(&["blob-size", &repo, "@multi"])
        .host(reg)
        .run()
        .ok();
    assert_eq!(sizes.trim(), r#"{"linux/amd64":10,"linux/arm64/v8":10}"#);
}

#[test]
fn json_format_gives_one_object_per_result() {
    let reg = plain();
    let repo = repo("json");
    let out = regtool(&["push-blob", &repo, "-", "@j"])
        .host(reg)
        .stdin("json")
        .env("REGTOOL_FORMAT", "json")
        .run()
        .ok();
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["digest"], sha256(b"json"));
    assert_eq!(v["size"], 4);
    let out = regtool(&["get-alias", &repo, "j"])
        .host(reg)
        .env("REGTOOL_FORMAT", "json")
        .run()
        .ok();
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["result"][0], sha256(b"json"));
    let out = regtool(&["list-aliases", &repo])
        .host(reg)
        .env("REGTOOL_FORMAT", "json")
        .run()
        .ok();
    assert_eq!(out.trim(), r#"{"alias":"j"}"#);
}

#[test]
fn progress_goes_to_stderr_only() {
    let reg = plain();
    let repo = repo("progress");
    let data = bytes(4_000_000, 9);
    let out = regtool(&["push-blob", &repo, "-"])
        .host(reg)
        .stdin(data.clone())
        .env("REGTOOL_PROGRESS", "1")
        .run();
    assert_eq!(out.ok().trim(), sha256(&data));
    assert!(
        out.stderr.contains("stdin"),
        "no progress drawn: {:?}",
        out.stderr
    );
    let quiet = regtool(&["pull-blob", &repo, &sha256(&data)])
        .host(reg)
        .env("REGTOOL_PROGRESS", "0")
        .run();
    assert_eq!(quiet.stdout, data);
    assert!(quiet.stderr.is_empty(), "{:?}", quiet.stderr);
}

#[test]
fn dxf_variable_names_are_the_fallback() {
    let reg = plain();
    let repo = repo("dxfvars");
    let out = regtool(&["push-blob", &repo, "-"])
        .env("DXF_HOST", &reg.host)
        .stdin("via dxf names")
        .run();
    assert_eq!(out.ok().trim(), sha256(b"via dxf names"));
    // REGTOOL_HOST wins over DXF_HOST.
    let out = regtool(&["blob-size", &repo, &sha256(b"via dxf names")])
        .env("DXF_HOST", "127.0.0.1:1")
        .host(reg)
        .run();
    assert_eq!(out.ok().trim(), "13");
}

#[test]
fn basic_auth_registry() {
    let reg = basic();
    let repo = repo("basic");
    let out = regtool(&["push-blob", &repo, "-", "@b"])
        .host(reg)
        .creds()
        .stdin("secret stuff")
        .run();
    assert_eq!(out.ok().trim(), sha256(b"secret stuff"));
    assert_eq!(
        regtool(&["pull-blob", &repo, "@b"])
            .host(reg)
            .creds()
            .run()
            .stdout,
        b"secret stuff"
    );
    // DXF_ names and a password file work too.
    let dir = tempdir();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let out = regtool(&["get-alias", &repo, "b"])
        .host(reg)
        .env("DXF_USERNAME", USER)
        .env("REGTOOL_PASSWORD_FILE", &pw)
        .run();
    assert_eq!(out.ok().trim(), sha256(b"secret stuff"));
    // No credentials, or wrong ones: 13, with a one-line reason, and the password never shown.
    let out = regtool(&["get-alias", &repo, "b"]).host(reg).run();
    assert!(out.fails(13).contains("hint:"));
    let out = regtool(&["get-alias", &repo, "b"])
        .host(reg)
        .env("REGTOOL_USERNAME", USER)
        .env("REGTOOL_PASSWORD", "wrong-password")
        .env("REGTOOL_DEBUG", "1")
        .run();
    assert_eq!(out.status, 13, "{}", out.stderr);
    assert!(!out.stderr.contains("wrong-password"));
    // A whole Authorization header.
    let header = format!("Basic {}", base64_of(&format!("{USER}:{PASSWORD}")));
    let out = regtool(&["get-alias", &repo, "b"])
        .host(reg)
        .env("REGTOOL_AUTHORIZATION", header)
        .run();
    assert_eq!(out.ok().trim(), sha256(b"secret stuff"));
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let reg = plain();
    let repo = repo("pipe");
    let data = bytes(8_000_000, 11);
    let d = regtool(&["push-blob", &repo, "-"])
        .host(reg)
        .stdin(data)
        .run()
        .ok();
    let mut child = regtool(&["pull-blob", &repo, d.trim()]).host(reg).spawn();
    let mut first = [0u8; 10];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
