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

/// `REGTOOL_HOST=oci:<dir>` for a store in `dir`.
fn store(dir: &std::path::Path) -> String {
    format!("oci:{}", dir.display())
}

/// Asserts that a layout's `blobs/sha256` holds blobs only: each file named by the digest of
/// its content, nothing else (image-spec "Blobs"), and that umoci agrees.
fn assert_only_blobs(layout: &std::path::Path) {
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        assert!(entry.file_type().unwrap().is_file(), "{name} is not a file");
        let content = std::fs::read(entry.path()).unwrap();
        assert_eq!(sha256(&content), format!("sha256:{name}"), "{name}");
    }
    let gc = Command::new("umoci")
        .args(["gc", "--layout"])
        .arg(layout)
        .output()
        .expect("umoci must be installed");
    assert!(
        gc.status.success(),
        "umoci gc: {}",
        String::from_utf8_lossy(&gc.stderr)
    );
}

#[test]
fn a_name_never_lands_inside_another_layout() {
    let dir = tempdir();
    let host = store(dir.path());
    let run = |args: &[&str]| regtool(args).env("REGTOOL_HOST", &host);
    let file = dir.path().join("f");
    std::fs::write(&file, "content").unwrap();
    let f = file.to_str().unwrap();
    let hex = &sha256(b"content")[7..];
    // x created before: every name that would reach into its layout is refused.
    run(&["push-blob", "x", f, "@v1"]).run().ok();
    let inside = format!("x/blobs/sha256/{hex}");
    for name in [
        "x/blobs",
        "x/blobs/sha256",
        "x/index.json",
        "x/oci-layout",
        inside.as_str(),
    ] {
        let out = run(&["push-blob", name, f, "@v2"]).run();
        let err = out.fails(64);
        assert!(
            err.contains(&format!("invalid repository name {name:?}")) && err.contains("blobs"),
            "{err}"
        );
        run(&["list-aliases", name]).run().fails(64);
        run(&["mount-blob", name, "x", &sha256(b"content")])
            .run()
            .fails(64);
    }
    assert_only_blobs(&dir.path().join("x"));
    assert_eq!(run(&["list-aliases", "x"]).run().lines(), ["v1"]);
    // ... and created after: the names are refused before x exists too, so x's layout is clean.
    for name in ["y/blobs", "y/blobs/sha256", "blobs/y"] {
        run(&["push-blob", name, f]).run().fails(64);
    }
    run(&["push-blob", "y", f, "@v1"]).run().ok();
    assert_only_blobs(&dir.path().join("y"));
    // A nested repository that is not one of a layout's own names is fine.
    run(&["push-blob", "x/sub", f, "@v1"]).run().ok();
    assert_eq!(run(&["list-repos"]).run().lines(), ["x", "x/sub", "y"]);
    assert_only_blobs(&dir.path().join("x"));
}

#[test]
fn list_repos_lists_every_repository_it_can_read() {
    let dir = tempdir();
    let host = store(dir.path());
    let run = |args: &[&str]| regtool(args).env("REGTOOL_HOST", &host);
    run(&["push-blob", "a/b", "-", "@t"]).stdin("a").run().ok();
    // A repository reached through a symbolic link (a layout kept elsewhere) reads, so it lists.
    let elsewhere = tempdir();
    let other = store(elsewhere.path());
    regtool(&["push-blob", "kept", "-", "@t"])
        .env("REGTOOL_HOST", &other)
        .stdin("k")
        .run()
        .ok();
    std::os::unix::fs::symlink(elsewhere.path().join("kept"), dir.path().join("linked")).unwrap();
    // A loop of links is walked once.
    std::os::unix::fs::symlink(dir.path(), dir.path().join("a/loop")).unwrap();
    assert_eq!(run(&["list-aliases", "linked"]).run().lines(), ["t"]);
    // A directory whose name is no repository name cannot be read: it is not listed.
    std::fs::create_dir_all(dir.path().join("Upper")).unwrap();
    std::fs::copy(
        dir.path().join("a/b/oci-layout"),
        dir.path().join("Upper/oci-layout"),
    )
    .unwrap();
    assert_eq!(run(&["list-repos"]).run().lines(), ["a/b", "linked"]);
}

#[test]
fn a_killed_push_leaves_blobs_holding_only_blobs() {
    let dir = tempdir();
    let host = store(dir.path());
    let layout = dir.path().join("r");
    regtool(&["push-blob", "r", "-", "@first"])
        .env("REGTOOL_HOST", &host)
        .stdin("first")
        .run()
        .ok();
    let mut child = regtool(&["push-blob", "r", "-", "@killed"])
        .env("REGTOOL_HOST", &host)
        .spawn();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, &bytes(1 << 20, 3)).unwrap();
    std::io::Write::flush(&mut stdin).unwrap();
    wait_until("the push has a partial file", || {
        walk_files(&layout)
            .iter()
            .any(|(name, size)| name.starts_with(".upload-") && *size > 0)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    regtool(&["push-blob", "r", "-", "@second"])
        .env("REGTOOL_HOST", &host)
        .stdin("second")
        .run()
        .ok();
    assert_only_blobs(&layout);
    assert_eq!(
        regtool(&["list-aliases", "r"])
            .env("REGTOOL_HOST", &host)
            .run()
            .lines(),
        ["first", "second"]
    );
}

/// Every file under `dir`: its name and size.
fn walk_files(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            out.extend(walk_files(&entry.path()));
        } else {
            out.push((entry.file_name().into_string().unwrap(), meta.len()));
        }
    }
    out
}

#[test]
fn a_corrupt_blob_is_never_mounted_and_a_push_heals_it() {
    let dir = tempdir();
    let host = store(dir.path());
    let run = |args: &[&str]| regtool(args).env("REGTOOL_HOST", &host);
    let file = dir.path().join("f");
    std::fs::write(&file, "intact").unwrap();
    let f = file.to_str().unwrap();
    let d = run(&["push-blob", "a", f]).run().ok();
    let d = d.trim();
    let blob = |repo: &str| dir.path().join(repo).join("blobs/sha256").join(&d[7..]);
    // Corrupt in place, same size: a mount refuses to spread it.
    std::fs::write(blob("a"), "broken").unwrap();
    let err = run(&["mount-blob", "b", "a", d]).run();
    assert!(
        err.fails(65).contains(&format!(
            "mounting {d} from a: the blob in a is corrupt (its content has another digest)"
        )),
        "{}",
        err.stderr
    );
    assert!(!blob("b").exists());
    // A push of the right content replaces the corrupt blob.
    run(&["push-blob", "a", f]).run().ok();
    assert_eq!(std::fs::read(blob("a")).unwrap(), b"intact");
    // A corrupt blob in the target of a mount is replaced by the verified source.
    run(&["push-blob", "b", f]).run().ok();
    std::fs::write(blob("b"), "broken").unwrap();
    run(&["mount-blob", "b", "a", d]).run().ok();
    assert_eq!(std::fs::read(blob("b")).unwrap(), b"intact");
    // And a stream pushed from stdin heals too.
    std::fs::write(blob("b"), "broken").unwrap();
    run(&["push-blob", "b", "-"]).stdin("intact").run().ok();
    assert_eq!(std::fs::read(blob("b")).unwrap(), b"intact");
}

/// The race of two first writers, forced: the first is held by strace for two seconds just
/// before it renames its new `index.json` into place, while the second creates the layout,
/// pushes and tags. Before the fix the first writer's empty index then erased that tag.
#[test]
fn a_first_writer_held_before_its_index_lands_erases_no_tag() {
    let dir = tempdir();
    let host = store(dir.path());
    let file = |name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, name).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (slow, fast) = (file("slow"), file("fast"));
    let renames = "rename,renameat,renameat2";
    let delay = format!("inject={renames}:delay_enter=2000000:when=1");
    let held = wrapped(
        &[
            "strace",
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            &format!("trace={renames}"),
            "-e",
            &delay,
        ],
        &["push-blob", "new/repo", &slow, "@slow"],
    )
    .env("REGTOOL_HOST", &host)
    .spawn();
    wait_until("the first writer has prepared its index", || {
        walk_files(&dir.path().join("new/repo"))
            .iter()
            .any(|(name, _)| name.starts_with(".tmp-") || name.starts_with(".upload-"))
    });
    regtool(&["push-blob", "new/repo", &fast, "@fast"])
        .env("REGTOOL_HOST", &host)
        .run()
        .ok();
    let out = held.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut tags = regtool(&["list-aliases", "new/repo"])
        .env("REGTOOL_HOST", &host)
        .run()
        .lines();
    tags.sort();
    assert_eq!(tags, ["fast", "slow"]);
}

/// Unforced races of first writers: several at once into each of several new layouts.
#[test]
fn writers_racing_to_create_a_layout_keep_every_tag() {
    const WRITERS: usize = 3;
    const STORES: usize = 4;
    let files = tempdir();
    let file = |i: usize| {
        let path = files.path().join(format!("f{i}"));
        std::fs::write(&path, format!("writer {i}")).unwrap();
        path.to_str().unwrap().to_string()
    };
    let files: Vec<String> = (0..WRITERS).map(file).collect();
    for batch in 0..10 {
        // Files, not stdin: a writer creates the layout as soon as it has hashed its input.
        let dirs: Vec<_> = (0..STORES).map(|_| tempdir()).collect();
        let children: Vec<_> = dirs
            .iter()
            .flat_map(|dir| {
                let host = store(dir.path());
                files.iter().enumerate().map(move |(i, f)| {
                    regtool(&["push-blob", "new/repo", f, &format!("@t{i}")])
                        .env("REGTOOL_HOST", &host)
                        .spawn()
                })
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for dir in &dirs {
            let index = std::fs::read(dir.path().join("new/repo/index.json")).unwrap();
            let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
            let mut tags: Vec<_> = index["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["annotations"]["org.opencontainers.image.ref.name"].clone())
                .collect();
            tags.sort_by_key(|t| t.to_string());
            assert_eq!(tags, ["t0", "t1", "t2"], "batch {batch}");
        }
    }
}
