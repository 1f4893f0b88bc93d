//! Interoperability with python-dxf, a client no one here wrote: what dxf pushes and aliases,
//! regtool reads and pulls; what regtool pushes and aliases, dxf reads and pulls. The harness
//! installs python-dxf into a virtualenv under the target directory on first use.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::harness::*;

fn dxf_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dxf-venv");
        let bin = venv.join("bin/dxf");
        if !bin.exists() {
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "python3 -m venv failed");
            let ok = Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "python-dxf"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "pip install python-dxf failed");
        }
        bin
    })
}

fn dxf(reg: &Registry, args: &[&str]) -> std::process::Output {
    Command::new(dxf_bin())
        .args(args)
        .env("DXF_HOST", &reg.host)
        .env("DXF_INSECURE", "1")
        .output()
        .expect("run dxf")
}

fn lines(out: &std::process::Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "dxf failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn regtool_reads_what_dxf_writes() {
    let reg = plain();
    let repo = repo("from-dxf");
    let dir = tempdir();
    let (a, b) = (bytes(400_000, 31), b"second".to_vec());
    let (fa, fb) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&fa, &a).unwrap();
    std::fs::write(&fb, &b).unwrap();
    assert_eq!(
        lines(&dxf(
            reg,
            &["push-blob", &repo, fa.to_str().unwrap(), "@single"]
        )),
        [sha256(&a)]
    );
    lines(&dxf(reg, &["push-blob", &repo, fb.to_str().unwrap()]));
    dxf(reg, &["set-alias", &repo, "pair", &sha256(&a), &sha256(&b)]);

    assert_eq!(
        regtool(&["get-alias", &repo, "single"])
            .host(reg)
            .run()
            .lines(),
        [sha256(&a)]
    );
    assert_eq!(
        regtool(&["get-alias", &repo, "pair"])
            .host(reg)
            .run()
            .lines(),
        [sha256(&a), sha256(&b)]
    );
    // dxf's config is its first blob: get-digest says so, as dxf does.
    assert_eq!(
        regtool(&["get-digest", &repo, "pair"])
            .host(reg)
            .run()
            .ok()
            .trim(),
        sha256(&a)
    );
    assert_eq!(
        regtool(&["pull-blob", &repo, "@pair"])
            .host(reg)
            .run()
            .stdout,
        [a.clone(), b.clone()].concat()
    );
    assert_eq!(
        regtool(&["blob-size", &repo, "@pair"])
            .host(reg)
            .run()
            .ok()
            .trim(),
        (a.len() + b.len()).to_string()
    );
    assert_eq!(
        regtool(&["del-alias", &repo, "pair"])
            .host(reg)
            .run()
            .lines(),
        [sha256(&a), sha256(&b)]
    );
}

#[test]
fn dxf_reads_what_regtool_writes() {
    let reg = plain();
    let repo = repo("to-dxf");
    let data = bytes(600_000, 32);
    let d = regtool(&["push-blob", &repo, "-", "@mine"])
        .host(reg)
        .stdin(data.clone())
        .run()
        .ok();
    regtool(&["push-blob", &repo, "-", "@two"])
        .host(reg)
        .stdin("tail")
        .run()
        .ok();
    regtool(&["set-alias", &repo, "both", d.trim(), &sha256(b"tail")])
        .host(reg)
        .run()
        .ok();
    assert_eq!(lines(&dxf(reg, &["get-alias", &repo, "mine"])), [d.trim()]);
    assert_eq!(
        lines(&dxf(reg, &["get-alias", &repo, "both"])),
        [d.trim().to_string(), sha256(b"tail")]
    );
    let pulled = dxf(reg, &["pull-blob", &repo, "@both"]);
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    assert_eq!(pulled.stdout, [data, b"tail".to_vec()].concat());
    assert_eq!(lines(&dxf(reg, &["list-aliases", &repo])).len(), 3);
}

#[test]
fn dxf_interop_through_token_auth() {
    use crate::tokens::{PUSHER, shared};
    let (_, reg) = shared();
    let ca = crate::pki::pki().ca();
    let cache = tempdir();
    let mine = |args: &[&str]| {
        regtool(args)
            .host(reg)
            .env("REGTOOL_TLSVERIFY", &ca)
            .env("REGTOOL_CACHE_DIR", cache.path())
            .env("REGTOOL_USERNAME", PUSHER.0)
            .env("REGTOOL_PASSWORD", PUSHER.1)
    };
    let theirs = |args: &[&str]| {
        Command::new(dxf_bin())
            .args(args)
            .env("DXF_HOST", &reg.host)
            .env("DXF_TLSVERIFY", &ca)
            .env("DXF_USERNAME", PUSHER.0)
            .env("DXF_PASSWORD", PUSHER.1)
            .output()
            .expect("run dxf")
    };
    let d = mine(&["push-blob", "t/dxf-token", "-", "@ours"])
        .stdin("pushed by regtool")
        .run()
        .ok();
    assert_eq!(
        lines(&theirs(&["get-alias", "t/dxf-token", "ours"])),
        [d.trim()]
    );
    let pulled = theirs(&["pull-blob", "t/dxf-token", "@ours"]);
    assert_eq!(
        pulled.stdout,
        b"pushed by regtool",
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let dir = tempdir();
    let f = dir.path().join("f");
    std::fs::write(&f, b"pushed by dxf").unwrap();
    lines(&theirs(&[
        "push-blob",
        "t/dxf-token",
        f.to_str().unwrap(),
        "@theirs",
    ]));
    assert_eq!(
        mine(&["pull-blob", "t/dxf-token", "theirs"]).run().stdout,
        b"pushed by dxf"
    );
    // A token minted by regtool works for dxf.
    let token = mine(&["auth", "t/dxf-token"]).run().ok();
    let out = Command::new(dxf_bin())
        .args(["get-alias", "t/dxf-token", "ours"])
        .env("DXF_HOST", &reg.host)
        .env("DXF_TLSVERIFY", &ca)
        .env("DXF_TOKEN", token.trim())
        .output()
        .unwrap();
    assert_eq!(lines(&out), [d.trim()]);
}
