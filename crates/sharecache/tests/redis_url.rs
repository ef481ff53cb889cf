//! Redis URLs: ACL user and password, database index, and clear errors for bad
//! credentials (with the password never echoed).

use sharecache::{Cache, ErrorKind, Fallback, Ttl};
use sharecache_testkit::{RedisConfig, RedisServer};

fn secured() -> RedisServer {
    RedisServer::start_with(RedisConfig {
        password: Some("default-secret".into()),
        ..Default::default()
    })
}

#[tokio::test]
async fn acl_user_password_and_database_index() {
    let s = secured();
    // An ACL user confined to its own key pattern, as `sharecache provision` will make.
    let ok = s.cmd(&["ACL", "SETUSER", "svc", "on", ">svc-pass", "~*", "+@all"]);
    assert_eq!(ok.text(), Some("OK"));
    let base = format!("redis://svc:svc-pass@127.0.0.1:{}", s.port());
    let db1 = Cache::builder()
        .redis(format!("{base}/1"))
        .fallback(Fallback::Fail)
        .build()
        .await
        .unwrap();
    let db2 = Cache::builder()
        .redis(format!("{base}/2"))
        .fallback(Fallback::Fail)
        .build()
        .await
        .unwrap();
    db1.namespace("n")
        .unwrap()
        .set("k", &1, Ttl::secs(60))
        .await
        .unwrap();
    db2.namespace("n")
        .unwrap()
        .set("k", &2, Ttl::secs(60))
        .await
        .unwrap();
    assert_eq!(
        db1.namespace("n").unwrap().get::<u32>("k").await.unwrap(),
        Some(1)
    );
    assert_eq!(
        db2.namespace("n").unwrap().get::<u32>("k").await.unwrap(),
        Some(2)
    );
    // The default password works too.
    let dflt = Cache::builder()
        .redis(format!("redis://:default-secret@127.0.0.1:{}/1", s.port()))
        .fallback(Fallback::Fail)
        .build()
        .await
        .unwrap();
    assert_eq!(
        dflt.namespace("n").unwrap().get::<u32>("k").await.unwrap(),
        Some(1)
    );
}

#[tokio::test]
async fn wrong_password_is_a_clear_error_without_the_password() {
    let s = secured();
    let e = Cache::builder()
        .redis(format!("redis://:not-the-password@127.0.0.1:{}", s.port()))
        .fallback(Fallback::Fail)
        .build()
        .await
        .unwrap_err();
    let text = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Config, "{text}");
    assert!(!text.contains("not-the-password"), "{text}");
    assert!(text.contains("refused the credentials"), "{text}");
    // No password against a server that needs one, even with the memory fallback: a
    // misconfiguration fails loudly at start instead of degrading silently.
    let e = Cache::builder()
        .redis(s.url())
        .fallback(Fallback::Memory)
        .build()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
}

#[tokio::test]
async fn malformed_urls_are_config_errors() {
    for url in [
        "redis://",
        "redis://host:notaport",
        "http://127.0.0.1:6379",
        "redis://[::1",
        "nonsense",
    ] {
        let e = Cache::builder().redis(url).build().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{url}: {e}");
    }
}
