//! Property tests: no input makes a hand-written parser panic. Each parser gets arbitrary
//! strings and bytes, and strings built from the characters its grammar uses. CI runs the
//! default case count; `PROPTEST_CASES=100000 cargo test --test parsers` runs longer.

use proptest::prelude::*;
use regtool::image::tarcheck::TarCheck;
use regtool::oci::{Digest, Host, ImageRef as Reference, Manifest, Platform, Target};
use regtool::registry::headers::{content_range_start, next_link, parse_challenges};
use regtool::registry::scope::Scope;
use regtool::registry::upload::range_end;

fn grammar(chars: &'static str, max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        proptest::sample::select(chars.chars().collect::<Vec<_>>()),
        0..max,
    )
    .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #[test]
    fn references_never_panic(s in "\\PC*", g in grammar("ab0:/@.-_sha256:ef", 80)) {
        let _ = Reference::parse(&s);
        if let Ok(r) = Reference::parse(&g) {
            // What parses prints back to something that parses to the same.
            prop_assert_eq!(Reference::parse(&r.to_string()).ok(), Some(r));
        }
    }

    #[test]
    fn hosts_never_panic(s in "\\PC*", g in grammar("a0.-_:[]1/?@", 40)) {
        let _ = Host::parse(&s);
        if let Ok(h) = Host::parse(&g) {
            // A host prints back to itself, and has nothing a URL would read as more.
            prop_assert_eq!(Host::parse(&h.to_string()).ok(), Some(h));
            prop_assert!(!g.contains(['/', '?', '@']));
        }
    }

    #[test]
    fn digests_and_targets_never_panic(s in "\\PC*", g in grammar("sha256:0123456789abcdef@", 140)) {
        let _ = s.parse::<Digest>();
        let _ = Target::parse(&s);
        if let Ok(d) = g.parse::<Digest>() {
            prop_assert_eq!(d.to_string(), g.clone());
        }
        let _ = Target::parse(&g);
        let _ = s.parse::<Platform>();
    }

    #[test]
    fn challenges_never_panic(s in "\\PC*", g in grammar("Bearer Basic realm=\"\\,=service scope", 120)) {
        let _ = parse_challenges(&[&s]);
        let _ = parse_challenges(&[&g, &s]);
    }

    #[test]
    fn links_and_ranges_never_panic(s in "\\PC*", g in grammar("<>;, rel=\"next\"/?&", 100), r in grammar("0123456789-bytes= ", 40)) {
        let _ = next_link(&[&s]);
        let _ = next_link(&[&g]);
        let _ = range_end(&s);
        let _ = range_end(&r);
        let _ = content_range_start(&s);
        if let Some(start) = content_range_start(&format!("bytes {r}")) {
            prop_assert!(r.trim_start().starts_with(&start.to_string()) || r.trim_start().starts_with('0'));
        }
        let _ = Scope::parse(&s);
        let _ = Scope::from_words("r", &[s.clone(), g.clone()]);
    }

    #[test]
    fn manifests_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), g in grammar("{}[]\":,schemaVersion2mediaTypelayersconfigdigestsizemanifests ", 200)) {
        let _ = Manifest::parse(&bytes, None);
        let _ = Manifest::parse(g.as_bytes(), Some("application/vnd.oci.image.index.v1+json"));
    }

    #[test]
    fn the_tar_check_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096), split in 1usize..600) {
        let mut check = TarCheck::new();
        for part in bytes.chunks(split) {
            if check.update(part).is_err() {
                return Ok(());
            }
        }
        let _ = check.finish();
    }
}
