//! Image commands given hostile local inputs: layouts whose files are links out of the layout,
//! FIFOs or endless files, archives whose layers are not what they claim. Each ends in one
//! clear line and the documented status, in bounded time, and nothing outside the paths given
//! is read, changed or removed.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::faults::{Fault, FaultProxy, rule};
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
    // blobs/sha256 as a link: nothing is written there, nothing there is swept.
    std::fs::remove_file(&tmp).unwrap();
    std::fs::rename(dir.join("L/blobs/sha256"), dir.join("L/blobs/real")).unwrap();
    symlink("../../home", &dir.join("L/blobs/sha256"));
    let out = pull();
    assert!(out.fails(65).contains("blobs/sha256"), "{}", out.stderr);
    keeps("linked blobs");
    let written: Vec<_> = std::fs::read_dir(&victim).unwrap().flatten().collect();
    assert_eq!(
        written.len(),
        2,
        "blobs written through the link: {written:?}"
    );
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

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// `archive` again with the bytes of its member `name` replaced by `data`.
fn replace_member(archive: &Path, name: &str, data: &[u8], out: &Path) {
    let mut input = tar::Archive::new(std::fs::File::open(archive).unwrap());
    let mut builder = tar::Builder::new(std::fs::File::create(out).unwrap());
    for entry in input.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let mut header = entry.header().clone();
        if path.to_str() == Some(name) {
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder.append(&header, data).unwrap();
        } else {
            builder.append(&header, &mut entry).unwrap();
        }
    }
    builder.finish().unwrap();
}

#[test]
fn compressed_layers_cut_short_or_corrupt_are_bad_data_and_many_members_are_one_layer() {
    base();
    let reg = plain();
    let work = tempdir();
    let dir = work.path();
    std::fs::create_dir_all(dir.join("files/etc")).unwrap();
    for i in 0..40 {
        let text = format!("{i} {}\n", "x".repeat(300 + i * 37));
        std::fs::write(dir.join(format!("files/etc/f{i}.txt")), text).unwrap();
    }
    regtool(&["make-layer", "files/etc", "-o", "layer.tar"])
        .dir(dir)
        .run()
        .ok();
    let layer = std::fs::read(dir.join("layer.tar")).unwrap();
    let gz = gzip(&layer);
    let mut corrupt = gz.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0xff;
    corrupt[middle + 1] ^= 0xff;
    let zst = zstd::encode_all(&layer[..], 3).unwrap();
    let bad: [(&str, &[u8]); 4] = [
        ("cut.tar.gz", &gz[..gz.len() - 40]),
        ("corrupt.tar.gz", &corrupt),
        ("cut.tar.zst", &zst[..zst.len() / 2]),
        (
            "trailing.tar.zst",
            &[&zst[..], &b"junk after the frame"[..]].concat(),
        ),
    ];
    let repo = repo("hostile-layers");
    for (name, bytes) in bad {
        std::fs::write(dir.join(name), bytes).unwrap();
        let dst = format!("{repo}:{}", name.replace('.', "-"));
        let out = regtool(&["append-layer", "t/base:oci", &dst, name])
            .host(reg)
            .dir(dir)
            .run();
        // Cut or corrupt: the decompressor or the tar check says so.
        let line = out.fails(65);
        assert!(
            line.contains("not a valid") || line.contains("not a tar"),
            "{name}: {line}"
        );
        let tags = regtool(&["list-aliases", &repo]).host(reg).run();
        assert!(!tags.text().contains(&name.replace('.', "-")), "{name}");
        // make-image reads it as flatten does: the same verdict.
        let out = regtool(&["make-image", name, "-o", "docker-archive:image.tar"])
            .dir(dir)
            .run();
        out.fails(65);
        assert!(!dir.join("image.tar").exists());
    }
    // An archive whose layer member is a cut gzip: push-image, digest and copy to a layout
    // say so with 65, and the layout is not created.
    regtool(&["make-image", "layer.tar", "-o", "docker-archive:good.tar"])
        .dir(dir)
        .run()
        .ok();
    let member = format!("{}.tar", sha256(&layer).trim_start_matches("sha256:"));
    replace_member(
        &dir.join("good.tar"),
        &member,
        &gz[..gz.len() - 40],
        &dir.join("cut.tar"),
    );
    let dst = format!("{repo}:archive");
    for args in [
        vec!["push-image", "cut.tar", &dst],
        vec!["digest", "docker-archive:cut.tar"],
        vec!["copy", "docker-archive:cut.tar", "oci:Imported:v1"],
    ] {
        let out = regtool(&args).host(reg).dir(dir).run();
        assert!(out.fails(65).contains(&member), "{args:?}: {}", out.stderr);
    }
    assert!(
        !dir.join("Imported").exists(),
        "a failed import left a layout"
    );
    // A gzip of several members (pigz --independent, cat a.gz b.gz) is one layer, as Go's
    // gzip reader (the registry's clients) and flatten read it: its diff_id is the whole tar's.
    let cut = layer.len() / 2;
    let multi = [gzip(&layer[..cut]), gzip(&layer[cut..])].concat();
    std::fs::write(dir.join("multi.tar.gz"), &multi).unwrap();
    let dst = format!("{repo}:multi");
    regtool(&["append-layer", "t/base:oci", &dst, "multi.tar.gz"])
        .host(reg)
        .dir(dir)
        .run()
        .ok();
    let m = crate::images::manifest(reg, &repo, "multi");
    let config = crate::images::config(reg, &repo, &m);
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.last().unwrap(), &sha256(&layer));
}

#[test]
fn an_interrupted_pull_into_an_archive_leaves_no_archive() {
    base();
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("GET", "/blobs/sha256:", Fault::Stall(10), 1)],
    );
    let work = tempdir();
    let (out, tmp) = (work.path().join("out"), work.path().join("tmp"));
    std::fs::create_dir(&out).unwrap();
    std::fs::create_dir(&tmp).unwrap();
    let child = regtool(&[
        "pull-image",
        &format!("{}/t/base:oci", proxy.host),
        "out/image.tar",
    ])
    .env("TMPDIR", &tmp)
    .dir(work.path())
    .spawn();
    wait_until("a blob stalls", || proxy.count("FAULT") == 1);
    interrupt(&child);
    let done = child.wait_with_output().unwrap();
    assert_eq!(
        done.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    for d in [&out, &tmp] {
        let left: Vec<_> = std::fs::read_dir(d).unwrap().flatten().collect();
        assert!(left.is_empty(), "left in {}: {left:?}", d.display());
    }
}

#[test]
fn flatten_checks_an_archives_layers_against_their_diff_ids() {
    let work = tempdir();
    let dir = work.path();
    std::fs::create_dir_all(dir.join("files/etc")).unwrap();
    std::fs::write(dir.join("files/etc/motd"), "hello\n").unwrap();
    regtool(&["make-layer", "files/etc", "-o", "layer.tar"])
        .dir(dir)
        .run()
        .ok();
    regtool(&["make-image", "layer.tar", "-o", "docker-archive:good.tar"])
        .dir(dir)
        .run()
        .ok();
    let layer = std::fs::read(dir.join("layer.tar")).unwrap();
    let member = format!("{}.tar", sha256(&layer).trim_start_matches("sha256:"));
    // Another tar than the config names, valid as a tar, plain and gzipped.
    let other = [&layer[..], &[0u8; 512][..]].concat();
    for (name, bytes) in [("plain.tar", other.clone()), ("gzipped.tar", gzip(&other))] {
        replace_member(&dir.join("good.tar"), &member, &bytes, &dir.join(name));
        let image = format!("docker-archive:{name}");
        let out = regtool(&["flatten", &image]).dir(dir).run();
        assert!(out.fails(65).contains("diff_id"), "{}", out.stderr);
        assert!(
            out.stdout.is_empty(),
            "{name}: flatten wrote before checking"
        );
        regtool(&["flatten", &image, "-o", "flat.tar"])
            .dir(dir)
            .run()
            .fails(65);
        assert!(!dir.join("flat.tar").exists());
    }
    regtool(&["flatten", "docker-archive:good.tar"])
        .dir(dir)
        .run()
        .ok();
}

#[test]
fn a_registry_name_that_is_a_local_path_gets_a_hint() {
    base();
    let reg = plain();
    let work = tempdir();
    let dir = work.path();
    layout(dir, "mylayout");
    regtool(&["pull-image", "t/base:oci", "image.tar"])
        .host(reg)
        .dir(dir)
        .run()
        .ok();
    // flatten and copy take registry references where a path is bare: the lookup fails (2)
    // and the hint names the local form.
    let hint = |out: &Run| {
        out.stderr
            .lines()
            .find_map(|l| l.strip_prefix("hint: "))
            .unwrap_or_default()
            .to_string()
    };
    let out = regtool(&["flatten", "mylayout", "-o", "flat.tar"])
        .host(reg)
        .dir(dir)
        .run();
    out.fails(2);
    assert_eq!(
        hint(&out),
        "mylayout is a local directory: name an OCI layout oci:mylayout"
    );
    let out = regtool(&["copy", "image.tar", "oci:Copy"])
        .host(reg)
        .dir(dir)
        .run();
    out.fails(2);
    assert_eq!(
        hint(&out),
        "image.tar is a local file: name a docker archive docker-archive:image.tar"
    );
    assert!(!dir.join("Copy").exists() && !dir.join("flat.tar").exists());
    // A name that is no local path gets no such hint.
    let out = regtool(&["copy", "nothing-here", "oci:Copy"])
        .host(reg)
        .dir(dir)
        .run();
    out.fails(2);
    assert!(!out.stderr.contains("local"), "{}", out.stderr);
}

/// A layer tar of `entries`: (path, Some(symlink target) or None for a file holding "x").
fn layer_tar(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, link) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        if path.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, path, &[][..]).unwrap();
        } else if let Some(target) = link {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, path, target).unwrap();
        } else {
            h.set_size(1);
            b.append_data(&mut h, path, &b"x"[..]).unwrap();
        }
    }
    b.into_inner().unwrap()
}

#[test]
fn flatten_resolves_paths_through_a_lower_layers_symlinks_as_umoci_does() {
    let work = tempdir();
    let dir = work.path();
    // A merged-/usr base (bin -> usr/bin, as Debian 12 has), a layer that puts bin/prog
    // (make-layer prog=/bin/prog), one that whites out bin/ls, and a link out of the root.
    let layers = [
        layer_tar(&[
            ("usr/", None),
            ("usr/bin/", None),
            ("usr/bin/ls", None),
            ("usr/bin/cat", None),
            ("bin", Some("usr/bin")),
            ("up", Some("../../..")),
        ]),
        layer_tar(&[("bin/prog", None), ("up/etc/conf", None)]),
        layer_tar(&[("bin/.wh.ls", None)]),
    ];
    let mut args = vec!["make-image".to_string()];
    for (i, l) in layers.iter().enumerate() {
        let name = format!("l{i}.tar");
        std::fs::write(dir.join(&name), l).unwrap();
        args.push(name);
    }
    args.extend(["-o".into(), "docker-archive:img.tar".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    regtool(&args).dir(dir).run().ok();
    let flat = regtool(&["flatten", "docker-archive:img.tar"])
        .dir(dir)
        .run();
    let mut ours = std::collections::BTreeSet::new();
    for entry in tar::Archive::new(&flat.ok().into_bytes()[..])
        .entries()
        .unwrap()
    {
        let entry = entry.unwrap();
        let path = entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let link = entry
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        ours.insert(format!("{path} {}", link.unwrap_or_default()));
        // A parent no layer declared is made by whoever extracts the tar, umoci included.
        let mut parent = std::path::Path::new(&path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            ours.insert(format!("{} ", p.display()));
            parent = p.parent();
        }
    }
    crate::images::run(
        dir,
        "skopeo",
        &["copy", "-q", "docker-archive:img.tar", "oci:L:x"],
    );
    crate::images::run(dir, "umoci", &["unpack", "--image", "L:x", "bundle"]);
    let listing = crate::images::run(
        dir,
        "find",
        &["bundle/rootfs", "-mindepth", "1", "-printf", "%P %l\\n"],
    );
    let theirs: std::collections::BTreeSet<String> =
        listing.lines().map(|l| l.to_string()).collect();
    assert_eq!(ours, theirs);
    assert!(
        ours.contains("usr/bin/prog ") && ours.contains("bin usr/bin"),
        "{ours:?}"
    );
    assert!(
        ours.contains("etc/conf ") && !ours.contains("usr/bin/ls "),
        "{ours:?}"
    );
}

#[test]
fn an_archive_named_dash_is_no_output() {
    base();
    let reg = plain();
    let work = tempdir();
    let dir = work.path();
    std::fs::create_dir(dir.join("files")).unwrap();
    std::fs::write(dir.join("files/a.txt"), "a\n").unwrap();
    regtool(&["make-layer", "files", "-o", "layer.tar"])
        .dir(dir)
        .run()
        .ok();
    for args in [
        vec!["pull-image", "t/base:oci", "docker-archive:-"],
        vec!["copy", "t/base:oci", "docker-archive:-"],
        vec!["make-image", "layer.tar", "-o", "docker-archive:-"],
    ] {
        let out = regtool(&args).host(reg).dir(dir).run();
        assert!(out.fails(64).contains("stdin"), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty());
        assert!(!dir.join("-").exists(), "{args:?} made a file named -");
    }
}

#[test]
fn a_bare_dash_is_an_archive_on_stdin() {
    base();
    let reg = plain();
    let work = tempdir();
    let dir = work.path();
    regtool(&["pull-image", "t/base:oci", "image.tar"])
        .host(reg)
        .dir(dir)
        .run()
        .ok();
    let archive = std::fs::read(dir.join("image.tar")).unwrap();
    let dst = format!("{}:dash", repo("dash"));
    let pushed = regtool(&["push-image", "-", &dst])
        .host(reg)
        .dir(dir)
        .stdin(archive.clone())
        .run()
        .ok();
    let named = regtool(&["push-image", "docker-archive:-", &dst])
        .host(reg)
        .dir(dir)
        .stdin(archive)
        .run()
        .ok();
    assert_eq!(pushed, named);
    // As a target it is refused as docker-archive:- is, and no file named - is made.
    let out = regtool(&["pull-image", "t/base:oci", "-"])
        .host(reg)
        .dir(dir)
        .run();
    out.fails(64);
    assert!(!dir.join("-").exists());
}
