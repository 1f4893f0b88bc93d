//! Hints that name a variable: the library says why it failed (a typed cause), and the binary
//! names the variable that changes it. Each hint is checked word for word.

use crate::harness::*;
use crate::images::base;

/// The `hint:` line of a failed run.
fn hint(out: &Run) -> &str {
    out.stderr
        .lines()
        .find_map(|l| l.strip_prefix("hint: "))
        .unwrap_or_else(|| panic!("no hint: {}", out.stderr))
}

#[test]
fn nothing_listening_asks_about_the_host() {
    let out = regtool(&["list-repos"])
        .env("REGTOOL_HOST", format!("127.0.0.1:{}", free_port()))
        .env("REGTOOL_RETRIES", "0")
        .run();
    out.fails(69);
    assert_eq!(
        hint(&out),
        "is the registry running, and is REGTOOL_HOST right?"
    );
}

#[test]
fn credentials_wanted_or_refused_name_the_variables() {
    let reg = basic();
    let out = regtool(&["list-repos"]).host(reg).run();
    out.fails(13);
    assert_eq!(
        hint(&out),
        "the registry wants credentials: set REGTOOL_USERNAME and REGTOOL_PASSWORD"
    );
    let out = regtool(&["list-repos"])
        .host(reg)
        .env("REGTOOL_USERNAME", USER)
        .env("REGTOOL_PASSWORD", "wrong")
        .run();
    out.fails(13);
    assert_eq!(hint(&out), "check REGTOOL_USERNAME and REGTOOL_PASSWORD");
}

#[test]
fn image_tools_name_the_compression_and_platform_variables() {
    base();
    let reg = plain();
    let dir = tempdir();
    let tar = dir.path().join("l.tar");
    let ok = std::process::Command::new("tar")
        .args([
            "cf",
            tar.to_str().unwrap(),
            "-C",
            dir.path().to_str().unwrap(),
            "--files-from=/dev/null",
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = regtool(&[
        "append-layer",
        "t/base:docker",
        "t/base:hint-zstd",
        tar.to_str().unwrap(),
    ])
    .host(reg)
    .env("REGTOOL_COMPRESSION", "zstd")
    .run();
    out.fails(65);
    assert_eq!(hint(&out), "use REGTOOL_COMPRESSION=gzip, or an OCI image");
    let out = regtool(&["flatten", "t/base:multi"]).host(reg).run();
    out.fails(64);
    assert_eq!(hint(&out), "set REGTOOL_PLATFORM, like linux/amd64");
}
