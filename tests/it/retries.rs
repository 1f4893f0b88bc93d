//! One retry budget per operation: the layers that retry (requests, resumed downloads, new
//! upload sessions, blob copies, token calls) draw from one budget of REGTOOL_RETRIES, so
//! they never multiply.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::faults::{Fault, FaultProxy, rule};
use crate::harness::*;
use crate::scripted::{Response, Server};

const MAX: usize = usize::MAX;

/// GETs of each blob path the proxy saw.
fn blob_gets(proxy: &FaultProxy) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for line in proxy.lines() {
        if let Some(path) = line.strip_prefix("GET ")
            && path.contains("/blobs/sha256:")
        {
            let path = path.split(' ').next().unwrap_or("").to_string();
            *counts.entry(path).or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn a_blob_copy_under_a_permanent_503_makes_at_most_retries_plus_one_attempts() {
    let data = bytes(50_000, 301);
    let d = regtool(&["push-blob", "t/retry-copy", "-"])
        .host(plain())
        .stdin(data)
        .run()
        .ok()
        .trim()
        .to_string();
    regtool(&["set-alias", "t/retry-copy", "v1", &d])
        .host(plain())
        .run()
        .ok();
    let proxy = FaultProxy::start(
        &plain().host,
        vec![rule("GET", "/blobs/sha256:", Fault::Status(503, None), MAX)],
    );
    let source = format!("{}/t/retry-copy:v1", proxy.host);
    let out = regtool(&["copy", &source, "t/retry-copied:v1"])
        .host(basic())
        .creds()
        .env("REGTOOL_RETRIES", "2")
        .env("REGTOOL_INSECURE", "1")
        .run();
    assert!(out.fails(69).contains("503"), "{}", out.stderr);
    let gets = blob_gets(&proxy);
    assert!(!gets.is_empty());
    for (path, n) in gets {
        assert!(n <= 3, "{path} was asked {n} times with REGTOOL_RETRIES=2");
    }
}

#[test]
fn a_resumed_pull_shares_the_budget_of_its_requests() {
    let data = bytes(400_000, 302);
    let d = regtool(&["push-blob", "t/retry-pull", "-"])
        .host(plain())
        .stdin(data)
        .run()
        .ok()
        .trim()
        .to_string();
    // The first answer is cut; every later GET (the resumes) meets a 503.
    let proxy = FaultProxy::start(
        &plain().host,
        vec![
            rule("GET", "/blobs/", Fault::CutResponse(100_000), 1),
            rule("GET", "/blobs/", Fault::Status(503, None), MAX),
        ],
    );
    let out = regtool(&["pull-blob", "t/retry-pull", &d])
        .env("REGTOOL_HOST", &proxy.host)
        .env("REGTOOL_INSECURE", "1")
        .env("REGTOOL_RETRIES", "3")
        .run();
    assert!(out.fails(69).contains("503"), "{}", out.stderr);
    let gets = blob_gets(&proxy).into_values().sum::<usize>();
    assert_eq!(gets, 4, "one GET and 3 retries in all: {:?}", proxy.lines());
}

#[test]
fn a_token_realm_answering_503_once_is_retried() {
    let host = Arc::new(Mutex::new(String::new()));
    let realm = host.clone();
    let token_calls = Arc::new(Mutex::new(0));
    let calls = token_calls.clone();
    let server = Server::start(move |req| match req.path.as_str() {
        "/v2/" if req.headers.contains_key("authorization") => Response::new(200),
        "/v2/" => Response::new(401).header(
            "WWW-Authenticate",
            format!(
                r#"Bearer realm="http://{}/token",service="s""#,
                realm.lock().unwrap()
            ),
        ),
        p if p.starts_with("/token") => {
            let mut n = calls.lock().unwrap();
            *n += 1;
            match *n {
                1 => Response::new(503).body("busy"),
                _ => Response::new(200).body(r#"{"token":"fresh"}"#),
            }
        }
        _ => Response::new(404),
    });
    *host.lock().unwrap() = server.host.clone();
    let out = regtool(&["auth", "fred/logs"])
        .env("REGTOOL_HOST", &server.host)
        .env("REGTOOL_RETRIES", "1")
        .run();
    assert_eq!(out.ok().trim(), "fresh");
    // The refused call, then the probe's token and the one `auth` prints.
    assert_eq!(*token_calls.lock().unwrap(), 3);
}

#[test]
fn a_token_realm_that_stays_down_is_69_after_the_retries() {
    let host = Arc::new(Mutex::new(String::new()));
    let realm = host.clone();
    let server = Server::start(move |req| match req.path.as_str() {
        "/v2/" => Response::new(401).header(
            "WWW-Authenticate",
            format!(
                r#"Bearer realm="http://{}/token",service="s""#,
                realm.lock().unwrap()
            ),
        ),
        p if p.starts_with("/token") => Response::new(503).body("busy"),
        _ => Response::new(404),
    });
    *host.lock().unwrap() = server.host.clone();
    let out = regtool(&["auth", "fred/logs"])
        .env("REGTOOL_HOST", &server.host)
        .env("REGTOOL_RETRIES", "1")
        .run();
    assert!(out.fails(69).contains("503"), "{}", out.stderr);
    let tokens = server
        .seen()
        .iter()
        .filter(|r| r.path.starts_with("/token"))
        .count();
    assert_eq!(tokens, 2);
}
