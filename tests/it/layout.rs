//! The same commands on the local OCI-layout store, read back by skopeo.

use std::process::Command;

use crate::harness::*;

#[test]
fn the_layout_store_does_what_the_registry_does() {
    let dir = tempdir();
    let host = format!("oci:{}", dir.path().display());
    let run = |args: &[&str]| regtool(args).env("REGTOOL_HOST", &host);
    let data = bytes(700_000, 21);
    let d = run(&["push-blob", "fred/logs", "-", "@may15"])
        .stdin(data.clone())
        .run()
        .ok();
    assert_eq!(d.trim(), sha256(&data));
    assert_eq!(run(&["get-alias", "fred/logs", "may15"]).run().ok(), d);
    assert_eq!(
        run(&["pull-blob", "fred/logs", "@may15"]).run().stdout,
        data
    );
    assert_eq!(
        run(&["blob-size", "fred/logs", "may15"]).run().ok().trim(),
        "700000"
    );
    assert_eq!(run(&["list-aliases", "fred/logs"]).run().lines(), ["may15"]);
    run(&["mount-blob", "other/repo", "fred/logs", d.trim(), "@m"])
        .run()
        .ok();
    assert_eq!(
        run(&["list-repos"]).run().lines(),
        ["fred/logs", "other/repo"]
    );
    let m = run(&["resolve", "fred/logs", "may15"]).run().ok();
    assert_eq!(
        run(&["set-alias", "fred/logs", "copy", d.trim()])
            .run()
            .ok(),
        m,
        "same blobs, same manifest"
    );
    assert_eq!(run(&["del-alias", "fred/logs", "may15"]).run().ok(), d);
    run(&["get-alias", "fred/logs", "may15"]).run().fails(2);
    run(&["get-alias", "fred/logs", "nope"]).run().fails(2);
    run(&["list-aliases", "no/such"]).run().fails(2);
    run(&["del-blob", "fred/logs", d.trim()]).run().ok();
    run(&["pull-blob", "fred/logs", d.trim()]).run().fails(2);
}

#[test]
fn skopeo_reads_what_regtool_writes() {
    let dir = tempdir();
    let host = format!("oci:{}", dir.path().display());
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, b"notes for skopeo").unwrap();
    regtool(&["push-blob", "fred/logs", file.to_str().unwrap(), "@v1"])
        .env("REGTOOL_HOST", &host)
        .run()
        .ok();
    let layout = format!("oci:{}/fred/logs:v1", dir.path().display());
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", &layout])
        .output()
        .expect("skopeo must be installed");
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(v["layers"][0]["digest"], sha256(b"notes for skopeo"));
    assert_eq!(
        v["layers"][0]["annotations"]["org.opencontainers.image.title"],
        "notes.txt"
    );
    // skopeo copies it out of the layout, reading index.json and every blob.
    let copy = dir.path().join("copy");
    let out = Command::new("skopeo")
        .args(["copy", &layout, &format!("oci:{}:copied", copy.display())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let blob = copy
        .join("blobs/sha256")
        .join(&sha256(b"notes for skopeo")[7..]);
    assert_eq!(std::fs::read(blob).unwrap(), b"notes for skopeo");
}

#[test]
fn a_corrupted_local_blob_is_a_data_error() {
    let dir = tempdir();
    let host = format!("oci:{}", dir.path().display());
    let d = regtool(&["push-blob", "fred/logs", "-"])
        .env("REGTOOL_HOST", &host)
        .stdin("intact")
        .run()
        .ok();
    let path = dir
        .path()
        .join("fred/logs/blobs/sha256")
        .join(&d.trim()[7..]);
    std::fs::write(&path, "broken").unwrap();
    let target = dir.path().join("out");
    let out = regtool(&[
        "pull-blob",
        "fred/logs",
        d.trim(),
        "-o",
        target.to_str().unwrap(),
    ])
    .env("REGTOOL_HOST", &host)
    .run();
    out.fails(65);
    assert!(!target.exists());
}

#[test]
fn the_default_store_is_in_the_data_directory() {
    let home = tempdir();
    let run = |args: &[&str]| regtool(args).env("HOME", home.path());
    let d = run(&["push-blob", "fred/logs", "-", "@x"])
        .stdin("default store")
        .run()
        .ok();
    assert_eq!(
        run(&["pull-blob", "fred/logs", "x"]).run().stdout,
        b"default store"
    );
    let expected = home
        .path()
        .join(".local/share/regtool/store/fred/logs/blobs/sha256")
        .join(&d.trim()[7..]);
    assert!(expected.is_file(), "{} missing", expected.display());
    // XDG_DATA_HOME moves it, like any XDG program.
    let xdg = tempdir();
    run(&["push-blob", "fred/logs", "-"])
        .env("XDG_DATA_HOME", xdg.path())
        .stdin("xdg")
        .run()
        .ok();
    assert!(
        xdg.path()
            .join("regtool/store/fred/logs/oci-layout")
            .is_file()
    );
}
