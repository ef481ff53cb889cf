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

/// `presence_sets` lists the sets with a member alive, of this namespace only, page by
/// page; a set whose last member left is gone from the listing.
async fn sets_are_listed(case: Case<'_>) {
    let chat = case.cache.namespace("chat").unwrap();
    let minute = Duration::from_secs(60);
    for (set, member) in [
        ("room:1", "ada"),
        ("room:1", "bob"),
        ("room:2", "cy"),
        ("lobby", "di"),
    ] {
        chat.presence(set)
            .unwrap()
            .beat(member, minute)
            .await
            .unwrap();
    }
    let other = case.cache.namespace("chatter").unwrap();
    other
        .presence("room:9")
        .unwrap()
        .beat("eve", minute)
        .await
        .unwrap();
    chat.set("presence-lookalike", &1, sharecache::Ttl::secs(60))
        .await
        .unwrap();
    let all = |count: usize| {
        let chat = chat.clone();
        async move {
            let mut names = Vec::new();
            let mut cursor: Option<String> = None;
            for _ in 0..100 {
                let page = chat.presence_sets(cursor.as_deref(), count).await.unwrap();
                names.extend(page.keys);
                cursor = page.cursor;
                if cursor.is_none() {
                    names.sort();
                    return names;
                }
            }
            panic!("the listing did not end within 100 pages");
        }
    };
    for count in [1, 2, 1000, usize::MAX] {
        assert_eq!(
            all(count).await,
            ["lobby", "room:1", "room:2"],
            "pages of {count}"
        );
    }
    assert!(chat.presence("room:2").unwrap().leave("cy").await.unwrap());
    assert_eq!(all(10).await, ["lobby", "room:1"]);
    assert_eq!(
        chat.presence_sets(Some(""), 10).await.unwrap_err().kind(),
        ErrorKind::InvalidCursor
    );
}

every_backend!(behaviour, sets_are_listed);
