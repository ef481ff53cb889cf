//! Events on the memory store and across instances on a real Redis: delivery, latency,
//! namespace confinement, and resubscription after the link is killed.

mod support;

use support::Case;

use std::time::{Duration, Instant};

use sharecache::{Cache, Fallback};
use sharecache_testkit::RedisServer;
use support::eventually;

#[tokio::test]
async fn memory_delivers_to_local_subscribers() {
    let c = Cache::builder().memory().build().await.unwrap();
    let chat = c.namespace("chat").unwrap();
    let mut a = chat.channel("room:1").unwrap().subscribe().await.unwrap();
    let mut b = chat.channel("room:1").unwrap().subscribe().await.unwrap();
    assert_eq!(
        chat.channel("room:1")
            .unwrap()
            .publish(&serde_json::json!({"text": "hi"}))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        a.recv_json::<serde_json::Value>().await.unwrap()["text"],
        "hi"
    );
    assert_eq!(
        b.recv_json::<serde_json::Value>().await.unwrap()["text"],
        "hi"
    );
    assert_eq!(
        chat.channel("room:2").unwrap().publish(&1).await.unwrap(),
        0
    );
    assert_eq!(
        c.namespace("other")
            .unwrap()
            .channel("room:1")
            .unwrap()
            .publish(&1)
            .await
            .unwrap(),
        0,
        "namespaces are separate"
    );
    // As a Stream of decoded events.
    let mut stream = Box::pin(a.into_stream::<u64>());
    chat.channel("room:1")
        .unwrap()
        .publish(&7u64)
        .await
        .unwrap();
    assert_eq!(futures_util::StreamExt::next(&mut stream).await, Some(7));
    drop(stream);
    drop(b);
    assert_eq!(
        chat.channel("room:1").unwrap().publish(&1).await.unwrap(),
        0,
        "dropped subscriptions unsubscribe"
    );
}

/// A subscriber that stops reading is dropped at its bound (bytes, then count) with its
/// unread events freed, while one that keeps up gets every event, even one larger than
/// the bound; dropping the cache ends every subscription.
#[tokio::test]
async fn a_slow_subscriber_is_dropped_at_its_bound() {
    use sharecache::events::{Dropped, SubscriberBuffer};
    let c = Cache::builder()
        .memory()
        .subscriber_buffer(SubscriberBuffer {
            max_events: 50,
            max_bytes: 10_000,
        })
        .build()
        .await
        .unwrap();
    let ch = c.namespace("chat").unwrap().channel("room").unwrap();
    let mut slow = ch.subscribe().await.unwrap();
    let mut fast = ch.subscribe().await.unwrap();
    // Each event is 1000 bytes of JSON: ten fill the slow one's 10 000.
    let pad = "x".repeat(998);
    let mut receivers = Vec::new();
    for _ in 0..20 {
        receivers.push(ch.publish(&pad).await.unwrap());
        assert_eq!(fast.recv().await.unwrap().len(), 1000);
    }
    assert_eq!(receivers[..10], [2; 10], "{receivers:?}");
    assert!(receivers[10..].iter().all(|n| *n == 1), "{receivers:?}");
    assert_eq!(
        slow.dropped(),
        Some(Dropped {
            unread_events: 10,
            unread_bytes: 10_000
        })
    );
    assert_eq!(slow.recv().await, None, "a dropped subscription ends");
    assert_eq!(slow.skipped(), 10);
    assert_eq!(
        ch.publish(&1).await.unwrap(),
        1,
        "the dropped one receives nothing"
    );
    assert!(fast.recv().await.is_some());
    // One event larger than the whole bound still reaches a reader that is caught up.
    assert_eq!(ch.publish(&"y".repeat(50_000)).await.unwrap(), 1);
    assert_eq!(fast.recv().await.unwrap().len(), 50_002);
    assert_eq!(fast.dropped(), None);
    // The count bound: 50 small events unread, the 51st drops it.
    let mut idle = ch.subscribe().await.unwrap();
    for i in 0..51u32 {
        ch.publish(&i).await.unwrap();
        assert_eq!(fast.recv().await.unwrap(), i.to_string());
    }
    assert_eq!(idle.dropped().map(|d| d.unread_events), Some(50));
    assert_eq!(idle.recv().await, None);
    assert_eq!(fast.dropped(), None, "the reader that kept up stays");
    // The cache gone: a waiting subscription ends instead of hanging.
    drop(ch);
    drop(c);
    let end = tokio::time::timeout(Duration::from_secs(5), fast.recv()).await;
    assert_eq!(end.expect("recv returns once the cache is gone"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cross_instances_quickly_and_stay_in_their_namespace() {
    let s = RedisServer::start();
    let a = Cache::builder()
        .redis(s.url())
        .fallback(Fallback::Fail)
        .build()
        .await
        .unwrap();
    let b = Cache::builder()
        .redis(s.url())
        .fallback(Fallback::Fail)
        .build()
        .await
        .unwrap();
    let (ca, cb) = (a.namespace("chat").unwrap(), b.namespace("chat").unwrap());
    // Wait for B's shared subscription link.
    let mut sub = cb.channel("room:1").unwrap().subscribe().await.unwrap();
    let mut spy = b
        .namespace("other")
        .unwrap()
        .channel("room:1")
        .unwrap()
        .subscribe()
        .await
        .unwrap();
    let ca2 = ca.clone();
    assert!(
        eventually(Duration::from_secs(5), async || ca2
            .channel("room:1")
            .unwrap()
            .publish(&0)
            .await
            .unwrap()
            >= 1)
        .await
    );
    while tokio::time::timeout(Duration::from_millis(50), sub.recv())
        .await
        .is_ok()
    {}
    let mut lat = Vec::new();
    for i in 1..=200u64 {
        let start = Instant::now();
        assert_eq!(
            ca.channel("room:1").unwrap().publish(&i).await.unwrap(),
            1,
            "one subscribed process"
        );
        let got: u64 = tokio::time::timeout(Duration::from_secs(2), sub.recv_json())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, i);
        lat.push(start.elapsed());
    }
    lat.sort();
    println!(
        "event latency across instances: p50 {:?} p99 {:?}",
        lat[100], lat[197]
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(100), spy.recv())
            .await
            .is_err(),
        "another namespace's channel must stay silent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_survive_a_killed_link() {
    let s = RedisServer::start();
    let a = Cache::builder()
        .redis(s.url())
        .fallback(Fallback::Fail)
        .build()
        .await
        .unwrap();
    let b = Cache::builder()
        .redis(s.url())
        .fallback(Fallback::Fail)
        .build()
        .await
        .unwrap();
    let (ca, cb) = (a.namespace("n").unwrap(), b.namespace("n").unwrap());
    let mut sub = cb.channel("c").unwrap().subscribe().await.unwrap();
    let ca2 = ca.clone();
    assert!(
        eventually(Duration::from_secs(5), async || ca2
            .channel("c")
            .unwrap()
            .publish(&0)
            .await
            .unwrap()
            >= 1)
        .await
    );
    let killed: u64 = s
        .cmd(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .text()
        .unwrap()
        .parse()
        .unwrap();
    assert!(killed >= 1, "the subscription link was killed");
    // After the kill, the hub reconnects and resubscribes: publishes are heard again.
    let ca3 = ca.clone();
    assert!(
        eventually(Duration::from_secs(5), async || ca3
            .channel("c")
            .unwrap()
            .publish(&1)
            .await
            .unwrap()
            >= 1)
        .await,
        "resubscribed"
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut heard_after = false;
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), sub.recv_json::<u64>()).await {
            Ok(Some(1)) => {
                heard_after = true;
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(
        heard_after,
        "an event published after the reconnect must arrive"
    );
}

async fn durable(case: Case<'_>) {
    let cache = case.cache.clone();
    let ch = cache.namespace("audit").unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let (id, _) = ch
            .channel("log")
            .unwrap()
            .publish_durable(&serde_json::json!({"n": i}))
            .await
            .unwrap();
        ids.push(id);
    }
    let all = ch.channel("log").unwrap().since(None, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        ids
    );
    let after_first = ch
        .channel("log")
        .unwrap()
        .since(Some(&ids[0]), 100)
        .await
        .unwrap();
    assert_eq!(after_first.len(), 2);
    assert_eq!(after_first[0].1.as_bytes(), br#"{"n":1}"#);
    assert!(
        ch.channel("log")
            .unwrap()
            .since(Some(&ids[2]), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        cache
            .namespace("other")
            .unwrap()
            .channel("log")
            .unwrap()
            .since(None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ch.channel("log")
            .unwrap()
            .since(Some("junk"), 10)
            .await
            .unwrap_err()
            .kind(),
        sharecache::ErrorKind::InvalidArgument
    );
    // Nothing follows the largest id (Redis refuses that range: it was a 500).
    let max = format!("{}-{}", u64::MAX, u64::MAX);
    let log = ch.channel("log").unwrap();
    assert!(log.since(Some(&max), 10).await.unwrap().is_empty());
    // One past it does not parse.
    let over = format!("{}0-0", u64::MAX);
    assert_eq!(
        log.since(Some(&over), 10).await.unwrap_err().kind(),
        sharecache::ErrorKind::InvalidArgument
    );
}

every_backend!(durable);
