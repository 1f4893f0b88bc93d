//! Registries that misbehave on purpose or by accident: bodies longer than declared, sizes
//! that overflow, names that would write escapes to a terminal, catalogs that page in small
//! steps. The scripted server plays the hostile ones; the real registry the rest.

use crate::harness::*;
use crate::scripted::{Response, Server};

/// An OCI alias manifest naming blobs of the given digests and sizes.
fn alias_manifest(blobs: &[(&str, u64)]) -> String {
    let layers: Vec<serde_json::Value> = blobs
        .iter()
        .map(|(d, s)| {
            serde_json::json!({"mediaType": "application/octet-stream", "digest": d, "size": s})
        })
        .collect();
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "size": 2
        },
        "layers": layers,
    })
    .to_string()
}

fn manifest_response(body: &str) -> Response {
    Response::new(200)
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(body.to_string())
}

#[test]
fn a_blob_streaming_forever_stops_at_the_declared_size() {
    let content = b"hello world";
    let digest = sha256(content);
    let manifest = alias_manifest(&[(&digest, content.len() as u64)]);
    // 256 MiB of "hello world" repeated, chunked: far more than the 11 bytes declared.
    let server = Server::start(move |req| {
        if req.path.contains("/manifests/") {
            manifest_response(&manifest)
        } else {
            Response::new(200).body(&content[..]).stream(256 << 20)
        }
    });
    let out = regtool(&["pull-blob", "fred/logs", "@forever"])
        .env("REGTOOL_HOST", &server.host)
        .run();
    assert!(
        out.fails(65).contains("expected 11 bytes, received more"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, content, "nothing past the declared size");
    let dir = tempdir();
    let target = dir.path().join("out.bin");
    let out = regtool(&[
        "pull-blob",
        "fred/logs",
        "@forever",
        "-o",
        target.to_str().unwrap(),
    ])
    .env("REGTOOL_HOST", &server.host)
    .run();
    out.fails(65);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file, no temporary file"
    );
    // By digest, without a manifest: the size is the one HEAD announces.
    let out = regtool(&["pull-blob", "fred/logs", &digest])
        .env("REGTOOL_HOST", &server.host)
        .run();
    out.fails(65);
    assert_eq!(out.stdout, content);
    // Socket buffers hold a little; the client must not have read the stream on.
    let taken = server.streamed.load(std::sync::atomic::Ordering::SeqCst);
    assert!(taken < 48 << 20, "regtool read {taken} bytes");
}

#[test]
fn a_content_length_larger_than_declared_is_refused_before_writing() {
    let content = b"hello world";
    let digest = sha256(content);
    let manifest = alias_manifest(&[(&digest, content.len() as u64)]);
    let server = Server::start(move |req| {
        if req.path.contains("/manifests/") {
            manifest_response(&manifest)
        } else {
            Response::new(200)
                .header("Content-Length", "1000000000000")
                .body(&content[..])
        }
    });
    let out = regtool(&["pull-blob", "fred/logs", "@big"])
        .env("REGTOOL_HOST", &server.host)
        .env("REGTOOL_TIMEOUT", "3")
        .run();
    assert!(
        out.fails(65)
            .contains("the registry offers 1000000000000 bytes, the manifest declares 11"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn sizes_that_overflow_are_refused_not_wrapped() {
    let huge = i64::MAX as u64;
    let (a, b, c) = (sha256(b"a"), sha256(b"b"), sha256(b"c"));
    let manifest = alias_manifest(&[(&a, huge), (&b, huge), (&c, huge)]);
    let body = manifest.clone();
    let server = Server::start(move |req| {
        if req.path.contains("/manifests/") {
            manifest_response(&body)
        } else {
            Response::new(404)
        }
    });
    let out = regtool(&["blob-size", "fred/logs", "@huge"])
        .env("REGTOOL_HOST", &server.host)
        .run();
    assert!(
        out.fails(65)
            .contains("@huge: the blob sizes the manifest declares add up to more than 2^64-1"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.text());
    // The same manifest on stdin.
    regtool(&["blob-size", "fred/logs"])
        .env("REGTOOL_HOST", &server.host)
        .stdin(manifest)
        .run()
        .fails(65);
    // Two of them still fit.
    let fits = alias_manifest(&[(&a, huge), (&b, huge)]);
    let out = regtool(&["blob-size", "fred/logs"])
        .env("REGTOOL_HOST", &server.host)
        .stdin(fits)
        .run();
    assert_eq!(out.ok().trim(), (2 * huge).to_string());
}

#[test]
fn list_repos_pages_as_a_small_catalog_allows() {
    let reg = Registry::start("catalog5", "catalog:\n  maxentries: 5\n");
    let mut want: Vec<String> = (0..12).map(|i| format!("c/r{i:02}")).collect();
    for (i, repo) in want.iter().enumerate() {
        regtool(&["push-blob", repo, "-"])
            .host(&reg)
            .stdin(format!("blob {i}"))
            .run()
            .ok();
    }
    let out = regtool(&["list-repos"])
        .host(&reg)
        .env("REGTOOL_DEBUG", "1")
        .run();
    let mut got = out.lines();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{}", out.stderr);
}

#[test]
fn a_listing_that_pages_on_and_on_is_bounded() {
    // Pages of 4 MiB, each linking to a fresh next page, 100 of them: more than the 64 MiB
    // a listing may take in all.
    let server = Server::start(|req| {
        let page: u32 = req
            .path
            .rsplit_once("last=")
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0);
        let tags: Vec<String> = (0..1000)
            .map(|i| format!("p{page}t{i}{}", "x".repeat(4096)))
            .collect();
        let mut resp = Response::new(200).body(serde_json::json!({"tags": tags}).to_string());
        if page < 100 {
            resp = resp.header(
                "Link",
                format!("</v2/fred/logs/tags/list?last={}>; rel=\"next\"", page + 1),
            );
        }
        resp
    });
    let out = regtool(&["list-aliases", "fred/logs"])
        .env("REGTOOL_HOST", &server.host)
        .run();
    assert!(
        out.fails(65)
            .contains("listing aliases of fred/logs: the registry's answer is larger than 64 MiB"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}

/// No terminal escape, bell or bidi override from the server reached stdout or stderr.
#[track_caller]
fn no_escapes(out: &Run) {
    let text = format!("{}{}", out.text(), out.stderr);
    assert!(
        !text.contains(['\u{1b}', '\u{7}', '\u{202e}', '\u{9b}']),
        "{text:?}"
    );
}

#[test]
fn listed_names_outside_the_grammar_are_refused_whole() {
    let server = Server::start(|req| match req.path.as_str() {
        "/v2/fred/escape/tags/list" => Response::new(200).body(r#"{"tags":["v1","a\u001b[2Jb"]}"#),
        "/v2/fred/newline/tags/list" => Response::new(200).body(r#"{"tags":["v1","x\ny"]}"#),
        "/v2/fred/bidi/tags/list" => Response::new(200).body(r#"{"tags":["v\u202e1"]}"#),
        "/v2/fred/fine/tags/list" => Response::new(200).body(r#"{"tags":["v1","_x.y-z"]}"#),
        p if p.starts_with("/v2/_catalog") => {
            Response::new(200).body(r#"{"repositories":["fred/logs","evil\u001b]0;title\u0007"]}"#)
        }
        _ => Response::new(404),
    });
    for (repo, shown) in [
        ("fred/escape", r#"invalid alias "a\u{1b}[2Jb""#),
        ("fred/newline", r#"invalid alias "x\ny""#),
        ("fred/bidi", r#"invalid alias "v\u{202e}1""#),
    ] {
        for format in ["text", "json"] {
            let out = regtool(&["list-aliases", repo])
                .env("REGTOOL_HOST", &server.host)
                .env("REGTOOL_FORMAT", format)
                .run();
            let err = out.fails(65);
            assert!(
                err.contains(&format!("listing aliases of {repo}: registry "))
                    && err.contains(shown),
                "{err}"
            );
            assert!(out.stdout.is_empty(), "{}", out.text());
            no_escapes(&out);
        }
    }
    let out = regtool(&["list-aliases", "fred/fine"])
        .env("REGTOOL_HOST", &server.host)
        .run();
    assert_eq!(out.lines(), ["v1", "_x.y-z"]);
    let out = regtool(&["list-repos"])
        .env("REGTOOL_HOST", &server.host)
        .run();
    assert!(
        out.fails(65).contains(r#"listing repositories: registry "#),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("invalid repository name"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
    no_escapes(&out);
}

#[test]
fn platforms_and_manifests_from_the_server_never_carry_escapes() {
    let child = alias_manifest(&[(&sha256(b"x"), 1)]);
    let child_digest = sha256(child.as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": child_digest,
            "size": child.len(),
            "platform": {"os": "linux\u{1b}[31m", "architecture": "amd64"}
        }]
    })
    .to_string();
    let index_digest = sha256(index.as_bytes());
    let server = Server::start(move |req| match req.path.as_str() {
        p if p == "/v2/fred/logs/manifests/multi"
            || p == format!("/v2/fred/logs/manifests/{index_digest}") =>
        {
            Response::new(200)
                .header("Content-Type", "application/vnd.oci.image.index.v1+json")
                .body(index.clone())
        }
        p if p == format!("/v2/fred/logs/manifests/{child_digest}") => manifest_response(&child),
        "/v2/fred/logs/manifests/garbage" => manifest_response("\u{1b}]0;pwned\u{7}"),
        _ => Response::new(404),
    });
    for command in ["get-alias", "get-digest", "blob-size", "del-alias"] {
        for format in ["text", "json"] {
            let out = regtool(&[command, "fred/logs", "@multi"])
                .env("REGTOOL_HOST", &server.host)
                .env("REGTOOL_FORMAT", format)
                .run();
            assert!(
                out.fails(65)
                    .contains(r#"the index declares an invalid platform "linux\u{1b}[31m/amd64""#),
                "{command}: {}",
                out.stderr
            );
            no_escapes(&out);
        }
    }
    let out = regtool(&["get-manifest", "fred/logs", "garbage"])
        .env("REGTOOL_HOST", &server.host)
        .run();
    assert!(
        out.fails(65)
            .contains("getting manifest garbage from fred/logs: the manifest is not JSON"),
        "{}",
        out.stderr
    );
    no_escapes(&out);
}

/// Where the delete tests run: the real registry and the local OCI-layout store.
fn delete_backends() -> Vec<(String, Box<dyn regtool::Store>, Option<tempfile::TempDir>)> {
    let reg = plain();
    let registry = regtool::registry::Registry::new(&regtool::registry::Options::new(
        reg.host.parse().unwrap(),
    ));
    let dir = tempdir();
    let layout = regtool::layout::Layout::new(dir.path());
    let local = format!("oci:{}", dir.path().display());
    vec![
        (reg.host.clone(), Box::new(registry), None),
        (local, Box::new(layout), Some(dir)),
    ]
}

/// Pushes `content` under `@tag` and returns (blob digest, manifest bytes).
fn pushed(host: &str, repo: &str, content: &str, tag: &str) -> (String, String) {
    let blob = regtool(&["push-blob", repo, "-", &format!("@{tag}")])
        .env("REGTOOL_HOST", host)
        .stdin(content)
        .run()
        .ok()
        .trim()
        .to_string();
    let manifest = regtool(&["get-manifest", repo, tag])
        .env("REGTOOL_HOST", host)
        .run()
        .ok()
        .trim_end()
        .to_string();
    (blob, manifest)
}

/// Stores a two-platform index of the manifests of `amd` and `arm` under `tag`.
fn index_of(store: &dyn regtool::Store, repo: &str, tag: &str, amd: &str, arm: &str) -> String {
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(amd.as_bytes()), "size": amd.len(), "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(arm.as_bytes()), "size": arm.len(), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ]
    })
    .to_string();
    store
        .put_manifest(
            &repo.parse().unwrap(),
            &tag.parse().unwrap(),
            index.as_bytes(),
            "application/vnd.oci.image.index.v1+json",
        )
        .unwrap();
    index
}

#[test]
fn del_blob_names_every_alias_it_removes_that_the_user_did_not() {
    for (host, store, _dir) in delete_backends() {
        let repo = repo("del-blob-notes");
        let run = |args: &[&str]| regtool(args).env("REGTOOL_HOST", &host).run();
        let (_, amd) = pushed(&host, &repo, "amd64 bits", "v1");
        let (_, arm) = pushed(&host, &repo, "arm64 bits", "v2");
        index_of(store.as_ref(), &repo, "multi", &amd, &arm);
        let out = run(&["del-blob", &repo, "@multi"]);
        out.ok();
        let notes: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(
            notes,
            [
                format!(
                    "regtool: note: deleting @multi also removes @v1 (platform manifest {})",
                    sha256(amd.as_bytes())
                ),
                format!(
                    "regtool: note: deleting @multi also removes @v2 (platform manifest {})",
                    sha256(arm.as_bytes())
                ),
            ],
            "{host}"
        );
        run(&["get-alias", &repo, "v1"]).fails(2);

        // Two aliases of one manifest: deleting one removes the other, and says so.
        let (blob, manifest) = pushed(&host, &repo, "shared", "one");
        run(&["set-alias", &repo, "two", &blob]).ok();
        let out = run(&["del-blob", &repo, "@one"]);
        out.ok();
        assert_eq!(
            out.stderr,
            format!(
                "regtool: note: deleting @one also removes @two (same manifest {})\n",
                sha256(manifest.as_bytes())
            ),
            "{host}"
        );
        run(&["get-alias", &repo, "two"]).fails(2);

        // Nothing to say when no other alias goes.
        pushed(&host, &repo, "alone", "solo");
        let out = run(&["del-blob", &repo, "solo"]);
        out.ok();
        assert_eq!(out.stderr, "", "{host}");
    }
}

#[test]
fn del_alias_prints_what_get_alias_prints() {
    for (host, store, _dir) in delete_backends() {
        let repo = repo("del-alias-index");
        let run = |args: &[&str], platform: Option<&str>| {
            let mut cmd = regtool(args).env("REGTOOL_HOST", &host);
            if let Some(p) = platform {
                cmd = cmd.env("REGTOOL_PLATFORM", p);
            }
            cmd.run()
        };
        let (amd_blob, amd) = pushed(&host, &repo, "amd64 bits", "amd");
        let (arm_blob, arm) = pushed(&host, &repo, "arm64 bits", "arm");
        for platform in [None, Some("linux/arm64")] {
            index_of(store.as_ref(), &repo, "multi", &amd, &arm);
            let expected = run(&["get-alias", &repo, "multi"], platform).ok();
            let out = run(&["del-alias", &repo, "multi"], platform);
            assert_eq!(out.ok(), expected, "{host} {platform:?}");
            assert_eq!(out.stderr, "", "{host}");
            run(&["get-alias", &repo, "multi"], None).fails(2);
            // The platform manifests and their aliases stay.
            assert_eq!(
                run(&["get-alias", &repo, "arm"], None).ok().trim(),
                arm_blob
            );
        }
        assert_eq!(
            run(&["get-alias", &repo, "amd"], None).ok().trim(),
            amd_blob
        );
        index_of(store.as_ref(), &repo, "multi", &amd, &arm);
        let out = run(&["del-alias", &repo, "multi"], None);
        assert_eq!(
            out.ok().trim(),
            format!(r#"{{"linux/amd64":["{amd_blob}"],"linux/arm64/v8":["{arm_blob}"]}}"#)
        );
    }
}

#[test]
fn a_delete_that_cannot_check_other_aliases_says_so() {
    let manifest = alias_manifest(&[(&sha256(b"x"), 1)]);
    let digest = sha256(manifest.as_bytes());
    let body = manifest.clone();
    let server = Server::start(move |req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", p) if p.contains("/manifests/") => manifest_response(&body),
        ("GET", p) if p.ends_with("/tags/list") => Response::new(403)
            .body(r#"{"errors":[{"code":"DENIED","message":"no listing for you"}]}"#),
        ("DELETE", _) => Response::new(202),
        _ => Response::new(404),
    });
    let out = regtool(&["del-alias", "fred/logs", "gone"])
        .env("REGTOOL_HOST", &server.host)
        .run();
    assert_eq!(out.ok().trim(), sha256(b"x"));
    assert_eq!(
        out.stderr,
        "regtool: warning: deleting @gone: could not check which other aliases name its manifests, and they go too: listing aliases of fred/logs: no listing for you (DENIED)\n"
    );
    assert!(
        server
            .seen()
            .iter()
            .any(|r| r.method == "DELETE" && r.path == format!("/v2/fred/logs/manifests/{digest}"))
    );
}

#[test]
fn deletes_check_every_alias_first_and_delete_shared_things_once() {
    for (host, _store, _dir) in delete_backends() {
        let repo = repo("del-several");
        let run = |args: &[&str]| regtool(args).env("REGTOOL_HOST", &host).run();
        // A missing alias fails before anything is deleted.
        let (blob, _) = pushed(&host, &repo, "kept", "kept");
        let out = run(&["del-blob", &repo, "@kept", "@missing"]);
        out.fails(2);
        assert_eq!(run(&["get-alias", &repo, "kept"]).ok().trim(), blob);
        run(&["del-alias", &repo, "kept", "missing"]).fails(2);
        assert_eq!(run(&["get-alias", &repo, "kept"]).ok().trim(), blob);

        // Both aliases of one manifest named: no note, one delete, both gone.
        run(&["set-alias", &repo, "twin", &blob]).ok();
        let out = run(&["del-alias", &repo, "kept", "twin"]);
        assert_eq!(out.ok(), format!("{blob}\n{blob}\n"), "{host}");
        assert_eq!(out.stderr, "", "{host}");
        run(&["get-alias", &repo, "twin"]).fails(2);
        run(&["set-alias", &repo, "one", &blob]).ok();
        run(&["set-alias", &repo, "two", &blob]).ok();
        let out = run(&["del-blob", &repo, "@one", "@two"]);
        out.ok();
        assert_eq!(out.stderr, "", "{host}");
        run(&["get-alias", &repo, "two"]).fails(2);
        run(&["blob-size", &repo, &blob]).fails(2);

        // Two aliases sharing a blob, and the blob named too: each thing deleted once.
        let push = |content: &str| {
            regtool(&["push-blob", &repo, "-"])
                .env("REGTOOL_HOST", &host)
                .stdin(content)
                .run()
                .ok()
                .trim()
                .to_string()
        };
        let (b1, b2) = (push("first, shared"), push("second"));
        run(&["set-alias", &repo, "x", &b1]).ok();
        run(&["set-alias", &repo, "y", &b1, &b2]).ok();
        let out = run(&["del-blob", &repo, "@x", "@y", &b1]);
        out.ok();
        assert_eq!(out.stderr, "", "{host}");
        run(&["blob-size", &repo, &b1]).fails(2);
        run(&["blob-size", &repo, &b2]).fails(2);
    }
}

#[test]
fn auth_never_prints_a_token_with_escapes() {
    let host = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let realm = host.clone();
    let server = Server::start(move |req| match req.path.as_str() {
        "/v2/" if req.headers.contains_key("authorization") => Response::new(200),
        "/v2/" => Response::new(401).header(
            "WWW-Authenticate",
            format!(
                r#"Bearer realm="http://{}/token",service="s""#,
                realm.lock().unwrap()
            ),
        ),
        // The probe's token (no scope) is clean; the one `auth` prints is not.
        p if p.starts_with("/token") && p.contains("scope=") => {
            Response::new(200).body(r#"{"token":"abc\u001b]0;pwned\u0007def"}"#)
        }
        p if p.starts_with("/token") => Response::new(200).body(r#"{"token":"clean"}"#),
        _ => Response::new(404),
    });
    *host.lock().unwrap() = server.host.clone();
    let out = regtool(&["auth", "fred/logs"])
        .env("REGTOOL_HOST", &server.host)
        .run();
    assert!(
        out.fails(65)
            .contains("the token server sent a token that is not printable ASCII"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("abc"), "the token is a secret");
    assert!(out.stdout.is_empty());
    no_escapes(&out);
}

/// An OCI image manifest with one config and one layer (digest, size each).
fn image_manifest(config: (&str, u64), layer: (&str, u64)) -> String {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config.0,
            "size": config.1
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer.0,
            "size": layer.1
        }],
    })
    .to_string()
}

#[test]
fn a_content_length_other_than_the_manifests_is_refused_before_reading_in_copy_and_flatten() {
    // The layer's answer announces 1000 bytes more than the manifest declares, sends the
    // declared ones and then nothing: reading on would wait for the idle timeout.
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"the layer's bytes, never read";
    let (config_digest, layer_digest) = (sha256(config), sha256(layer));
    let manifest = image_manifest(
        (&config_digest, config.len() as u64),
        (&layer_digest, layer.len() as u64),
    );
    let wanted = format!("/blobs/{layer_digest}");
    let server = Server::start(move |req| {
        if req.path.contains("/manifests/") {
            manifest_response(&manifest)
        } else if req.path.ends_with(&wanted) {
            Response::new(200)
                .header("Content-Length", (layer.len() + 1000).to_string())
                .body(&layer[..])
        } else {
            Response::new(200).body(&config[..])
        }
    });
    let source = format!("{}/fred/img:v1", server.host);
    let dir = tempdir();
    let store = format!("oci:{}", dir.path().join("store").display());
    let rootfs = dir.path().join("rootfs.tar");
    for args in [
        vec!["flatten", &source, "-o", rootfs.to_str().unwrap()],
        vec!["copy", &source, "fred/img:v1"],
    ] {
        // A wait for the missing bytes would end in 69 (the timeout, no retries left).
        let out = regtool(&args)
            .env("REGTOOL_HOST", &store)
            .env("REGTOOL_TIMEOUT", "5")
            .env("REGTOOL_RETRIES", "0")
            .run();
        assert!(
            out.fails(65).contains(&format!(
                "the registry offers {} bytes of {layer_digest}, the manifest declares {}",
                layer.len() + 1000,
                layer.len()
            )),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert!(!rootfs.exists());
}

#[test]
fn a_resumed_download_offering_another_length_than_remains_is_refused() {
    let content = b"hello world";
    let digest = sha256(content);
    let manifest = alias_manifest(&[(&digest, content.len() as u64)]);
    let server = Server::start(move |req| {
        if req.path.contains("/manifests/") {
            manifest_response(&manifest)
        } else if req.headers.contains_key("range") {
            // The rest of the blob is 6 bytes; the answer announces 1000.
            Response::new(206)
                .header("Content-Range", "bytes 5-10/11")
                .header("Content-Length", "1000")
                .body(&content[5..])
        } else {
            // The first answer breaks off after 5 bytes (a stall past the idle timeout).
            Response::new(200).body(&content[..]).stall_after(5)
        }
    });
    let out = regtool(&["pull-blob", "fred/logs", "@cut"])
        .env("REGTOOL_HOST", &server.host)
        .env("REGTOOL_TIMEOUT", "2")
        .env("REGTOOL_RETRIES", "1")
        .run();
    assert!(
        out.fails(65).contains(&format!(
            "the registry offers 1000 bytes of {digest} from byte 5, 6 remain"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, &content[..5]);
}

#[test]
fn a_digest_alone_takes_the_registrys_length_and_a_body_that_stops_short_is_an_outage() {
    // No manifest: the answer's Content-Length is all there is to go by. A registry that
    // announces more than it sends is waited for (the idle timeout), resumed as a broken
    // download, and given up on with 69; nothing unverified is kept.
    let content = b"hello world";
    let digest = sha256(content);
    let server = Server::start(move |_| {
        Response::new(200)
            .header("Content-Length", "1000")
            .body(&content[..])
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
    .env("REGTOOL_TIMEOUT", "1")
    .env("REGTOOL_RETRIES", "1")
    .run();
    assert!(out.fails(69).contains("timeout"), "{}", out.stderr);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let gets = server.seen().iter().filter(|r| r.method == "GET").count();
    assert_eq!(gets, 2, "the first answer and one resumption");
}
