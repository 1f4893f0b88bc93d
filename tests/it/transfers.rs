//! Transfers on bad days: the fault-injecting proxy in front of the real registry, one fault
//! mode per test, checking the status, the output (byte-identical or absent), the time taken
//! and, for uploads, the blob in the registry afterwards.

use std::time::{Duration, Instant};

use crate::faults::{Fault, FaultProxy, rule};
use crate::harness::*;

const MAX: usize = usize::MAX;

/// A blob of `len` bytes pushed straight to the registry (not through the proxy).
fn stored(repo: &str, len: usize, seed: u64) -> (Vec<u8>, String) {
    let data = bytes(len, seed);
    let d = regtool(&["push-blob", repo, "-"])
        .host(plain())
        .stdin(data.clone())
        .run()
        .ok();
    (data, d.trim().to_string())
}

fn via(proxy: &FaultProxy, args: &[&str]) -> Cmd {
    // Plain HTTP from the start: the proxy speaks no TLS and would wait for a request line.
    regtool(args)
        .env("REGTOOL_HOST", &proxy.host)
        .env("REGTOOL_RETRIES", "5")
        .env("REGTOOL_INSECURE", "1")
}

#[test]
fn transient_errors_are_retried() {
    let (data, d) = stored("t/faults", 300_000, 81);
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("GET", "/blobs/", Fault::Status(503, None), 2)],
    );
    let out = via(&proxy, &["pull-blob", "t/faults", &d]).run();
    assert_eq!(out.stdout, data, "{}", out.stderr);
    assert_eq!(out.status, 0);
    assert_eq!(proxy.count("FAULT"), 2);
    // Uploads: a refused session start is retried too.
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("POST", "/blobs/uploads/", Fault::Status(502, None), 2)],
    );
    let out = via(&proxy, &["push-blob", "t/faults", "-"])
        .stdin("after two 502s")
        .run();
    assert_eq!(out.ok().trim(), sha256(b"after two 502s"));
}

#[test]
fn retry_after_is_honoured_and_rate_limits_end_in_75() {
    let (data, d) = stored("t/faults", 1000, 82);
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("GET", "/blobs/", Fault::Status(429, Some(2)), 1)],
    );
    let started = Instant::now();
    assert_eq!(
        via(&proxy, &["pull-blob", "t/faults", &d]).run().stdout,
        data
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After: 2 was not waited for"
    );
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("GET", "/blobs/", Fault::Status(429, Some(1)), MAX)],
    );
    let started = Instant::now();
    let out = via(&proxy, &["pull-blob", "t/faults", &d])
        .env("REGTOOL_RETRIES", "2")
        .run();
    assert!(out.fails(75).contains("429"), "{}", out.stderr);
    assert_eq!(proxy.count("FAULT"), 3, "one try and two retries");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_cut_download_resumes_with_a_range_request() {
    let (data, d) = stored("t/faults", 2_000_000, 83);
    let dir = tempdir();
    let target = dir.path().join("out.bin");
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("GET", "/blobs/", Fault::CutResponse(700_000), 1)],
    );
    via(
        &proxy,
        &["pull-blob", "t/faults", &d, "-o", target.to_str().unwrap()],
    )
    .run()
    .ok();
    assert_eq!(std::fs::read(&target).unwrap(), data);
    assert!(
        proxy.lines().iter().any(|l| l.contains("bytes=700000-")),
        "{:?}",
        proxy.lines()
    );
    // On stdout: the bytes already written are not written again.
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("GET", "/blobs/", Fault::CutResponse(1_234_567), 1)],
    );
    let out = via(&proxy, &["pull-blob", "t/faults", &d]).run();
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(
        out.stdout == data,
        "stdout differs after a resumed download"
    );
}

#[test]
fn a_stalled_download_times_out_and_resumes() {
    let (data, d) = stored("t/faults", 500_000, 84);
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("GET", "/blobs/", Fault::Stall(100_000), 1)],
    );
    let started = Instant::now();
    let out = via(&proxy, &["pull-blob", "t/faults", &d])
        .env("REGTOOL_TIMEOUT", "1")
        .run();
    assert_eq!(out.stdout, data, "{}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_flipped_byte_is_a_data_error_and_no_file() {
    let (_, d) = stored("t/faults", 300_000, 85);
    let dir = tempdir();
    let target = dir.path().join("out.bin");
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("GET", "/blobs/", Fault::Flip(123_456), MAX)],
    );
    let out = via(
        &proxy,
        &["pull-blob", "t/faults", &d, "-o", target.to_str().unwrap()],
    )
    .run();
    assert!(out.fails(65).contains("digest mismatch"), "{}", out.stderr);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_permanent_failure_is_69_after_bounded_retries() {
    let (_, d) = stored("t/faults", 1000, 86);
    let dir = tempdir();
    let target = dir.path().join("out.bin");
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("GET", "/blobs/", Fault::Status(503, None), MAX)],
    );
    let started = Instant::now();
    let out = via(
        &proxy,
        &["pull-blob", "t/faults", &d, "-o", target.to_str().unwrap()],
    )
    .env("REGTOOL_RETRIES", "3")
    .run();
    assert!(out.fails(69).contains("503"), "{}", out.stderr);
    assert_eq!(proxy.count("FAULT"), 4);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_cut_file_upload_starts_over_from_a_new_session() {
    let dir = tempdir();
    let data = bytes(1_000_000, 87);
    let file = dir.path().join("up.bin");
    std::fs::write(&file, &data).unwrap();
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule(
            "PUT",
            "/blobs/uploads/",
            Fault::CutRequest(300_000),
            1,
        )],
    );
    let out = via(
        &proxy,
        &["push-blob", "t/faults-up", file.to_str().unwrap()],
    )
    .run();
    assert_eq!(out.ok().trim(), sha256(&data), "{}", out.stderr);
    assert_eq!(
        proxy.count("POST /v2/t/faults-up/blobs/uploads/"),
        2,
        "{:?}",
        proxy.lines()
    );
    // The blob in the registry is whole.
    assert_eq!(
        regtool(&["pull-blob", "t/faults-up", &sha256(&data)])
            .host(plain())
            .run()
            .stdout,
        data
    );
}

#[test]
fn a_cut_stdin_upload_fails_cleanly_and_cancels_its_session() {
    let data = bytes(1_000_000, 88);
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule(
            "PATCH",
            "/blobs/uploads/",
            Fault::CutRequest(300_000),
            MAX,
        )],
    );
    let out = via(&proxy, &["push-blob", "t/faults-stdin", "-"])
        .stdin(data.clone())
        .run();
    assert_eq!(out.status, 69, "{}", out.stderr);
    // distribution keeps a session whose request was cut (the URL we hold went stale with
    // it), refuses the cancel, and that is said.
    let (warnings, errors): (Vec<&str>, Vec<&str>) = out
        .stderr
        .lines()
        .partition(|l| l.starts_with("regtool: warning: cancelling an upload session"));
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(
        errors[0].starts_with("regtool: pushing stdin: "),
        "{}",
        out.stderr
    );
    assert!(warnings.len() <= 1, "{}", out.stderr);
    assert!(
        proxy
            .lines()
            .iter()
            .any(|l| l.starts_with("DELETE /v2/t/faults-stdin/blobs/uploads/")),
        "{:?}",
        proxy.lines()
    );
    regtool(&["blob-size", "t/faults-stdin", &sha256(&data)])
        .host(plain())
        .run()
        .fails(2);
}

#[test]
fn copies_across_registries_survive_a_cut() {
    let (data, d) = stored("t/faults-copy", 800_000, 89);
    regtool(&["set-alias", "t/faults-copy", "v1", &d])
        .host(plain())
        .run()
        .ok();
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule(
            "GET",
            "/blobs/sha256:",
            Fault::CutResponse(200_000),
            1,
        )],
    );
    let source = format!("{}/t/faults-copy:v1", proxy.host);
    regtool(&["copy", &source, "t/faults-copied:v1"])
        .host(basic())
        .creds()
        .env("REGTOOL_RETRIES", "5")
        .env("REGTOOL_INSECURE", "1")
        .run()
        .ok();
    assert_eq!(
        regtool(&["pull-blob", "t/faults-copied", "v1"])
            .host(basic())
            .creds()
            .run()
            .stdout,
        data
    );
}

#[test]
fn proxies_from_the_environment() {
    let (data, d) = stored("t/proxied", 100_000, 90);
    // HTTP_PROXY.
    let (proxy, log) = crate::faults::forward_proxy();
    let out = regtool(&["pull-blob", "t/proxied", &d])
        .host(plain())
        .env("REGTOOL_INSECURE", "1")
        .env("HTTP_PROXY", format!("http://{proxy}"))
        .run();
    assert_eq!(out.stdout, data, "{}", out.stderr);
    // ureq tunnels with CONNECT even to plain-HTTP targets; either form goes through the proxy.
    let through = |l: &String| {
        l.starts_with(&format!("CONNECT {}", plain().host))
            || l.starts_with(&format!("GET http://{}/", plain().host))
    };
    assert!(
        log.lock().unwrap().iter().any(through),
        "{:?}",
        log.lock().unwrap()
    );
    // NO_PROXY: straight to the registry.
    let (proxy, log) = crate::faults::forward_proxy();
    let out = regtool(&["pull-blob", "t/proxied", &d])
        .host(plain())
        .env("REGTOOL_INSECURE", "1")
        .env("HTTP_PROXY", format!("http://{proxy}"))
        .env("NO_PROXY", "127.0.0.1")
        .run();
    assert_eq!(out.stdout, data, "{}", out.stderr);
    assert!(log.lock().unwrap().is_empty(), "{:?}", log.lock().unwrap());
    // HTTPS_PROXY: a CONNECT tunnel to the TLS token registry, TLS verified end to end.
    let (_, reg) = crate::tokens::shared();
    let (proxy, log) = crate::faults::forward_proxy();
    let out = regtool(&["list-aliases", "public/proxied"])
        .host(reg)
        .env("REGTOOL_TLSVERIFY", crate::pki::pki().ca())
        .env("REGTOOL_CACHE_DIR", tempdir().path())
        .env("HTTPS_PROXY", format!("http://{proxy}"))
        .run();
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with(&format!("CONNECT {}", reg.host))),
        "{:?} {}",
        log.lock().unwrap(),
        out.stderr
    );
    out.fails(2);
}

#[test]
fn ctrl_c_cancels_the_upload_session_and_exits_130() {
    let proxy = FaultProxy::start(&plain().host, Vec::new());
    let mut child = regtool(&["push-blob", "t/interrupted", "-"])
        .env("REGTOOL_HOST", &proxy.host)
        .env("REGTOOL_INSECURE", "1")
        .spawn();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, &bytes(100_000, 91)).unwrap();
    wait_until("the upload has started", || {
        proxy.count("PATCH /v2/t/interrupted/blobs/uploads/") > 0
    });
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        proxy
            .lines()
            .iter()
            .any(|l| l.starts_with("DELETE /v2/t/interrupted/blobs/uploads/")),
        "{:?}",
        proxy.lines()
    );
}

#[test]
fn a_file_that_changes_during_the_push_is_a_data_error() {
    let dir = tempdir();
    let file = dir.path().join("moving.bin");
    std::fs::write(&file, bytes(1_000_000, 92)).unwrap();
    // The HEAD after hashing is answered 429 with Retry-After: 1; the file shrinks meanwhile.
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("HEAD", "/blobs/", Fault::Status(429, Some(1)), 1)],
    );
    let f = file.clone();
    let shrink = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        std::fs::write(&f, b"much shorter now").unwrap();
    });
    let out = via(&proxy, &["push-blob", "t/moving", file.to_str().unwrap()]).run();
    shrink.join().unwrap();
    assert!(out.fails(65).contains("change"), "{}", out.stderr);
    // Removed between the hashing and the upload: the open file is what was hashed, and what
    // is uploaded.
    let data = bytes(1_000_000, 93);
    std::fs::write(&file, &data).unwrap();
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("HEAD", "/blobs/", Fault::Status(429, Some(1)), 1)],
    );
    let f = file.clone();
    let remove = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        std::fs::remove_file(&f).unwrap();
    });
    let out = via(&proxy, &["push-blob", "t/moving", file.to_str().unwrap()]).run();
    remove.join().unwrap();
    assert_eq!(out.ok().trim(), sha256(&data));
    let pulled = regtool(&["pull-blob", "t/moving", &sha256(&data)])
        .host(plain())
        .run();
    assert_eq!(pulled.stdout, data);
}

#[test]
fn an_outage_during_a_resumed_download_is_69_not_a_digest_mismatch() {
    let (_, d) = stored("t/faults", 500_000, 94);
    // The first answer is cut; every later GET (the resumes) meets a 503.
    let proxy = FaultProxy::start(
        &plain().host,
        vec![
            rule("GET", "/blobs/", Fault::CutResponse(100_000), 1),
            rule("GET", "/blobs/", Fault::Status(503, None), MAX),
        ],
    );
    let out = via(&proxy, &["pull-blob", "t/faults", &d])
        .env("REGTOOL_RETRIES", "1")
        .run();
    assert!(out.fails(69).contains("503"), "{}", out.stderr);
}
