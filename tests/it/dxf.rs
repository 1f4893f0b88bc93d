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

/// A script written for dxf, as the README promises it ports: it only calls `dxf` and reads
/// `DXF_*` variables. `$REPO` and `$WORK` are the test's.
const DXF_SCRIPT: &str = r#"set -e
cd "$WORK"
printf 'first blob\n' > a.txt
d=$(dxf push-blob "$REPO" a.txt @one)
echo "== push-blob $d"
echo "== get-alias"; dxf get-alias "$REPO" one
echo "== blob-size"; dxf blob-size "$REPO" @one; dxf blob-size "$REPO" "$d"
echo "== pull-blob"; dxf pull-blob "$REPO" @one; dxf pull-blob "$REPO" "$d"
echo "== list-aliases"; dxf list-aliases "$REPO"
echo "== del-alias"; dxf del-alias "$REPO" one
echo "== auth"; dxf auth "$REPO" pull
echo "== done"
"#;

/// Runs [`DXF_SCRIPT`] with `bin` first on PATH (where `dxf` is found) and only `vars` set.
fn run_dxf_script(bin: &std::path::Path, repo: &str, vars: &[(&str, String)]) -> String {
    let work = tempdir();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(DXF_SCRIPT)
        .env_clear()
        .env("PATH", path)
        .env("HOME", work.path())
        .env("WORK", work.path())
        .env("REPO", repo)
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "the dxf script failed with {bin:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A directory holding `dxf`, a link to the built regtool.
fn regtool_as_dxf() -> tempfile::TempDir {
    let dir = tempdir();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_regtool"), dir.path().join("dxf")).unwrap();
    dir
}

/// The script's output with the token (random) replaced by what it grants, and the
/// repository by `$REPO`.
fn comparable(output: &str, repo: &str) -> String {
    let (before, after) = output.split_once("== auth\n").expect("an auth section");
    let (token, rest) = after.split_once("== done\n").expect("a done line");
    let grant = match token.trim() {
        "" => "no token".to_string(),
        t => crate::tokens::claims(t)["access"].to_string(),
    };
    format!("{before}== auth\n{grant}\n{rest}").replace(repo, "$REPO")
}

/// docker-registry over TLS behind htpasswd (dxf refuses credentials over plain HTTP).
fn basic_tls() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        let pki = crate::pki::pki();
        let dir = tempdir().keep();
        let out = Command::new("htpasswd")
            .args(["-Bbn", USER, PASSWORD])
            .output()
            .expect("htpasswd");
        let file = dir.join("htpasswd");
        std::fs::write(&file, out.stdout).unwrap();
        Registry::start(
            "basic-tls",
            &format!(
                "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                pki.path("server.pem").display(),
                pki.path("server.key").display(),
                file.display()
            ),
        )
    })
}

/// Environment variables for a script run.
type Vars = Vec<(&'static str, String)>;

#[test]
fn a_dxf_script_runs_unchanged_against_regtool() {
    use crate::tokens::{PUSHER, shared};
    let ca = crate::pki::pki().ca().display().to_string();
    let basic = |user: &str, pass: &str| {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        format!("Basic {b64}")
    };
    let token_reg = &shared().1;
    let setups: Vec<(&str, &Registry, Vars)> = vec![
        (
            "basic",
            basic_tls(),
            vec![
                ("DXF_USERNAME", USER.to_string()),
                ("DXF_PASSWORD", PASSWORD.to_string()),
            ],
        ),
        (
            "token",
            token_reg,
            vec![
                ("DXF_USERNAME", PUSHER.0.to_string()),
                ("DXF_PASSWORD", PUSHER.1.to_string()),
            ],
        ),
        (
            "token-authz",
            token_reg,
            vec![("DXF_AUTHORIZATION", basic(PUSHER.0, PUSHER.1))],
        ),
    ];
    let ours = regtool_as_dxf();
    let theirs = dxf_bin().parent().expect("venv bin").to_path_buf();
    for (name, reg, creds) in setups {
        let mut vars = creds;
        vars.push(("DXF_HOST", reg.host.clone()));
        vars.push(("DXF_TLSVERIFY", ca.clone()));
        let (their_repo, our_repo) = (format!("t/port-dxf-{name}"), format!("t/port-ours-{name}"));
        let expected = run_dxf_script(&theirs, &their_repo, &vars);
        let got = run_dxf_script(ours.path(), &our_repo, &vars);
        assert_eq!(
            comparable(&got, &our_repo),
            comparable(&expected, &their_repo),
            "{name}"
        );
        assert!(expected.contains("first blob"), "{expected}");
    }
}
