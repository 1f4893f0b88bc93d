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
    // Socket buffers hold a little; the client must not have read the stream on.
    let taken = server.streamed.load(std::sync::atomic::Ordering::SeqCst);
    assert!(taken < 32 << 20, "regtool read {taken} bytes");
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
