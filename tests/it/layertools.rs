//! squash, flatten and make-layer: layers with whiteouts, an opaque directory, hard links,
//! symlinks, owners and xattrs (written by python's tarfile, which can write them all), built
//! into a real image by umoci and pushed by skopeo; flatten's tree is compared with what
//! `umoci unpack` makes of the same image, and wheels are installed by real pip to compare.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::harness::*;
use crate::images::{base, run};

/// Writes the test layers into `dir`: layer1.tar (a base tree), layer2.tar (whiteouts, an
/// opaque directory, a hard link, a symlink, an xattr, a re-declared directory), and
/// evil-dotdot.tar / evil-abs.tar / evil-first.tar (entries that leave the root; the
/// first entry of the last).
const LAYERS_PY: &str = r#"
import io, sys, tarfile, os
os.chdir(sys.argv[1])
def add(t, name, kind="f", data=b"", mode=0o644, link="", uid=0, gid=0, pax=None, mtime=1600000000):
    i = tarfile.TarInfo(name)
    i.mode, i.uid, i.gid, i.mtime = mode, uid, gid, mtime
    i.uname, i.gname = ("user", "group") if uid else ("root", "root")
    if pax: i.pax_headers = pax
    if kind == "d": i.type = tarfile.DIRTYPE
    elif kind == "l": i.type, i.linkname = tarfile.SYMTYPE, link
    elif kind == "h": i.type, i.linkname = tarfile.LNKTYPE, link
    else: i.size = len(data)
    t.addfile(i, io.BytesIO(data) if kind == "f" else None)
with tarfile.open("layer1.tar", "w", format=tarfile.PAX_FORMAT) as t:
    add(t, "etc", "d", mode=0o755)
    add(t, "etc/keep.txt", data=b"keep\n")
    add(t, "etc/gone.txt", data=b"gone\n")
    add(t, "etc/hard-src", data=b"shared inode\n", uid=1000, gid=1001)
    add(t, "opt", "d", mode=0o755)
    add(t, "opt/old", "d", mode=0o755)
    add(t, "opt/old/a", data=b"a\n")
    add(t, "var", "d", mode=0o755)
    add(t, "var/cache", "d", mode=0o755)
    add(t, "var/cache/lower", data=b"lower\n")
    add(t, "bin", "d", mode=0o755)
    add(t, "bin/tool", data=b"v1\n", mode=0o755)
with tarfile.open("layer2.tar", "w", format=tarfile.PAX_FORMAT) as t:
    add(t, "etc", "d", mode=0o750, mtime=1700000000)
    add(t, "etc/.wh.gone.txt")
    add(t, "etc/hard-link", "h", link="etc/hard-src")
    add(t, "etc/link", "l", link="keep.txt", mode=0o777)
    add(t, "etc/attr.txt", data=b"attr\n", pax={"SCHILY.xattr.user.demo": "hello"})
    add(t, "var/cache/.wh..wh..opq")
    add(t, "var/cache/upper", data=b"upper\n", mode=0o600)
    add(t, "opt/.wh.old")
    add(t, "bin/tool", data=b"v2\n", mode=0o700)
for name, path in [("evil-dotdot.tar", "a/../../x"), ("evil-abs.tar", "/abs")]:
    with tarfile.open(name, "w", format=tarfile.GNU_FORMAT) as t:
        add(t, "ok", data=b"ok\n")
        add(t, path, data=b"evil\n")
with tarfile.open("evil-first.tar", "w", format=tarfile.GNU_FORMAT) as t:
    add(t, "../first", data=b"evil\n")
"#;

/// The layers of [`LAYERS_PY`], and an image of them pushed as t/flat:v1.
pub(crate) struct Layers {
    pub(crate) dir: PathBuf,
}

pub(crate) fn layers() -> &'static Layers {
    static L: OnceLock<Layers> = OnceLock::new();
    L.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("layers-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep();
        run(&dir, "python3", &["-c", LAYERS_PY, dir.to_str().unwrap()]);
        for layer in ["layer1.tar", "layer2.tar"] {
            run(&dir, "gzip", &["-n", "-k", layer]);
            run(&dir, "zstd", &["-q", layer]);
        }
        run(&dir, "umoci", &["init", "--layout", "L"]);
        run(&dir, "umoci", &["new", "--image", "L:flat"]);
        for layer in ["layer1.tar", "layer2.tar"] {
            run(
                &dir,
                "umoci",
                &["raw", "add-layer", "--image", "L:flat", layer],
            );
        }
        run(&dir, "umoci", &["unpack", "--image", "L:flat", "bundle"]);
        let dest = format!("docker://{}/t/flat:v1", plain().host);
        run(
            &dir,
            "skopeo",
            &["copy", "--dest-tls-verify=false", "oci:L:flat", &dest],
        );
        Layers { dir }
    })
}

/// `path type mode uid:gid [target] [mtime]` for each entry of a tar, as extraction makes it:
/// a hard link is the file it shares an inode with; the root is left out.
fn tar_listing(bytes: &[u8]) -> BTreeSet<String> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = BTreeSet::new();
    let mut headers = std::collections::HashMap::new();
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        let path = String::from_utf8(e.path_bytes().to_vec()).unwrap();
        let path = path
            .trim_end_matches('/')
            .trim_start_matches("./")
            .to_string();
        let mut h = e.header().clone();
        if h.entry_type() == tar::EntryType::Link {
            let target = String::from_utf8(e.link_name_bytes().unwrap().to_vec()).unwrap();
            h = headers
                .get(&target)
                .cloned()
                .expect("a hard link to an earlier entry");
        }
        headers.insert(path.clone(), h.clone());
        let h = &h;
        if path.is_empty() || path == "." {
            continue;
        }
        let (kind, extra) = match h.entry_type() {
            tar::EntryType::Directory => ("d", String::new()),
            tar::EntryType::Symlink => (
                "l",
                String::from_utf8(e.link_name_bytes().unwrap().to_vec()).unwrap(),
            ),
            _ => ("f", h.mtime().unwrap().to_string()),
        };
        out.insert(format!(
            "{path} {kind} {:o} {}:{} {extra}",
            h.mode().unwrap() & 0o7777,
            h.uid().unwrap(),
            h.gid().unwrap()
        ));
    }
    out
}

/// The same listing for a directory tree on disk.
fn tree_listing(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let m = e.path().symlink_metadata().unwrap();
            let path = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let (kind, extra) = if m.is_dir() {
                stack.push(e.path());
                ("d", String::new())
            } else if m.file_type().is_symlink() {
                (
                    "l",
                    std::fs::read_link(e.path())
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                )
            } else {
                ("f", m.mtime().to_string())
            };
            out.insert(format!(
                "{path} {kind} {:o} {}:{} {extra}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid()
            ));
        }
    }
    out
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn flatten_gives_the_tree_umoci_unpacks() {
    let l = layers();
    let reg = plain();
    let out_tar = l.dir.join("flat.tar");
    let config = l.dir.join("config.json");
    regtool(&[
        "flatten",
        "t/flat:v1",
        "-o",
        path(&out_tar),
        "--config",
        path(&config),
    ])
    .host(reg)
    .run()
    .ok();
    let bytes = std::fs::read(&out_tar).unwrap();
    let ours = tar_listing(&bytes);
    assert_eq!(ours, tree_listing(&l.dir.join("bundle/rootfs")));
    // The hand-checked essentials, so that a shared mistake with umoci cannot hide.
    for line in [
        "etc d 750 0:0 ",
        "etc/link l 777 0:0 keep.txt",
        "bin/tool f 700 0:0 1600000000",
        "var/cache/upper f 600 0:0 1600000000",
        "etc/hard-link f 644 1000:1001 1600000000",
    ] {
        assert!(ours.contains(line), "{line} in {ours:#?}");
    }
    for gone in ["etc/gone.txt", "opt/old", "var/cache/lower", ".wh."] {
        assert!(
            !ours.iter().any(|l| l.contains(gone)),
            "{gone} in {ours:#?}"
        );
    }
    // The hard link is a link in the tar and shares its inode in umoci's tree.
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut xattr = None;
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8(e.path_bytes().to_vec()).unwrap();
        if name == "etc/hard-link" {
            assert_eq!(e.header().entry_type(), tar::EntryType::Link);
            assert_eq!(&*e.link_name_bytes().unwrap(), b"etc/hard-src");
        }
        if name == "etc/attr.txt" {
            xattr = e.pax_extensions().unwrap().and_then(|mut p| {
                p.find_map(|x| {
                    let x = x.unwrap();
                    (x.key().unwrap() == "SCHILY.xattr.user.demo")
                        .then(|| x.value().unwrap().to_string())
                })
            });
        }
    }
    assert_eq!(xattr.as_deref(), Some("hello"));
    let rootfs = l.dir.join("bundle/rootfs");
    let ino = |p: &str| rootfs.join(p).metadata().unwrap().ino();
    assert_eq!(ino("etc/hard-link"), ino("etc/hard-src"));
    let umoci_xattr = run(
        &l.dir,
        "python3",
        &[
            "-c",
            "import os,sys; print(os.getxattr(sys.argv[1], 'user.demo').decode())",
            path(&rootfs.join("etc/attr.txt")),
        ],
    );
    assert_eq!(umoci_xattr.trim(), "hello");
    // The config as stored, and stdout gives the same bytes as -o.
    let m = crate::images::manifest(reg, "t/flat", "v1");
    assert_eq!(
        sha256(&std::fs::read(&config).unwrap()),
        m["config"]["digest"].as_str().unwrap()
    );
    let stdout = regtool(&["flatten", "t/flat:v1"]).host(reg).run();
    assert!(stdout.stdout == bytes, "stdout and -o differ");
    // The same image in the local store flattens to the same bytes.
    let store = tempdir();
    let local = format!("oci:{}", path(store.path()));
    regtool(&["copy", &format!("{}/t/flat:v1", reg.host), "t/flat:v1"])
        .env("REGTOOL_HOST", &local)
        .run()
        .ok();
    let from_store = regtool(&["flatten", "t/flat:v1"])
        .env("REGTOOL_HOST", &local)
        .run();
    assert!(from_store.stdout == bytes, "{}", from_store.stderr);
}

#[test]
fn flatten_takes_a_platform_for_an_index_and_full_references() {
    base();
    let reg = plain();
    let index = regtool(&["flatten", "t/base:multi"]).host(reg).run();
    assert!(
        index.fails(64).contains("multi-platform index"),
        "{}",
        index.stderr
    );
    let arm = regtool(&["flatten", &format!("{}/t/base:multi", reg.host)])
        .env("REGTOOL_PLATFORM", "linux/arm64")
        .run();
    let listing = tar_listing(&arm.stdout);
    let files: Vec<&str> = listing
        .iter()
        .filter(|l| l.contains(" f "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(files, ["etc/one.txt", "etc/two.txt"], "{}", arm.stderr);
    regtool(&["flatten", "t/base:nope"])
        .host(reg)
        .run()
        .fails(2);
    let same = regtool(&["flatten", "t/base:oci", "-o", "x.tar", "--config", "x.tar"])
        .host(reg)
        .run();
    assert!(same.fails(64).contains("same file"), "{}", same.stderr);
    // An alias's blobs are no layers: refused before anything is written.
    let dir = tempdir();
    let blob = dir.path().join("notes.txt");
    std::fs::write(&blob, "not a layer").unwrap();
    regtool(&["push-blob", "t/notes", path(&blob), "@notes"])
        .host(reg)
        .run()
        .ok();
    let alias = regtool(&["flatten", "t/notes:notes"]).host(reg).run();
    assert!(alias.fails(65).contains("not a tar"), "{}", alias.stderr);
    assert!(alias.stdout.is_empty());
}

#[test]
fn squash_is_the_same_bytes_whatever_the_compression() {
    let l = layers();
    let f = |name: &str| l.dir.join(name).to_str().unwrap().to_string();
    let plain_out = regtool(&["squash", &f("layer1.tar"), &f("layer2.tar")])
        .run()
        .stdout;
    let mixed = regtool(&["squash", &f("layer1.tar.gz"), &f("layer2.tar.zst")])
        .run()
        .stdout;
    let zstd = regtool(&["squash", &f("layer1.tar.zst"), &f("layer2.tar.gz")])
        .run()
        .stdout;
    assert!(!plain_out.is_empty());
    assert!(
        plain_out == mixed && mixed == zstd,
        "compression changed the output"
    );
    // stdin and a pipe (a FIFO, as <(...) gives) are spooled and give the same bytes.
    let fifo = l.dir.join("fifo");
    let _ = std::fs::remove_file(&fifo);
    run(&l.dir, "mkfifo", &[path(&fifo)]);
    let layer2 = std::fs::read(l.dir.join("layer2.tar.gz")).unwrap();
    let fifo_writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, layer2).unwrap())
    };
    let piped = regtool(&["squash", "-", path(&fifo)])
        .stdin(std::fs::read(l.dir.join("layer1.tar.zst")).unwrap())
        .run();
    fifo_writer.join().unwrap();
    assert!(piped.stdout == plain_out, "{}", piped.stderr);
    // The spool goes in TMPDIR, which the binary reads and hands to the library.
    let missing = l.dir.join("no-such-tmp");
    let out = regtool(&["squash", "-"])
        .env("TMPDIR", &missing)
        .stdin(std::fs::read(l.dir.join("layer1.tar.zst")).unwrap())
        .run();
    assert!(
        out.fails(2)
            .contains(&format!("creating a file in {}", missing.display())),
        "{}",
        out.stderr
    );
    // The squashed layer is what flatten gives for the image of the same layers.
    let flat = regtool(&["flatten", "t/flat:v1"])
        .host(plain())
        .run()
        .stdout;
    assert_eq!(tar_listing(&plain_out), tar_listing(&flat));
}

#[test]
fn squash_refuses_escaping_entries_and_missing_files() {
    let l = layers();
    for (name, why) in [
        ("evil-dotdot.tar", "leaves the layer's root"),
        ("evil-abs.tar", "leaves the layer's root"),
        // Refused in its first header: said as such, not as "empty input".
        (
            "evil-first.tar",
            "the tar entry \"../first\" leaves the layer's root",
        ),
    ] {
        let out = regtool(&[
            "squash",
            path(&l.dir.join("layer1.tar")),
            path(&l.dir.join(name)),
        ])
        .run();
        let err = out.fails(65);
        assert!(err.contains(why) && err.contains(name), "{err}");
    }
    let missing = regtool(&["squash", path(&l.dir.join("layer1.tar")), "no-such.tar"]).run();
    assert!(
        missing.fails(2).contains("no-such.tar"),
        "{}",
        missing.stderr
    );
    let twice = regtool(&["squash", "-", "-"]).run();
    assert!(twice.fails(64).contains("stdin"), "{}", twice.stderr);
}

#[test]
fn output_is_never_partial() {
    let l = layers();
    let dir = tempdir();
    let target = dir.path().join("out.tar");
    std::fs::write(&target, "previous content").unwrap();
    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, vec![b'x'; 5000]).unwrap();
    for args in [
        vec![
            "squash".to_string(),
            path(&l.dir.join("layer1.tar")).into(),
            path(&junk).into(),
        ],
        vec!["flatten".to_string(), "t/flat:nope".into()],
    ] {
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.extend(["-o", path(&target)]);
        let out = regtool(&args).host(plain()).run();
        assert_ne!(out.status, 0);
        out.fails(out.status);
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "previous content"
        );
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "a temporary file was left: {names:?}");
    }
}

/// Writes a wheel (as `pip wheel` would, with python's zipfile) for `demo` 1.0: a package, a
/// script with a `#!python` line, purelib and data files, and a console_scripts entry point.
const WHEEL_PY: &str = r##"
import zipfile, hashlib, base64, sys
def h(b): return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode()
files = {
 "demo/__init__.py": b"def main():\n    print('hi')\n",
 "demo/data.txt": b"payload\n",
 "demo/run.sh": b"#!/bin/sh\n",
 "demo-1.0.data/scripts/demo-tool": b"#!python\nimport demo\ndemo.main()\n",
 "demo-1.0.data/purelib/extra_mod.py": b"X = 1\n",
 "demo-1.0.data/data/share/demo/readme.txt": b"readme\n",
 "demo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
 "demo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
 "demo-1.0.dist-info/entry_points.txt": b"[console_scripts]\ndemo-hello = demo:main\n",
 "demo-1.0.dist-info/top_level.txt": b"demo\n",
}
if len(sys.argv) > 2:
    files["demo/data.txt"] = b"tampered\n"
record = "".join(f"{p},{h(b if p != 'demo/data.txt' else b'payload' + bytes([10]))},{len(b)}\n" for p, b in files.items())
record += "demo-1.0.dist-info/RECORD,,\n"
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for p, b in files.items():
        info = zipfile.ZipInfo(p, (1980, 1, 1, 0, 0, 0))
        info.external_attr = (0o755 if p.endswith((".sh", "demo-tool")) else 0o644) << 16
        z.writestr(info, b)
    z.writestr(zipfile.ZipInfo("demo-1.0.dist-info/RECORD", (1980, 1, 1, 0, 0, 0)), record)
"##;

#[test]
fn a_wheel_installs_as_pip_installs_it() {
    let dir = tempdir();
    let wheel = dir.path().join("demo-1.0-py3-none-any.whl");
    run(dir.path(), "python3", &["-c", WHEEL_PY, path(&wheel)]);
    run(
        dir.path(),
        "python3",
        &[
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-compile",
            "--target",
            "T",
            path(&wheel),
        ],
    );
    let out = regtool(&["make-layer", path(&wheel)]).run();
    let bytes = &out.stdout;
    assert_eq!(out.status, 0, "{}", out.stderr);
    // Read the layer: files by path, with mode and content.
    let mut files = std::collections::BTreeMap::new();
    let mut archive = tar::Archive::new(&bytes[..]);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type() == tar::EntryType::Regular {
            let name = String::from_utf8(e.path_bytes().to_vec()).unwrap();
            let mode = e.header().mode().unwrap();
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut content).unwrap();
            files.insert(name, (mode, content));
        }
    }
    // pip --target puts site-packages, bin and data under one directory; the layer puts
    // them at the default site-packages and prefix.
    let sp = "usr/lib/python3/dist-packages/";
    let ours: BTreeSet<String> = files
        .keys()
        .map(|k| {
            k.strip_prefix(sp)
                .or_else(|| k.strip_prefix("usr/local/"))
                .unwrap()
                .to_string()
        })
        .collect();
    let theirs: BTreeSet<String> = tree_listing(&dir.path().join("T"))
        .iter()
        .filter(|l| l.contains(" f "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        // pip records where a wheel came from (a local path): nothing a layer should carry.
        .filter(|p| !p.ends_with("direct_url.json"))
        .collect();
    assert_eq!(ours, theirs);
    // Scripts: executable, the interpreter pip would write with /usr/bin/python3.
    let pip_script = std::fs::read_to_string(dir.path().join("T/bin/demo-hello")).unwrap();
    for script in ["demo-hello", "demo-tool"] {
        let (mode, content) = &files[&format!("usr/local/bin/{script}")];
        assert_eq!(mode & 0o777, 0o755);
        assert!(content.starts_with(b"#!/usr/bin/python3\n"), "{script}");
    }
    let ours_hello = String::from_utf8(files["usr/local/bin/demo-hello"].1.clone()).unwrap();
    assert_eq!(
        ours_hello.split_once('\n').unwrap().1,
        pip_script.split_once('\n').unwrap().1
    );
    assert_eq!(files[&format!("{sp}demo/run.sh")].0 & 0o777, 0o755);
    assert_eq!(files[&format!("{sp}demo/data.txt")].0 & 0o777, 0o644);
    // RECORD lists every installed file with the hash and size the layer holds.
    let record =
        String::from_utf8(files[&format!("{sp}demo-1.0.dist-info/RECORD")].1.clone()).unwrap();
    let mut listed = BTreeSet::new();
    for line in record.lines() {
        let fields: Vec<&str> = line.split(',').collect();
        let full = normalize_join(sp, fields[0]);
        listed.insert(full.clone());
        if fields[0].ends_with("RECORD") {
            assert_eq!(&fields[1..], ["", ""]);
            continue;
        }
        let content = &files[&full].1;
        let expected = run(
            dir.path(),
            "python3",
            &[
                "-c",
                "import sys,hashlib,base64; print(base64.urlsafe_b64encode(hashlib.sha256(open(sys.argv[1],'rb').read()).digest()).rstrip(b'=').decode())",
                path(&write_tmp(dir.path(), content)),
            ],
        );
        assert_eq!(fields[1], format!("sha256={}", expected.trim()), "{full}");
        assert_eq!(fields[2], content.len().to_string(), "{full}");
    }
    assert_eq!(listed, files.keys().cloned().collect::<BTreeSet<_>>());
}

fn write_tmp(dir: &Path, content: &[u8]) -> PathBuf {
    let p = dir.join("content.tmp");
    std::fs::write(&p, content).unwrap();
    p
}

/// `base/rel` with `..` resolved.
fn normalize_join(base: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for p in rel.split('/') {
        if p == ".." {
            parts.pop();
        } else {
            parts.push(p);
        }
    }
    parts.join("/")
}

#[test]
fn a_tampered_wheel_and_a_missing_input_are_refused() {
    let dir = tempdir();
    let wheel = dir.path().join("demo-1.0-py3-none-any.whl");
    run(
        dir.path(),
        "python3",
        &["-c", WHEEL_PY, path(&wheel), "tamper"],
    );
    let out = regtool(&["make-layer", path(&wheel)]).run();
    assert!(
        out.fails(65)
            .contains("does not match the hash in its RECORD"),
        "{}",
        out.stderr
    );
    let missing = regtool(&["make-layer", "no-such-dir"])
        .dir(dir.path())
        .run();
    assert!(
        missing.fails(2).contains("no-such-dir"),
        "{}",
        missing.stderr
    );
    run(dir.path(), "mkfifo", &["pipe"]);
    let fifo = regtool(&["make-layer", "pipe"]).dir(dir.path()).run();
    assert!(
        fifo.fails(64).contains("a FIFO cannot go in a layer"),
        "{}",
        fifo.stderr
    );
}

#[test]
fn make_layer_depends_only_on_content_and_modes() {
    let build = |root: &Path, order: &[&str], mtime: &str, owner: Option<u32>| {
        std::fs::create_dir_all(root).unwrap();
        for name in order {
            let p = root.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, format!("content of {name}\n")).unwrap();
        }
        std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
        run(root, "chmod", &["0755", "sub/b.sh"]);
        run(
            root,
            "touch",
            &["-h", "-d", mtime, "a.txt", "sub", "sub/b.sh", "link", "."],
        );
        if let Some(id) = owner {
            run(root, "chown", &["-hR", &format!("{id}:{id}"), "."]);
        }
    };
    let dir = tempdir();
    let (one, two) = (dir.path().join("one/tree"), dir.path().join("two/tree"));
    build(&one, &["a.txt", "sub/b.sh", "sub/c"], "2001-01-01", None);
    build(
        &two,
        &["sub/c", "sub/b.sh", "a.txt"],
        "2020-02-02",
        Some(4321),
    );
    let prog = dir.path().join("prog");
    std::fs::write(&prog, "binary").unwrap();
    run(dir.path(), "chmod", &["0750", "prog"]);
    let make = |tree: &Path| {
        regtool(&[
            "make-layer",
            path(tree),
            &format!("{}=/usr/local/bin/prog", path(&prog)),
            "--prefix",
            "/opt",
        ])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .run()
    };
    let (a, b) = (make(&one), make(&two));
    assert_eq!(a.status, 0, "{}", a.stderr);
    assert!(
        a.stdout == b.stdout,
        "the tree's mtimes, owners or creation order leaked"
    );
    let listing: Vec<String> = tar_listing(&a.stdout).into_iter().collect();
    assert_eq!(
        listing,
        [
            "opt d 755 0:0 ",
            "opt/tree d 755 0:0 ",
            "opt/tree/a.txt f 644 0:0 1700000000",
            "opt/tree/link l 777 0:0 a.txt",
            "opt/tree/sub d 755 0:0 ",
            "opt/tree/sub/b.sh f 755 0:0 1700000000",
            "opt/tree/sub/c f 644 0:0 1700000000",
            "usr d 755 0:0 ",
            "usr/local d 755 0:0 ",
            "usr/local/bin d 755 0:0 ",
            "usr/local/bin/prog f 750 0:0 1700000000",
        ]
    );
    // No user or group names, and sorted entries, as a hand-built reproducible tar has.
    let mut archive = tar::Archive::new(&a.stdout[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            assert_eq!(e.header().username_bytes(), Some(&b""[..]));
            String::from_utf8(e.path_bytes().to_vec()).unwrap()
        })
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

#[test]
fn a_reader_that_stops_early_is_not_a_failure() {
    let dir = tempdir();
    let big = dir.path().join("big.bin");
    std::fs::write(&big, bytes(8 << 20, 3)).unwrap();
    let tar = dir.path().join("big.tar");
    run(dir.path(), "tar", &["cf", path(&tar), "big.bin"]);
    for args in [vec!["make-layer", path(&big)], vec!["squash", path(&tar)]] {
        let mut child = regtool(&args).spawn();
        let mut head = [0u8; 100];
        std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut head).unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{stderr}");
    }
}
