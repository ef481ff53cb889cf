//! The library on a real 6-node Redis Cluster (3 masters, 3 replicas) from the testkit:
//! batches over every slot with no CROSSSLOT error, listings that walk every master,
//! tags, the coordination primitives, events across instances, and L1 coherence on every
//! shard. (The behaviour suite also runs on a cluster: `store_suite.rs`.)

mod support;

use std::collections::HashSet;
use std::time::Duration;

use sharecache::queue::ClaimOptions;
use sharecache::ratelimit::Limit;
use sharecache::{Cache, Fallback, Ttl};
use sharecache_testkit::RedisCluster;

/// The master port that holds `full_key`.
fn owner(cluster: &RedisCluster, full_key: &str) -> u16 {
    cluster
        .master_for_slot(RedisCluster::slot_of(full_key))
        .port()
}

#[tokio::test]
async fn batches_listing_and_tags_span_every_master() {
    let cluster = support::start_cluster().await;
    let cache = support::on_cluster(&cluster).await;
    let ns = cache.namespace("spread").unwrap();
    let items: Vec<(String, u32)> = (0..300).map(|i| (format!("k{i}"), i)).collect();
    let keys: Vec<String> = items.iter().map(|(k, _)| k.clone()).collect();
    let owners: HashSet<u16> = keys
        .iter()
        .map(|k| owner(&cluster, &format!("spread:{k}")))
        .collect();
    assert_eq!(owners.len(), 3, "the keys must live on all three masters");

    // mset with and without a TTL, mget in order, over ~300 slots: no CROSSSLOT.
    ns.mset(&items, Ttl::secs(60)).await.unwrap();
    let got: Vec<Option<u32>> = ns.mget(&keys).await.unwrap();
    assert_eq!(got, (0..300).map(Some).collect::<Vec<_>>());
    let twice: Vec<(String, u32)> = items.iter().map(|(k, v)| (k.clone(), v * 2)).collect();
    ns.mset(&twice, Ttl::NEVER).await.unwrap();
    let got: Vec<Option<u32>> = ns.mget(&keys).await.unwrap();
    assert_eq!(got, (0..300).map(|v| Some(v * 2)).collect::<Vec<_>>());
    // Each key really is on the master its slot says.
    for k in keys.iter().take(20) {
        let full = format!("spread:{k}");
        let node = cluster.master_for_slot(RedisCluster::slot_of(&full));
        assert_eq!(node.cmd(&["EXISTS", &full]).text(), Some("1"), "{full}");
    }

    // A listing pages across the three masters and returns every key exactly once.
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = ns.keys("*", cursor.as_deref(), 25).await.unwrap();
        listed.extend(page.keys);
        pages += 1;
        assert!(pages < 1000, "listing does not end");
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert!(pages > 3, "small pages must take several steps: {pages}");
    let unique: HashSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), 300);
    assert_eq!(listed.len(), 300, "a key was listed twice");
    // A forged cursor is a clear error.
    for bad in ["x", "99999-1", "12-", "-3"] {
        assert_eq!(
            ns.keys("*", Some(bad), 10).await.unwrap_err().kind(),
            sharecache::ErrorKind::InvalidCursor,
            "{bad}"
        );
    }

    // Pattern delete and clear walk every master.
    assert_eq!(ns.delete_pattern("k1*").await.unwrap(), 111);
    assert_eq!(ns.mdel(&["k2", "k3", "k1"]).await.unwrap(), 2);
    assert!(!ns.exists("k2").await.unwrap());
    let other = cache.namespace("other").unwrap();
    other.set("keep", &1u32, Ttl::NEVER).await.unwrap();
    assert_eq!(ns.clear().await.unwrap(), 300 - 111 - 2);
    assert_eq!(other.get::<u32>("keep").await.unwrap(), Some(1));
    let stats = cache.stats().await.unwrap();
    assert_eq!(stats.keys, 1, "store-wide key count sums every master");

    // Tags: keys on every shard, one invalidation.
    for i in 0..60 {
        ns.set_tagged(&format!("t{i}"), &i, Ttl::secs(60), &["catalog", "x"])
            .await
            .unwrap();
    }
    ns.invalidate_tags(&["catalog"]).await.unwrap();
    for i in 0..60 {
        assert_eq!(ns.get::<u32>(&format!("t{i}")).await.unwrap(), None);
    }
    // Usage sampling (MEMORY USAGE per key) works across slots.
    ns.mset(&items[..50], Ttl::secs(60)).await.unwrap();
    let usage = ns.usage(1000).await.unwrap();
    assert!(usage.keys >= 50, "{usage:?}");
}

#[tokio::test]
async fn coordination_primitives_on_a_cluster() {
    let cluster = support::start_cluster().await;
    let a = support::on_cluster(&cluster).await;
    // The other instance through the builder's `cluster` seeds (one seed is enough).
    let b = Cache::builder()
        .cluster([format!("127.0.0.1:{}", cluster.nodes()[4].port())])
        .fallback(Fallback::Fail)
        .build()
        .await
        .unwrap();
    let (na, nb) = (a.namespace("coord").unwrap(), b.namespace("coord").unwrap());

    // Rate limit: exact across two instances.
    let limit = Limit::per(10, Duration::from_secs(60));
    let mut allowed = 0;
    for i in 0..30 {
        let ns = if i % 2 == 0 { &na } else { &nb };
        if ns
            .rate_limits()
            .check("client", limit)
            .await
            .unwrap()
            .allowed
        {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 10);

    // Locks: fences increase, the holder excludes the other instance.
    let l1 = na
        .locks()
        .acquire_lease("job", Duration::from_secs(5), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert!(
        nb.locks()
            .acquire_lease("job", Duration::from_secs(5), Duration::ZERO)
            .await
            .unwrap()
            .is_none()
    );
    assert!(na.locks().release("job", &l1.token).await.unwrap());
    let l2 = nb
        .locks()
        .acquire_lease("job", Duration::from_secs(5), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert!(l2.fence > l1.fence);

    // Queues: push on one, claim and ack on the other; dead letters.
    let opts = ClaimOptions {
        visibility: Duration::from_millis(200),
        max_deliveries: 2,
    };
    for i in 0..5 {
        na.queue("mail")
            .unwrap()
            .push(&serde_json::json!({ "n": i }))
            .await
            .unwrap();
    }
    let got = nb
        .queue("mail")
        .unwrap()
        .claim("w1", 10, Duration::ZERO, &opts)
        .await
        .unwrap();
    assert_eq!(got.len(), 5);
    let ids: Vec<String> = got.iter().map(|m| m.id.clone()).collect();
    assert_eq!(nb.queue("mail").unwrap().ack(&ids).await.unwrap(), 5);

    // Presence and sessions.
    na.presence("room")
        .unwrap()
        .beat("ada", Duration::from_secs(5))
        .await
        .unwrap();
    let here = nb.presence("room").unwrap().list().await.unwrap();
    assert_eq!(here.len(), 1);
    assert_eq!(here[0].0, "ada");

    // Events: published on one instance, heard on the other; durable replay.
    let mut sub = nb.channel("news").unwrap().subscribe().await.unwrap();
    na.channel("news")
        .unwrap()
        .publish(&serde_json::json!({"hello": 1}))
        .await
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(3), sub.recv())
        .await
        .expect("event within 3 s")
        .unwrap();
    assert_eq!(&ev[..], br#"{"hello":1}"#);
    let (id, _) = na
        .channel("log")
        .unwrap()
        .publish_durable(&serde_json::json!({"n": 1}))
        .await
        .unwrap();
    let since = nb.channel("log").unwrap().since(None, 10).await.unwrap();
    assert_eq!(since.len(), 1);
    assert_eq!(since[0].0, id);

    // remember with a lease: one load for concurrent callers on two instances.
    let loads = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let ns = if i % 2 == 0 { na.clone() } else { nb.clone() };
        let loads = loads.clone();
        tasks.push(tokio::spawn(async move {
            let opts = sharecache::RememberOptions::default().lease(Duration::from_secs(2));
            ns.remember_with("expensive", Ttl::secs(60), &opts, || async move {
                loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok::<_, std::io::Error>(42u32)
            })
            .await
            .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 42);
    }
    assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn l1_stays_coherent_on_every_shard() {
    let cluster = support::start_cluster().await;
    let tiered = support::tiered(cluster.url()).await;
    let writer = support::on_cluster(&cluster).await;
    let (r, w) = (
        tiered.namespace("l1").unwrap(),
        writer.namespace("l1").unwrap(),
    );
    assert!(
        support::eventually(Duration::from_secs(5), async || tiered
            .tier_stats()
            .unwrap()
            .link_up)
        .await,
        "tracking must come up on every master"
    );
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    let owners: HashSet<u16> = keys
        .iter()
        .map(|k| owner(&cluster, &format!("l1:{k}")))
        .collect();
    assert_eq!(owners.len(), 3);
    for k in &keys {
        w.set(k, &1u32, Ttl::secs(60)).await.unwrap();
    }
    // Let the writes' invalidations arrive first: a read racing its key's invalidation
    // is (rightly) not cached.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for k in &keys {
        assert_eq!(r.get::<u32>(k).await.unwrap(), Some(1));
        assert_eq!(r.get::<u32>(k).await.unwrap(), Some(1));
    }
    let hits = tiered.tier_stats().unwrap().hits;
    assert!(hits >= 30, "second reads are L1 hits: {hits}");
    // The other instance writes: every shard's node tells the tiered one.
    for k in &keys {
        w.set(k, &2u32, Ttl::secs(60)).await.unwrap();
    }
    for k in &keys {
        assert!(
            support::eventually(Duration::from_secs(2), async || r
                .get::<u32>(k)
                .await
                .unwrap()
                == Some(2))
            .await,
            "stale L1 entry for {k}"
        );
    }
}
