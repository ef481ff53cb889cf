//! Operator tools on a namespace (`inspect.rs`): a MessagePack value compressed with LZ4
//! is shown as JSON; rewriting a value keeps its TTL; a TTL change keeps the stored
//! bytes; counts stop at their limit.

use std::time::Duration;

use sharecache::{Cache, Format, Ttl};

#[tokio::test]
async fn inspect_decodes_framed_values_and_edits_keep_the_other_half() {
    let cache = Cache::builder()
        .memory()
        .format(Format::MessagePack)
        .compress_threshold(64)
        .build()
        .await
        .unwrap();
    let ns = cache.namespace("user").unwrap();
    let big = serde_json::json!({"name": "Ada", "bio": "x".repeat(500)});
    ns.set("p", &big, Ttl::secs(600)).await.unwrap();
    let seen = ns.inspect("p").await.unwrap().unwrap();
    assert!(
        seen.raw.len() < 200,
        "compressed MessagePack: {} bytes",
        seen.raw.len()
    );
    assert!(serde_json::from_slice::<serde_json::Value>(&seen.raw).is_err());
    let json: serde_json::Value = serde_json::from_str(seen.json.unwrap().get()).unwrap();
    assert_eq!(json, big);
    assert!(seen.ttl.unwrap() > Duration::from_secs(590));
    assert!(seen.size > 0);
    assert!(ns.inspect("none").await.unwrap().is_none());

    // A new value keeps the TTL; a new TTL keeps the bytes.
    assert!(ns.set_keeping_ttl("p", &1).await.unwrap());
    let after = ns.inspect("p").await.unwrap().unwrap();
    assert_eq!(after.json.unwrap().get(), "1");
    assert!(after.ttl.unwrap() > Duration::from_secs(590));
    let bytes = after.raw.clone();
    assert!(ns.expire("p", Ttl::NEVER).await.unwrap());
    let persisted = ns.inspect("p").await.unwrap().unwrap();
    assert_eq!((persisted.raw, persisted.ttl), (bytes, None));
    assert!(!ns.set_keeping_ttl("none", &1).await.unwrap());
    assert!(!ns.expire("none", Ttl::secs(5)).await.unwrap());
    assert!(
        ns.expire("p", Ttl::millis(0)).await.is_err(),
        "TTLs are checked"
    );

    for i in 0..50 {
        ns.set(&format!("k:{i}"), &i, Ttl::NEVER).await.unwrap();
    }
    let c = ns.count_matching("k:*", 1000).await.unwrap();
    assert_eq!((c.keys, c.truncated), (50, false));
    let c = ns.count_matching("k:*", 10).await.unwrap();
    assert_eq!((c.keys, c.truncated), (10, true));
    assert_eq!(ns.stored_key("k:1").unwrap(), "user:k:1");
}
