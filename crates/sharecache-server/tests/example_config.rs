//! The example config in the repository parses, and so does every commented-out
//! section once uncommented with real hashes.

use sharecache_server::config::Config;

#[test]
fn the_example_config_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sharecache.example.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let cfg = Config::parse("sharecache.example.toml", &text).unwrap();
    assert_eq!(cfg.server.listen, "127.0.0.1:7070");
    assert_eq!(cfg.backend.url, "memory://");

    let h = "ab".repeat(32);
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.starts_with('[')
                    || rest.contains(" = ") && !rest.starts_with("key_prefix") =>
            {
                rest
            }
            _ => l,
        })
        .map(|l| l.replace("<64 hex characters: SHA-256 of the admin token>", &h))
        .collect::<Vec<_>>()
        .join("\n");
    // Each service gets its own hash.
    let mut n = 0;
    let uncommented = uncommented
        .split("<hex>")
        .map(|part| part.to_owned())
        .reduce(|a, b| {
            n += 1;
            format!("{a}{}{b}", format!("{n:02}").repeat(32))
        })
        .unwrap();
    let cfg =
        Config::parse("uncommented", &uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    assert_eq!(cfg.services.len(), 2);
    assert_eq!(cfg.viewers.len(), 1);
    assert!(cfg.admin.token_sha256.is_some());
}
