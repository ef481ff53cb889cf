//! One behaviour suite, run against every store: the embedded memory store, a real
//! redis-server and a 6-node Redis Cluster started by the testkit.

mod support;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sharecache::{Cache, ErrorKind, RawBytes, RawJson, Ttl, Version};
use support::{Case, eventually};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
}

async fn ttl_expiry(case: Case<'_>) {
    let cache = case.cache;
    let ns = cache.namespace("ttl").unwrap();
    ns.set("short", &1u32, Ttl::millis(150)).await.unwrap();
    ns.set("long", &2u32, Ttl::secs(60)).await.unwrap();
    ns.set("forever", &3u32, Ttl::NEVER).await.unwrap();
    assert_eq!(ns.get::<u32>("short").await.unwrap(), Some(1));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        ns.get::<u32>("short").await.unwrap(),
        None,
        "expired value must be gone"
    );
    assert!(!ns.exists("short").await.unwrap());
    assert_eq!(ns.get::<u32>("long").await.unwrap(), Some(2));
    assert_eq!(ns.get::<u32>("forever").await.unwrap(), Some(3));
    // An overwrite replaces the TTL too.
    ns.set("long", &4u32, Ttl::millis(150)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(ns.get::<u32>("long").await.unwrap(), None);
}

async fn overwrite_del_exists(case: Case<'_>) {
    let cache = case.cache;
    let ns = cache.namespace("basic").unwrap();
    let p = Profile {
        id: 1,
        name: "Ada".into(),
    };
    assert_eq!(ns.get::<Profile>("p").await.unwrap(), None);
    ns.set("p", &p, Ttl::secs(60)).await.unwrap();
    assert_eq!(ns.get::<Profile>("p").await.unwrap(), Some(p.clone()));
    let p2 = Profile {
        id: 1,
        name: "Grace".into(),
    };
    ns.set("p", &p2, Ttl::secs(60)).await.unwrap();
    assert_eq!(ns.get::<Profile>("p").await.unwrap(), Some(p2));
    assert!(ns.exists("p").await.unwrap());
    assert!(ns.del("p").await.unwrap());
    assert!(!ns.del("p").await.unwrap(), "second delete finds nothing");
    assert!(!ns.exists("p").await.unwrap());
    let stats = ns.stats().await.unwrap();
    assert_eq!(
        (stats.hits, stats.misses, stats.sets, stats.deletes),
        (2, 1, 2, 1)
    );
}

async fn batches_keep_order(case: Case<'_>) {
    let cache = case.cache;
    let ns = cache.namespace("batch").unwrap();
    ns.mset(&[("a", 1u32), ("c", 3)], Ttl::secs(60))
        .await
        .unwrap();
    let got: Vec<Option<u32>> = ns.mget(&["a", "b", "c", "d"]).await.unwrap();
    assert_eq!(got, vec![Some(1), None, Some(3), None]);
    ns.mset(&[("x", 9u32)], Ttl::NEVER).await.unwrap();
    assert_eq!(ns.mdel(&["a", "b", "x"]).await.unwrap(), 2);
    let got: Vec<Option<u32>> = ns.mget(&["a", "c", "x"]).await.unwrap();
    assert_eq!(got, vec![None, Some(3), None]);
    // Empty batches are no-ops, not errors.
    assert!(ns.mget::<u32>(&[] as &[&str]).await.unwrap().is_empty());
    assert_eq!(ns.mdel(&[] as &[&str]).await.unwrap(), 0);
    // mset with a TTL expires every key.
    ns.mset(&[("t1", 1u32), ("t2", 2)], Ttl::millis(150))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        ns.mget::<u32>(&["t1", "t2"]).await.unwrap(),
        vec![None, None]
    );
    // A big batch crosses the store's internal chunking.
    let items: Vec<(String, u32)> = (0..2500).map(|i| (format!("k{i}"), i)).collect();
    ns.mset(&items, Ttl::secs(60)).await.unwrap();
    let keys: Vec<String> = items.iter().map(|(k, _)| k.clone()).collect();
    let got: Vec<Option<u32>> = ns.mget(&keys).await.unwrap();
    assert!(got.iter().enumerate().all(|(i, v)| *v == Some(i as u32)));
    assert_eq!(ns.mdel(&keys).await.unwrap(), 2500);
}

async fn clear_and_patterns_stay_in_namespace(case: Case<'_>) {
    let cache = case.cache;
    let a = cache.namespace("a").unwrap();
    let ab = cache.namespace("ab").unwrap();
    let other = cache.namespace("other").unwrap();
    for ns in [&a, &ab, &other] {
        for k in ["user:1", "user:2", "session:1", "x*y", "[z]"] {
            ns.set(k, &k, Ttl::secs(60)).await.unwrap();
        }
    }
    assert_eq!(a.delete_pattern("user:*").await.unwrap(), 2);
    assert!(!a.exists("user:1").await.unwrap());
    assert!(a.exists("session:1").await.unwrap());
    assert!(
        ab.exists("user:1").await.unwrap(),
        "namespace ab must be untouched by a's pattern"
    );
    // A literal metacharacter, escaped, matches only itself.
    assert_eq!(a.delete_pattern("x\\*y").await.unwrap(), 1);
    assert_eq!(a.delete_pattern("\\[z\\]").await.unwrap(), 1);
    // "*" in namespace a can never reach ab:* or other:*.
    assert_eq!(a.delete_pattern("*").await.unwrap(), 1);
    assert_eq!(ab.clear().await.unwrap(), 5);
    let page = other.keys("*", None, 100).await.unwrap();
    assert_eq!(page.keys.len(), 5, "{page:?}");
    assert_eq!(other.clear().await.unwrap(), 5);
    assert_eq!(other.clear().await.unwrap(), 0);
}

async fn key_listing_pages(case: Case<'_>) {
    let cache = case.cache;
    let ns = cache.namespace("list").unwrap();
    let noise = cache.namespace("list-other").unwrap();
    for i in 0..250 {
        ns.set(&format!("item:{i}"), &i, Ttl::secs(60))
            .await
            .unwrap();
        noise
            .set(&format!("item:{i}"), &i, Ttl::secs(60))
            .await
            .unwrap();
    }
    ns.set("else", &0, Ttl::secs(60)).await.unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let page = ns.keys("item:*", cursor.as_deref(), 50).await.unwrap();
        for k in &page.keys {
            assert!(k.starts_with("item:"), "{k}");
        }
        seen.extend(page.keys);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 250);
    let e = ns.keys("*", Some(""), 10).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidCursor);
}

async fn unicode_and_glob_characters_in_keys(case: Case<'_>) {
    let cache = case.cache;
    let ns = cache.namespace("keys").unwrap();
    let keys = [
        "ключ",
        "emoji:🎉",
        "a*b",
        "q?",
        "[x]",
        "back\\slash",
        "sp ace",
        "..%2F..",
        "a:b:c",
    ];
    for k in keys {
        ns.set(k, &k, Ttl::secs(60)).await.unwrap();
    }
    for k in keys {
        assert_eq!(
            ns.get::<String>(k).await.unwrap().as_deref(),
            Some(k),
            "{k}"
        );
    }
    let page = ns.keys("*", None, 1000).await.unwrap();
    let mut listed = page.keys;
    listed.sort();
    let mut want: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(listed, want);
    // A glob character in a key is data: deleting "a*b" leaves "aXb" alone.
    ns.set("aXb", &1, Ttl::secs(60)).await.unwrap();
    assert!(ns.del("a*b").await.unwrap());
    assert!(ns.exists("aXb").await.unwrap());
}

async fn big_and_compressed_values(case: Case<'_>) {
    let cache = case.cache;
    let ns = cache.namespace("big").unwrap();
    let text = "lorem ipsum dolor ".repeat(200_000); // 3.6 MB, compressible
    ns.set("text", &text, Ttl::secs(60)).await.unwrap();
    assert_eq!(
        ns.get::<String>("text").await.unwrap().as_deref(),
        Some(text.as_str())
    );
    let noise: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    ns.set("noise", &noise, Ttl::secs(60)).await.unwrap();
    assert_eq!(ns.get::<Vec<u8>>("noise").await.unwrap(), Some(noise));
    let too_big = "x".repeat(9 << 20);
    let e = ns.set("huge", &too_big, Ttl::secs(60)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ValueTooLarge);
    assert!(
        !ns.exists("huge").await.unwrap(),
        "a refused value must not be stored"
    );
}

async fn invalid_input_is_refused(case: Case<'_>) {
    let cache = case.cache;
    // Every primitive's handle checks the names it is given like keys, before any call.
    let ns = cache.namespace("handles").unwrap();
    let long = "k".repeat(1025);
    for bad in ["", "bad\nname", "nul\0", long.as_str()] {
        let kind = |e: sharecache::Error| e.kind();
        assert_eq!(
            ns.presence(bad).map(|_| ()).map_err(kind),
            Err(ErrorKind::InvalidKey),
            "{bad:?}"
        );
        assert_eq!(
            ns.channel(bad).map(|_| ()).map_err(kind),
            Err(ErrorKind::InvalidKey),
            "{bad:?}"
        );
        assert_eq!(
            ns.queue(bad).map(|_| ()).map_err(kind),
            Err(ErrorKind::InvalidKey),
            "{bad:?}"
        );
        let d = Duration::from_secs(1);
        let lock = ns.locks().acquire_lease(bad, d, Duration::ZERO).await;
        assert_eq!(
            lock.map(|_| ()).map_err(kind),
            Err(ErrorKind::InvalidKey),
            "{bad:?}"
        );
        let limit = sharecache::ratelimit::Limit::per(1, d);
        let rl = ns.rate_limits().check(bad, limit).await;
        assert_eq!(
            rl.map(|_| ()).map_err(kind),
            Err(ErrorKind::InvalidKey),
            "{bad:?}"
        );
    }
    for bad in ["", "Upper", "a:b", "a*", "a b", "ü", &"n".repeat(65)] {
        assert_eq!(
            cache.namespace(bad).unwrap_err().kind(),
            ErrorKind::InvalidNamespace,
            "{bad:?}"
        );
    }
    let ns = cache.namespace("input").unwrap();
    for bad in ["", "a\nb", "a\rb", "nul\0", "\u{1b}[31m", &"k".repeat(1025)] {
        assert_eq!(
            ns.set(bad, &1, Ttl::secs(1)).await.unwrap_err().kind(),
            ErrorKind::InvalidKey,
            "{bad:?}"
        );
        assert_eq!(
            ns.get::<u32>(bad).await.unwrap_err().kind(),
            ErrorKind::InvalidKey
        );
        assert_eq!(ns.del(bad).await.unwrap_err().kind(), ErrorKind::InvalidKey);
        assert_eq!(
            ns.exists(bad).await.unwrap_err().kind(),
            ErrorKind::InvalidKey
        );
        assert_eq!(
            ns.mget::<u32>(&["ok", bad]).await.unwrap_err().kind(),
            ErrorKind::InvalidKey
        );
        assert_eq!(
            ns.mset(&[("ok", 1), (bad, 2)], Ttl::secs(1))
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidKey
        );
    }
    assert!(
        !ns.exists("ok").await.unwrap(),
        "a refused batch writes nothing"
    );
    for bad in ["", "[abc", "trailing\\", "[]", &"*".repeat(40), "a\nb"] {
        assert_eq!(
            ns.delete_pattern(bad).await.unwrap_err().kind(),
            ErrorKind::InvalidPattern,
            "{bad:?}"
        );
        assert_eq!(
            ns.keys(bad, None, 10).await.unwrap_err().kind(),
            ErrorKind::InvalidPattern
        );
    }
    assert_eq!(
        ns.set("k", &1, Ttl::millis(0)).await.unwrap_err().kind(),
        ErrorKind::InvalidTtl
    );
    let keys: Vec<String> = (0..10_001).map(|i| i.to_string()).collect();
    assert_eq!(
        ns.mget::<u32>(&keys).await.unwrap_err().kind(),
        ErrorKind::TooManyKeys
    );
    // Errors explain themselves.
    let e = ns
        .set(&"k".repeat(2000), &1, Ttl::secs(1))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("1..=1024"), "{e}");
}

/// Values another client wrote (a plain string, a value of another type) are counted
/// misses, never errors.
async fn foreign_values_are_counted_misses(case: Case<'_>) {
    let ns = case.cache.namespace("foreign").unwrap();
    let raw = case.raw_set("foreign:raw", b"set by hand with redis-cli");
    assert_eq!(ns.get::<String>("raw").await.unwrap(), None);
    ns.set("num", &7u32, Ttl::secs(60)).await.unwrap();
    assert_eq!(
        ns.get::<String>("num").await.unwrap(),
        None,
        "wrong type is a miss"
    );
    let s = ns.stats().await.unwrap();
    // Memory has no other client: its "raw" read is a plain miss.
    assert_eq!((s.misses, s.decode_errors), (2, 1 + u64::from(raw)));
}

/// A value written as MessagePack reads back as the type and as JSON, from a cache
/// written in either format.
async fn messagepack_and_json_interoperate(case: Case<'_>) {
    let mp = |b: sharecache::CacheBuilder| b.format(sharecache::Format::MessagePack);
    let writer = match case.another(mp).await {
        Some(c) => c,
        // One memory store: write and read it in MessagePack.
        None => mp(Cache::builder().memory()).build().await.unwrap(),
    };
    let reader = if case.prefix.is_none() && matches!(case.backend, support::Backend::Memory) {
        writer.clone()
    } else {
        case.cache.clone()
    };
    let (a, b) = (
        reader.namespace("fmt").unwrap(),
        writer.namespace("fmt").unwrap(),
    );
    let p = Profile {
        id: 7,
        name: "Lin".into(),
    };
    b.set("p", &p, Ttl::secs(60)).await.unwrap();
    assert_eq!(a.get::<Profile>("p").await.unwrap(), Some(p));
    let json = a.get::<sharecache::RawJson>("p").await.unwrap().unwrap();
    assert_eq!(json.parse::<serde_json::Value>().unwrap()["name"], "Lin");
    // And a raw JSON document written by a MessagePack cache reads back as the same JSON.
    let doc = sharecache::RawJson::from_slice(br#"{"n":[1,"x"]}"#).unwrap();
    b.set("raw", &doc, Ttl::secs(60)).await.unwrap();
    let back = a.get::<sharecache::RawJson>("raw").await.unwrap().unwrap();
    assert_eq!(
        back.parse::<serde_json::Value>().unwrap(),
        serde_json::json!({"n": [1, "x"]})
    );
}

/// Ten keys among 100k: the listing fills its page server-side, so the caller gets the
/// ten in one page (or a few), never a run of empty pages with cursors.
async fn a_sparse_listing_is_not_a_run_of_empty_pages(case: Case<'_>) {
    let cache = case.cache;
    let ns = cache.namespace("sparse").unwrap();
    let noise = cache.namespace("sparse-noise").unwrap();
    let filler: Vec<(String, u8)> = (0..100_000).map(|i| (format!("n:{i}"), 0)).collect();
    for chunk in filler.chunks(5000) {
        noise.mset(chunk, Ttl::secs(120)).await.unwrap();
    }
    for i in 0..10 {
        ns.set(&format!("k:{i}"), &i, Ttl::secs(120)).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = ns.keys("*", cursor.as_deref(), 100).await.unwrap();
        pages += 1;
        assert!(
            !page.keys.is_empty() || page.cursor.is_none(),
            "an empty page {pages} before the end"
        );
        seen.extend(page.keys);
        cursor = page.cursor;
        if cursor.is_none() || pages > 20 {
            break;
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 10, "{seen:?}");
    assert!(pages <= 3, "{pages} pages for 10 keys");
}

/// A key's TTL can be read, changed and removed without touching its value.
async fn ttl_read_change_and_persist(case: Case<'_>) {
    let ns = case.cache.namespace("ttlops").unwrap();
    ns.set("k", "v", Ttl::secs(60)).await.unwrap();
    let left = ns.ttl("k").await.unwrap().unwrap().duration().unwrap();
    assert!(
        left > Duration::from_secs(58) && left <= Duration::from_secs(60),
        "{left:?}"
    );

    assert!(ns.expire("k", Ttl::NEVER).await.unwrap());
    assert_eq!(ns.ttl("k").await.unwrap(), Some(Ttl::NEVER));
    assert!(
        ns.expire("k", Ttl::NEVER).await.unwrap(),
        "already persistent: still exists"
    );
    assert!(ns.expire("k", Ttl::millis(300)).await.unwrap());
    let left = ns.ttl("k").await.unwrap().unwrap().duration().unwrap();
    assert!(left <= Duration::from_millis(300), "{left:?}");
    assert_eq!(ns.get::<String>("k").await.unwrap().as_deref(), Some("v"));
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        ns.get::<String>("k").await.unwrap(),
        None,
        "expired on the new TTL"
    );

    assert_eq!(ns.ttl("missing").await.unwrap(), None);
    assert!(!ns.expire("missing", Ttl::secs(5)).await.unwrap());
    assert!(
        !ns.exists("missing").await.unwrap(),
        "expire creates nothing"
    );
    assert_eq!(
        ns.expire("k", Ttl::millis(0)).await.unwrap_err().kind(),
        ErrorKind::InvalidTtl
    );
}

/// Counters are exact under concurrent callers on two instances, created with their TTL,
/// readable as numbers; a key holding something else is refused and left as it is.
async fn counters_are_exact_and_typed(case: Case<'_>) {
    let a = case.cache.clone();
    let b = case.another(|b| b).await.unwrap_or_else(|| a.clone());
    let mut tasks = Vec::new();
    for i in 0..8 {
        let ns = if i % 2 == 0 { &a } else { &b }.namespace("count").unwrap();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                ns.incr("hits", 1, Ttl::secs(60)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let ns = a.namespace("count").unwrap();
    assert_eq!(ns.get::<i64>("hits").await.unwrap(), Some(400));
    let left = ns.ttl("hits").await.unwrap().unwrap().duration().unwrap();
    assert!(
        left <= Duration::from_secs(60),
        "created with its TTL: {left:?}"
    );
    assert_eq!(ns.incr("hits", -401, Ttl::secs(1)).await.unwrap(), -1);
    let left = ns.ttl("hits").await.unwrap().unwrap().duration().unwrap();
    assert!(
        left > Duration::from_secs(50),
        "an existing counter keeps its TTL: {left:?}"
    );
    assert_eq!(ns.incr("forever", 3, Ttl::NEVER).await.unwrap(), 3);
    assert_eq!(ns.ttl("forever").await.unwrap(), Some(Ttl::NEVER));

    ns.set("profile", &"Ada", Ttl::NEVER).await.unwrap();
    let e = ns.incr("profile", 1, Ttl::NEVER).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongType, "{e}");
    assert_eq!(
        ns.get::<String>("profile").await.unwrap().as_deref(),
        Some("Ada")
    );
    ns.incr("max", i64::MAX, Ttl::NEVER).await.unwrap();
    let e = ns.incr("max", 1, Ttl::NEVER).await.unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::InvalidArgument,
        "overflow is refused: {e}"
    );
    assert!(e.message().contains("overflow"), "{e}");
    assert_eq!(ns.get::<i64>("max").await.unwrap(), Some(i64::MAX));
}

/// Of many callers racing to create one key, exactly one wins; the value is the winner's.
async fn set_if_absent_has_one_winner(case: Case<'_>) {
    let a = case.cache.clone();
    let b = case.another(|b| b).await.unwrap_or_else(|| a.clone());
    let mut tasks = Vec::new();
    for i in 0..8u32 {
        let ns = if i % 2 == 0 { &a } else { &b }.namespace("nx").unwrap();
        tasks.push(tokio::spawn(async move {
            ns.set_if_absent("slot", &i, Ttl::secs(60))
                .await
                .unwrap()
                .then_some(i)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        winners.extend(t.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let ns = a.namespace("nx").unwrap();
    assert_eq!(ns.get::<u32>("slot").await.unwrap(), Some(winners[0]));
    assert!(!ns.set_if_absent("slot", &99u32, Ttl::NEVER).await.unwrap());
    assert_eq!(ns.get::<u32>("slot").await.unwrap(), Some(winners[0]));
}

/// Compare-and-set: a write with the version a read gave goes in only while the key
/// still holds that value; of 8 callers on two instances racing with one version,
/// exactly one wins. Absent keys, other values and values reads treat as absent fail.
async fn compare_and_set_has_one_winner_per_version(case: Case<'_>) {
    let a = case.cache.clone();
    let b = case.another(|b| b).await.unwrap_or_else(|| a.clone());
    let ns = a.namespace("cas").unwrap();
    ns.set("n", &0u32, Ttl::secs(60)).await.unwrap();
    let read = ns.get_entry::<RawJson>("n").await.unwrap().unwrap();
    let seen = Version::of(read.value.as_bytes());
    // The version is the value's: the same from the bytes view, the other instance, L1.
    let bytes: RawBytes = ns.get("n").await.unwrap().unwrap();
    assert_eq!(Version::of(bytes.as_bytes()), seen);
    let other: RawJson = b.namespace("cas").unwrap().get("n").await.unwrap().unwrap();
    assert_eq!(Version::of(other.as_bytes()), seen);
    let mut tasks = Vec::new();
    for i in 1..=8u32 {
        let n = if i % 2 == 0 { &a } else { &b }.namespace("cas").unwrap();
        tasks.push(tokio::spawn(async move {
            n.set_if_version("n", &i, Ttl::secs(60), seen)
                .await
                .unwrap()
                .then_some(i)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        winners.extend(t.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    // Both instances read the winner's value (L1 of each was invalidated).
    assert_eq!(ns.get::<u32>("n").await.unwrap(), Some(winners[0]));
    let nb = b.namespace("cas").unwrap();
    assert!(
        eventually(Duration::from_secs(5), async || nb
            .get::<u32>("n")
            .await
            .unwrap()
            == Some(winners[0]))
        .await,
        "the other instance reads the winner's value"
    );
    assert!(
        !ns.set_if_version("n", &99u32, Ttl::NEVER, seen)
            .await
            .unwrap(),
        "stale version"
    );
    assert!(
        !ns.set_if_version("none", &1u32, Ttl::NEVER, seen)
            .await
            .unwrap(),
        "absent key"
    );
    assert_eq!(
        ns.get::<u32>("none").await.unwrap(),
        None,
        "nothing was created"
    );
    // The TTL given applies.
    let now = Version::of(ns.get::<RawJson>("n").await.unwrap().unwrap().as_bytes());
    assert!(
        ns.set_if_version("n", &100u32, Ttl::secs(5), now)
            .await
            .unwrap()
    );
    let left = ns.ttl("n").await.unwrap().unwrap().duration().unwrap();
    assert!(
        left <= Duration::from_secs(5) && left > Duration::from_secs(3),
        "{left:?}"
    );
    // A tagged value whose tag was invalidated is no value to compare with.
    ns.set_tagged("t", &1u32, Ttl::secs(60), &["grp"])
        .await
        .unwrap();
    let v = Version::of(ns.get::<RawJson>("t").await.unwrap().unwrap().as_bytes());
    ns.invalidate_tags(&["grp"]).await.unwrap();
    assert!(!ns.set_if_version("t", &2u32, Ttl::NEVER, v).await.unwrap());
    // Bytes under a condition.
    assert!(
        ns.set_bytes_if("raw", b"one", Ttl::NEVER, None)
            .await
            .unwrap()
    );
    assert!(
        !ns.set_bytes_if("raw", b"two", Ttl::NEVER, None)
            .await
            .unwrap()
    );
    let v = Version::of(b"one");
    assert!(
        ns.set_bytes_if("raw", b"two", Ttl::NEVER, Some(v))
            .await
            .unwrap()
    );
    assert!(
        !ns.set_bytes_if("raw", b"three", Ttl::NEVER, Some(v))
            .await
            .unwrap()
    );
    let got: RawBytes = ns.get("raw").await.unwrap().unwrap();
    assert_eq!(got.as_bytes(), b"two");
}

/// Bytes are stored as they are (what a RESP client reads), read back exactly, and any
/// string value reads as bytes: another client's text, a framed JSON value's text.
async fn bytes_are_stored_and_read_as_they_are(case: Case<'_>) {
    let ns = case.cache.namespace("bin").unwrap();
    ns.set_bytes("text", "plain text, not JSON".as_bytes(), Ttl::secs(60))
        .await
        .unwrap();
    if let Some(raw) = case.raw_get("bin:text") {
        assert_eq!(raw, "plain text, not JSON", "stored as it is");
    }
    let got: RawBytes = ns.get("text").await.unwrap().unwrap();
    assert_eq!(got.as_bytes(), b"plain text, not JSON");
    let e = ns.get::<RawJson>("text").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotJson, "{e}");
    // Bytes that start with the header byte read back unchanged (framed as format 3).
    let tricky = [0xC5u8, 0x01, b'{', 0x00, 0xFF, 0xC5];
    ns.set_bytes("tricky", &tricky, Ttl::NEVER).await.unwrap();
    for _ in 0..2 {
        let got: RawBytes = ns.get("tricky").await.unwrap().unwrap();
        assert_eq!(got.as_bytes(), tricky);
    }
    let e = ns.get::<RawJson>("tricky").await.unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::NotJson,
        "a key that exists is no miss: {e}"
    );
    // Text another client wrote that starts with 0xC5 ("Ł" in UTF-8) is its bytes.
    if case.raw_set("bin:city", "Łódź".as_bytes()) {
        let got: RawBytes = ns.get("city").await.unwrap().unwrap();
        assert_eq!(got.as_bytes(), "Łódź".as_bytes());
    }
    // A JSON value written framed and compressed reads as its JSON text.
    let doc = serde_json::json!({"blob": "x".repeat(4096)});
    ns.set("doc", &doc, Ttl::NEVER).await.unwrap();
    let got: RawBytes = ns.get("doc").await.unwrap().unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(got.as_bytes()).unwrap(),
        doc
    );
    // Bounded like every value.
    let small = case
        .another(|b| b.max_value_bytes(1024))
        .await
        .unwrap_or_else(|| case.cache.clone());
    if case.server().is_some() {
        let e = small
            .namespace("bin")
            .unwrap()
            .set_bytes("big", &vec![7u8; 2048], Ttl::NEVER)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValueTooLarge, "{e}");
    }
}

/// A read can say how long its key has left, from the store or from L1, and a TTL
/// change made elsewhere is what the next read says.
async fn entries_carry_the_keys_ttl(case: Case<'_>) {
    let ns = case.cache.namespace("ent").unwrap();
    ns.set("a", &1u32, Ttl::secs(60)).await.unwrap();
    ns.set("b", &2u32, Ttl::NEVER).await.unwrap();
    for _ in 0..2 {
        // The second read may come from L1.
        let e = ns.get_entry::<u32>("a").await.unwrap().unwrap();
        assert_eq!(e.value, 1);
        let left = e.ttl.expect("a expires");
        assert!(
            left <= Duration::from_secs(60) && left > Duration::from_secs(55),
            "{left:?}"
        );
        let e = ns.get_entry::<RawJson>("b").await.unwrap().unwrap();
        assert_eq!((e.value.get(), e.ttl), ("2", None));
    }
    let other = case
        .another(|b| b)
        .await
        .unwrap_or_else(|| case.cache.clone());
    other
        .namespace("ent")
        .unwrap()
        .expire("a", Ttl::secs(600))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), async || ns
            .get_entry::<u32>("a")
            .await
            .unwrap()
            .and_then(|e| e.ttl)
            .is_some_and(|t| t > Duration::from_secs(500)))
        .await,
        "an EXPIRE made elsewhere is seen"
    );
    assert!(ns.get_entry::<u32>("missing").await.unwrap().is_none());
}

/// `take` hands a value out once: it is gone afterwards, of 8 racing callers on two
/// instances exactly one gets it, and a value that does not decode or that tags
/// invalidated is deleted and answered `None`.
async fn take_hands_a_value_out_once(case: Case<'_>) {
    let a = case.cache.clone();
    let b = case.another(|b| b).await.unwrap_or_else(|| a.clone());
    let ns = a.namespace("take").unwrap();
    ns.set("code", &"123456", Ttl::secs(60)).await.unwrap();
    assert_eq!(
        ns.take::<String>("code").await.unwrap().as_deref(),
        Some("123456")
    );
    assert_eq!(ns.get::<String>("code").await.unwrap(), None);
    assert_eq!(ns.take::<String>("code").await.unwrap(), None);
    ns.set("ticket", &7u32, Ttl::secs(60)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let n = if i % 2 == 0 { &a } else { &b }.namespace("take").unwrap();
        tasks.push(tokio::spawn(async move {
            n.take::<u32>("ticket").await.unwrap()
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.extend(t.await.unwrap());
    }
    assert_eq!(got, [7], "exactly one caller gets it");
    ns.set("num", &5u32, Ttl::secs(60)).await.unwrap();
    assert_eq!(
        ns.take::<Vec<String>>("num").await.unwrap(),
        None,
        "does not decode"
    );
    assert_eq!(
        ns.get::<u32>("num").await.unwrap(),
        None,
        "deleted all the same"
    );
    ns.set_tagged("t", &1u32, Ttl::secs(60), &["g"])
        .await
        .unwrap();
    ns.invalidate_tags(&["g"]).await.unwrap();
    assert_eq!(ns.take::<u32>("t").await.unwrap(), None, "invalidated");
    assert!(ns.take::<u32>("bad key\n").await.is_err());
}

/// A rate limit's reset gives the key its full budget again.
async fn rate_limit_reset(case: Case<'_>) {
    use sharecache::ratelimit::Limit;
    let rl = case.cache.namespace("auth").unwrap().rate_limits();
    let limit = Limit::per(2, Duration::from_secs(600));
    for _ in 0..2 {
        assert!(rl.check("attempts:ada", limit).await.unwrap().allowed);
    }
    assert!(!rl.check("attempts:ada", limit).await.unwrap().allowed);
    assert!(rl.reset("attempts:ada").await.unwrap());
    assert!(
        !rl.reset("attempts:ada").await.unwrap(),
        "nothing left to forget"
    );
    let d = rl.check("attempts:ada", limit).await.unwrap();
    assert!(d.allowed && d.remaining == 1, "{d:?}");
}

/// One walk counts every namespace's keys (not internal keys, not another deployment's,
/// not a foreign key outside every namespace), and a walk cut at its limit says so.
async fn usage_by_namespace_counts_every_namespace_in_one_walk(case: Case<'_>) {
    let (a, b) = (
        case.cache.namespace("usage-a").unwrap(),
        case.cache.namespace("usage-b").unwrap(),
    );
    for i in 0..30 {
        a.set(&format!("k{i}"), &i, Ttl::secs(60)).await.unwrap();
    }
    for i in 0..5 {
        b.set(&format!("k{i}"), &"v", Ttl::secs(60)).await.unwrap();
    }
    // Internal keys of `usage-a` (a lock and its fence) are not its keys.
    a.locks()
        .acquire_lease("l", Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    case.raw_set("other/usage-a:x", b"1");
    case.raw_set("Not A Namespace:x", b"1");
    let u = case.cache.usage_by_namespace(1_000_000).await.unwrap();
    assert!(!u.truncated, "{u:?}");
    assert_eq!(u.namespaces["usage-a"].keys, 30, "{u:?}");
    assert_eq!(u.namespaces["usage-b"].keys, 5, "{u:?}");
    assert!(u.namespaces["usage-a"].bytes > 0, "{u:?}");
    assert!(!u.namespaces.contains_key("other"), "{u:?}");
    // A walk told to stop after 10 keys either stopped there (counts are lower bounds,
    // and say so) or got everything in its first page (Redis SCAN pages are ~1000).
    let cut = case.cache.usage_by_namespace(10).await.unwrap();
    let a_keys = cut.namespaces.get("usage-a").map_or(0, |u| u.keys);
    if cut.truncated {
        assert!(cut.scanned >= 10 && a_keys <= 30, "{cut:?}");
        assert!(cut.namespaces.values().all(|u| u.truncated), "{cut:?}");
    } else {
        assert_eq!(a_keys, 30, "{cut:?}");
    }
}

every_backend!(
    compare_and_set_has_one_winner_per_version,
    bytes_are_stored_and_read_as_they_are,
    entries_carry_the_keys_ttl,
    take_hands_a_value_out_once,
    usage_by_namespace_counts_every_namespace_in_one_walk,
    counters_are_exact_and_typed,
    set_if_absent_has_one_winner,
    rate_limit_reset,
    ttl_read_change_and_persist,
    a_sparse_listing_is_not_a_run_of_empty_pages,
    ttl_expiry,
    overwrite_del_exists,
    batches_keep_order,
    clear_and_patterns_stay_in_namespace,
    key_listing_pages,
    unicode_and_glob_characters_in_keys,
    big_and_compressed_values,
    invalid_input_is_refused,
    foreign_values_are_counted_misses,
    messagepack_and_json_interoperate,
);
