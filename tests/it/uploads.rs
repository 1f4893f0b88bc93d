//! Uploads on bad days: a failed request is followed by asking the registry where the upload
//! stands, and sending goes on from there on the same session; a new session only when the
//! registry says the old one is gone; files are read again from the file, never held in
//! memory; anything that is not a regular file is a stream; sessions we give up are cancelled
//! with their newest Location.

use std::sync::{Arc, Mutex};

use crate::faults::{Fault, FaultProxy, rule};
use crate::harness::*;
use crate::scripted::{Response, Server};

const MAX: usize = usize::MAX;

fn via(proxy: &FaultProxy, args: &[&str]) -> Cmd {
    regtool(args)
        .env("REGTOOL_HOST", &proxy.host)
        .env("REGTOOL_RETRIES", "5")
        .env("REGTOOL_INSECURE", "1")
}

/// A file of `len` pseudo-random bytes in `dir`.
fn file_of(dir: &tempfile::TempDir, len: usize, seed: u64) -> (std::path::PathBuf, Vec<u8>) {
    let data = bytes(len, seed);
    let path = dir.path().join(format!("f{seed}.bin"));
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

fn pulled(repo: &str, digest: &str) -> Vec<u8> {
    regtool(&["pull-blob", repo, digest])
        .host(plain())
        .run()
        .stdout
}

#[test]
fn a_load_balancer_failing_every_other_request_does_not_defeat_a_push() {
    let dir = tempdir();
    let (file, data) = file_of(&dir, 1_000_000, 101);
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("*", "/blobs/uploads/", Fault::Status(503, None), MAX).every(2)],
    );
    let out = via(&proxy, &["push-blob", "t/flaky", file.to_str().unwrap()]).run();
    assert_eq!(out.ok().trim(), sha256(&data), "{}", out.stderr);
    // One session: the refused PUT was sent again to it.
    let lines = proxy.lines();
    assert_eq!(
        proxy.count("POST /v2/t/flaky/blobs/uploads/"),
        1,
        "{lines:?}"
    );
    assert_eq!(proxy.count("FAULT"), 1, "{lines:?}");
    assert_eq!(pulled("t/flaky", &sha256(&data)), data);
    assert_eq!(kept_uploads("t/flaky"), 0);
}

#[test]
fn a_lost_patch_answer_is_followed_by_a_status_question_not_a_blind_resend() {
    let dir = tempdir();
    let (file, data) = file_of(&dir, 1_000_000, 102);
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("PATCH", "/blobs/uploads/", Fault::LoseResponse, 1)],
    );
    let out = via(
        &proxy,
        &["push-blob", "t/lost-patch", file.to_str().unwrap()],
    )
    .env("REGTOOL_CHUNK_SIZE", "256k")
    .run();
    assert_eq!(out.ok().trim(), sha256(&data), "{}", out.stderr);
    let lines = proxy.lines();
    // The lost PATCH was followed by a GET of the upload URL, never by the same PATCH.
    let lost = lines.iter().position(|l| l.starts_with("FAULT")).unwrap();
    assert!(
        lines[lost + 1].starts_with("GET /v2/t/lost-patch/blobs/uploads/"),
        "{lines:?}"
    );
    assert_eq!(pulled("t/lost-patch", &sha256(&data)), data);
    // distribution keeps the session whose answer was lost (its URL went stale with that
    // answer): the cancel is tried, and its failure said.
    assert!(
        out.stderr
            .contains("cancelling an upload session in t/lost-patch failed (HTTP 404)"),
        "{}",
        out.stderr
    );
}

/// A registry that keeps an upload's bytes under a fixed URL (no signed state, unlike
/// distribution) and answers the status question; the second PATCH's answer is lost.
fn remembering_registry() -> (Server, Arc<Mutex<Vec<u8>>>) {
    let stored = Arc::new(Mutex::new(Vec::new()));
    let (s, patches) = (stored.clone(), Arc::new(Mutex::new(0)));
    let range = |n: usize| format!("0-{}", n.saturating_sub(1));
    let server = Server::start(move |req| {
        let upload = "/v2/r/blobs/uploads/u1";
        let mut data = s.lock().unwrap();
        match (req.method.as_str(), req.path.as_str()) {
            ("HEAD", _) => Response::new(404),
            ("POST", "/v2/r/blobs/uploads/") => Response::new(202)
                .header("Location", upload)
                .header("Range", "0-0"),
            ("PATCH", p) if p == upload => {
                data.extend_from_slice(&req.body);
                *patches.lock().unwrap() += 1;
                if *patches.lock().unwrap() == 2 {
                    return Response::hang_up();
                }
                Response::new(202)
                    .header("Location", upload)
                    .header("Range", range(data.len()))
            }
            ("GET", p) if p == upload => Response::new(204)
                .header("Location", upload)
                .header("Range", range(data.len())),
            ("PUT", p) if p.starts_with(&format!("{upload}?digest=")) => {
                let wanted = p.split("digest=").nth(1).unwrap().replace("%3A", ":");
                if regtool::oci::Digest::sha256(&data).to_string() == wanted {
                    Response::new(201)
                } else {
                    Response::new(400).body(r#"{"errors":[{"code":"DIGEST_INVALID"}]}"#)
                }
            }
            _ => Response::new(404),
        }
    });
    (server, stored)
}

#[test]
fn after_a_lost_answer_sending_goes_on_from_where_the_registry_stands() {
    let dir = tempdir();
    let (file, data) = file_of(&dir, 1_000_000, 103);
    let (server, stored) = remembering_registry();
    let out = regtool(&["push-blob", "r", file.to_str().unwrap()])
        .env("REGTOOL_HOST", &server.host)
        .env("REGTOOL_INSECURE", "1")
        .env("REGTOOL_RETRIES", "3")
        .env("REGTOOL_CHUNK_SIZE", "256k")
        .run();
    assert_eq!(out.ok().trim(), sha256(&data), "{}", out.stderr);
    // Every byte arrived once: the chunk whose answer was lost was not sent again.
    assert_eq!(*stored.lock().unwrap(), data);
    let seen = server.seen();
    let patches: Vec<_> = seen.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(
        patches.len(),
        4,
        "{:?}",
        patches.iter().map(|r| &r.headers).collect::<Vec<_>>()
    );
    assert!(seen.iter().any(|r| r.method == "GET"));
}

#[test]
fn a_lost_answer_to_the_closing_put_finds_the_blob_in_place() {
    let dir = tempdir();
    let (file, data) = file_of(&dir, 500_000, 104);
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("PUT", "/blobs/uploads/", Fault::LoseResponse, 1)],
    );
    let out = via(&proxy, &["push-blob", "t/lost-put", file.to_str().unwrap()]).run();
    assert_eq!(out.ok().trim(), sha256(&data), "{}", out.stderr);
    // The session went with the upload's success: no second session, no second upload.
    assert_eq!(
        proxy.count("POST /v2/t/lost-put/blobs/uploads/"),
        1,
        "{:?}",
        proxy.lines()
    );
    let puts = proxy
        .lines()
        .iter()
        .filter(|l| l.starts_with("PUT "))
        .count();
    assert_eq!(puts, 1, "{:?}", proxy.lines());
    assert_eq!(pulled("t/lost-put", &sha256(&data)), data);
}

#[test]
fn a_cut_put_starts_over_only_once_the_registry_says_the_session_is_gone() {
    let dir = tempdir();
    let (file, data) = file_of(&dir, 1_000_000, 105);
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule(
            "PUT",
            "/blobs/uploads/",
            Fault::CutRequest(300_000),
            1,
        )],
    );
    let out = via(&proxy, &["push-blob", "t/cut-put", file.to_str().unwrap()]).run();
    assert_eq!(out.ok().trim(), sha256(&data), "{}", out.stderr);
    // A cut leaves distribution's signed state behind the data it took: the status question
    // says the URL is stale, the session is given up (its cancel fails, and says so), and
    // only then does a new session start.
    let lines = proxy.lines();
    let cut = lines.iter().position(|l| l.starts_with("FAULT")).unwrap();
    assert!(
        lines[cut + 1].starts_with("GET /v2/t/cut-put/blobs/uploads/"),
        "{lines:?}"
    );
    assert!(
        lines[cut + 2].starts_with("DELETE /v2/t/cut-put/blobs/uploads/"),
        "{lines:?}"
    );
    assert!(
        lines[cut + 3].starts_with("POST /v2/t/cut-put/blobs/uploads/"),
        "{lines:?}"
    );
    assert!(
        out.stderr
            .contains("cancelling an upload session in t/cut-put failed (HTTP 404)")
    );
    assert_eq!(pulled("t/cut-put", &sha256(&data)), data);
}

/// The peak resident memory of a running regtool, polled from /proc until it exits.
fn peak_rss_kib(child: &mut std::process::Child) -> u64 {
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kib = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            peak = peak.max(kib);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    peak
}

#[test]
fn a_huge_chunk_size_does_not_hold_a_file_in_memory() {
    let dir = tempdir();
    let (file, data) = file_of(&dir, 96 << 20, 106);
    let mut child = regtool(&["push-blob", "t/big-chunks", file.to_str().unwrap()])
        .host(plain())
        .env("REGTOOL_CHUNK_SIZE", "1G")
        .spawn();
    let peak = peak_rss_kib(&mut child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        sha256(&data),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(peak > 0 && peak < 32 << 10, "peak RSS {peak} KiB");
}

#[test]
fn a_chunk_size_above_the_limit_is_a_configuration_error() {
    let out = regtool(&["push-blob", "t/x", "-"])
        .host(plain())
        .env("REGTOOL_CHUNK_SIZE", "10G")
        .stdin("x")
        .run();
    assert!(
        out.fails(78).contains("REGTOOL_CHUNK_SIZE"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("at most 1G"), "{}", out.stderr);
}

#[test]
fn fifos_and_dev_stdin_are_streams() {
    let dir = tempdir();
    let fifo = dir.path().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let data = bytes(300_000, 107);
    let (f, d) = (fifo.clone(), data.clone());
    let writer = std::thread::spawn(move || std::fs::write(f, d).unwrap());
    let out = regtool(&["push-blob", "t/fifo", fifo.to_str().unwrap()])
        .host(plain())
        .run();
    writer.join().unwrap();
    assert_eq!(out.ok().trim(), sha256(&data), "{}", out.stderr);
    assert_eq!(pulled("t/fifo", &sha256(&data)), data);
    // /dev/stdin of a pipe, and in chunks.
    let data = bytes(200_000, 108);
    let out = regtool(&["push-blob", "t/fifo", "/dev/stdin"])
        .host(plain())
        .env("REGTOOL_CHUNK_SIZE", "64k")
        .stdin(data.clone())
        .run();
    assert_eq!(out.ok().trim(), sha256(&data), "{}", out.stderr);
    assert_eq!(pulled("t/fifo", &sha256(&data)), data);
}

#[test]
fn ctrl_c_cancels_with_the_newest_location_and_leaves_no_upload() {
    // Several runs: the race the old cancel lost depended on how far the upload had got.
    for round in 0..3 {
        let proxy = FaultProxy::start(&plain().host, Vec::new());
        let mut child = regtool(&["push-blob", "t/interrupted-clean", "-"])
            .env("REGTOOL_HOST", &proxy.host)
            .env("REGTOOL_INSECURE", "1")
            .spawn();
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, &bytes(100_000 * (round + 1), 109)).unwrap();
        wait_until("the upload has started", || {
            proxy.count("PATCH /v2/t/interrupted-clean/blobs/uploads/") > 0
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        interrupt(&child);
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{stderr}");
        assert!(!stderr.contains("cancelling"), "{stderr}");
        assert_eq!(
            kept_uploads("t/interrupted-clean"),
            0,
            "{:?}",
            proxy.lines()
        );
    }
}

#[test]
fn an_interrupt_after_the_closing_put_succeeded_keeps_the_blob() {
    // The 201 to the closing PUT (its Location names the blob) arrives while the interrupt
    // handler waits for the request on the wire: nothing is left to cancel.
    let dir = tempdir();
    let (file, data) = file_of(&dir, 200_000, 112);
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("PUT", "/blobs/uploads/", Fault::Delay(1500), MAX)],
    );
    let child = via(
        &proxy,
        &["push-blob", "t/put-then-int", file.to_str().unwrap()],
    )
    .spawn();
    wait_until("the closing PUT is sent", || {
        proxy.count("PUT /v2/t/put-then-int/blobs/uploads/") > 0
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    let lines = proxy.lines();
    assert_eq!(
        proxy.count("DELETE /v2/t/put-then-int/blobs/sha256:"),
        0,
        "{lines:?}"
    );
    assert_eq!(proxy.count("DELETE"), 0, "{lines:?}");
    assert_eq!(pulled("t/put-then-int", &sha256(&data)), data, "{lines:?}");
}

#[test]
fn a_cancel_that_fails_is_said_on_stderr() {
    let proxy = FaultProxy::start(
        &plain().host,
        vec![
            rule("PATCH", "/blobs/uploads/", Fault::CutRequest(100_000), MAX),
            rule("DELETE", "/blobs/uploads/", Fault::Status(503, None), MAX),
        ],
    );
    let out = via(&proxy, &["push-blob", "t/uncancelled", "-"])
        .env("REGTOOL_RETRIES", "1")
        .stdin(bytes(300_000, 110))
        .run();
    assert_eq!(out.status, 69, "{}", out.stderr);
    assert!(
        out.stderr.lines().any(|l| l.starts_with(
            "regtool: warning: cancelling an upload session in t/uncancelled failed (HTTP 503)"
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn a_chunked_upload_that_makes_progress_earns_its_retries_back() {
    // Behind a load balancer failing every other request, each of 5 chunks and the closing
    // PUT meets one 503: 6 failures, never two in a row without the registry taking more.
    let dir = tempdir();
    let (file, data) = file_of(&dir, 5 << 20, 103);
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("*", "/blobs/uploads/", Fault::Status(503, None), MAX).every(2)],
    );
    let out = via(&proxy, &["push-blob", "t/progress", file.to_str().unwrap()])
        .env("REGTOOL_CHUNK_SIZE", "1M")
        .env("REGTOOL_RETRIES", "2")
        .run();
    assert_eq!(out.ok().trim(), sha256(&data), "{}", out.stderr);
    let lines = proxy.lines();
    assert!(proxy.count("FAULT") >= 6, "{lines:?}");
    assert_eq!(
        proxy.count("POST /v2/t/progress/blobs/uploads/"),
        1,
        "{lines:?}"
    );
    assert_eq!(pulled("t/progress", &sha256(&data)), data);
}

#[test]
fn a_chunked_upload_without_progress_stops_after_its_retries() {
    // Every PATCH is refused: the retries are spent on requests that move nothing, so the
    // budget is never given back.
    let dir = tempdir();
    let (file, _) = file_of(&dir, 3 << 20, 104);
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule(
            "PATCH",
            "/blobs/uploads/",
            Fault::Status(503, None),
            MAX,
        )],
    );
    let out = via(
        &proxy,
        &["push-blob", "t/no-progress", file.to_str().unwrap()],
    )
    .env("REGTOOL_CHUNK_SIZE", "1M")
    .env("REGTOOL_RETRIES", "2")
    .run();
    assert!(out.fails(69).contains("503"), "{}", out.stderr);
    // The first PATCH and its 2 retries, all refused.
    let lines = proxy.lines();
    let patches = lines.iter().filter(|l| l.starts_with("PATCH ")).count();
    assert_eq!(patches, 3, "{lines:?}");
}

/// A size of file hashed while it is uploaded (8 MiB and more; smaller ones are hashed
/// first).
const RACING: usize = 9 << 20;

/// The requests a proxy saw, by method.
fn methods(proxy: &FaultProxy, method: &str) -> usize {
    let prefix = format!("{method} ");
    proxy
        .lines()
        .iter()
        .filter(|l| l.starts_with(&prefix))
        .count()
}

#[test]
fn a_new_file_goes_up_while_it_is_hashed_in_patches_and_an_empty_put() {
    let dir = tempdir();
    let (file, data) = file_of(&dir, RACING, 113);
    let proxy = FaultProxy::start(&plain().host, vec![]);
    let out = via(&proxy, &["push-blob", "t/racing", file.to_str().unwrap()])
        .env("REGTOOL_DIGEST_CACHE", "0")
        .run();
    assert_eq!(out.ok().trim(), sha256(&data), "{}", out.stderr);
    let lines = proxy.lines();
    // The session opens while the file is hashed (the POST and the HEAD that follows the
    // hash race), the data goes in a PATCH of 8 MiB while the hash runs and one streaming PATCH
    // of the rest once it is done (or in that one PATCH when the hash wins the race), and the
    // closing PUT carries the digest.
    let patches = methods(&proxy, "PATCH");
    assert!((1..=2).contains(&patches), "PATCH: {lines:?}");
    for (method, n) in [("POST", 1), ("HEAD", 1), ("PUT", 1), ("DELETE", 0)] {
        assert_eq!(methods(&proxy, method), n, "{method}: {lines:?}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("PUT ") && l.contains(&sha256(&data)[7..])),
        "{lines:?}"
    );
    assert_eq!(pulled("t/racing", &sha256(&data)), data);
}

#[test]
fn a_file_whose_blob_the_repository_has_cancels_its_upload() {
    // A copy under another name (no digest cache entry): hashed while an upload starts; the
    // HEAD finds the blob, the session is cancelled, nothing is closed with a PUT.
    let dir = tempdir();
    let (file, data) = file_of(&dir, RACING, 114);
    let copy = dir.path().join("copy.bin");
    std::fs::copy(&file, &copy).unwrap();
    regtool(&["push-blob", "t/racing-known", file.to_str().unwrap()])
        .host(plain())
        .run()
        .ok();
    for chunk in [None, Some("256k")] {
        let proxy = FaultProxy::start(&plain().host, vec![]);
        let mut cmd = via(
            &proxy,
            &["push-blob", "t/racing-known", copy.to_str().unwrap()],
        )
        .env("REGTOOL_DIGEST_CACHE", "0");
        if let Some(c) = chunk {
            cmd = cmd.env("REGTOOL_CHUNK_SIZE", c);
        }
        let out = cmd.run();
        assert_eq!(out.ok().trim(), sha256(&data), "{}", out.stderr);
        let lines = proxy.lines();
        assert_eq!(methods(&proxy, "HEAD"), 1, "{lines:?}");
        assert_eq!(methods(&proxy, "PUT"), 0, "{lines:?}");
        assert_eq!(methods(&proxy, "DELETE"), 1, "{lines:?}");
        assert!(out.stderr.is_empty(), "{}", out.stderr);
        assert_eq!(kept_uploads("t/racing-known"), 0, "{chunk:?} {lines:?}");
    }
}

#[test]
fn an_interrupt_while_a_file_goes_up_hashed_cancels_its_session() {
    let dir = tempdir();
    let (file, _) = file_of(&dir, RACING, 115);
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("PATCH", "/blobs/uploads/", Fault::Delay(1500), MAX)],
    );
    let child = via(
        &proxy,
        &["push-blob", "t/racing-int", file.to_str().unwrap()],
    )
    .env("REGTOOL_DIGEST_CACHE", "0")
    .spawn();
    wait_until("the PATCH is sent", || {
        proxy.count("PATCH /v2/t/racing-int/blobs/uploads/") > 0
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(!stderr.contains("cancelling"), "{stderr}");
    assert_eq!(methods(&proxy, "PUT"), 0, "{:?}", proxy.lines());
    assert_eq!(kept_uploads("t/racing-int"), 0, "{:?}", proxy.lines());
}

#[test]
fn a_file_uploaded_while_hashed_gets_past_a_load_balancer_and_a_cut() {
    let dir = tempdir();
    let (file, data) = file_of(&dir, RACING, 116);
    // Every other request refused: the streaming PATCH (its body taken first, as a load
    // balancer does) and the closing PUT are each sent again, in one session.
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("*", "/blobs/uploads/", Fault::Status(503, None), MAX).every(2)],
    );
    let out = via(
        &proxy,
        &["push-blob", "t/racing-lb", file.to_str().unwrap()],
    )
    .env("REGTOOL_DIGEST_CACHE", "0")
    .run();
    assert_eq!(out.ok().trim(), sha256(&data), "{}", out.stderr);
    let lines = proxy.lines();
    assert_eq!(methods(&proxy, "POST"), 1, "{lines:?}");
    assert_eq!(proxy.count("FAULT"), 2, "{lines:?}");
    assert_eq!(pulled("t/racing-lb", &sha256(&data)), data);
    // The PATCH cut after 1 MB: the status question, then on from where the registry stands
    // (distribution calls the cut session's URL stale: a new session).
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule(
            "PATCH",
            "/blobs/uploads/",
            Fault::CutRequest(1_000_000),
            1,
        )],
    );
    let out = via(
        &proxy,
        &["push-blob", "t/racing-cut", file.to_str().unwrap()],
    )
    .env("REGTOOL_DIGEST_CACHE", "0")
    .run();
    assert_eq!(out.ok().trim(), sha256(&data), "{}", out.stderr);
    let lines = proxy.lines();
    let cut = lines.iter().position(|l| l.starts_with("FAULT")).unwrap();
    assert!(
        lines[cut + 1..]
            .iter()
            .find(|l| !l.starts_with("HEAD "))
            .is_some_and(|l| l.starts_with("GET /v2/t/racing-cut/blobs/uploads/")),
        "{lines:?}"
    );
    assert_eq!(pulled("t/racing-cut", &sha256(&data)), data);
}
