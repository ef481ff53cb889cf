//! Errors from a real Redis: the kind says what to do, the source keeps the cause, and no
//! redis-rs type appears in the API (the source is a `dyn std::error::Error`).

mod support;

use std::error::Error as _;

use sharecache::{Cache, ErrorKind, Ttl};
use sharecache_testkit::{RedisConfig, RedisServer};

#[tokio::test]
async fn a_redis_failure_keeps_its_source() {
    let ctx = support::redis().await;
    let server = ctx.server.as_ref().expect("a redis server");
    // A key of another type: Redis refuses GET on it with WRONGTYPE.
    server.cmd(&["LPUSH", "errs:list", "x"]);
    let ns = ctx.cache.namespace("errs").unwrap();
    let e = ns.get::<String>("list").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongType, "{e}");
    assert_eq!(e.backend_code(), Some("WRONGTYPE"));
    assert!(!e.is_unavailable());
    let source = e.source().expect("the Redis error is kept as the source");
    assert!(source.to_string().contains("WRONGTYPE"), "{source}");
}

/// A Redis at `maxmemory` with `noeviction` refuses writes with `OOM`: the error says the
/// backend is full (not unavailable: no fallback to process memory, whose writes nobody
/// else would see), and what was stored before stays readable.
#[tokio::test]
async fn a_full_redis_says_it_is_full() {
    let server = RedisServer::start_with(RedisConfig::full_at(3));
    let cache = Cache::builder()
        .redis(server.url())
        .build()
        .await
        .expect("redis cache");
    let ns = cache.namespace("full").unwrap();
    ns.set("first", "kept", Ttl::NEVER).await.unwrap();
    // Random text, so the codec's compression cannot shrink it.
    let block: String = (0..64 * 1024)
        .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
        .collect();
    let mut refused = None;
    for i in 0..200 {
        if let Err(e) = ns.set(&format!("k{i}"), block.as_str(), Ttl::NEVER).await {
            refused = Some(e);
            break;
        }
    }
    let e = refused.expect("3 MB of Redis fills before 200 x 64 KiB");
    assert_eq!(e.kind(), ErrorKind::BackendFull, "{e}");
    assert_eq!(e.backend_code(), Some("OOM"));
    assert!(!e.is_unavailable(), "{e}");
    assert!(e.message().contains("out of memory"), "{e}");
    assert_eq!(
        cache.state(),
        sharecache::BackendState::Connected,
        "no fallback"
    );
    assert_eq!(
        ns.get::<String>("first").await.unwrap().as_deref(),
        Some("kept")
    );
}
