//! The first hour with regtool: mistakes in arguments and configuration are caught before
//! anything happens, real-world certificates and plain-HTTP registries get a clear answer,
//! output is never silently lost, and dxf scripts run unchanged.

use crate::harness::*;

#[test]
fn a_push_blob_alias_needs_its_at() {
    let reg = plain();
    let repo = repo("typo-alias");
    let dir = tempdir();
    let a = dir.path().join("a.bin");
    std::fs::write(&a, b"the real file").unwrap();
    let typo = dir.path().join("typo.bin");
    let out = regtool(&[
        "push-blob",
        &repo,
        a.to_str().unwrap(),
        typo.to_str().unwrap(),
    ])
    .host(reg)
    .run();
    assert!(out.fails(2).contains("typo.bin"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    // Nothing was pushed: neither the blob nor an alias named after the typo.
    regtool(&["blob-size", &repo, &sha256(b"the real file")])
        .host(reg)
        .run()
        .fails(2);
    regtool(&["get-alias", &repo, "typo.bin"])
        .host(reg)
        .run()
        .fails(2);
}

#[test]
fn missing_arguments_are_named_with_the_usage_line() {
    let out = regtool(&["push-blob"]).run();
    let err = out.fails(64);
    assert!(err.contains("not provided: <REPO> <FILES>..."), "{err}");
    assert!(
        err.contains("hint: usage: regtool push-blob <REPO> <FILES>..."),
        "{err}"
    );
    let out = regtool(&["set-alias", "r/x"]).run();
    let err = out.fails(64);
    assert!(err.contains("not provided: <ALIAS> <BLOBS>..."), "{err}");
    assert!(
        err.contains("usage: regtool set-alias <REPO> <ALIAS> <BLOBS>..."),
        "{err}"
    );
}

/// Runs list-repos against the plain registry with `env` set; returns the run.
fn configured(env: &[(&str, &str)]) -> Run {
    let mut cmd = regtool(&["list-repos"]).host(plain());
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    cmd.run()
}

#[test]
fn configuration_mistakes_are_refused_before_any_request() {
    // A CI secret that did not arrive: never the local store.
    let out = regtool(&["push-blob", "t/ci", "-"])
        .env("REGTOOL_HOST", "")
        .stdin("x")
        .run();
    assert!(out.fails(78).contains("REGTOOL_HOST: set but empty"));
    // A bare IPv6 address.
    let out = regtool(&["list-repos"]).env("REGTOOL_HOST", "::1").run();
    let err = out.fails(78);
    assert!(err.contains("REGTOOL_HOST"), "{err}");
    assert!(err.contains("hint: write it in brackets"), "{err}");
    assert!(err.contains("[::1]:5000"), "{err}");
    // A password without a user name names both variables.
    let err = configured(&[("REGTOOL_PASSWORD", "pw")])
        .fails(78)
        .to_string();
    assert!(err.contains("REGTOOL_PASSWORD: "), "{err}");
    assert!(err.contains("REGTOOL_USERNAME"), "{err}");
    // Control characters in header variables.
    for var in ["REGTOOL_TOKEN", "REGTOOL_AUTHORIZATION"] {
        let err = configured(&[(var, "abc\ndef")]).fails(78).to_string();
        assert!(err.starts_with(&format!("regtool: {var}: ")), "{err}");
        assert!(err.contains("control character"), "{err}");
    }
    // Booleans: the message lists what is accepted, and each of those is accepted.
    let err = configured(&[("REGTOOL_INSECURE", "yes")])
        .fails(78)
        .to_string();
    assert!(
        err.contains("REGTOOL_INSECURE: expected 1 or 0 (or true or false)"),
        "{err}"
    );
    for v in ["1", "0", "true", "false", "TRUE"] {
        configured(&[("REGTOOL_INSECURE", v)]).ok();
    }
}

#[test]
fn a_trailing_slash_on_the_host_is_forgiven() {
    let reg = plain();
    let out = regtool(&["push-blob", "t/slash", "-", "@s"])
        .env("REGTOOL_HOST", format!("{}/", reg.host))
        .stdin("slash")
        .run();
    assert_eq!(out.ok().trim(), sha256(b"slash"));
}

/// Runs regtool through `sh` with `redirect` applied to its stdout (`>&-`, `1</dev/null`).
fn with_stdout(redirect: &str, host: &str, args: &[&str]) -> Run {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("exec \"$@\" {redirect}"))
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_regtool"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home())
        .env("REGTOOL_HOST", host)
        .output()
        .expect("sh");
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_closed_stdout_loses_no_result_silently() {
    let reg = plain();
    let repo = repo("closed-stdout");
    regtool(&["push-blob", &repo, "-", "@a"])
        .host(reg)
        .stdin("result")
        .run()
        .ok();
    for redirect in [">&-", "1</dev/null"] {
        let out = with_stdout(redirect, &reg.host, &["get-alias", &repo, "a"]);
        let err = out.fails(1);
        assert!(
            err.contains("writing to stdout: Bad file descriptor"),
            "{redirect}: {err}"
        );
    }
    // A reader that goes away is still success (`| head`), and /dev/null is a fine stdout.
    let out = with_stdout(">/dev/null", &reg.host, &["get-alias", &repo, "a"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let out = with_stdout("| head -c 0", &reg.host, &["get-alias", &repo, "a"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
}

/// Puts a pretty-printed (multi-line) manifest naming `blob` under `tag`, as other tools do.
fn put_pretty_manifest(reg: &Registry, repo: &str, tag: &str, blob: &[u8]) {
    for b in [&b"{}"[..], blob] {
        regtool(&["push-blob", repo, "-"])
            .host(reg)
            .stdin(b)
            .run()
            .ok();
    }
    let manifest = serde_json::to_string_pretty(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": sha256(blob), "size": blob.len()}],
    }))
    .unwrap();
    let out = std::process::Command::new("curl")
        .args(["-fsS", "-X", "PUT", "-H"])
        .arg("Content-Type: application/vnd.oci.image.manifest.v1+json")
        .arg("--data-binary")
        .arg(&manifest)
        .arg(format!("http://{}/v2/{repo}/manifests/{tag}", reg.host))
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn json_format_gives_one_json_value_per_line_for_every_command() {
    let reg = plain();
    let (repo, other) = (repo("json-lines"), repo("json-lines-other"));
    put_pretty_manifest(reg, &repo, "pretty", b"layer");
    let json = |args: &[&str], stdin: &[u8]| -> Vec<serde_json::Value> {
        let out = regtool(args)
            .host(reg)
            .env("REGTOOL_FORMAT", "json")
            .stdin(stdin)
            .run();
        out.ok()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{args:?}: {l:?}: {e}")))
            .collect()
    };
    let d = sha256(b"blob");
    let cases: Vec<(Vec<&str>, usize)> = vec![
        (vec!["push-blob", &repo, "-", "@a"], 1),
        (vec!["set-alias", &repo, "b", &d], 1),
        (vec!["get-alias", &repo, "a", "pretty"], 2),
        (vec!["blob-size", &repo, "@a", &d], 2),
        (vec!["get-digest", &repo, "a"], 1),
        (vec!["resolve", &repo, "a", "pretty"], 2),
        (vec!["get-manifest", &repo, "a", "pretty"], 2),
        (vec!["list-aliases", &repo], 3),
        (vec!["mount-blob", &other, &repo, &d], 1),
        (vec!["del-alias", &repo, "b"], 1),
    ];
    for (args, lines) in cases {
        let values = json(&args, b"blob");
        assert_eq!(values.len(), lines, "{args:?}: {values:?}");
        assert!(values.iter().all(|v| v.is_object()), "{args:?}: {values:?}");
    }
    assert!(!json(&["list-repos"], b"").is_empty());
    // get-manifest: the manifest itself, compact, with the digest of the registry's bytes.
    let got = json(&["get-manifest", &repo, "pretty"], b"");
    assert_eq!(got[0]["manifest"]["layers"][0]["digest"], sha256(b"layer"));
    let raw = regtool(&["get-manifest", &repo, "pretty"])
        .host(reg)
        .run()
        .stdout;
    assert!(
        raw.iter().filter(|&&b| b == b'\n').count() > 2,
        "the raw form stays as stored"
    );
    assert_eq!(got[0]["digest"], sha256(&raw[..raw.len() - 1]));
}

/// The plain registry as another machine would see it: 0.0.0.0 reaches this machine's
/// listeners, but is not a loopback name, so no automatic fall-back to HTTP applies.
fn remote_name(reg: &Registry) -> String {
    reg.host.replace("127.0.0.1", "0.0.0.0")
}

#[test]
fn a_plain_http_registry_elsewhere_is_named_at_once() {
    let host = remote_name(plain());
    let started = std::time::Instant::now();
    let out = regtool(&["list-repos"])
        .env("REGTOOL_HOST", &host)
        .env("REGTOOL_RETRIES", "5")
        .run();
    let err = out.fails(69);
    assert!(err.contains("plain HTTP"), "{err}");
    assert!(
        err.contains("hint: ") && err.contains("REGTOOL_INSECURE=1"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "retried: {:?}",
        started.elapsed()
    );
    regtool(&["list-repos"])
        .env("REGTOOL_HOST", &host)
        .env("REGTOOL_INSECURE", "1")
        .run()
        .ok();
}

fn basic_value(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

#[test]
fn dxf_authorization_goes_to_the_token_realm() {
    use crate::tokens::{PUSHER, claims, shared};
    let (_, reg) = shared();
    let ca = crate::pki::pki().ca();
    let cache = tempdir();
    let d = regtool(&["push-blob", "t/dxf-authz", "-", "@a"])
        .host(reg)
        .env("REGTOOL_TLSVERIFY", &ca)
        .env("REGTOOL_CACHE_DIR", cache.path())
        .env("REGTOOL_USERNAME", PUSHER.0)
        .env("REGTOOL_PASSWORD", PUSHER.1)
        .stdin("authorized")
        .run()
        .ok();
    // Only what a dxf script sets: host, CA and the Authorization header it shows the realm.
    let dxf_env = |args: &[&str], var: &str| {
        regtool(args)
            .env("DXF_HOST", &reg.host)
            .env("DXF_TLSVERIFY", &ca)
            .env(var, basic_value(PUSHER.0, PUSHER.1))
    };
    for var in ["DXF_AUTHORIZATION", "REGTOOL_AUTHORIZATION"] {
        let out = dxf_env(&["pull-blob", "t/dxf-authz", d.trim()], var).run();
        assert_eq!(out.ok(), "authorized", "{var}");
        let token = dxf_env(&["auth", "t/dxf-authz", "pull", "push"], var)
            .run()
            .ok();
        assert_eq!(claims(token.trim())["sub"], PUSHER.0, "{var}");
    }
    // A wrong value is refused by the token server: 13.
    regtool(&["pull-blob", "t/dxf-authz", d.trim()])
        .env("DXF_HOST", &reg.host)
        .env("DXF_TLSVERIFY", &ca)
        .env("DXF_AUTHORIZATION", basic_value(PUSHER.0, "wrong"))
        .run()
        .fails(13);
}

/// docker-registry over TLS with its own self-signed certificate `name` (from pki.rs).
fn self_signed_registry(name: &str) -> Registry {
    let pki = crate::pki::pki();
    Registry::start(
        name,
        &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            pki.path(&format!("{name}.pem")).display(),
            pki.path(&format!("{name}.key")).display()
        ),
    )
}

/// The registry with a self-signed certificate for 127.0.0.1, shared by the tests here.
fn self_signed() -> &'static Registry {
    static R: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    R.get_or_init(|| self_signed_registry("selfsigned"))
}

#[test]
fn a_self_signed_registry_certificate_named_in_tlsverify_is_trusted() {
    let pki = crate::pki::pki();
    let cert = pki.path("selfsigned.pem");
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"),
        "the test needs a CA:TRUE certificate, as openssl req -x509 makes"
    );
    let reg = self_signed();
    // curl --cacert accepts it; so must regtool.
    let curl = std::process::Command::new("curl")
        .args(["-fsS", "-o", "/dev/null", "--cacert"])
        .arg(&cert)
        .arg(format!("https://{}/v2/", reg.host))
        .output()
        .unwrap();
    assert!(
        curl.status.success(),
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );
    let d = regtool(&["push-blob", "t/selfsigned", "-", "@s"])
        .host(reg)
        .env("REGTOOL_TLSVERIFY", &cert)
        .stdin("self-signed")
        .run()
        .ok();
    assert_eq!(d.trim(), sha256(b"self-signed"));
    let out = regtool(&["pull-blob", "t/selfsigned", "@s"])
        .host(reg)
        .env("DXF_TLSVERIFY", &cert)
        .run();
    assert_eq!(out.ok(), "self-signed");
    // Without it, the certificate is refused in words, with a hint to name it.
    let out = regtool(&["list-repos"]).host(reg).run();
    assert_eq!(
        out.fails(69),
        format!(
            "regtool: TLS failure with {}: the server's certificate is self-signed (a CA \
             certificate used as its own)\nhint: if you trust it, name that certificate in \
             REGTOOL_TLSVERIFY (a file holding its PEM)\n",
            reg.host
        )
    );
}

#[test]
fn an_expired_certificate_is_said_to_be_expired() {
    let pki = crate::pki::pki();
    let reg = self_signed_registry("expired");
    for given in [true, false] {
        let mut cmd = regtool(&["list-repos"]).host(&reg);
        if given {
            cmd = cmd.env("REGTOOL_TLSVERIFY", pki.path("expired.pem"));
        }
        let out = cmd.run();
        assert_eq!(
            out.fails(69),
            format!(
                "regtool: TLS failure with {}: the server's certificate expired on \
                 2020-01-02T00:00:00Z\n",
                reg.host
            ),
            "given: {given}"
        );
    }
}

#[test]
fn a_trusted_self_signed_certificate_must_still_match_the_name() {
    let pki = crate::pki::pki();
    let other = self_signed_registry("selfsigned-other");
    let out = regtool(&["list-repos"])
        .host(&other)
        .env("REGTOOL_TLSVERIFY", pki.path("selfsigned-other.pem"))
        .run();
    let err = out.fails(69);
    assert!(err.contains("TLS failure"), "{err}");
    assert!(err.contains("hint: the certificate does not name"), "{err}");
    // A certificate that is not the one given (nor signed by it): the hint does not ask for
    // the variable that is already set.
    let reg = self_signed();
    let out = regtool(&["list-repos"])
        .host(reg)
        .env("REGTOOL_TLSVERIFY", pki.path("selfsigned-other.pem"))
        .run();
    let err = out.fails(69);
    assert!(
        err.contains("hint: the certificate is neither in REGTOOL_TLSVERIFY"),
        "{err}"
    );
}

#[test]
fn a_stall_in_the_tls_handshake_is_named_as_such() {
    // Accepts connections and never says a word: the TLS hello goes unanswered.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(4) {
            held.push(conn);
        }
        std::thread::sleep(std::time::Duration::from_secs(30));
    });
    let out = regtool(&["list-repos"])
        .env("REGTOOL_HOST", &host)
        .env("REGTOOL_TIMEOUT", "1")
        .run();
    let err = out.fails(69);
    assert!(err.contains("timed out (TLS handshake)"), "{err}");
    assert!(err.contains("hint: raise REGTOOL_TIMEOUT"), "{err}");
}

#[test]
fn credentials_in_a_host_are_never_echoed() {
    for host in [
        "fred:hunter2@127.0.0.1:5000",
        "https://fred:hunter2@127.0.0.1:5000",
    ] {
        let out = regtool(&["list-aliases", "r"])
            .env("REGTOOL_HOST", host)
            .run();
        let err = out.fails(78);
        assert!(err.contains("credentials in the host"), "{err}");
        assert!(err.contains("hint: give them in REGTOOL_USERNAME"), "{err}");
        assert!(!err.contains("hunter2") && !err.contains("fred"), "{err}");
    }
    let out = regtool(&["copy", "fred:hunter2@127.0.0.1:1/r:a", "oci:x:a"]).run();
    let err = out.fails(64);
    assert!(err.contains("credentials in the host"), "{err}");
    assert!(!err.contains("hunter2") && !err.contains("fred"), "{err}");
}

#[test]
fn a_missing_alias_is_a_usage_error_not_a_wait_for_stdin() {
    for (args, arg) in [
        (&["get-alias", "fred/logs"][..], "<alias>"),
        (&["get-digest", "fred/logs"][..], "<alias>"),
        (&["blob-size", "fred/logs"][..], "<digest|@alias>"),
    ] {
        let out = regtool(args).env("REGTOOL_HOST", "127.0.0.1:1").run();
        assert!(
            out.fails(64).starts_with(&format!(
                "regtool: missing {arg}: give one, or pipe a manifest on stdin"
            )),
            "{args:?}: {}",
            out.stderr
        );
    }
    let out = regtool(&["push-blob", "fred/logs", "b1", "@a", "@b"])
        .env("REGTOOL_HOST", "127.0.0.1:1")
        .run();
    assert!(
        out.fails(64)
            .starts_with("regtool: push-blob takes one alias only, as its last argument: @a"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_process_substitution_pushed_carries_no_title() {
    let repo = repo("no-title");
    let out = regtool_in_bash(
        r#"printf named > "$2/named.txt" && "$REGTOOL" push-blob "$1" <(printf piped) "$2/named.txt" @p && "$REGTOOL" get-manifest "$1" @p"#,
        &[&repo, tempdir().path().to_str().unwrap()],
    )
    .host(plain())
    .run();
    let text = out.ok();
    let manifest: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{text}");
    assert!(layers[0].get("annotations").is_none(), "{text}");
    assert_eq!(
        layers[1]["annotations"]["org.opencontainers.image.title"],
        "named.txt"
    );
}
