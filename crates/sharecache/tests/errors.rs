//! Errors from a real Redis: the kind says what to do, the source keeps the cause, and no
//! redis-rs type appears in the API (the source is a `dyn std::error::Error`).

mod support;

use std::error::Error as _;

use sharecache::ErrorKind;

#[tokio::test]
async fn a_redis_failure_keeps_its_source() {
    let ctx = support::redis().await;
    let server = ctx.server.as_ref().expect("a redis server");
    // A key of another type: Redis refuses GET on it with WRONGTYPE.
    server.cmd(&["LPUSH", "errs:list", "x"]);
    let ns = ctx.cache.namespace("errs").unwrap();
    let e = ns.get::<String>("list").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
    assert!(!e.is_unavailable());
    let source = e.source().expect("the Redis error is kept as the source");
    assert!(source.to_string().contains("WRONGTYPE"), "{source}");
}
