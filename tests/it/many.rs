//! Many small blobs from concurrent processes into one repository, with token auth: eight
//! processes at once sharing one token cache, some blobs pushed by all of them, finish with
//! zero failures and every alias in place; a second round runs on the cached tokens alone.
//! (The time these take is measured by scripts/bench, never here.)

use std::path::PathBuf;

use crate::harness::*;
use crate::pki::pki;
use crate::tokens::{PUSHER, token_registry, token_server};

const PROCESSES: usize = 8;
const OWN: usize = 20;
const COMMON: usize = 4;

#[test]
fn eight_processes_push_small_blobs_into_one_repository() {
    // A token server of its own, so that its request count is this test's alone.
    let tokens = token_server();
    let reg = token_registry("many", &tokens);
    let cache = tempdir();
    let dir = tempdir();
    let write = |name: String, seed: u64| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes(4096, seed)).unwrap();
        p
    };
    // Blobs every process pushes (concurrent uploads of one digest), and blobs of its own.
    let common: Vec<PathBuf> = (0..COMMON)
        .map(|i| write(format!("common{i}"), 900 + i as u64))
        .collect();
    let sets: Vec<Vec<PathBuf>> = (0..PROCESSES)
        .map(|p| {
            let mut files = common.clone();
            files.extend((0..OWN).map(|i| write(format!("p{p}-{i}"), (1000 + p * 100 + i) as u64)));
            files
        })
        .collect();
    let push = |round: usize| {
        let children: Vec<_> = sets
            .iter()
            .enumerate()
            .map(|(p, files)| {
                let mut args = vec!["push-blob".to_string(), "many/small".to_string()];
                args.extend(files.iter().map(|f| f.to_string_lossy().into_owned()));
                args.push(format!("@r{round}-p{p}"));
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                // The default retries, as a user has them: 2.8.2 answers a HEAD racing another
                // client's push of the same blob with a 500 (docs/registry-notes.md §19).
                regtool(&args)
                    .env("REGTOOL_RETRIES", "5")
                    .host(&reg)
                    .env("REGTOOL_TLSVERIFY", pki().ca())
                    .env("REGTOOL_CACHE_DIR", cache.path())
                    .env("REGTOOL_USERNAME", PUSHER.0)
                    .env("REGTOOL_PASSWORD", PUSHER.1)
                    .spawn()
            })
            .collect();
        for (p, child) in children.into_iter().enumerate() {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "process {p} of round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let expected: Vec<String> = sets[p]
                .iter()
                .map(|f| sha256(&std::fs::read(f).unwrap()))
                .collect();
            let printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect();
            assert_eq!(printed, expected, "digests of process {p}");
        }
    };
    let as_pusher = |args: &[&str]| {
        regtool(args)
            .host(&reg)
            .env("REGTOOL_TLSVERIFY", pki().ca())
            .env("REGTOOL_CACHE_DIR", cache.path())
            .env("REGTOOL_USERNAME", PUSHER.0)
            .env("REGTOOL_PASSWORD", PUSHER.1)
    };
    push(0);
    // Each process asks for at most its two tokens (pull for the HEADs, pull,push for the
    // uploads and the alias), whatever its number of blobs and threads.
    let first = tokens.requests();
    assert!(
        (1..=2 * PROCESSES).contains(&first),
        "{first} token requests"
    );
    // The second round finds the tokens the first one cached, in one shared file.
    push(1);
    assert_eq!(
        tokens.requests(),
        first,
        "the second round uses the cached tokens"
    );
    let aliases = as_pusher(&["list-aliases", "many/small"]).run().lines();
    for round in 0..2 {
        for (p, files) in sets.iter().enumerate() {
            let name = format!("r{round}-p{p}");
            assert!(aliases.contains(&name), "{name} missing from {aliases:?}");
            let listed = as_pusher(&["get-alias", "many/small", &name]).run().lines();
            let expected: Vec<String> = files
                .iter()
                .map(|f| sha256(&std::fs::read(f).unwrap()))
                .collect();
            assert_eq!(listed, expected, "alias {name}");
        }
    }
    // Every blob reads back whole: one of each process, and a common one.
    for files in sets.iter().map(|s| &s[COMMON..]).chain([common.as_slice()]) {
        let want = std::fs::read(&files[0]).unwrap();
        let got = as_pusher(&["pull-blob", "many/small", &sha256(&want)]).run();
        assert_eq!(got.stdout, want);
    }
}
