//! Every documented exit status and the error paths of the blob commands: one line on stderr,
//! the right status, and nothing left half-done.

use crate::harness::*;
use crate::scripted::{Response, Server};

#[test]
fn help_and_version_exit_zero() {
    let out = regtool(&["--help"]).run();
    assert!(out.ok().contains("REGTOOL_CHUNK_SIZE"));
    assert!(regtool(&["--version"]).run().ok().starts_with("regtool "));
    assert!(
        regtool(&["push-blob", "--help"])
            .run()
            .ok()
            .contains("@alias")
    );
}

#[test]
fn usage_errors_exit_64_before_any_request() {
    // The host has nothing listening: a request would be 69, so 64 proves none was made.
    let cases: &[&[&str]] = &[
        &[],
        &["no-such-command"],
        &["push-blob"],
        &["push-blob", "fred/logs"],
        &["pull-blob", "Fred/Logs", "@x"],
        &["pull-blob", "fred/logs", "sha256:abc"],
        &["pull-blob", "fred/logs", "@bad/alias"],
        &["blob-size", "fred/logs", "md5:00"],
        &["mount-blob", "fred/logs", "other", "not-a-digest"],
        &["set-alias", "fred/logs", "x", "sha256:zz"],
        &["set-alias", "fred/logs", "bad alias", "sha256:zz"],
        &["push-blob", "fred/logs", "-", "-"],
        &["get-alias", "fred//logs", "x"],
        &["list-aliases"],
        &["list-repos", "extra"],
        &["del-alias", "fred/logs"],
        &["resolve", "fred/logs", ".hidden"],
        &["pull-blob", "fred/logs", "-o"],
    ];
    for args in cases {
        let out = regtool(args).env("REGTOOL_HOST", "127.0.0.1:1").run();
        out.fails(64);
    }
}

#[test]
fn configuration_errors_exit_78_naming_the_variable() {
    let cases = [
        ("REGTOOL_HOST", "http://registry.example"),
        ("REGTOOL_HOST", "oci:"),
        ("REGTOOL_CHUNK_SIZE", "lots"),
        ("DXF_CHUNK_SIZE", "0"),
        ("REGTOOL_JOBS", "0"),
        ("REGTOOL_RETRIES", "-1"),
        ("REGTOOL_TIMEOUT", "soon"),
        ("REGTOOL_INSECURE", "yes"),
        ("REGTOOL_PLATFORM", "linux"),
        // (REGTOOL_PROGRESS=maybe is "when stderr is a terminal", no error.)
        ("REGTOOL_USERNAME", "fred:"),
        ("REGTOOL_INSECURE", "1,registry.example"),
        ("REGTOOL_INSECURE", "2"),
        ("REGTOOL_FORMAT", "xml"),
        ("REGTOOL_PASSWORD_FILE", "/nonexistent/password"),
        ("REGTOOL_BLOB_INFO", "2"),
        ("SOURCE_DATE_EPOCH", "-1"),
    ];
    for (var, value) in cases {
        let mut cmd = regtool(&["list-aliases", "fred/logs"]).env(var, value);
        if var != "REGTOOL_HOST" {
            cmd = cmd.env("REGTOOL_HOST", "127.0.0.1:1");
        }
        let out = cmd.run();
        assert!(
            out.fails(78).starts_with(&format!("regtool: {var}: ")),
            "{var}: {}",
            out.stderr
        );
    }
}

#[test]
fn not_found_exits_2() {
    let reg = plain();
    let repo = repo("notfound");
    regtool(&["push-blob", &repo, "-", "@here"])
        .host(reg)
        .stdin("x")
        .run()
        .ok();
    let missing = sha256(b"missing");
    regtool(&["get-alias", &repo, "nope"])
        .host(reg)
        .run()
        .fails(2);
    regtool(&["pull-blob", &repo, &missing])
        .host(reg)
        .run()
        .fails(2);
    regtool(&["blob-size", &repo, &missing])
        .host(reg)
        .run()
        .fails(2);
    regtool(&["del-alias", &repo, "nope"])
        .host(reg)
        .run()
        .fails(2);
    regtool(&["resolve", &repo, "nope"])
        .host(reg)
        .run()
        .fails(2);
    regtool(&["get-manifest", &repo, "nope"])
        .host(reg)
        .run()
        .fails(2);
    regtool(&["list-aliases", "t/never-created"])
        .host(reg)
        .run()
        .fails(2);
    regtool(&["push-blob", &repo, "/nonexistent/file"])
        .host(reg)
        .run()
        .fails(2);
    regtool(&["set-alias", &repo, "x", &missing])
        .host(reg)
        .run()
        .fails(2);
}

#[test]
fn unreachable_registry_exits_69() {
    let port = free_port();
    let out = regtool(&["list-aliases", "fred/logs"])
        .env("REGTOOL_HOST", format!("127.0.0.1:{port}"))
        .run();
    assert!(
        out.fails(69).contains("connection refused"),
        "{}",
        out.stderr
    );
    // A server error after retries is 69 too.
    let server = Server::start(|_| Response::new(503).body("down for maintenance"));
    let out = regtool(&["list-aliases", "fred/logs"])
        .env("REGTOOL_HOST", &server.host)
        .env("REGTOOL_RETRIES", "1")
        .run();
    assert!(out.fails(69).contains("503"), "{}", out.stderr);
    assert_eq!(
        server
            .seen()
            .iter()
            .filter(|r| r.path.contains("tags"))
            .count(),
        2,
        "one try and one retry"
    );
}

#[test]
fn rate_limited_exits_75_after_honouring_retry_after() {
    let server = Server::start(|_| {
        Response::new(429)
            .header("Retry-After", "1")
            .body(r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#)
    });
    let started = std::time::Instant::now();
    let out = regtool(&["list-aliases", "fred/logs"])
        .env("REGTOOL_HOST", &server.host)
        .env("REGTOOL_RETRIES", "2")
        .run();
    assert!(out.fails(75).contains("slow down"), "{}", out.stderr);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "Retry-After was not honoured"
    );
    assert_eq!(
        server
            .seen()
            .iter()
            .filter(|r| r.path.contains("tags"))
            .count(),
        3
    );
}

#[test]
fn a_lying_registry_is_caught_with_65_and_no_file() {
    let good = b"the real content".to_vec();
    let digest = sha256(&good);
    let server = Server::start(|req| {
        if req.path.contains("/blobs/") {
            Response::new(200).body(b"the fake content".to_vec())
        } else {
            Response::new(200).body(r#"{"schemaVersion":2}"#)
        }
    });
    let dir = tempdir();
    let target = dir.path().join("out.bin");
    let out = regtool(&[
        "pull-blob",
        "fred/logs",
        &digest,
        "-o",
        target.to_str().unwrap(),
    ])
    .env("REGTOOL_HOST", &server.host)
    .run();
    assert!(out.fails(65).contains("digest mismatch"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file, no temporary file"
    );
    // On stdout the bytes were already written: the status says they are bad.
    let out = regtool(&["pull-blob", "fred/logs", &digest])
        .env("REGTOOL_HOST", &server.host)
        .run();
    out.fails(65);
    // A malformed manifest is a data error too.
    regtool(&["get-alias", "fred/logs", "x"])
        .env("REGTOOL_HOST", &server.host)
        .run()
        .fails(65);
    regtool(&["get-alias", "fred/logs"])
        .env("REGTOOL_HOST", &server.host)
        .stdin("not a manifest")
        .run()
        .fails(65);
}

#[test]
fn a_mount_the_registry_declines_exits_1_and_cancels_the_session() {
    let server = Server::start(|req| match (req.method.as_str(), req.path.as_str()) {
        ("POST", p) if p.contains("mount=") => {
            Response::new(202).header("Location", "/v2/dst/blobs/uploads/session-1")
        }
        ("HEAD", p) if p.starts_with("/v2/src/blobs/") => {
            Response::new(200).header("Content-Length", "5")
        }
        ("DELETE", _) => Response::new(204),
        _ => Response::new(404),
    });
    let digest = sha256(b"hello");
    let out = regtool(&["mount-blob", "dst", "src", &digest])
        .env("REGTOOL_HOST", &server.host)
        .run();
    assert!(out.fails(1).contains("did not mount"), "{}", out.stderr);
    assert!(
        server
            .seen()
            .iter()
            .any(|r| r.method == "DELETE" && r.path == "/v2/dst/blobs/uploads/session-1"),
        "{:?}",
        server.seen()
    );
}

#[test]
fn deletes_disabled_exit_1_with_a_hint() {
    let server = Server::start(|_| {
        Response::new(405).body(
            r#"{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}"#,
        )
    });
    let out = regtool(&["del-blob", "fred/logs", &sha256(b"x")])
        .env("REGTOOL_HOST", &server.host)
        .run();
    assert!(
        out.fails(1).contains("hint: the registry does not allow"),
        "{}",
        out.stderr
    );
}

#[test]
fn tag_lists_follow_every_link_page() {
    let server = Server::start(|req| match req.path.as_str() {
        "/v2/fred/logs/tags/list" => Response::new(200)
            .header(
                "Link",
                r#"</v2/fred/logs/tags/list?last=b&n=2>; rel="next""#,
            )
            .body(r#"{"name":"fred/logs","tags":["b","a"]}"#),
        "/v2/fred/logs/tags/list?last=b&n=2" => Response::new(200)
            .header("Link", r#"<list?last=d%20x&n=2>; rel="next""#)
            .body(r#"{"name":"fred/logs","tags":["d","c"]}"#),
        "/v2/fred/logs/tags/list?last=d%20x&n=2" => {
            Response::new(200).body(r#"{"name":"fred/logs","tags":["e"]}"#)
        }
        _ => Response::new(404),
    });
    let out = regtool(&["list-aliases", "fred/logs"])
        .env("REGTOOL_HOST", &server.host)
        .run();
    assert_eq!(out.lines(), ["b", "a", "d", "c", "e"], "{}", out.stderr);
}

#[test]
fn authorization_stays_with_the_registry_on_redirects() {
    let cdn = Server::start(|_| Response::new(200).body("blob bytes"));
    let cdn_host = cdn.host.clone();
    let server = Server::start(move |req| {
        if !req.headers.contains_key("authorization") {
            return Response::new(401).header("WWW-Authenticate", r#"Basic realm="test""#);
        }
        Response::new(307).header("Location", format!("http://{cdn_host}/blob?sig=abc"))
    });
    let out = regtool(&["pull-blob", "fred/logs", &sha256(b"blob bytes")])
        .env("REGTOOL_HOST", &server.host)
        .creds()
        .run();
    assert_eq!(out.ok(), "blob bytes");
    let at_cdn = cdn.seen();
    assert_eq!(at_cdn.len(), 1);
    assert!(
        !at_cdn[0].headers.contains_key("authorization"),
        "Authorization leaked to the other host"
    );
    assert!(server.seen().iter().any(|r| {
        r.headers
            .get("authorization")
            .is_some_and(|a| a.starts_with("Basic "))
    }));
}

#[test]
fn server_text_is_sanitised() {
    let server = Server::start(|_| {
        Response::new(400).body(
            "{\"errors\":[{\"code\":\"X\",\"message\":\"evil \\u001b]0;title\\u0007 text\"}]}",
        )
    });
    let out = regtool(&["list-aliases", "fred/logs"])
        .env("REGTOOL_HOST", &server.host)
        .run();
    out.fails(1);
    assert!(
        !out.stderr.contains('\u{1b}') && !out.stderr.contains('\u{7}'),
        "{:?}",
        out.stderr
    );
}

#[test]
fn an_interrupted_pull_exits_130_and_leaves_no_file() {
    let data = bytes(2_000_000, 41);
    let digest = sha256(&data);
    let server = Server::start(move |_| Response::new(200).body(data.clone()).stall_after(500_000));
    let dir = tempdir();
    let target = dir.path().join("big.bin");
    let child = regtool(&[
        "pull-blob",
        "fred/logs",
        &digest,
        "-o",
        target.to_str().unwrap(),
    ])
    .env("REGTOOL_HOST", &server.host)
    .spawn();
    // Wait until the temporary file has received the first bytes, then press Ctrl-C.
    wait_until("the pull has started", || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .any(|e| e.metadata().is_ok_and(|m| m.len() > 0))
    });
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "regtool: interrupted\n"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a partial file was left behind"
    );
}

#[test]
fn registries_without_oci_support_get_the_dxf_form() {
    let blob = sha256(b"blob");
    let server = Server::start(|req| match (req.method.as_str(), req.path.as_str()) {
        ("HEAD", p) if p.contains("/blobs/") => Response::new(200).header("Content-Length", "4"),
        ("PUT", p) if p.contains("/manifests/") => {
            if req
                .headers
                .get("content-type")
                .is_some_and(|c| c.contains("oci"))
            {
                Response::new(400).body(
                    r#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]}"#,
                )
            } else {
                Response::new(201)
            }
        }
        _ => Response::new(404),
    });
    let out = regtool(&["set-alias", "fred/logs", "old", &blob])
        .env("REGTOOL_HOST", &server.host)
        .run();
    let digest = out.ok();
    let puts: Vec<_> = server
        .seen()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 2, "OCI first, then the Docker form");
    let docker = &puts[1];
    assert_eq!(
        docker.headers["content-type"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(digest.trim(), sha256(&docker.body));
    let v: serde_json::Value = serde_json::from_slice(&docker.body).unwrap();
    assert_eq!(
        v["config"]["digest"], blob,
        "dxf's form: the first blob is the config"
    );
    assert_eq!(v["layers"][0]["digest"], blob);
}

#[test]
fn insecure_goes_straight_to_http_and_timeouts_end_stalls() {
    let reg = plain();
    let out = regtool(&["list-repos"])
        .host(reg)
        .env("REGTOOL_INSECURE", "1")
        .env("REGTOOL_DEBUG", "1")
        .run();
    out.ok();
    assert!(!out.stderr.contains("does not speak TLS"), "{}", out.stderr);
    assert!(out.stderr.contains("GET http://"), "{}", out.stderr);

    let data = bytes(100_000, 51);
    let digest = sha256(&data);
    let server = Server::start(move |_| Response::new(200).body(data.clone()).stall_after(1000));
    let started = std::time::Instant::now();
    let out = regtool(&["pull-blob", "fred/logs", &digest])
        .env("REGTOOL_HOST", &server.host)
        .env("REGTOOL_TIMEOUT", "1")
        .run();
    out.fails(69);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the stall was not cut short"
    );
}

#[test]
fn a_redirect_that_fails_names_the_host_that_failed() {
    // The registry answers; the host it redirects the blob to does not. With or without a
    // proxy in between, the message names that host, never the registry that answered.
    let gone = format!("127.0.0.1:{}", free_port());
    let target = gone.clone();
    let server = Server::start(move |_| {
        Response::new(307).header("Location", format!("http://{target}/blob?sig=abc"))
    });
    let digest = sha256(b"blob bytes");
    let direct = regtool(&["pull-blob", "fred/logs", &digest])
        .env("REGTOOL_HOST", &server.host)
        .env("REGTOOL_RETRIES", "0")
        .run();
    let (proxy, log) = crate::faults::forward_proxy();
    let proxied = regtool(&["pull-blob", "fred/logs", &digest])
        .env("REGTOOL_HOST", &server.host)
        .env("REGTOOL_INSECURE", "1")
        .env("HTTP_PROXY", format!("http://{proxy}"))
        .env("REGTOOL_RETRIES", "0")
        .run();
    assert!(
        log.lock().unwrap().iter().any(|l| l.contains(&gone)),
        "{:?}",
        log.lock().unwrap()
    );
    for out in [direct, proxied] {
        let err = out.fails(69);
        assert!(err.contains(&gone), "{err}");
        assert!(!err.contains(&server.host), "{err}");
        assert!(!err.contains("sig=abc"), "{err}");
        assert!(
            !err.contains("REGTOOL_HOST"),
            "the hint blames the registry: {err}"
        );
    }
}

#[test]
fn a_file_setting_that_never_ends_is_refused_not_read_into_memory() {
    // /dev/zero as a password or a PEM file: read whole, it fills the memory (here: 2 GB of
    // address space, so that a regression fails instead of swapping the machine).
    for (var, extra) in [
        ("REGTOOL_PASSWORD_FILE", ("REGTOOL_USERNAME", "u")),
        ("REGTOOL_TLSVERIFY", ("REGTOOL_TIMEOUT", "5")),
        ("REGTOOL_CLIENT_CERT", ("REGTOOL_CLIENT_KEY", "/dev/zero")),
    ] {
        let out = regtool_in_bash(
            "ulimit -v 2000000; exec \"$REGTOOL\" list-aliases fred/logs",
            &[],
        )
        .env("REGTOOL_HOST", "127.0.0.1:1")
        .env(var, "/dev/zero")
        .env(extra.0, extra.1)
        .run();
        let err = out.fails(78);
        assert!(
            err.starts_with(&format!("regtool: {var}: /dev/zero is larger than ")),
            "{err}"
        );
    }
}

#[test]
fn a_stderr_that_went_away_loses_lines_but_changes_no_status() {
    // stderr a pipe whose reader is gone: a debug line, a warning or the error itself must
    // not turn into a panic (eprintln! panics on EPIPE, status 101).
    let out = regtool_in_bash(
        "exec 2> >(exec true); sleep 0.5; \"$REGTOOL\" list-aliases fred/logs; echo $?",
        &[],
    )
    .env("REGTOOL_HOST", "127.0.0.1:1")
    .env("REGTOOL_DEBUG", "1")
    .env("REGTOOL_SKIPTLSVERIFY", "1")
    .run();
    assert_eq!(out.ok().trim(), "69");
}
