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
