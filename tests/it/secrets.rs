//! Where credentials may go: never in clear text to another machine unless the user allowed
//! plain HTTP for it, never to a registry they were not meant for; the token cache and
//! credential helpers.

use crate::harness::*;
use crate::pki::pki;
use crate::scripted::{Request, Response, Server};
use crate::tokens::{PUSHER, shared};

/// The token realm on "another machine": a name that is not loopback, reached through
/// HTTP_PROXY (the scripted server answers CONNECT and then serves the tunnelled requests).
const REALM: &str = "http://auth.example/token";

/// A registry on this machine whose token realm is `REALM`. Access token exchanges are
/// answered at the registry (Azure's /oauth2/exchange); every token request gets a token.
fn registry_with_remote_realm() -> Server {
    Server::start(|req| {
        let path = req.path.split('?').next().unwrap_or("");
        match (req.method.as_str(), path) {
            ("CONNECT", _) => Response::new(200),
            ("POST", "/oauth2/exchange") => {
                Response::new(200).body(r#"{"refresh_token":"secret-exchanged"}"#)
            }
            (_, "/token") => Response::new(200).body(r#"{"token":"realm-token"}"#),
            (_, p) if p.starts_with("/v2/") => {
                if req.headers.get("authorization").map(String::as_str)
                    == Some("Bearer realm-token")
                {
                    Response::new(200).body(r#"{"name":"repo","tags":["ok"]}"#)
                } else {
                    let challenge = format!(r#"Bearer realm="{REALM}",service="svc""#);
                    Response::new(401).header("WWW-Authenticate", challenge)
                }
            }
            _ => Response::new(404),
        }
    })
}

/// Whether a request reached the "other machine" (through the proxy).
fn at_realm(r: &Request) -> bool {
    r.method == "CONNECT" || r.headers.get("host").is_some_and(|h| h == "auth.example")
}

/// Everything a request carried, to look for a secret in.
fn carried(r: &Request) -> String {
    format!(
        "{} {:?} {}",
        r.path,
        r.headers,
        String::from_utf8_lossy(&r.body)
    )
}

#[test]
fn credentials_never_go_in_clear_text_to_another_machine() {
    let server = registry_with_remote_realm();
    let docker = tempdir();
    std::fs::write(
        docker.path().join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"identitytoken":"secret-identity"}}}}}}"#,
            server.host
        ),
    )
    .unwrap();
    let run = |vars: &[(&str, &str)]| {
        let before = server.seen().len();
        let mut cmd = regtool(&["list-aliases", "repo"])
            .env("REGTOOL_HOST", &server.host)
            .env("REGTOOL_CACHE_DIR", tempdir().path())
            .env("HTTP_PROXY", format!("http://{}", server.host))
            .env("NO_PROXY", "127.0.0.1");
        for (k, v) in vars {
            cmd = cmd.env(k, v);
        }
        (cmd.run(), server.seen()[before..].to_vec())
    };
    let identity = docker.path().to_str().unwrap();
    for (what, vars) in [
        (
            "refresh token",
            vec![("REGTOOL_REFRESH_TOKEN", "secret-refresh")],
        ),
        ("identity token", vec![("DOCKER_CONFIG", identity)]),
        ("access token", vec![("REGTOOL_ACCESS_TOKEN", "secret-aad")]),
        (
            // dxf's meaning: a given Authorization value is shown to the token realm.
            "authorization",
            vec![
                ("REGTOOL_AUTHORIZATION", "Basic secret-authorization"),
                ("REGTOOL_INSECURE", "1"),
            ],
        ),
        (
            // REGTOOL_INSECURE=1 allows plain HTTP to REGTOOL_HOST, not to its realm.
            "password",
            vec![
                ("REGTOOL_USERNAME", "fred"),
                ("REGTOOL_PASSWORD", "secret-password"),
                ("REGTOOL_INSECURE", "1"),
            ],
        ),
    ] {
        let (out, seen) = run(&vars);
        let err = out.fails(13);
        assert!(
            err.contains("refusing to send credentials in clear text to http://auth.example/token"),
            "{what}: {err}"
        );
        assert!(
            err.contains("REGTOOL_INSECURE=auth.example"),
            "{what}: {err}"
        );
        assert!(
            !seen.iter().any(at_realm),
            "{what} reached the realm: {seen:?}"
        );
        // The access token goes to the registry on this machine, and no further.
        let leaked: Vec<_> = seen
            .iter()
            .filter(|r| r.path != "/oauth2/exchange" && carried(r).contains("secret-"))
            .collect();
        assert!(leaked.is_empty(), "{what}: {leaked:?}");
        assert!(!out.stderr.contains("secret-"), "{}", out.stderr);
    }

    // Allowed for that host, the same request goes through the proxy: so the refusals above
    // were regtool's, not an unreachable realm's.
    let (out, seen) = run(&[
        ("REGTOOL_REFRESH_TOKEN", "secret-refresh"),
        ("REGTOOL_INSECURE", "auth.example"),
    ]);
    assert_eq!(out.ok(), "ok\n");
    assert!(
        seen.iter()
            .any(|r| at_realm(r) && carried(r).contains("secret-refresh")),
        "{seen:?}"
    );
    // No credentials: an anonymous token request may go over plain HTTP.
    let (out, seen) = run(&[]);
    assert_eq!(out.ok(), "ok\n");
    assert!(seen.iter().any(at_realm), "{seen:?}");
}

#[test]
fn a_given_token_never_goes_in_clear_text_to_another_machine() {
    let server = Server::start(|_| Response::new(200).body(r#"{"name":"repo","tags":["ok"]}"#));
    // 0.0.0.0 reaches this machine but is not a loopback name: "another machine".
    let elsewhere = server.host.replace("127.0.0.1", "0.0.0.0");
    for (var, value) in [
        ("REGTOOL_TOKEN", "secret-token"),
        ("REGTOOL_AUTHORIZATION", "Bearer secret-bearer"),
    ] {
        let run = |insecure: Option<&str>| {
            let before = server.seen().len();
            let mut cmd = regtool(&["list-aliases", "repo"])
                .env("REGTOOL_HOST", &elsewhere)
                .env("REGTOOL_TIMEOUT", "2")
                .env(var, value);
            if let Some(hosts) = insecure {
                cmd = cmd.env("REGTOOL_INSECURE", hosts);
            }
            (cmd.run(), server.seen()[before..].to_vec())
        };
        // TLS is all the server gets: it does not speak it, and nothing else is tried.
        let (out, seen) = run(None);
        out.fails(69);
        assert!(
            !seen.iter().any(|r| carried(r).contains(value)),
            "{var}: {seen:?}"
        );
        // Allowed plain HTTP for that host, the token goes (so the check above could fail).
        let (out, seen) = run(Some(&elsewhere));
        assert_eq!(out.ok(), "ok\n");
        assert!(
            seen.iter().any(|r| carried(r).contains(value)),
            "{var}: {seen:?}"
        );
    }
}

/// An image in the plain registry (an alias: an OCI manifest with one layer).
fn source_image(repo: &str) {
    regtool(&["push-blob", repo, "-", "@v1"])
        .host(plain())
        .stdin(format!("layer of {repo}"))
        .run()
        .ok();
}

#[test]
fn another_registry_gets_neither_plain_http_nor_the_auth_host() {
    let (_, reg) = shared();
    source_image("t/hops");
    // The token registry's credentials are stored; the environment's are for REGTOOL_HOST.
    use base64::Engine as _;
    let docker = tempdir();
    let b64 =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", PUSHER.0, PUSHER.1));
    std::fs::write(
        docker.path().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{b64}"}}}}}}"#, reg.host),
    )
    .unwrap();
    let dest = format!("{}/t/hops:v1", reg.host);
    let copy = |var: &str, value: &str| {
        regtool(&["copy", "t/hops:v1", &dest])
            .host(plain())
            .env("REGTOOL_TLSVERIFY", pki().ca())
            .env("REGTOOL_CACHE_DIR", tempdir().path())
            .env("DOCKER_CONFIG", docker.path())
            .env("REGTOOL_DEBUG", "1")
            .env(var, value)
            .run()
    };
    // REGTOOL_INSECURE=1 is for REGTOOL_HOST: the TLS registry is still spoken to over TLS.
    let out = copy("REGTOOL_INSECURE", "1");
    assert!(out.ok().starts_with("sha256:"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("GET http://{}/", plain().host)),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(&format!("http://{}/", reg.host)),
        "{}",
        out.stderr
    );
    // REGTOOL_AUTH_HOST is for REGTOOL_HOST's realm, not the token registry's.
    let dead = format!("127.0.0.1:{}", free_port());
    let out = copy("REGTOOL_AUTH_HOST", &dead);
    assert!(out.ok().starts_with("sha256:"), "{}", out.stderr);
    assert!(!out.stderr.contains(&dead), "{}", out.stderr);
}

#[test]
fn insecure_lists_the_hosts_allowed_plain_http() {
    source_image("t/listed");
    let (src, dst) = (plain(), basic());
    let dest = format!("{}/t/listed:v1", dst.host);
    let out = regtool(&["copy", "t/listed:v1", &dest])
        .host(src)
        .env("REGTOOL_INSECURE", format!("{},{}", src.host, dst.host))
        .env("REGTOOL_DEBUG", "1")
        .env("DOCKER_CONFIG", {
            let d = tempdir().keep();
            use base64::Engine as _;
            let b64 =
                base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
            std::fs::write(
                d.join("config.json"),
                format!(r#"{{"auths":{{"{}":{{"auth":"{b64}"}}}}}}"#, dst.host),
            )
            .unwrap();
            d
        })
        .run();
    out.ok();
    // Both straight to plain HTTP: no TLS attempt to fall back from.
    assert!(!out.stderr.contains("does not speak TLS"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("PUT http://{}/", dst.host)),
        "{}",
        out.stderr
    );
    regtool(&["list-aliases", "t/listed"])
        .env("REGTOOL_HOST", &dst.host)
        .env("REGTOOL_INSECURE", "yes")
        .run()
        .fails(78);
}

#[test]
fn the_token_cache_names_users_by_a_keyed_hash() {
    let (_, reg) = shared();
    let cache = tempdir();
    regtool(&["list-aliases", "public/keyed"])
        .host(reg)
        .env("REGTOOL_TLSVERIFY", pki().ca())
        .env("REGTOOL_CACHE_DIR", cache.path())
        .env("REGTOOL_USERNAME", PUSHER.0)
        .env("REGTOOL_PASSWORD", PUSHER.1)
        .run()
        .fails(2);
    let file = std::fs::read_to_string(cache.path().join("tokens.json")).unwrap();
    assert!(file.contains("repository:public/keyed:pull"), "{file}");
    // A plain hash of user and password would let anyone holding the file test guesses.
    let plain = sha256(format!("user:{}\0{}", PUSHER.0, PUSHER.1).as_bytes());
    let plain = &plain["sha256:".len()..][..16];
    assert!(!file.contains(plain), "{file}");
    use std::os::unix::fs::PermissionsExt;
    let key = std::fs::metadata(cache.path().join("key")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    assert_eq!(key.len(), 32);
}

#[test]
fn a_credential_helper_that_hangs_is_stopped() {
    let bin = tempdir();
    let pid_file = bin.path().join("pid");
    let helper = bin.path().join("docker-credential-hung");
    // A keychain prompt nobody answers: the helper reads its input and never answers.
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\necho $$ > {}\nread server\nexec sleep 30\n",
            pid_file.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let docker = tempdir();
    std::fs::write(
        docker.path().join("config.json"),
        r#"{"credsStore":"hung"}"#,
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let started = std::time::Instant::now();
    let out = regtool(&["list-aliases", "t/hung"])
        .host(basic())
        .env("DOCKER_CONFIG", docker.path())
        .env("PATH", &path)
        .env("REGTOOL_TIMEOUT", "1")
        .run();
    let err = out.fails(69);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "waited {:?} for the helper",
        started.elapsed()
    );
    assert!(
        err.contains("docker-credential-hung") && err.contains("no answer within 1 s"),
        "{err}"
    );
    // The helper was killed, not left behind.
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let alive = std::process::Command::new("kill")
        .args(["-0", pid.trim()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(
        !alive.success(),
        "the helper {} is still running",
        pid.trim()
    );
}

#[test]
fn a_loopback_registry_reached_through_a_proxy_gets_no_clear_text_credentials() {
    // The proxy stands in for another machine: "localhost" inside its tunnel is its own.
    let proxy = Server::start(|req| match req.method.as_str() {
        "CONNECT" => Response::new(200),
        _ => Response::new(401).header("WWW-Authenticate", r#"Basic realm="r""#),
    });
    let out = regtool(&["pull-blob", "r", "@a"])
        .env("REGTOOL_HOST", format!("localhost:{}", free_port()))
        .env("HTTP_PROXY", format!("http://{}", proxy.host))
        .env("HTTPS_PROXY", format!("http://{}", proxy.host))
        .env("REGTOOL_USERNAME", "u")
        .env("REGTOOL_PASSWORD", "secret-password")
        .run();
    let seen = proxy.seen();
    assert!(
        !seen.iter().any(|r| r.headers.contains_key("authorization")),
        "{seen:?}"
    );
    let err = out.fails(69);
    assert!(err.starts_with("regtool: localhost:"), "{err}");
}

#[test]
fn the_debug_log_shows_no_user_info_nor_query_of_a_redirect() {
    let server = Server::start(|req| {
        let host = req.headers.get("host").cloned().unwrap_or_default();
        if req.path.starts_with("/cdn") {
            return Response::new(200).body("blob bytes");
        }
        Response::new(307).header(
            "Location",
            format!("http://user:location-password@{host}/cdn/blob?sig=signature-secret"),
        )
    });
    let out = regtool(&["pull-blob", "fred/logs", &sha256(b"blob bytes")])
        .env("REGTOOL_HOST", &server.host)
        .env("REGTOOL_DEBUG", "1")
        .run();
    assert_eq!(out.stdout, b"blob bytes", "{}", out.stderr);
    assert!(out.stderr.contains("/cdn/blob?…"), "{}", out.stderr);
    for secret in ["location-password", "signature-secret", "user:"] {
        assert!(!out.stderr.contains(secret), "{}", out.stderr);
    }
}

#[test]
fn a_token_cache_in_a_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    // /tmp, or any directory another user may write to: they could plant the cache's key
    // (and test password guesses against tokens.json) or swap the tokens.
    let shared = tempdir();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = regtool(&["list-aliases", "fred/logs"])
        .env("REGTOOL_HOST", "127.0.0.1:1")
        .env("REGTOOL_CACHE_DIR", shared.path())
        .run();
    assert!(
        out.fails(78).starts_with(&format!(
            "regtool: REGTOOL_CACHE_DIR: {} is writable by other users",
            shared.path().display()
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("hint: name a directory of your own"),
        "{}",
        out.stderr
    );
    // One's own, or one yet to be made (0700), is fine.
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    for dir in [shared.path().to_path_buf(), shared.path().join("new")] {
        regtool(&["list-aliases", "fred/logs"])
            .env("REGTOOL_HOST", "127.0.0.1:1")
            .env("REGTOOL_CACHE_DIR", &dir)
            .run()
            .fails(69);
    }
}

#[test]
fn a_credentials_file_that_never_ends_is_refused_not_read_into_memory() {
    let server =
        Server::start(|_| Response::new(401).header("WWW-Authenticate", r#"Basic realm="r""#));
    let docker = tempdir();
    std::os::unix::fs::symlink("/dev/zero", docker.path().join("config.json")).unwrap();
    // 2 GB of address space: a regression fails instead of swapping the machine.
    let limited = "ulimit -v 2000000; exec \"$REGTOOL\" list-aliases fred/logs";
    for (var, value, named) in [
        (
            "DOCKER_CONFIG",
            docker.path().to_path_buf(),
            docker.path().join("config.json"),
        ),
        ("REGISTRY_AUTH_FILE", "/dev/zero".into(), "/dev/zero".into()),
    ] {
        let out = regtool_in_bash(limited, &[])
            .env("REGTOOL_HOST", &server.host)
            .env(var, &value)
            .run();
        assert!(
            out.fails(78).starts_with(&format!(
                "regtool: {}: larger than 16 MiB: not a credentials file",
                named.display()
            )),
            "{var}: {}",
            out.stderr
        );
    }
}

#[test]
fn malformed_credentials_are_said_without_quoting_them() {
    // serde's messages quote the value they did not expect: a password, here.
    let bin = tempdir();
    let helper = bin.path().join("docker-credential-numeric");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread server\necho '{\"Username\":\"u\",\"Secret\":987654321}'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (config, secret) in [
        (
            r#"{"auths": "c2VjcmV0LXBhc3N3b3Jk"}"#,
            "c2VjcmV0LXBhc3N3b3Jk",
        ),
        (r#"{"credsStore": "numeric"}"#, "987654321"),
    ] {
        let docker = tempdir();
        std::fs::write(docker.path().join("config.json"), config).unwrap();
        let out = regtool(&["list-aliases", "t/malformed"])
            .host(basic())
            .env("DOCKER_CONFIG", docker.path())
            .env("PATH", &path)
            .run();
        let err = out.fails(78);
        assert!(
            err.contains("a value of the wrong type or shape at line 1"),
            "{err}"
        );
        assert!(!err.contains(secret), "{err}");
    }
}

#[test]
fn a_redirect_targets_challenge_gets_none_of_the_registrys_credentials() {
    // The registry redirects a blob to another host (an object store, or wherever an open
    // redirect points), which answers 401 naming a token realm of its choosing: the user's
    // password must not go there.
    let server = Server::start(|req| {
        let port = req.headers["host"].rsplit(':').next().unwrap().to_string();
        let elsewhere = format!("localhost:{port}");
        if req.path.starts_with("/v2/") {
            if !req.headers.contains_key("authorization") {
                return Response::new(401).header("WWW-Authenticate", r#"Basic realm="r""#);
            }
            return Response::new(307).header("Location", format!("http://{elsewhere}/cdn/blob"));
        }
        if req.path.starts_with("/cdn/") {
            let challenge = format!(r#"Bearer realm="http://{elsewhere}/harvest",service="x""#);
            return Response::new(401).header("WWW-Authenticate", challenge);
        }
        Response::new(200).body(r#"{"token":"t"}"#)
    });
    let out = regtool(&["pull-blob", "fred/logs", &sha256(b"x")])
        .env("REGTOOL_HOST", &server.host)
        .env("REGTOOL_USERNAME", "fred")
        .env("REGTOOL_PASSWORD", "registry-password")
        .run();
    let err = out.fails(13);
    let port = server.host.rsplit(':').next().unwrap();
    assert!(err.contains(&format!("localhost:{port}")), "{err}");
    assert!(
        !err.contains("REGTOOL_PASSWORD"),
        "the registry refused nothing: {err}"
    );
    let harvested: Vec<_> = server
        .seen()
        .into_iter()
        .filter(|r| r.path.starts_with("/harvest"))
        .collect();
    assert!(harvested.is_empty(), "{harvested:?}");
}
