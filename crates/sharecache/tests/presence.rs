//! Presence on the memory store and a real Redis: heartbeats with a TTL, listing with the
//! time left, leaving, and expired members vanishing with no sweeper.

mod support;

use std::time::Duration;

use sharecache::ErrorKind;
use support::Case;

async fn behaviour(case: Case<'_>) {
    let cache = case.cache.clone();
    let chat = cache.namespace("chat").unwrap();
    chat.presence("room:1")
        .unwrap()
        .beat("ada", Duration::from_millis(300))
        .await
        .unwrap();
    chat.presence("room:1")
        .unwrap()
        .beat("bob", Duration::from_secs(5))
        .await
        .unwrap();
    chat.presence("room:2")
        .unwrap()
        .beat("eve", Duration::from_secs(5))
        .await
        .unwrap();
    let list = chat.presence("room:1").unwrap().list().await.unwrap();
    let names: Vec<&str> = list.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(names, vec!["ada", "bob"], "soonest to expire first");
    assert!(list[0].1 <= Duration::from_millis(300) && list[1].1 > Duration::from_secs(4));
    // A heartbeat renews.
    chat.presence("room:1")
        .unwrap()
        .beat("bob", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(chat.presence("room:1").unwrap().list().await.unwrap()[1].1 > Duration::from_secs(9));
    // Expired members vanish by themselves.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let names: Vec<String> = chat
        .presence("room:1")
        .unwrap()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert_eq!(names, vec!["bob"]);
    assert!(
        !chat.presence("room:1").unwrap().leave("ada").await.unwrap(),
        "ada had already expired"
    );
    assert!(chat.presence("room:1").unwrap().leave("bob").await.unwrap());
    assert!(
        chat.presence("room:1")
            .unwrap()
            .list()
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        chat.presence("room:2").unwrap().list().await.unwrap().len(),
        1,
        "sets are separate"
    );
    // Another namespace's set of the same name is another set.
    assert!(
        cache
            .namespace("other")
            .unwrap()
            .presence("room:2")
            .unwrap()
            .list()
            .await
            .unwrap()
            .is_empty()
    );
    // Bad input.
    assert_eq!(
        chat.presence("room:1")
            .unwrap()
            .beat("bad\nmember", Duration::from_secs(1))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidKey
    );
    assert_eq!(
        chat.presence("").unwrap_err().kind(),
        ErrorKind::InvalidKey,
        "set names are checked when the handle is made"
    );
    assert_eq!(
        chat.presence("room:1")
            .unwrap()
            .beat("m", Duration::ZERO)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidTtl
    );
    if let Some(s) = case.server() {
        // The set key itself expires with its last member: nothing immortal is left behind.
        let ttl: i64 = s
            .cmd(&["PTTL", "#presence:chat:room:2"])
            .text()
            .unwrap()
            .parse()
            .unwrap();
        assert!(ttl > 0 && ttl <= 5000, "PTTL {ttl}");
    }
}

every_backend!(behaviour);
