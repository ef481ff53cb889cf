//! Tag invalidation: lazy versions, one write per tag whatever the number of tagged
//! keys, across instances with the L1 tier, and tag keys out of every namespace's reach.

mod support;

use std::time::Duration;

use sharecache::{Cache, ErrorKind, LocalTier, Ttl};
use sharecache_testkit::{RedisServer, RespReply};
use support::Case;
use support::eventually;

async fn behaviour(case: Case<'_>) {
    let cache = case.cache.clone();
    let ns = cache.namespace("tg").unwrap();
    ns.set_tagged("p:1", &1u64, Ttl::secs(60), &["user:42", "org:1"])
        .await
        .unwrap();
    ns.set_tagged("p:2", &2u64, Ttl::secs(60), &["user:42"])
        .await
        .unwrap();
    ns.set_tagged("p:3", &3u64, Ttl::secs(60), &["org:1"])
        .await
        .unwrap();
    ns.set("plain", &4u64, Ttl::secs(60)).await.unwrap();
    assert_eq!(
        ns.mget::<u64>(&["p:1", "p:2", "p:3", "plain"])
            .await
            .unwrap(),
        vec![Some(1), Some(2), Some(3), Some(4)]
    );
    assert_eq!(ns.invalidate_tags(&["user:42"]).await.unwrap(), 1);
    assert_eq!(ns.get::<u64>("p:1").await.unwrap(), None, "tagged user:42");
    assert_eq!(ns.get::<u64>("p:2").await.unwrap(), None, "tagged user:42");
    assert_eq!(
        ns.get::<u64>("p:3").await.unwrap(),
        Some(3),
        "other tag only"
    );
    assert_eq!(ns.get::<u64>("plain").await.unwrap(), Some(4));
    assert_eq!(ns.get::<sharecache::RawJson>("p:1").await.unwrap(), None);
    assert_eq!(
        ns.mget::<u64>(&["p:1", "p:3"]).await.unwrap(),
        vec![None, Some(3)]
    );
    // Written again after the invalidation: valid.
    ns.set_tagged("p:1", &10u64, Ttl::secs(60), &["user:42"])
        .await
        .unwrap();
    assert_eq!(ns.get::<u64>("p:1").await.unwrap(), Some(10));
    // Another namespace's tag of the same name is another tag.
    let other = cache.namespace("tg2").unwrap();
    other
        .set_tagged("x", &1u64, Ttl::secs(60), &["org:1"])
        .await
        .unwrap();
    ns.invalidate_tags(&["org:1"]).await.unwrap();
    assert_eq!(ns.get::<u64>("p:3").await.unwrap(), None);
    assert_eq!(
        other.get::<u64>("x").await.unwrap(),
        Some(1),
        "tags are per namespace"
    );
    // Tag version keys are in no namespace: listings and clears never see them.
    assert!(
        ns.keys("*", None, 100)
            .await
            .unwrap()
            .keys
            .iter()
            .all(|k| !k.contains("#tag"))
    );
    ns.clear().await.unwrap();
    ns.set_tagged("after-clear", &1u64, Ttl::secs(60), &["user:42"])
        .await
        .unwrap();
    assert_eq!(ns.get::<u64>("after-clear").await.unwrap(), Some(1));
    // Bad tags are refused, and nothing is written.
    for bad in [vec![""], vec!["a,b"], vec!["t\nx"]] {
        let e = ns
            .set_tagged("bad", &1u64, Ttl::secs(60), &bad)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidKey, "{bad:?}");
        assert!(ns.invalidate_tags(&bad).await.is_err());
    }
    let many: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(
        ns.set_tagged("bad", &1u64, Ttl::secs(60), &many)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::TooManyKeys
    );
    assert!(!ns.exists("bad").await.unwrap());
}

/// An invalidated tagged value is absent for every operation that looks at the key, not
/// only for reads: exists, TTL, expire, set-if-absent and incr agree with `get`.
async fn invalidated_is_absent_everywhere(case: Case<'_>) {
    let ns = case.cache.namespace("tga").unwrap();
    for k in ["e", "t", "x", "n", "c"] {
        ns.set_tagged(k, &1u64, Ttl::secs(60), &["v"])
            .await
            .unwrap();
    }
    assert!(ns.exists("e").await.unwrap());
    assert!(ns.ttl("t").await.unwrap().is_some());
    ns.invalidate_tags(&["v"]).await.unwrap();
    assert!(!ns.exists("e").await.unwrap(), "exists");
    assert_eq!(ns.ttl("t").await.unwrap(), None, "ttl");
    assert!(!ns.expire("x", Ttl::secs(5)).await.unwrap(), "expire");
    assert!(
        ns.set_if_absent("n", &2u64, Ttl::secs(60)).await.unwrap(),
        "set_if_absent"
    );
    assert_eq!(ns.get::<u64>("n").await.unwrap(), Some(2));
    assert_eq!(ns.incr("c", 5, Ttl::secs(60)).await.unwrap(), 5, "incr");
    // A live value still blocks set_if_absent, and a non-counter still refuses incr.
    assert!(!ns.set_if_absent("n", &3u64, Ttl::secs(60)).await.unwrap());
    ns.set("j", &"text", Ttl::secs(60)).await.unwrap();
    assert_eq!(
        ns.incr("j", 1, Ttl::secs(60)).await.unwrap_err().kind(),
        ErrorKind::WrongType
    );
}

every_backend!(behaviour, invalidated_is_absent_everywhere);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_with_l1() {
    let s = RedisServer::start();
    let c = Cache::builder()
        .redis(s.url())
        .local_tier(LocalTier::max_bytes(8 << 20))
        .build()
        .await
        .unwrap();
    let cc = c.clone();
    assert!(
        eventually(Duration::from_secs(5), async || cc
            .tier_stats()
            .unwrap()
            .link_up)
        .await
    );
    behaviour(Case::of(c)).await;
}

fn commands(server: &RedisServer, name: &str) -> u64 {
    let RespReply::Value(info) = server.cmd(&["INFO", "commandstats"]) else {
        panic!()
    };
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidating_a_tag_of_100k_keys_costs_one_write_and_reaches_other_instances() {
    let server = RedisServer::start();
    let tier = || LocalTier::max_bytes(64 << 20);
    let a = Cache::builder()
        .redis(server.url())
        .local_tier(tier())
        .build()
        .await
        .unwrap();
    let b = Cache::builder()
        .redis(server.url())
        .local_tier(tier())
        .build()
        .await
        .unwrap();
    for c in [&a, &b] {
        let cc = c.clone();
        assert!(
            eventually(Duration::from_secs(5), async || cc
                .tier_stats()
                .unwrap()
                .link_up)
            .await
        );
    }
    let mut tasks = Vec::new();
    for t in 0..32u64 {
        let ns = a.namespace("big").unwrap();
        tasks.push(tokio::spawn(async move {
            for i in (t..100_000).step_by(32) {
                ns.set_tagged(&format!("k{i}"), &i, Ttl::secs(600), &["catalog"])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let nb = b.namespace("big").unwrap();
    for i in (0..100_000u64).step_by(997) {
        assert_eq!(nb.get::<u64>(&format!("k{i}")).await.unwrap(), Some(i)); // now in B's L1
    }
    let writes_before =
        commands(&server, "set") + commands(&server, "mset") + commands(&server, "incr");
    a.namespace("big")
        .unwrap()
        .invalidate_tags(&["catalog"])
        .await
        .unwrap();
    let writes = commands(&server, "set") + commands(&server, "mset") + commands(&server, "incr")
        - writes_before;
    println!("writes for invalidating a tag of 100 000 keys: {writes}");
    assert_eq!(writes, 1);
    // Every tagged key is now a miss, on B too (its L1 held many of them).
    assert!(
        eventually(Duration::from_secs(2), async || nb
            .get::<u64>("k0")
            .await
            .unwrap()
            .is_none())
        .await
    );
    for i in (0..100_000u64).step_by(97) {
        assert_eq!(
            nb.get::<u64>(&format!("k{i}")).await.unwrap(),
            None,
            "k{i} survived its tag"
        );
    }
}
