//! Authentication and TLS against the real registry: token auth with our own token server,
//! htpasswd, TLS with our own CA, mutual TLS, stored credentials, and the `auth` command.

use std::sync::atomic::Ordering;

use crate::harness::*;
use crate::pki::pki;
use crate::scripted::{Response, Server};
use crate::tokens::{self, PULLER, PUSHER, PUSHER_REFRESH, claims, shared};

/// regtool against the shared token registry, trusting the test CA, with its own token cache.
fn tr(args: &[&str], cache: &std::path::Path) -> Cmd {
    let (_, reg) = shared();
    regtool(args)
        .host(reg)
        .env("REGTOOL_TLSVERIFY", pki().ca())
        .env("REGTOOL_CACHE_DIR", cache)
}

fn as_user(cmd: Cmd, (user, pass): (&str, &str)) -> Cmd {
    cmd.env("REGTOOL_USERNAME", user)
        .env("REGTOOL_PASSWORD", pass)
}

#[test]
fn the_token_policy_is_enforced() {
    let cache = tempdir();
    let c = cache.path();
    let d = as_user(tr(&["push-blob", "t/policy", "-", "@v1"], c), PUSHER)
        .stdin("policy blob")
        .run()
        .ok();
    assert_eq!(d.trim(), sha256(b"policy blob"));
    // The puller may pull, not push.
    assert_eq!(
        as_user(tr(&["pull-blob", "t/policy", "v1"], c), PULLER)
            .run()
            .stdout,
        b"policy blob"
    );
    let out = as_user(tr(&["push-blob", "t/policy", "-"], c), PULLER)
        .stdin("nope")
        .run();
    out.fails(13);
    // Anonymous users may pull under public/ only.
    as_user(tr(&["push-blob", "public/open", "-", "@v1"], c), PUSHER)
        .stdin("open blob")
        .run()
        .ok();
    assert_eq!(
        tr(&["pull-blob", "public/open", "v1"], c).run().stdout,
        b"open blob"
    );
    let out = tr(&["pull-blob", "t/policy", "v1"], c)
        .env("REGTOOL_DEBUG", "1")
        .run();
    out.fails(13);
    tr(&["push-blob", "public/open", "-"], c)
        .stdin("anon")
        .run()
        .fails(13);
    // Wrong password: 13, one line, the password nowhere in the output.
    let out = as_user(
        tr(&["get-alias", "t/policy", "v1"], c),
        (PUSHER.0, "wrong-secret"),
    )
    .env("REGTOOL_DEBUG", "1")
    .run();
    assert!(out.fails(13).contains("refused"), "{}", out.stderr);
    assert!(!out.stderr.contains("wrong-secret"));
    // Deleting needs the delete action: the pusher has it, the puller not.
    as_user(tr(&["del-alias", "t/policy", "v1"], c), PULLER)
        .run()
        .fails(13);
    as_user(tr(&["del-alias", "t/policy", "v1"], c), PUSHER)
        .run()
        .ok();
    // The catalog needs registry:catalog:*.
    assert!(
        as_user(tr(&["list-repos"], c), PUSHER)
            .run()
            .lines()
            .contains(&"t/policy".to_string())
    );
    as_user(tr(&["list-repos"], c), PULLER).run().fails(13);
}

#[test]
fn minted_tokens_carry_exactly_the_requested_access() {
    let cache = tempdir();
    let c = cache.path();
    let token = as_user(tr(&["auth", "t/mint"], c), PUSHER).run().ok();
    let v = claims(token.trim());
    assert_eq!(
        v["access"],
        serde_json::json!([{"type": "repository", "name": "t/mint", "actions": ["pull"]}])
    );
    assert_eq!(v["aud"], tokens::SERVICE);
    let token = as_user(
        tr(
            &["auth", "t/mint", "push", "pull", "repository:t/other:pull"],
            c,
        ),
        PUSHER,
    )
    .run()
    .ok();
    assert_eq!(
        claims(token.trim())["access"],
        serde_json::json!([
            {"type": "repository", "name": "t/mint", "actions": ["push", "pull"]},
            {"type": "repository", "name": "t/other", "actions": ["pull"]}
        ])
    );
    // The token works for other tools: a plain GET with it.
    let (_, reg) = shared();
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(pki().ca())
        .args([
            "-H",
            &format!("Authorization: Bearer {}", token.trim()),
            &format!("https://{}/v2/t/mint/tags/list", reg.host),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "404",
        "authorised, and the repository does not exist yet"
    );
    // Refused credentials: 13. Bad actions: 64.
    as_user(tr(&["auth", "t/mint"], c), (PUSHER.0, "bad"))
        .run()
        .fails(13);
    tr(&["auth", "t/mint", "fly"], c).run().fails(64);
    // A registry without bearer tokens: nothing, status 0.
    let out = regtool(&["auth", "t/x"]).host(basic()).creds().run();
    assert_eq!(out.ok(), "");
    assert_eq!(regtool(&["auth", "t/x"]).host(plain()).run().ok(), "");
}

#[test]
fn the_token_cache_saves_requests_within_and_across_processes() {
    let (tokens, _) = shared();
    let cache = tempdir();
    let c = cache.path();
    let dir = tempdir();
    let files: Vec<String> = (0..4)
        .map(|i| {
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, bytes(50_000, 60 + i)).unwrap();
            p.to_string_lossy().into_owned()
        })
        .collect();
    let mut args = vec!["push-blob", "t/cache"];
    args.extend(files.iter().map(String::as_str));
    args.push("@all");
    // Counted by this test's repository: other tests use the shared token server meanwhile.
    let before = tokens.requests_for("t/cache");
    as_user(tr(&args, c), PUSHER).run().ok();
    let first = tokens.requests_for("t/cache") - before;
    // One token for pull (the HEADs) and one for pull,push (uploads and the manifest), however
    // many files and threads.
    assert_eq!(first, 2, "token requests of the first run");
    let before = tokens.requests_for("t/cache");
    as_user(tr(&["get-alias", "t/cache", "all"], c), PUSHER)
        .run()
        .ok();
    as_user(tr(&args, c), PUSHER).run().ok();
    assert_eq!(
        tokens.requests_for("t/cache") - before,
        0,
        "the next processes use the cached tokens"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(c.join("tokens.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the token cache is private: {mode:o}");
    // Another user does not get the pusher's tokens.
    tr(&["push-blob", "t/cache", "-"], c)
        .stdin("anonymous")
        .run()
        .fails(13);
}

#[test]
fn a_short_token_lifetime_does_not_break_a_long_upload() {
    let tokens = tokens::token_server();
    tokens.lifetime.store(3, Ordering::SeqCst);
    let reg = tokens::token_registry("shortlived", &tokens);
    let cache = tempdir();
    // 1.5 MiB from a slow producer, in 64 KiB chunks: about 6 s, twice the token's life.
    let mut child = regtool(&["push-blob", "t/slow", "-"])
        .host(&reg)
        .env("REGTOOL_TLSVERIFY", pki().ca())
        .env("REGTOOL_CACHE_DIR", cache.path())
        .env("REGTOOL_USERNAME", PUSHER.0)
        .env("REGTOOL_PASSWORD", PUSHER.1)
        .env("REGTOOL_CHUNK_SIZE", "64k")
        .spawn();
    let data = bytes(1_536 * 1024, 70);
    let mut stdin = child.stdin.take().unwrap();
    for part in data.chunks(128 * 1024) {
        std::io::Write::write_all(&mut stdin, part).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), sha256(&data));
    assert!(
        tokens.requests() >= 3,
        "the token was renewed during the upload ({} requests)",
        tokens.requests()
    );
    let pulled = regtool(&["pull-blob", "t/slow", &sha256(&data)])
        .host(&reg)
        .env("REGTOOL_TLSVERIFY", pki().ca())
        .env("REGTOOL_CACHE_DIR", cache.path())
        .env("REGTOOL_USERNAME", PUSHER.0)
        .env("REGTOOL_PASSWORD", PUSHER.1)
        .run();
    assert_eq!(pulled.stdout, data);
}

#[test]
fn given_tokens_refresh_tokens_and_authorization_headers() {
    let cache = tempdir();
    let c = cache.path();
    as_user(tr(&["push-blob", "t/given", "-", "@g"], c), PUSHER)
        .stdin("given")
        .run()
        .ok();
    let token = as_user(tr(&["auth", "t/given"], c), PUSHER).run().ok();
    // REGTOOL_TOKEN as is (and DXF_TOKEN), no other credentials.
    let fresh = tempdir();
    let out = tr(&["pull-blob", "t/given", "g"], fresh.path())
        .env("REGTOOL_TOKEN", token.trim())
        .env("REGTOOL_DEBUG", "1")
        .run();
    assert_eq!(out.stdout, b"given");
    assert!(
        out.stderr.contains("GET https://") && !out.stderr.contains(token.trim()),
        "the debug log shows the token: {}",
        out.stderr
    );
    assert_eq!(
        tr(&["pull-blob", "t/given", "g"], fresh.path())
            .env("DXF_TOKEN", token.trim())
            .run()
            .stdout,
        b"given"
    );
    // A token the registry refuses is renewed with the other credentials.
    let fresh = tempdir();
    let out = as_user(tr(&["pull-blob", "t/given", "g"], fresh.path()), PUSHER)
        .env("REGTOOL_TOKEN", "not-a-token")
        .run();
    assert_eq!(out.stdout, b"given", "{}", out.stderr);
    tr(&["pull-blob", "t/given", "g"], tempdir().path())
        .env("REGTOOL_TOKEN", "not-a-token")
        .run()
        .fails(13);
    // An OAuth2 refresh token, exchanged by POST at the realm.
    let (tokens, _) = shared();
    let fresh = tempdir();
    let out = tr(&["pull-blob", "t/given", "g"], fresh.path())
        .env("REGTOOL_REFRESH_TOKEN", PUSHER_REFRESH)
        .run();
    assert_eq!(out.stdout, b"given", "{}", out.stderr);
    assert!(tokens.server.seen().iter().any(|r| r.method == "POST"
        && String::from_utf8_lossy(&r.body).contains("grant_type=refresh_token")));
    tr(&["pull-blob", "t/given", "g"], tempdir().path())
        .env("REGTOOL_REFRESH_TOKEN", "stolen")
        .run()
        .fails(13);
    // A whole Authorization header.
    let out = tr(&["pull-blob", "t/given", "g"], tempdir().path())
        .env("REGTOOL_AUTHORIZATION", format!("Bearer {}", token.trim()))
        .run();
    assert_eq!(out.stdout, b"given");
}

#[test]
fn auth_host_replaces_the_realm_host() {
    let (tokens, _) = shared();
    let cache = tempdir();
    let port = tokens.server.host.rsplit(':').next().unwrap();
    as_user(
        tr(&["push-blob", "public/open", "-", "@v1"], cache.path()),
        PUSHER,
    )
    .stdin("open blob")
    .run()
    .ok();
    let out = as_user(tr(&["list-aliases", "public/open"], cache.path()), PUSHER)
        .env("REGTOOL_AUTH_HOST", format!("localhost:{port}"))
        .env("REGTOOL_DEBUG", "1")
        .run();
    out.ok();
    assert!(
        out.stderr
            .contains(&format!("https://localhost:{port}/token")),
        "{}",
        out.stderr
    );
    let out = as_user(
        tr(&["list-aliases", "public/open"], tempdir().path()),
        PUSHER,
    )
    .env("REGTOOL_AUTH_HOST", format!("127.0.0.1:{}", free_port()))
    .run();
    out.fails(69);
}

#[test]
fn stored_credentials_docker_config_helpers_and_podman() {
    use base64::Engine as _;
    let cfg = tempdir();
    let (_, reg) = shared();
    let b64 =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", PUSHER.0, PUSHER.1));
    std::fs::write(
        cfg.path().join("config.json"),
        format!(
            r#"{{"auths":{{"https://{}/v2/":{{"auth":"{b64}"}}}}}}"#,
            reg.host
        ),
    )
    .unwrap();
    let out = tr(&["push-blob", "t/stored", "-", "@s"], tempdir().path())
        .env("DOCKER_CONFIG", cfg.path())
        .stdin("stored")
        .run();
    assert_eq!(out.ok().trim(), sha256(b"stored"));
    // Credentials in the environment beat stored ones.
    let out = tr(&["pull-blob", "t/stored", "s"], tempdir().path())
        .env("DOCKER_CONFIG", cfg.path())
        .env("REGTOOL_USERNAME", PUSHER.0)
        .env("REGTOOL_PASSWORD", "wrong")
        .run();
    out.fails(13);

    // A credential helper on PATH (credHelpers), and the same as credsStore.
    let bin = tempdir();
    let helper = bin.path().join("docker-credential-fake");
    std::fs::write(
        &helper,
        format!("#!/bin/sh\nread server\necho \"$server\" >> {}/asked\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{}\",\"Secret\":\"{}\"}}' \"$server\"\n", bin.path().display(), PUSHER.0, PUSHER.1),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for config in [
        format!(r#"{{"credHelpers":{{"{}":"fake"}}}}"#, reg.host),
        r#"{"credsStore":"fake"}"#.to_string(),
    ] {
        std::fs::write(cfg.path().join("config.json"), config).unwrap();
        let out = tr(&["pull-blob", "t/stored", "s"], tempdir().path())
            .env("DOCKER_CONFIG", cfg.path())
            .env("PATH", &path)
            .run();
        assert_eq!(out.stdout, b"stored", "{}", out.stderr);
    }
    assert_eq!(
        std::fs::read_to_string(bin.path().join("asked"))
            .unwrap()
            .lines()
            .next(),
        Some(reg.host.as_str())
    );

    // Podman's auth.json, and an identity token (docker's `identitytoken`).
    let podman = cfg.path().join("auth.json");
    std::fs::write(
        &podman,
        format!(
            r#"{{"auths":{{"{}":{{"identitytoken":"{PUSHER_REFRESH}"}}}}}}"#,
            reg.host
        ),
    )
    .unwrap();
    let out = tr(&["pull-blob", "t/stored", "s"], tempdir().path())
        .env("DOCKER_CONFIG", tempdir().path())
        .env("REGISTRY_AUTH_FILE", &podman)
        .run();
    assert_eq!(out.stdout, b"stored", "{}", out.stderr);
    // A malformed config file is a configuration error.
    std::fs::write(cfg.path().join("config.json"), "{broken").unwrap();
    tr(&["pull-blob", "t/stored", "s"], tempdir().path())
        .env("DOCKER_CONFIG", cfg.path())
        .run()
        .fails(78);
}

#[test]
fn an_access_token_is_exchanged_as_acr_expects() {
    let server = Server::start(|req| {
        let path = req.path.split('?').next().unwrap_or("");
        let body = String::from_utf8_lossy(&req.body).into_owned();
        match (req.method.as_str(), path) {
            ("POST", "/oauth2/exchange")
                if body.contains("grant_type=access_token")
                    && body.contains("access_token=aad-token") =>
            {
                Response::new(200).body(r#"{"refresh_token":"acr-refresh"}"#)
            }
            ("POST", "/oauth2/token")
                if body.contains("refresh_token=acr-refresh")
                    && body.contains("scope=repository%3Arepo%3Apull") =>
            {
                Response::new(200).body(r#"{"access_token":"acr-access"}"#)
            }
            (_, p) if p.starts_with("/v2/") => {
                if req.headers.get("authorization").map(String::as_str) == Some("Bearer acr-access")
                {
                    Response::new(200).body(r#"{"name":"repo","tags":["acr"]}"#)
                } else {
                    let realm = format!(
                        r#"Bearer realm="http://{}/oauth2/token",service="{}""#,
                        req.headers["host"], req.headers["host"]
                    );
                    Response::new(401).header("WWW-Authenticate", realm)
                }
            }
            _ => Response::new(400),
        }
    });
    let out = regtool(&["list-aliases", "repo"])
        .env("REGTOOL_HOST", &server.host)
        .env("REGTOOL_ACCESS_TOKEN", "aad-token")
        .env("REGTOOL_CACHE_DIR", tempdir().path())
        .run();
    assert_eq!(out.ok().trim(), "acr", "{}", out.stderr);
}

#[test]
fn tls_with_our_ca_a_wrong_ca_and_skipped_verification() {
    let (_, reg) = shared();
    let anon = |ca: Option<&std::path::Path>| {
        let mut cmd = regtool(&["list-aliases", "public/open"])
            .host(reg)
            .env("REGTOOL_CACHE_DIR", tempdir().path());
        if let Some(ca) = ca {
            cmd = cmd.env("REGTOOL_TLSVERIFY", ca);
        }
        cmd
    };
    as_user(
        tr(&["push-blob", "public/open", "-", "@v1"], tempdir().path()),
        PUSHER,
    )
    .stdin("open blob")
    .run()
    .ok();
    assert!(anon(Some(&pki().ca())).run().ok().contains("v1"));
    // The built-in roots alone, or the wrong CA: refused, 69, and no fallback to plain HTTP.
    let out = anon(None).run();
    assert!(out.fails(69).contains("TLS"), "{}", out.stderr);
    anon(Some(&pki().path("wrong-ca.pem"))).run().fails(69);
    let out = anon(None).env("REGTOOL_SKIPTLSVERIFY", "1").run();
    assert!(out.ok().contains("v1"));
    assert!(out.stderr.contains("warning"), "{}", out.stderr);
    // A CA file that is not there, or not PEM: 78.
    anon(Some(std::path::Path::new("/nonexistent/ca.pem")))
        .run()
        .fails(78);
    anon(Some(&pki().path("server.ext"))).run().fails(78);
}

#[test]
fn mutual_tls() {
    let p = pki();
    let reg = Registry::start(
        "mtls",
        &format!(
            "  tls:\n    certificate: {}\n    key: {}\n    clientcas:\n      - {}\n",
            p.path("server.pem").display(),
            p.path("server.key").display(),
            p.ca().display()
        ),
    );
    let with_ca = |args: &[&str]| regtool(args).host(&reg).env("REGTOOL_TLSVERIFY", p.ca());
    let out = with_ca(&["push-blob", "t/mtls", "-"])
        .env("REGTOOL_CLIENT_CERT", p.path("client.pem"))
        .env("REGTOOL_CLIENT_KEY", p.path("client.key"))
        .stdin("mutual")
        .run();
    assert_eq!(out.ok().trim(), sha256(b"mutual"));
    with_ca(&["push-blob", "t/mtls", "-"])
        .stdin("no client cert")
        .run()
        .fails(69);
    with_ca(&["list-repos"])
        .env("REGTOOL_CLIENT_CERT", p.path("client.pem"))
        .run()
        .fails(78);
}

#[test]
fn a_puller_pushing_a_large_file_the_repository_has_succeeds() {
    // A file of 8 MiB or more is hashed while an upload starts: the puller's upload is
    // refused, but the hash goes on, and a blob that is there needs no upload.
    let cache = tempdir();
    let c = cache.path();
    let dir = tempdir();
    let data = bytes(9 << 20, 66);
    let (mine, copy) = (dir.path().join("mine.bin"), dir.path().join("copy.bin"));
    std::fs::write(&mine, &data).unwrap();
    std::fs::write(&copy, &data).unwrap();
    let pushed = as_user(
        tr(&["push-blob", "t/race-policy", mine.to_str().unwrap()], c),
        PUSHER,
    )
    .env("REGTOOL_DIGEST_CACHE", "0")
    .run();
    assert_eq!(pushed.ok().trim(), sha256(&data));
    let again = as_user(
        tr(&["push-blob", "t/race-policy", copy.to_str().unwrap()], c),
        PULLER,
    )
    .env("REGTOOL_DIGEST_CACHE", "0")
    .run();
    assert_eq!(again.ok().trim(), sha256(&data), "{}", again.stderr);
    assert!(again.stderr.is_empty(), "{}", again.stderr);
    // A blob that is not there is refused (13), as before.
    std::fs::write(&copy, bytes(9 << 20, 67)).unwrap();
    as_user(
        tr(&["push-blob", "t/race-policy", copy.to_str().unwrap()], c),
        PULLER,
    )
    .env("REGTOOL_DIGEST_CACHE", "0")
    .run()
    .fails(13);
}
