//! The bad-input suite: every case is one invocation with something wrong in it, and must end
//! with the documented status and one `regtool: ...` line (plus maybe a hint) that says what
//! was wrong. No case may panic. Registry-side hostility comes from the scripted server.

use crate::harness::*;
use crate::scripted::{Response, Server};

struct Case {
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    stdin: Vec<u8>,
    status: i32,
    says: &'static str,
}

fn case(args: &[&str], status: i32, says: &'static str) -> Case {
    Case {
        args: args.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        stdin: Vec::new(),
        status,
        says,
    }
}

impl Case {
    fn env(mut self, k: &'static str, v: impl Into<String>) -> Case {
        self.env.push((k, v.into()));
        self
    }
    fn stdin(mut self, b: impl Into<Vec<u8>>) -> Case {
        self.stdin = b.into();
        self
    }
}

/// A scripted registry answering every request with `respond`.
fn hostile(
    respond: impl Fn(&crate::scripted::Request) -> Response + Send + Sync + 'static,
) -> String {
    Server::start(respond).host
}

#[test]
fn bad_input_gets_a_clear_line_and_the_right_status() {
    let reg = plain().host.clone();
    let dir = tempdir();
    let d = dir.path();
    let not_tar = d.join("notes.txt");
    std::fs::write(&not_tar, "plain text, not a tar archive\n".repeat(50)).unwrap();
    let zero = format!("sha256:{}", "0".repeat(64));
    let big_manifest = format!(
        r#"{{"schemaVersion":2,"layers":[],"pad":"{}"}}"#,
        "x".repeat(5 << 20)
    );
    let hostile_realm = hostile(|_| {
        Response::new(401).header(
            "WWW-Authenticate",
            r#"Bearer realm="javascript:alert(1)",service="x""#,
        )
    });
    let garbled_challenge = hostile(|_| {
        Response::new(401).header("WWW-Authenticate", "Bearer realm=\"unterminated, ,,==")
    });
    let offsite_link = hostile(|_| {
        Response::new(200)
            .header(
                "Link",
                r#"<http://elsewhere.example/v2/x/tags/list?n=1>; rel="next""#,
            )
            .body(r#"{"tags":["a"]}"#)
    });
    let looping_link = hostile(|r| {
        Response::new(200)
            .header("Link", format!(r#"<{}>; rel="next""#, r.path))
            .body(r#"{"tags":["a"]}"#)
    });
    let html_manifest = hostile(|_| {
        Response::new(200)
            .header("Content-Type", "text/html")
            .body("<html>not a manifest</html>")
    });
    let truncated_manifest =
        hostile(|_| Response::new(200).body(r#"{"schemaVersion":2,"config":{"mediaType":"#));
    let huge = big_manifest.clone();
    let oversized_manifest = hostile(move |_| Response::new(200).body(huge.clone()));
    let wrong_digest_header = hostile(|_| {
        Response::new(200)
            .header("Docker-Content-Digest", format!("sha256:{}", "1".repeat(64)))
            .body(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"a","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#)
    });
    let bad_tags = hostile(|_| Response::new(200).body(r#"{"tags":"not a list"}"#));

    let cases = vec![
        // Malformed references, digests and aliases (usage, before any request).
        case(
            &["pull-blob", "Fred/Logs", "@x"],
            64,
            "invalid repository name",
        ),
        case(
            &["pull-blob", "fred//logs", "@x"],
            64,
            "invalid repository name",
        ),
        case(
            &["pull-blob", &format!("{}/x", "a".repeat(300)), "@x"],
            64,
            "longer than 255",
        ),
        case(
            &["pull-blob", "fred/logs", "sha256:abc"],
            64,
            "invalid digest",
        ),
        case(
            &[
                "pull-blob",
                "fred/logs",
                &format!("sha256:{}", "G".repeat(64)),
            ],
            64,
            "invalid digest",
        ),
        case(
            &["pull-blob", "fred/logs", "sha1:abcd"],
            64,
            "neither a digest",
        ),
        case(&["pull-blob", "fred/logs", "@a/b"], 64, "invalid alias"),
        case(&["pull-blob", "fred/logs", "@"], 64, "invalid alias"),
        case(&["pull-blob", "fred/logs", "@.hidden"], 64, "invalid alias"),
        case(
            &["get-alias", "fred/logs", &"x".repeat(129)],
            64,
            "invalid alias",
        ),
        case(
            &["mount-blob", "fred/logs", "other", "sha256:12"],
            64,
            "invalid digest",
        ),
        case(
            &["set-alias", "fred/logs", "a", "not-a-digest"],
            64,
            "neither a digest nor a file",
        ),
        case(
            &["copy", "Fred/x:1", "fred/y"],
            64,
            "invalid image reference",
        ),
        case(
            &["copy", "fred/x:", "fred/y"],
            64,
            "invalid image reference",
        ),
        case(
            &["copy", "fred/x@sha256:abc", "fred/y"],
            64,
            "invalid image reference",
        ),
        case(
            &["copy", "fred/x", &format!("fred/y@{zero}")],
            64,
            "not a digest",
        ),
        case(
            &["append-layer", "reg.example:5000/", "fred/y", "-"],
            64,
            "invalid image reference",
        ),
        case(&["auth", "fred/logs", "fly"], 64, "invalid action"),
        case(
            &["auth", "fred/logs", "repository::pull"],
            64,
            "invalid scope",
        ),
        case(&["push-blob", "fred/logs", "-", "-"], 64, "only once"),
        case(
            &["push-blob", "fred/logs", d.to_str().unwrap()],
            64,
            "is a directory",
        ),
        case(&["pull-blob"], 64, "usage"),
        case(&["frobnicate"], 64, "usage"),
        // Bad environment values (configuration, before any request).
        case(&["list-repos"], 78, "REGTOOL_HOST").env("REGTOOL_HOST", "https://reg.example"),
        case(&["list-repos"], 78, "REGTOOL_CHUNK_SIZE").env("REGTOOL_CHUNK_SIZE", "1.5M"),
        case(&["list-repos"], 78, "REGTOOL_TIMEOUT").env("REGTOOL_TIMEOUT", "-3"),
        case(&["list-repos"], 78, "REGTOOL_JOBS").env("REGTOOL_JOBS", "1000"),
        case(&["list-repos"], 78, "DXF_PLATFORM").env("DXF_PLATFORM", "linux/"),
        case(&["list-repos"], 78, "REGTOOL_COMPRESSION").env("REGTOOL_COMPRESSION", "brotli"),
        case(&["list-repos"], 78, "SOURCE_DATE_EPOCH").env("SOURCE_DATE_EPOCH", "yesterday"),
        case(&["list-repos"], 78, "REGTOOL_TLSVERIFY")
            .env("REGTOOL_TLSVERIFY", "/nonexistent/ca.pem"),
        case(&["list-repos"], 78, "REGTOOL_CLIENT_KEY")
            .env("REGTOOL_CLIENT_CERT", not_tar.to_str().unwrap()),
        case(&["list-repos"], 78, "REGTOOL_AUTH_HOST").env("REGTOOL_AUTH_HOST", "http://x"),
        case(&["list-repos"], 78, "REGTOOL_FORMAT").env("REGTOOL_FORMAT", "yaml"),
        // Malformed, truncated, oversized and wrong-type manifests.
        case(&["get-alias", "fred/logs"], 65, "malformed manifest")
            .stdin("{\"schemaVersion\":2,\"layers\":[{"),
        case(&["get-alias", "fred/logs"], 65, "schemaVersion").stdin(r#"{"schemaVersion":3}"#),
        case(&["get-alias", "fred/logs"], 64, "is an index")
            .stdin(r#"{"schemaVersion":2,"manifests":[]}"#),
        case(&["pull-blob", "fred/logs"], 65, "larger than 4 MiB").stdin(big_manifest),
        case(&["get-alias", "fred/logs", "x"], 65, "malformed manifest")
            .env("REGTOOL_HOST", &html_manifest),
        case(&["get-alias", "fred/logs", "x"], 65, "malformed manifest")
            .env("REGTOOL_HOST", &truncated_manifest),
        case(&["get-alias", "fred/logs", "x"], 65, "larger than")
            .env("REGTOOL_HOST", &oversized_manifest),
        case(&["get-alias", "fred/logs", "x"], 65, "the registry says")
            .env("REGTOOL_HOST", &wrong_digest_header),
        // Hostile headers.
        case(&["list-aliases", "fred/logs"], 13, "not an http(s) URL")
            .env("REGTOOL_HOST", &hostile_realm),
        case(&["list-aliases", "fred/logs"], 13, "401").env("REGTOOL_HOST", &garbled_challenge),
        case(&["list-aliases", "fred/logs"], 65, "another host").env("REGTOOL_HOST", &offsite_link),
        case(&["list-aliases", "fred/logs"], 65, "round in circles")
            .env("REGTOOL_HOST", &looping_link),
        case(&["list-aliases", "fred/logs"], 65, "not a list").env("REGTOOL_HOST", &bad_tags),
        // Non-tar and path-traversal layers; files that are not there.
        case(
            &[
                "append-layer",
                "t/none:x",
                "t/none:y",
                not_tar.to_str().unwrap(),
            ],
            2,
            "manifest unknown",
        )
        .env("REGTOOL_HOST", &reg),
        case(
            &["push-blob", "fred/logs", "/nonexistent/file"],
            2,
            "No such file",
        )
        .env("REGTOOL_HOST", &reg),
        case(
            &["set-alias", "fred/logs", "a", "./nonexistent"],
            2,
            "No such file",
        )
        .env("REGTOOL_HOST", &reg),
        case(
            &[
                "pull-blob",
                "fred/logs",
                &zero,
                "-o",
                "/nonexistent/dir/out",
            ],
            // The output path's problem, not a missing blob (which is 2).
            1,
            "creating a file in /nonexistent/dir: No such file",
        )
        .env("REGTOOL_HOST", &reg),
    ];
    assert!(cases.len() >= 40, "{} cases", cases.len());
    for c in cases {
        let mut cmd =
            regtool(&c.args.iter().map(String::as_str).collect::<Vec<_>>()).stdin(c.stdin.clone());
        let mut has_host = false;
        for (k, v) in &c.env {
            has_host |= *k == "REGTOOL_HOST";
            cmd = cmd.env(k, v);
        }
        if !has_host {
            // Nothing listens there: a case that made a request would end in 69, not its status.
            cmd = cmd.env("REGTOOL_HOST", "127.0.0.1:1");
        }
        let out = cmd.run();
        let text = out.fails(c.status).to_string();
        assert!(
            text.contains(c.says),
            "{:?}: expected {:?} in {text:?}",
            c.args,
            c.says
        );
    }
}

#[test]
fn bad_layers_are_refused_before_the_destination_changes() {
    // Needs a real base image: see images.rs; here the layer input itself is at fault.
    let reg = plain();
    let dir = tempdir();
    let f = dir.path().join("one");
    std::fs::write(&f, "{}").unwrap();
    let d = regtool(&["push-blob", "t/badlayer", f.to_str().unwrap()])
        .host(reg)
        .run()
        .ok();
    let config = d.trim();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[]}}"#
    );
    let store = regtool::registry::Registry::new(&regtool::registry::Options::new(
        reg.host.parse().unwrap(),
    ));
    regtool::Store::put_manifest(
        &store,
        &"t/badlayer".parse().unwrap(),
        &"base".parse().unwrap(),
        manifest.as_bytes(),
        "application/vnd.oci.image.manifest.v1+json",
    )
    .unwrap();
    let evil_root = dir.path().join("evil");
    std::fs::create_dir_all(&evil_root).unwrap();
    std::fs::write(evil_root.join("f"), "x").unwrap();
    let evil = dir.path().join("evil.tar");
    let made = std::process::Command::new("tar")
        .args([
            "-cf",
            evil.to_str().unwrap(),
            "-C",
            evil_root.to_str().unwrap(),
            "-P",
            "--transform=s,^,../../,",
            "f",
        ])
        .status()
        .unwrap();
    assert!(made.success());
    let evil = std::fs::read(&evil).unwrap();
    for (input, says) in [
        (&b"not a tar at all"[..], "not a tar"),
        (&[0u8; 100][..], "shorter than one tar header"),
        (&b""[..], "empty input"),
        (&evil[..], "leaves the layer's root"),
    ] {
        let out = regtool(&["append-layer", "t/badlayer:base", "t/badlayer:new"])
            .host(reg)
            .stdin(input.to_vec())
            .run();
        assert!(out.fails(65).contains(says), "{says}: {}", out.stderr);
    }
    regtool(&["resolve", "t/badlayer", "new"])
        .host(reg)
        .run()
        .fails(2);
}

/// The TLS files are read when a registry is opened: a CA bundle that is not there does not
/// stop a command on the local store, and still stops one that talks to a registry.
#[test]
fn a_bad_ca_bundle_only_matters_to_registries() {
    let dir = tempdir();
    let local = format!("oci:{}", dir.path().display());
    let out = regtool(&["push-blob", "t/tls", "-"])
        .env("REGTOOL_HOST", &local)
        .env("REGTOOL_TLSVERIFY", "/nonexistent/ca.pem")
        .stdin("local")
        .run();
    assert_eq!(out.ok().trim(), sha256(b"local"));
    let out = regtool(&["copy", "reg.example:5000/t/a:x", "t/b:y"])
        .env("REGTOOL_HOST", &local)
        .env("REGTOOL_TLSVERIFY", "/nonexistent/ca.pem")
        .run();
    assert_eq!(
        out.fails(78).lines().next(),
        Some(
            "regtool: REGTOOL_TLSVERIFY: cannot read /nonexistent/ca.pem: No such file or directory"
        )
    );
}

/// A TLS file given under its dxf name is reported under that name.
#[test]
fn a_bad_dxf_ca_bundle_is_named_as_given() {
    let dir = tempdir();
    let not_pem = dir.path().join("ca.txt");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    for (path, why) in [
        (
            "/nonexistent/ca.pem".to_string(),
            "cannot read /nonexistent/ca.pem: No such file or directory".to_string(),
        ),
        (
            not_pem.display().to_string(),
            format!("{}: no certificate in it", not_pem.display()),
        ),
    ] {
        let out = regtool(&["list-repos"])
            .env("REGTOOL_HOST", "reg.example:5000")
            .env("DXF_TLSVERIFY", &path)
            .run();
        assert_eq!(
            out.fails(78).lines().next(),
            Some(format!("regtool: DXF_TLSVERIFY: {why}").as_str())
        );
    }
}

/// The host of an image reference is checked like REGTOOL_HOST's: text a URL would read as a
/// query or a fragment (`127.0.0.1:PORT?x` once became the URL
/// `https://127.0.0.1:PORT?x/v2/…`, a request to that server) is a usage error before any
/// request.
#[test]
fn a_reference_host_that_is_no_host_is_a_usage_error_before_any_request() {
    let server = Server::start(|_| Response::new(200).body("{}"));
    let dir = tempdir();
    let local = format!("oci:{}", dir.path().display());
    for bad in ["?x", "#x", "?"] {
        let src = format!("{}{bad}/repo:t", server.host);
        let out = regtool(&["copy", &src, "fred/y"])
            .env("REGTOOL_HOST", &local)
            .run();
        let err = out.fails(64);
        assert!(err.contains("invalid image reference"), "{err}");
        assert!(
            err.contains(&format!("in the host \"{}{bad}\"", server.host)),
            "{err}"
        );
    }
    let out = regtool(&["copy", "x.y?z/repo:t", "fred/y"])
        .env("REGTOOL_HOST", &local)
        .run();
    assert!(out.fails(64).contains("invalid image reference"));
    assert!(server.seen().is_empty(), "{:?}", server.seen().len());
}
