//! Locks with fencing tokens on the memory store and a real Redis: mutual exclusion
//! under contention with strictly increasing fences, owner-only release and extend, a
//! holder paused past its TTL rejected by a fence-checking resource, and the guard.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use sharecache::{Cache, ErrorKind, Fallback};
use sharecache_testkit::RedisServer;
use support::Case;

/// A resource that accepts a write only with a fence at least as high as any it saw:
/// the pattern that makes an expired lock holder harmless.
#[derive(Default)]
struct FencedResource {
    highest: Mutex<u64>,
    accepted_stale: AtomicU64,
}

impl FencedResource {
    fn write(&self, fence: u64) -> bool {
        let mut h = self.highest.lock();
        if fence < *h {
            return false;
        }
        *h = fence;
        true
    }
}

async fn caches() -> (Vec<Cache>, RedisServer) {
    let s = RedisServer::start();
    let redis = Cache::builder()
        .redis(s.url())
        .fallback(Fallback::Fail)
        .build()
        .await
        .unwrap();
    (
        vec![Cache::builder().memory().build().await.unwrap(), redis],
        s,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_lockers_never_overlap_and_fences_increase() {
    let (caches, _s) = caches().await;
    for cache in caches {
        let inside = Arc::new(AtomicBool::new(false));
        let overlaps = Arc::new(AtomicU64::new(0));
        let fences = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (ns, inside, overlaps, fences) = (
                cache.namespace("chat").unwrap(),
                inside.clone(),
                overlaps.clone(),
                fences.clone(),
            );
            tasks.push(tokio::spawn(async move {
                for _ in 0..100 {
                    let lease = ns
                        .locks()
                        .acquire_lease("room:1", Duration::from_secs(5), Duration::from_secs(30))
                        .await
                        .unwrap()
                        .expect("acquired within the wait");
                    if inside.swap(true, Ordering::SeqCst) {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    fences.lock().push(lease.fence);
                    tokio::task::yield_now().await;
                    inside.store(false, Ordering::SeqCst);
                    assert!(ns.locks().release("room:1", &lease.token).await.unwrap());
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            overlaps.load(Ordering::SeqCst),
            0,
            "two holders in the critical section"
        );
        let fences = fences.lock().clone();
        assert_eq!(fences.len(), 1000);
        assert!(
            fences.windows(2).all(|w| w[1] > w[0]),
            "fences must strictly increase in acquisition order"
        );
    }
}

#[tokio::test]
async fn only_the_owner_releases_or_extends() {
    let (caches, _s) = caches().await;
    for cache in caches {
        let ns = cache.namespace("locks").unwrap();
        let a = ns
            .locks()
            .acquire_lease("job", Duration::from_secs(5), Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        assert!(
            ns.locks()
                .acquire_lease("job", Duration::from_secs(5), Duration::ZERO)
                .await
                .unwrap()
                .is_none(),
            "held"
        );
        assert!(!ns.locks().release("job", "not-the-token").await.unwrap());
        assert!(
            !ns.locks()
                .extend("job", "not-the-token", Duration::from_secs(5))
                .await
                .unwrap()
        );
        assert!(
            ns.locks()
                .extend("job", &a.token, Duration::from_secs(5))
                .await
                .unwrap()
        );
        assert!(ns.locks().release("job", &a.token).await.unwrap());
        assert!(
            !ns.locks().release("job", &a.token).await.unwrap(),
            "already released"
        );
        let b = ns
            .locks()
            .acquire_lease("job", Duration::from_secs(5), Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        assert!(b.fence > a.fence);
        // Waiting: a held lock is taken as soon as it expires.
        let c = ns
            .locks()
            .acquire_lease("short", Duration::from_millis(100), Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        let d = ns
            .locks()
            .acquire_lease("short", Duration::from_secs(5), Duration::from_secs(2))
            .await
            .unwrap();
        assert!(
            d.is_some_and(|d| d.fence > c.fence),
            "the waiter gets the lock after the TTL"
        );
        // Bad input.
        assert_eq!(
            ns.locks()
                .acquire_lease("job", Duration::ZERO, Duration::ZERO)
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            ns.locks()
                .acquire_lease("job", Duration::from_secs(90_000), Duration::ZERO)
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            ns.locks()
                .acquire_lease("job", Duration::from_secs(1), Duration::from_secs(4000))
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            ns.locks()
                .acquire_lease("bad\nname", Duration::from_secs(1), Duration::ZERO)
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidKey
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_paused_past_its_ttl_cannot_write_with_its_stale_fence() {
    let (caches, _s) = caches().await;
    for cache in caches {
        let ns = cache.namespace("fence").unwrap();
        let resource = Arc::new(FencedResource::default());
        let slow = ns
            .locks()
            .acquire_lease("doc", Duration::from_millis(150), Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        assert!(resource.write(slow.fence));
        // The holder "pauses" (GC, SIGSTOP) past its TTL; another holder takes over.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let fresh = ns
            .locks()
            .acquire_lease("doc", Duration::from_secs(5), Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        assert!(resource.write(fresh.fence));
        // The paused holder wakes up and tries to write: refused, and cannot release.
        if resource.write(slow.fence) {
            resource.accepted_stale.fetch_add(1, Ordering::SeqCst);
        }
        assert_eq!(resource.accepted_stale.load(Ordering::SeqCst), 0);
        assert!(
            !ns.locks().release("doc", &slow.token).await.unwrap(),
            "a stale token releases nothing"
        );
        assert!(
            !ns.locks()
                .extend("doc", &slow.token, Duration::from_secs(5))
                .await
                .unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_keeps_its_lock_and_reports_losing_it() {
    let s = RedisServer::start();
    let cache = Cache::builder()
        .redis(s.url())
        .fallback(Fallback::Fail)
        .build()
        .await
        .unwrap();
    let ns = cache.namespace("guard").unwrap();
    let guard = ns
        .locks()
        .acquire("leader", Duration::from_millis(150), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    // Held well past its TTL thanks to the extensions.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!guard.is_lost());
    assert!(
        ns.locks()
            .acquire_lease("leader", Duration::from_secs(1), Duration::ZERO)
            .await
            .unwrap()
            .is_none()
    );
    assert!(guard.release().await.unwrap());
    assert!(
        ns.locks()
            .acquire_lease("leader", Duration::from_millis(100), Duration::ZERO)
            .await
            .unwrap()
            .is_some()
    );
    tokio::time::sleep(Duration::from_millis(150)).await;

    // Someone removes the lock behind the guard's back (an operator, a failover): the
    // next extension fails and the guard says so.
    let mut guard = ns
        .locks()
        .acquire("leader", Duration::from_millis(150), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.cmd(&["DEL", "#lock:guard:{leader}"]).text(), Some("1"));
    tokio::time::timeout(Duration::from_secs(2), guard.lost())
        .await
        .expect("the guard must report the loss");
    assert!(guard.is_lost());
}

/// Every page of a listing, walked with pages of `count` (bounded: a listing of a few
/// names never needs more than 100 pages).
async fn walk<T, F, Fut>(count: usize, mut page: F) -> Vec<T>
where
    F: FnMut(Option<String>, usize) -> Fut,
    Fut: std::future::Future<Output = (Vec<T>, Option<String>)>,
{
    let mut all = Vec::new();
    let mut cursor = None;
    for _ in 0..100 {
        let (items, next) = page(cursor, count).await;
        all.extend(items);
        match next {
            Some(c) => cursor = Some(c),
            None => return all,
        }
    }
    panic!("the listing did not end within 100 pages");
}

/// `held` lists the namespace's held locks (not released ones, not another
/// namespace's, not cache keys) with their time left and fence, never a token, page by
/// page.
async fn held_locks_are_listed(case: Case<'_>) {
    let chat = case.cache.namespace("chat").unwrap();
    let locks = chat.locks();
    let ttl = Duration::from_secs(10);
    let mut leases = Vec::new();
    for name in ["a", "b", "room:{1}", "x*"] {
        leases.push((
            name,
            locks
                .acquire_lease(name, ttl, Duration::ZERO)
                .await
                .unwrap()
                .unwrap(),
        ));
    }
    assert!(locks.release("a", &leases[0].1.token).await.unwrap());
    chat.set("lock-lookalike", &1, sharecache::Ttl::secs(60))
        .await
        .unwrap();
    let other = case.cache.namespace("chatter").unwrap();
    let theirs = other
        .locks()
        .acquire_lease("a", ttl, Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    for count in [1, 2, 100, usize::MAX] {
        let mut held = walk(count, |cursor, count| {
            let locks = locks.clone();
            async move {
                let page = locks.held(cursor.as_deref(), count).await.unwrap();
                (page.locks, page.cursor)
            }
        })
        .await;
        held.sort_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<&str> = held.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["b", "room:{1}", "x*"], "pages of {count}");
        for l in &held {
            let lease = &leases.iter().find(|(n, _)| *n == l.name).unwrap().1;
            assert_eq!(l.fence, lease.fence, "{l:?}");
            let left = l.ttl.expect("a TTL");
            assert!(left <= ttl && left > Duration::from_secs(5), "{l:?}");
            assert!(!format!("{l:?}").contains(&lease.token), "never the token");
        }
    }
    let page = other.locks().held(None, 10).await.unwrap();
    assert_eq!(page.locks.len(), 1);
    assert_eq!(page.locks[0].fence, theirs.fence);
    // A taken-again lock shows its new fence.
    assert!(locks.release("b", &leases[1].1.token).await.unwrap());
    let again = locks
        .acquire_lease("b", ttl, Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    let page = locks.held(None, 100).await.unwrap();
    let b = page.locks.iter().find(|l| l.name == "b").unwrap();
    assert!(
        b.fence == again.fence && again.fence > leases[1].1.fence,
        "{b:?}"
    );
    assert_eq!(
        locks.held(Some(""), 10).await.unwrap_err().kind(),
        ErrorKind::InvalidCursor
    );
}

every_backend!(held_locks_are_listed);
