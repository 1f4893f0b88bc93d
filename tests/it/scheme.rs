//! The scheme of a loopback registry, learnt once and remembered in the cache directory: the
//! next process goes straight to plain HTTP, and a registry that speaks TLS by then (another
//! server on the same port) is found out by its first answer and spoken to with https.

use crate::harness::*;
use crate::pki::pki;
use crate::tokens::{PUSHER, shared};

#[test]
fn plain_http_is_learnt_once_per_loopback_registry() {
    let reg = plain();
    let cache = tempdir();
    let run = || {
        regtool(&["list-repos"])
            .host(reg)
            .env("REGTOOL_CACHE_DIR", cache.path())
            .env("REGTOOL_DEBUG", "1")
            .run()
    };
    let first = run();
    first.ok();
    assert!(
        first.stderr.contains("does not speak TLS"),
        "{}",
        first.stderr
    );
    let marker = cache.path().join("plain-http").join(&reg.host);
    assert!(marker.exists());
    let second = run();
    second.ok();
    assert!(!second.stderr.contains("TLS"), "{}", second.stderr);
    assert!(second.stderr.contains("GET http://"), "{}", second.stderr);
}

#[test]
fn a_remembered_plain_http_that_meets_tls_is_learnt_again() {
    let (_, reg) = shared();
    let cache = tempdir();
    // As if a plain-HTTP registry had been on this port before.
    let marker = cache.path().join("plain-http").join(&reg.host);
    std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
    std::fs::write(&marker, b"").unwrap();
    let run = || {
        regtool(&["push-blob", "t/scheme", "-"])
            .host(reg)
            .env("REGTOOL_TLSVERIFY", pki().ca())
            .env("REGTOOL_CACHE_DIR", cache.path())
            .env("REGTOOL_USERNAME", PUSHER.0)
            .env("REGTOOL_PASSWORD", PUSHER.1)
            .env("REGTOOL_DEBUG", "1")
            .stdin("scheme blob")
            .run()
    };
    let first = run();
    assert_eq!(first.ok().trim(), sha256(b"scheme blob"));
    assert!(
        first
            .stderr
            .contains("does not answer plain HTTP; trying https"),
        "{}",
        first.stderr
    );
    assert!(!marker.exists());
    let second = run();
    second.ok();
    assert!(!second.stderr.contains("http://"), "{}", second.stderr);
}
