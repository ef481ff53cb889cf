//! Queues on the memory store and a real Redis: push/claim/ack, a consumer that dies
//! before acknowledging (the message is redelivered, never lost), dead-lettering, and
//! failing closed while Redis is down.

mod support;

use std::time::Duration;

use sharecache::queue::ClaimOptions;
use sharecache::{Cache, ErrorKind, Fallback};
use sharecache_testkit::RedisServer;
use support::Case;

async fn behaviour(case: Case<'_>) {
    let cache = case.cache.clone();
    let jobs = cache.namespace("notify").unwrap();
    let opts = ClaimOptions {
        visibility: Duration::from_millis(200),
        max_deliveries: 3,
    };
    let ids: Vec<String> = {
        let mut v = Vec::new();
        for i in 0..5 {
            v.push(
                jobs.queue("email")
                    .unwrap()
                    .push(&serde_json::json!({"n": i}))
                    .await
                    .unwrap(),
            );
        }
        v
    };
    assert_eq!(ids.len(), 5);
    // Two consumers share the work; nothing is handed out twice while pending.
    let a = jobs
        .queue("email")
        .unwrap()
        .claim("worker-a", 3, Duration::ZERO, &opts)
        .await
        .unwrap();
    let b = jobs
        .queue("email")
        .unwrap()
        .claim("worker-b", 10, Duration::ZERO, &opts)
        .await
        .unwrap();
    assert_eq!((a.len(), b.len()), (3, 2));
    let mut all: Vec<&str> = a.iter().chain(&b).map(|m| m.id.as_str()).collect();
    all.sort();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(all, want);
    assert!(a.iter().chain(&b).all(|m| m.deliveries == 1));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&a[0].payload).unwrap()["n"],
        0
    );
    // B acknowledges its two; A "dies" without acknowledging.
    let b_ids: Vec<String> = b.iter().map(|m| m.id.clone()).collect();
    assert_eq!(jobs.queue("email").unwrap().ack(&b_ids).await.unwrap(), 2);
    assert_eq!(
        jobs.queue("email").unwrap().ack(&b_ids).await.unwrap(),
        0,
        "acknowledged once"
    );
    assert!(
        jobs.queue("email")
            .unwrap()
            .claim("worker-c", 10, Duration::ZERO, &opts)
            .await
            .unwrap()
            .is_empty(),
        "A's are still invisible"
    );
    // After the visibility timeout, A's three come back to another consumer.
    let c = jobs
        .queue("email")
        .unwrap()
        .claim("worker-c", 10, Duration::from_millis(1000), &opts)
        .await
        .unwrap();
    assert_eq!(c.len(), 3, "never lost: redelivered");
    assert!(c.iter().all(|m| m.deliveries == 2));
    // One is acknowledged; the other two keep failing and are dead-lettered after 3.
    assert_eq!(
        jobs.queue("email")
            .unwrap()
            .ack(&[c[0].id.clone()])
            .await
            .unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    let d = jobs
        .queue("email")
        .unwrap()
        .claim("worker-d", 10, Duration::ZERO, &opts)
        .await
        .unwrap();
    assert!(d.len() == 2 && d.iter().all(|m| m.deliveries == 3), "{d:?}");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        jobs.queue("email")
            .unwrap()
            .claim("worker-e", 10, Duration::ZERO, &opts)
            .await
            .unwrap()
            .is_empty()
    );
    let dead = jobs.queue("email").unwrap().dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 2);
    assert!(dead.iter().all(|m| m.deliveries == 3));
    // A claim with a wait returns as soon as a message arrives.
    let jobs2 = jobs.clone();
    let pusher = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        jobs2.queue("email").unwrap().push(&"late").await.unwrap();
    });
    let got = jobs
        .queue("email")
        .unwrap()
        .claim("worker-f", 1, Duration::from_secs(5), &opts)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    pusher.await.unwrap();
    // Another namespace's queue of the same name is another queue.
    assert!(
        cache
            .namespace("other")
            .unwrap()
            .queue("email")
            .unwrap()
            .claim("w", 10, Duration::ZERO, &opts)
            .await
            .unwrap()
            .is_empty()
    );
    // Bad input.
    assert_eq!(
        jobs.queue("email")
            .unwrap()
            .claim("w", 0, Duration::ZERO, &opts)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    let bad_opts = ClaimOptions {
        visibility: Duration::ZERO,
        max_deliveries: 3,
    };
    assert_eq!(
        jobs.queue("email")
            .unwrap()
            .claim("w", 1, Duration::ZERO, &bad_opts)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        jobs.queue("email")
            .unwrap()
            .ack(&["not-an-id".into()])
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        jobs.queue("bad\nqueue").unwrap_err().kind(),
        ErrorKind::InvalidKey
    );
}

/// `queues` lists the namespace's queues on Redis and Cluster, page by page; the memory
/// store keeps its queues outside the key map, where the listing does not reach
/// (documented on `Namespace::queues`; this fails once the store lists them, to be
/// updated then).
/// A queue's figures (ready, pending, dead) follow its messages, and one dead letter can
/// be requeued (delivered afresh) or dropped, once.
async fn figures_requeue_and_drop(case: Case<'_>) {
    let q = case.cache.namespace("figs").unwrap().queue("jobs").unwrap();
    let opts = ClaimOptions {
        visibility: Duration::from_millis(50),
        max_deliveries: 1,
    };
    let st = q.stats().await.unwrap();
    assert_eq!(
        (st.ready, st.pending, st.dead),
        (0, 0, 0),
        "a queue never used"
    );
    for i in 0..4 {
        q.push(&serde_json::json!({"n": i})).await.unwrap();
    }
    let got = q.claim("w", 3, Duration::ZERO, &opts).await.unwrap();
    assert_eq!(got.len(), 3);
    let st = q.stats().await.unwrap();
    assert_eq!((st.ready, st.pending, st.dead), (1, 3, 0));
    q.ack(&[got[0].id.clone()]).await.unwrap();
    // The two others go unacknowledged past the visibility: the next claim dead-letters
    // them (max_deliveries 1) and hands out the last ready one.
    tokio::time::sleep(Duration::from_millis(120)).await;
    let next = q.claim("w", 3, Duration::ZERO, &opts).await.unwrap();
    assert_eq!(next.len(), 1, "{next:?}");
    let st = q.stats().await.unwrap();
    assert_eq!((st.ready, st.pending, st.dead), (0, 1, 2), "{st:?}");
    let dead = q.dead_letters(10).await.unwrap();
    let (first, second) = (dead[0].id.clone(), dead[1].id.clone());
    // Requeue one: a new message with the same payload, ready again.
    let new_id = q.requeue_dead(&first).await.unwrap().expect("requeued");
    assert_ne!(new_id, first);
    assert_eq!(q.requeue_dead(&first).await.unwrap(), None, "only once");
    let st = q.stats().await.unwrap();
    assert_eq!((st.ready, st.pending, st.dead), (1, 1, 1), "{st:?}");
    let again = q.claim("w2", 5, Duration::ZERO, &opts).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].id.as_str(), again[0].deliveries),
        (new_id.as_str(), 1)
    );
    assert_eq!(again[0].payload, dead[0].payload);
    // Drop the other: gone for good.
    assert!(q.drop_dead(&second).await.unwrap());
    assert!(!q.drop_dead(&second).await.unwrap());
    assert_eq!(q.stats().await.unwrap().dead, 0);
    assert!(q.dead_letters(10).await.unwrap().is_empty());
    for bad in ["", "not-an-id", &"1".repeat(65)] {
        let e = q.drop_dead(bad).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
    }
}

async fn queues_are_listed(case: Case<'_>) {
    let jobs = case.cache.namespace("jobs").unwrap();
    for q in ["email", "sms", "a:{b}"] {
        jobs.queue(q).unwrap().push(&1).await.unwrap();
    }
    case.cache
        .namespace("jobsx")
        .unwrap()
        .queue("other")
        .unwrap()
        .push(&1)
        .await
        .unwrap();
    jobs.set("q-lookalike", &1, sharecache::Ttl::secs(60))
        .await
        .unwrap();
    let want: &[&str] = match case.backend {
        support::Backend::Memory => &[],
        _ => &["a:{b}", "email", "sms"],
    };
    for count in [1, 2, usize::MAX] {
        let mut names = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let page = jobs.queues(cursor.as_deref(), count).await.unwrap();
            names.extend(page.keys);
            cursor = page.cursor;
            if cursor.is_none() {
                break;
            }
        }
        names.sort();
        assert_eq!(names, want, "pages of {count}");
    }
    assert_eq!(
        jobs.queues(Some(""), 10).await.unwrap_err().kind(),
        ErrorKind::InvalidCursor
    );
}

every_backend!(behaviour, figures_requeue_and_drop, queues_are_listed);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_fail_closed_while_redis_is_down() {
    let s = RedisServer::start();
    let cache = Cache::builder()
        .redis(s.url())
        .fallback(Fallback::Memory)
        .command_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let q = cache.namespace("jobs").unwrap();
    q.queue("work").unwrap().push(&1).await.unwrap();
    s.kill();
    let e = q.queue("work").unwrap().push(&2).await.unwrap_err();
    assert!(
        e.is_unavailable(),
        "a message Redis never sees must not be accepted: {e}"
    );
}
