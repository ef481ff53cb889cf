//! Sessions on the memory store and a real Redis: create, read (renews), update,
//! rotate, end, idle and absolute timeouts, and ids that are never adopted.

mod support;

use std::time::Duration;

use sharecache::session::SessionKeys;
use sharecache::{Cache, ErrorKind};
use sharecache_testkit::{RedisServer, RespReply};
use support::Case;

/// Gives every cache of a case the same session keys.
fn with_keys(b: sharecache::CacheBuilder) -> sharecache::CacheBuilder {
    b.session_keys(SessionKeys::new(&[[7u8; 32]]).unwrap())
}

fn keys() -> (SessionKeys, [u8; 32]) {
    let k = SessionKeys::generate();
    (SessionKeys::new(&[k]).unwrap(), k)
}

async fn behaviour(case: Case<'_>) {
    let cache = case.cache.clone();
    let auth = cache.namespace("auth").unwrap();
    let s = auth
        .sessions()
        .create(
            serde_json::json!({"user": 42}),
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    let got = auth.sessions().get(&s.id).await.unwrap().unwrap();
    assert_eq!(got.data["user"], 42);
    assert!(
        auth.sessions()
            .update(&s.id, serde_json::json!({"user": 42, "role": "admin"}))
            .await
            .unwrap()
    );
    assert_eq!(
        auth.sessions().get(&s.id).await.unwrap().unwrap().data["role"],
        "admin"
    );
    // Rotation: new id, same data, the old id dead at once.
    let r = auth.sessions().rotate(&s.id).await.unwrap().unwrap();
    assert_ne!(r.id, s.id);
    assert!(
        auth.sessions().get(&s.id).await.unwrap().is_none(),
        "the old id must be dead"
    );
    assert_eq!(
        auth.sessions().get(&r.id).await.unwrap().unwrap().data["role"],
        "admin"
    );
    // Unknown, malformed and forged ids: never adopted, nothing created.
    let last = if r.id.ends_with('A') { 'B' } else { 'A' };
    let forged = format!("{}{last}", &r.id[..42]);
    for bad in [
        "",
        "nope",
        &"A".repeat(43),
        &r.id[..42],
        &forged,
        "../../etc",
        &"x".repeat(5000),
    ] {
        assert!(auth.sessions().get(bad).await.unwrap().is_none(), "{bad:?}");
        assert!(
            !auth
                .sessions()
                .update(bad, serde_json::json!(1))
                .await
                .unwrap()
        );
        assert!(auth.sessions().rotate(bad).await.unwrap().is_none());
        assert!(!auth.sessions().end(bad).await.unwrap());
    }
    // Another namespace does not see it.
    assert!(
        cache
            .namespace("user")
            .unwrap()
            .sessions()
            .get(&r.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(auth.sessions().end(&r.id).await.unwrap());
    assert!(auth.sessions().get(&r.id).await.unwrap().is_none());
    // Idle timeout: unused, it ends; used, it lives on until the absolute timeout.
    let idle = auth
        .sessions()
        .create(
            serde_json::json!(1),
            Duration::from_millis(200),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        auth.sessions().get(&idle.id).await.unwrap().is_none(),
        "idle timeout"
    );
    let used = auth
        .sessions()
        .create(
            serde_json::json!(1),
            Duration::from_millis(200),
            Duration::from_millis(700),
        )
        .await
        .unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(
            auth.sessions().get(&used.id).await.unwrap().is_some(),
            "renewed by use"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        auth.sessions().get(&used.id).await.unwrap().is_none(),
        "absolute timeout, however often used"
    );
    // Bad input.
    let e = auth
        .sessions()
        .create(
            serde_json::json!(1),
            Duration::from_secs(10),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidTtl);
    let big = serde_json::json!("x".repeat(70_000));
    assert_eq!(
        auth.sessions()
            .create(big, Duration::from_secs(1), Duration::from_secs(1))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::ValueTooLarge
    );
    if let Some(s) = case.server() {
        // At rest: no id and no plaintext in Redis; a tampered value is not accepted.
        let auth = cache.namespace("auth").unwrap();
        let new = auth
            .sessions()
            .create(
                serde_json::json!({"secret": "hunter2"}),
                Duration::from_secs(60),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        let RespReply::Array(keys_in_redis) = s.cmd(&["KEYS", "*"]) else {
            panic!()
        };
        assert_eq!(keys_in_redis.len(), 1);
        let key = keys_in_redis[0].text().unwrap().to_owned();
        assert!(!key.contains(&new.id), "the id itself must not be stored");
        let raw = s.cmd(&["GET", &key]).text().unwrap().to_owned();
        assert!(!raw.contains("hunter2"), "data must be encrypted at rest");
        let RespReply::Value(_) = s.cmd(&["SETRANGE", &key, "40", "X"]) else {
            panic!()
        };
        assert!(
            auth.sessions().get(&new.id).await.unwrap().is_none(),
            "a tampered session must not open"
        );
    }
}

#[tokio::test]
async fn key_rotation_keeps_old_sessions_open() {
    let s = RedisServer::start();
    let (old_keys, old) = keys();
    let a = Cache::builder()
        .redis(s.url())
        .session_keys(old_keys)
        .build()
        .await
        .unwrap();
    let sess = a
        .namespace("auth")
        .unwrap()
        .sessions()
        .create(
            serde_json::json!(7),
            Duration::from_secs(60),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let rotated = SessionKeys::new(&[SessionKeys::generate(), old]).unwrap();
    let b = Cache::builder()
        .redis(s.url())
        .session_keys(rotated)
        .build()
        .await
        .unwrap();
    assert_eq!(
        b.namespace("auth")
            .unwrap()
            .sessions()
            .get(&sess.id)
            .await
            .unwrap()
            .unwrap()
            .data,
        7
    );
    // Without keys, sessions are refused with a clear error.
    let none = Cache::builder().memory().build().await.unwrap();
    let e = none
        .namespace("auth")
        .unwrap()
        .sessions()
        .get(&sess.id)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
}

async fn per_user(case: Case<'_>) {
    let cache = case.cache.clone();
    let auth = cache.namespace("auth").unwrap();
    let day = Duration::from_secs(86_400);
    let a = auth
        .sessions()
        .create_for("user:42", serde_json::json!(1), day, day)
        .await
        .unwrap();
    let b = auth
        .sessions()
        .create_for("user:42", serde_json::json!(2), day, day)
        .await
        .unwrap();
    let other = auth
        .sessions()
        .create_for("user:7", serde_json::json!(3), day, day)
        .await
        .unwrap();
    let list = auth.sessions().list("user:42").await.unwrap();
    assert_eq!(list.len(), 2);
    for info in &list {
        assert!(
            !a.id.contains(&info.handle) && !b.id.contains(&info.handle),
            "a handle is not an id"
        );
    }
    // Ending one prunes it from the list.
    assert!(auth.sessions().end(&a.id).await.unwrap());
    assert_eq!(auth.sessions().list("user:42").await.unwrap().len(), 1);
    // A rotated session stays listed under its user, once, under its new handle.
    let before = auth.sessions().list("user:42").await.unwrap();
    let b2 = auth.sessions().rotate(&b.id).await.unwrap().unwrap();
    let twice = auth.sessions().rotate(&b2.id).await.unwrap().unwrap();
    let after = auth.sessions().list("user:42").await.unwrap();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after[0].handle, before[0].handle);
    assert_eq!(after[0].created_ms, before[0].created_ms);
    // End all: the user's sessions are gone, rotated ones included; another user's are not.
    assert_eq!(auth.sessions().end_all("user:42").await.unwrap(), 1);
    assert!(auth.sessions().get(&twice.id).await.unwrap().is_none());
    assert!(auth.sessions().get(&b.id).await.unwrap().is_none());
    assert!(auth.sessions().list("user:42").await.unwrap().is_empty());
    assert!(auth.sessions().get(&other.id).await.unwrap().is_some());
    assert_eq!(auth.sessions().end_all("nobody").await.unwrap(), 0);
    assert_eq!(
        auth.sessions().list("bad\nuser").await.unwrap_err().kind(),
        ErrorKind::InvalidKey
    );
}

/// The operator's view: sessions counted per namespace (bounded), users listed, one
/// session ended by its handle, the others left.
async fn counted_listed_and_ended_by_handle(case: Case<'_>) {
    let cache = case.cache.clone();
    let auth = cache.namespace("auth").unwrap();
    let day = Duration::from_secs(86_400);
    let s = auth.sessions();
    let a = s
        .create_for("ada", serde_json::json!(1), day, day)
        .await
        .unwrap();
    let b = s
        .create_for("ada", serde_json::json!(2), day, day)
        .await
        .unwrap();
    s.create_for("bob", serde_json::json!(3), day, day)
        .await
        .unwrap();
    s.create(serde_json::json!(4), day, day).await.unwrap();
    let other = cache.namespace("authz").unwrap();
    other
        .sessions()
        .create_for("cy", serde_json::json!(5), day, day)
        .await
        .unwrap();
    auth.set("sess-lookalike", &1, sharecache::Ttl::secs(60))
        .await
        .unwrap();

    let n = s.count(1000).await.unwrap();
    assert_eq!((n.keys, n.truncated), (4, false));
    let n = s.count(2).await.unwrap();
    assert_eq!((n.keys, n.truncated), (2, true));
    assert_eq!(other.sessions().count(1000).await.unwrap().keys, 1);

    let mut users = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let page = s.users(cursor.as_deref(), 1).await.unwrap();
        users.extend(page.keys);
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    users.sort();
    assert_eq!(users, ["ada", "bob"]);

    let list = s.list("ada").await.unwrap();
    assert_eq!(list.len(), 2);
    let first = list[0].handle.clone();
    assert!(
        !s.end_handle("bob", &first).await.unwrap(),
        "another user's handle"
    );
    for bad in ["", "zz", "0123456789ABCDEF", &"0".repeat(64)] {
        assert!(!s.end_handle("ada", bad).await.unwrap(), "{bad:?}");
    }
    assert!(s.end_handle("ada", &first).await.unwrap());
    assert!(!s.end_handle("ada", &first).await.unwrap(), "already ended");
    let left = s.list("ada").await.unwrap();
    assert_eq!(left.len(), 1);
    assert_ne!(left[0].handle, first);
    let live = [
        s.get(&a.id).await.unwrap().is_some(),
        s.get(&b.id).await.unwrap().is_some(),
    ];
    assert_eq!(
        live.iter().filter(|l| **l).count(),
        1,
        "exactly one of ada's is left"
    );
    assert_eq!(s.count(1000).await.unwrap().keys, 3);
    assert_eq!(
        s.end_handle("bad\nuser", &first).await.unwrap_err().kind(),
        ErrorKind::InvalidKey
    );
    assert_eq!(
        s.users(Some(""), 10).await.unwrap_err().kind(),
        ErrorKind::InvalidCursor
    );
}

every_backend!(configure = with_keys; behaviour, per_user, counted_listed_and_ended_by_handle);
