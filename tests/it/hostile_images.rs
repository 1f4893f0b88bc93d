//! Image commands given hostile local inputs: layouts whose files are links out of the layout,
//! FIFOs or endless files, archives whose layers are not what they claim. Each ends in one
//! clear line and the documented status, in bounded time, and nothing outside the paths given
//! is read, changed or removed.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::harness::*;
use crate::images::base;

/// A command that must end on its own: a hang ends as `timeout`'s 124, failing the status
/// check instead of the whole run.
fn bounded(args: &[&str]) -> Cmd {
    wrapped(&["timeout", "60"], args)
}

/// A fresh layout `name` in `dir` holding t/base:oci as `v1`; returns the manifest, config
/// and first layer digests' hex.
fn layout(dir: &Path, name: &str) -> (String, String, String) {
    let target = format!("oci:{name}:v1");
    let out = regtool(&["pull-image", "t/base:oci", &target])
        .host(plain())
        .dir(dir)
        .run()
        .ok();
    let hex = |d: &str| d.trim().trim_start_matches("sha256:").to_string();
    let manifest = hex(&out);
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join(name).join("blobs/sha256").join(&manifest)).unwrap(),
    )
    .unwrap();
    let config = hex(m["config"]["digest"].as_str().unwrap());
    let layer = hex(m["layers"][0]["digest"].as_str().unwrap());
    (manifest, config, layer)
}

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
}

fn symlink(target: &str, link: &Path) {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link).unwrap();
}

fn age(path: &Path, by: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - by).unwrap();
}

#[test]
fn links_planted_in_a_target_layout_damage_nothing_outside_it() {
    base();
    let work = tempdir();
    let dir = work.path();
    layout(dir, "L");
    // The user's files, old enough for any sweep of stale temporaries.
    let victim = dir.join("home");
    std::fs::create_dir(&victim).unwrap();
    for name in ["notes.txt", ".bashrc"] {
        std::fs::write(victim.join(name), "precious\n").unwrap();
        age(&victim.join(name), Duration::from_secs(7200));
    }
    let keeps = |why: &str| {
        for name in ["notes.txt", ".bashrc"] {
            assert_eq!(
                std::fs::read_to_string(victim.join(name)).unwrap_or_default(),
                "precious\n",
                "{name} after {why}"
            );
        }
    };
    let pull = || {
        regtool(&["pull-image", "t/base:docker", "oci:L:v2"])
            .host(plain())
            .dir(dir)
            .run()
    };
    // The lock through a link would be truncated; the temporaries' directory through a link
    // would have its old files swept away.
    let lock = dir.join("L/.regtool.lock");
    symlink("../home/notes.txt", &lock);
    let out = pull();
    assert!(out.fails(65).contains(".regtool.lock"), "{}", out.stderr);
    keeps("a linked lock");
    std::fs::remove_file(&lock).unwrap();
    let tmp = dir.join("L/.regtool-tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    symlink("../home", &tmp);
    let out = pull();
    assert!(out.fails(65).contains(".regtool-tmp"), "{}", out.stderr);
    keeps("a linked temporaries' directory");
    // blobs/sha256 as a link: whatever is written goes there, but nothing there is swept.
    std::fs::remove_file(&tmp).unwrap();
    std::fs::rename(dir.join("L/blobs/sha256"), dir.join("L/blobs/real")).unwrap();
    symlink("../../home", &dir.join("L/blobs/sha256"));
    pull();
    keeps("linked blobs");
}

#[test]
fn layout_files_that_are_not_files_are_bad_data_in_bounded_time() {
    base();
    let work = tempdir();
    let dir = work.path();
    let secret = dir.join("secret");
    std::fs::write(&secret, "not the layout's\n").unwrap();
    let commands = |name: &str| -> Vec<Vec<String>> {
        let oci = format!("oci:{name}:v1");
        [
            vec!["push-image", &oci, "t/hostile:x"],
            vec!["flatten", &oci, "-o", "flat.tar"],
            vec!["copy", &oci, "docker-archive:out.tar"],
            vec!["copy", &oci, "oci:Copy"],
        ]
        .iter()
        .map(|v| v.iter().map(|s| s.to_string()).collect())
        .collect()
    };
    let check = |name: &str, says: &str| {
        for args in commands(name) {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = bounded(&args).host(plain()).dir(dir).run();
            let line = out.fails(65);
            assert!(line.contains(says), "{args:?}: {line}");
            for written in ["flat.tar", "out.tar", "Copy"] {
                assert!(!dir.join(written).exists(), "{args:?} wrote {written}");
            }
        }
    };
    // A layer that is a link out of the layout (its size would tell about its target), a
    // layer, a config and a manifest that are FIFOs (opening one would wait for a writer).
    let (manifest, config, layer) = layout(dir, "Link");
    symlink(
        secret.to_str().unwrap(),
        &dir.join("Link/blobs/sha256").join(&layer),
    );
    check("Link", &layer);
    for (name, hex) in [("Layer", 2), ("Config", 1), ("Manifest", 0)] {
        let digests = layout(dir, name);
        let hex = [&digests.0, &digests.1, &digests.2][hex].clone();
        mkfifo(&dir.join(name).join("blobs/sha256").join(&hex));
        check(name, "not a regular file");
    }
    let _ = (manifest, config);
    // An index.json that never ends.
    layout(dir, "Endless");
    symlink("/dev/zero", &dir.join("Endless/index.json"));
    check("Endless", "index.json");
    let out = bounded(&["digest", "oci:Endless:v1"]).dir(dir).run();
    assert!(out.fails(65).contains("index.json"));
}
