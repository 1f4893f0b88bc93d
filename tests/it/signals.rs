//! Signals that end a run: SIGINT, SIGTERM and SIGHUP each remove temporary files, cancel
//! open upload sessions and exit 128 + the signal; the cleanup is bounded in time, and a
//! second signal exits at once.

use std::process::Child;
use std::time::{Duration, Instant};

use crate::faults::{Fault, FaultProxy, rule};
use crate::harness::*;
use crate::scripted::{Response, Server};

/// The cleanup budget of src/signals.rs.
const BUDGET: Duration = Duration::from_secs(3);

/// Waits for `child` at most `limit` after `start`; ends it and fails the test after that.
/// The duration is counted from `start` (taken before the signal was sent).
fn wait_within(mut child: Child, start: Instant, limit: Duration) -> (i32, String, Duration) {
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = start.elapsed();
    let out = child.wait_with_output().unwrap();
    let status = out
        .status
        .code()
        .unwrap_or_else(|| panic!("{:?}", out.status));
    (
        status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed,
    )
}

/// Requests `proxy` received that start with `start` (not counting its FAULT lines).
fn received(proxy: &FaultProxy, start: &str) -> usize {
    proxy
        .lines()
        .iter()
        .filter(|l| l.starts_with(start))
        .count()
}

/// A push of stdin through `proxy`, its PATCH under way (stdin stays open).
fn upload_under_way(proxy: &FaultProxy, repo: &str) -> (Child, std::process::ChildStdin) {
    let mut child = regtool(&["push-blob", repo, "-"])
        .env("REGTOOL_HOST", &proxy.host)
        .env("REGTOOL_INSECURE", "1")
        .spawn();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, &bytes(100_000, 92)).unwrap();
    let patch = format!("PATCH /v2/{repo}/blobs/uploads/");
    wait_until("the upload has started", || proxy.count(&patch) > 0);
    (child, stdin)
}

#[test]
fn sigterm_and_sighup_remove_the_partial_file_and_exit_128_plus_the_signal() {
    let data = bytes(2_000_000, 42);
    let digest = sha256(&data);
    let server = Server::start(move |_| Response::new(200).body(data.clone()).stall_after(500_000));
    for (signal_name, status, line) in [("TERM", 143, "terminated"), ("HUP", 129, "hung up")] {
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
        wait_until("the pull has started", || {
            std::fs::read_dir(dir.path())
                .unwrap()
                .flatten()
                .any(|e| e.metadata().is_ok_and(|m| m.len() > 0))
        });
        signal(&child, signal_name);
        let (code, stderr, _) = wait_within(child, Instant::now(), Duration::from_secs(10));
        assert_eq!(code, status, "SIG{signal_name}: {stderr}");
        assert_eq!(stderr, format!("regtool: {line}\n"));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "SIG{signal_name} left a partial file behind"
        );
    }
}

#[test]
fn sigterm_and_sighup_cancel_the_upload_session() {
    for (signal_name, status, repo) in [("TERM", 143, "t/sigterm"), ("HUP", 129, "t/sighup")] {
        let proxy = FaultProxy::start(&plain().host, Vec::new());
        let (child, stdin) = upload_under_way(&proxy, repo);
        signal(&child, signal_name);
        let (code, stderr, _) = wait_within(child, Instant::now(), Duration::from_secs(10));
        drop(stdin);
        assert_eq!(code, status, "SIG{signal_name}: {stderr}");
        let delete = format!("DELETE /v2/{repo}/blobs/uploads/");
        assert_eq!(received(&proxy, &delete), 1, "{:?}", proxy.lines());
    }
}

#[test]
fn cleanup_gives_up_after_its_budget_when_the_cancel_hangs() {
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("DELETE", "/blobs/uploads/", Fault::Hang, 1)],
    );
    let (child, stdin) = upload_under_way(&proxy, "t/cancel-hangs");
    // Ctrl-C: before the budget, its cleanup waited for the DELETE as long as the proxy held it.
    let start = Instant::now();
    interrupt(&child);
    let (code, stderr, elapsed) = wait_within(child, start, Duration::from_secs(20));
    drop(stdin);
    assert_eq!(code, 130, "{stderr}");
    assert!(
        received(&proxy, "DELETE /v2/t/cancel-hangs/blobs/uploads/") == 1,
        "{:?} {stderr}",
        proxy.lines()
    );
    assert!(
        elapsed >= BUDGET && elapsed < BUDGET + Duration::from_secs(3),
        "exited after {elapsed:?}"
    );
    assert_eq!(
        stderr,
        "regtool: interrupted\nregtool: gave up cleaning up after 3 s: 1 upload session(s) may stay open until the registry expires them\n"
    );
}

#[test]
fn a_second_ctrl_c_exits_at_once_while_the_cancel_hangs() {
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("DELETE", "/blobs/uploads/", Fault::Hang, 1)],
    );
    let (child, stdin) = upload_under_way(&proxy, "t/impatient");
    interrupt(&child);
    wait_until("the cancel was sent", || {
        received(&proxy, "DELETE /v2/t/impatient/blobs/uploads/") == 1
    });
    let start = Instant::now();
    interrupt(&child);
    let (code, stderr, elapsed) = wait_within(child, start, Duration::from_secs(20));
    drop(stdin);
    assert_eq!(code, 130, "{stderr}");
    assert_eq!(stderr, "regtool: interrupted\n");
    assert!(elapsed < BUDGET / 2, "exited after {elapsed:?}");
}

/// A registry whose blobs answer 503 with `Retry-After: 10`.
fn always_busy() -> Server {
    Server::start(|_| Response::new(503).header("Retry-After", "10").body("busy"))
}

fn blob_requests(server: &Server) -> usize {
    server
        .seen()
        .iter()
        .filter(|r| r.path.contains("/blobs/"))
        .count()
}

#[test]
fn a_cancel_ends_a_retry_backoff_at_once_in_the_library() {
    let server = always_busy();
    let mut opts = regtool::registry::Options::new(server.host.parse().unwrap());
    opts.retries = 1;
    let cancel = regtool::Cancel::new();
    let registry = regtool::registry::Registry::new(&opts).with_cancel(cancel.clone());
    let repo = regtool::oci::Repository::new("fred/logs").unwrap();
    let digest: regtool::oci::Digest = sha256(b"x").parse().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let opened = regtool::Store::open_blob(&registry, &repo, &digest).map(|_| ());
        tx.send(opened.map_err(|e| e.kind)).unwrap();
    });
    wait_until("the first attempt", || blob_requests(&server) == 1);
    cancel.cancel(Duration::from_secs(1));
    // Without the cancel, the backoff ends after 10 s and the retry meets 503 again.
    let result = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(result, Err(regtool::Kind::Interrupted));
    assert_eq!(blob_requests(&server), 1, "no attempt after the cancel");
}

#[test]
fn ctrl_c_during_a_retry_backoff_exits_130_at_once() {
    let server = always_busy();
    let child = regtool(&["pull-blob", "fred/logs", &sha256(b"x")])
        .env("REGTOOL_HOST", &server.host)
        .env("REGTOOL_RETRIES", "1")
        .spawn();
    wait_until("the first attempt", || blob_requests(&server) == 1);
    let start = Instant::now();
    interrupt(&child);
    // The backoff has 10 s to go; the cleanup's own budget is 3 s.
    let (code, stderr, _) = wait_within(child, start, BUDGET + Duration::from_secs(4));
    assert_eq!(code, 130, "{stderr}");
    assert_eq!(blob_requests(&server), 1, "no attempt after the interrupt");
}

#[test]
fn the_cancel_of_an_upload_elsewhere_carries_no_credentials() {
    // The registry's upload Location names another host; Ctrl-C while a PATCH waits there
    // cancels the session with a DELETE that must not carry the registry's password.
    let server = Server::start(|req| {
        let host = &req.headers["host"];
        let port = host.rsplit(':').next().unwrap().to_string();
        // The registry is 127.0.0.1; the host its Location names is localhost.
        let registry = host.starts_with("127.0.0.1");
        match req.method.as_str() {
            _ if registry && !req.headers.contains_key("authorization") => {
                Response::new(401).header("WWW-Authenticate", r#"Basic realm="r""#)
            }
            "HEAD" => Response::new(404),
            "POST" => Response::new(202)
                .header(
                    "Location",
                    format!("http://localhost:{port}/v2/fred/logs/blobs/uploads/1"),
                )
                .header("Range", "0-0"),
            "PATCH" => {
                // Long enough for the interrupt to come first; the cancel lets it end.
                std::thread::sleep(Duration::from_millis(1500));
                Response::new(202)
                    .header(
                        "Location",
                        format!("http://localhost:{port}/v2/fred/logs/blobs/uploads/1"),
                    )
                    .header("Range", format!("0-{}", req.body.len() - 1))
            }
            _ => Response::new(204),
        }
    });
    let dir = tempdir();
    let file = dir.path().join("f");
    std::fs::write(&file, bytes(200_000, 17)).unwrap();
    let child = regtool(&["push-blob", "fred/logs", file.to_str().unwrap()])
        .env("REGTOOL_HOST", &server.host)
        .env("REGTOOL_CHUNK_SIZE", "64k")
        .env("REGTOOL_USERNAME", "fred")
        .env("REGTOOL_PASSWORD", "registry-password")
        .spawn();
    wait_until("a PATCH is on the wire", || {
        server.seen().iter().any(|r| r.method == "PATCH")
    });
    let start = Instant::now();
    interrupt(&child);
    let (code, stderr, _) = wait_within(child, start, BUDGET + Duration::from_secs(5));
    assert_eq!(code, 130, "{stderr}");
    let deletes: Vec<_> = server
        .seen()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 1, "{:?}", server.seen());
    assert_eq!(deletes[0].path, "/v2/fred/logs/blobs/uploads/1");
    assert!(
        !deletes[0].headers.contains_key("authorization"),
        "{:?}",
        deletes[0]
    );
}
