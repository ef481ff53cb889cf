//! The fuzz targets' properties on stable Rust, in every `cargo test`: each committed
//! seed and regression input (`fuzz/seeds/<target>/`, `fuzz/regressions/<target>/`), then
//! random inputs, `SHARECACHE_FUZZ_CASES` per target (256 unless set). The coverage-guided
//! runs are `scripts/fuzz`.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    out.sort();
    out
}

fn cases() -> u32 {
    std::env::var("SHARECACHE_FUZZ_CASES")
        .ok()
        .map(|v| v.parse().expect("SHARECACHE_FUZZ_CASES is a count"))
        .unwrap_or(256)
}

/// Runs one target over its seeds and regressions, then over random inputs (biased
/// toward the seeds' bytes: a seed with some bytes replaced, cut or extended).
fn run(name: &str, property: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds = Vec::new();
    for kind in ["seeds", "regressions"] {
        for file in files(&root.join(kind).join(name)) {
            let data = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| property(&data));
            assert!(outcome.is_ok(), "{} fails", file.display());
            seeds.push(data);
        }
    }
    assert!(
        !seeds.is_empty(),
        "no seeds for {name} in fuzz/seeds/{name}"
    );
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let mutated = (
        0..seeds.len(),
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        any::<usize>(),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(move |(i, edits, cut, tail)| {
            let mut d = seeds[i].clone();
            for (at, b) in edits {
                if !d.is_empty() {
                    let n = d.len();
                    d[at % n] = b;
                }
            }
            if !d.is_empty() && cut % 4 == 0 {
                d.truncate(cut % d.len());
            }
            d.extend(tail);
            d
        });
    let input = prop_oneof![mutated, proptest::collection::vec(any::<u8>(), 0..512)];
    runner
        .run(&input, |data| {
            property(&data);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
}

/// One test per target, named as its directory in `fuzz/seeds/`.
macro_rules! targets {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            run(stringify!($name), sharecache_fuzz::$name);
        }
    )*};
}

targets!(keys, codec, config, url, http);

/// The HTTP target reaches the routes: one request to every route of the document, and
/// nearly all of them get past authentication and routing to the route's own answer (a
/// success, or its validation's 400), so the fuzzer's inputs test the routes.
#[test]
fn http_seeds_reach_the_routes() {
    let routes = sharecache_fuzz::routes();
    assert!(
        routes.len() > 40,
        "only {} routes in the document",
        routes.len()
    );
    let mut answers = std::collections::BTreeMap::<u16, usize>::new();
    for route in 0..=255u8 {
        let data = [
            &[route, 0][..],
            b"k1\nttl=60\n{\"value\":1,\"ttl_ms\":1000}",
        ]
        .concat();
        if let Some(status) = sharecache_fuzz::http_status(&data) {
            *answers.entry(status.as_u16()).or_default() += 1;
        }
    }
    let ok: usize = answers.range(200..300).map(|(_, n)| n).sum();
    let refused: usize = [401, 403, 404, 405]
        .iter()
        .map(|s| answers.get(s).copied().unwrap_or(0))
        .sum();
    assert!(ok >= 16, "too few successes: {answers:?}");
    assert!(
        refused < 32,
        "too many requests never reached a route: {answers:?}"
    );
}
