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

/// A cluster with a password: the right one works on every node, a wrong one is a clear
/// configuration error that never echoes it.
#[tokio::test]
async fn cluster_credentials() {
    use sharecache_testkit::{ClusterConfig, RedisCluster};
    let cluster = tokio::task::spawn_blocking(|| {
        RedisCluster::start_with(ClusterConfig {
            password: Some("clu-secret".into()),
            ..Default::default()
        })
    })
    .await
    .unwrap();
    let url = cluster.url();
    assert!(url.contains("clu-secret"), "{url}");
    let cache = Cache::builder()
        .redis(url.clone())
        .fallback(Fallback::Fail)
        .build()
        .await
        .unwrap();
    let ns = cache.namespace("n").unwrap();
    let items: Vec<(String, u32)> = (0..50).map(|i| (format!("k{i}"), i)).collect();
    ns.mset(&items, Ttl::secs(60)).await.unwrap();
    let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        ns.mget::<u32>(&keys).await.unwrap(),
        (0..50).map(Some).collect::<Vec<_>>()
    );
    let wrong = url.replace("clu-secret", "nope-wrong");
    let e = Cache::builder().redis(wrong).build().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.message().contains("refused the credentials"), "{e}");
    assert!(!e.message().contains("nope-wrong"), "{e}");
}

/// Sentinel with passwords on the data nodes and on the sentinels; each wrong one, and an
/// unknown master name, is a clear configuration error at start.
#[tokio::test]
async fn sentinel_credentials_and_master_name() {
    use sharecache_testkit::{RedisSentinels, SentinelConfig};
    let group = tokio::task::spawn_blocking(|| {
        RedisSentinels::start_with(SentinelConfig {
            master_name: "cachegroup".into(),
            password: Some("data-secret".into()),
            sentinel_password: Some("sent-secret".into()),
            ..Default::default()
        })
    })
    .await
    .unwrap();
    let url = group.url();
    assert!(url.contains("sentinel_password="), "{url}");
    let cache = Cache::builder()
        .redis(url.clone())
        .fallback(Fallback::Fail)
        .build()
        .await
        .unwrap();
    let ns = cache.namespace("n").unwrap();
    ns.set("k", &7u32, Ttl::secs(60)).await.unwrap();
    assert_eq!(ns.get::<u32>("k").await.unwrap(), Some(7));
    assert_eq!(
        group.master().cmd(&["EXISTS", "n:k"]).text(),
        Some("1"),
        "written on the master the sentinels name"
    );
    for (bad, says) in [
        (
            url.replace("data-secret", "bad-data"),
            "refused the credentials",
        ),
        (url.replace("sent-secret", "bad-sent"), "sentinel"),
        (
            url.replace("/cachegroup", "/othergroup"),
            "does not monitor",
        ),
    ] {
        let e = Cache::builder()
            .redis(bad.clone())
            .build()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{bad}: {e}");
        assert!(e.message().contains(says), "{bad}: {e}");
        assert!(!e.message().contains("bad-"), "{e}");
    }
}

#[tokio::test]
async fn malformed_topology_urls_are_config_errors() {
    for (url, says) in [
        ("redis+cluster://", "no host"),
        ("redis+cluster://127.0.0.1:0", "bad port"),
        ("redis+cluster://127.0.0.1:7000/2", "database 0"),
        ("redis+sentinel://127.0.0.1:26379", "names its master"),
        (
            "redis+sentinel://127.0.0.1:26379/m?token=x",
            "unknown query parameter",
        ),
        ("redis+sentinel://:pw-never-shown@127.0.0.1:x/m", "bad port"),
        ("redis+cluser://h:1", "unknown scheme"),
    ] {
        let e = Cache::builder().redis(url).build().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{url}");
        assert!(e.message().contains(says), "{url}: {e}");
        assert!(!e.message().contains("pw-never-shown"), "{e}");
    }
    let e = Cache::builder()
        .cluster(Vec::<&str>::new())
        .build()
        .await
        .unwrap_err();
    assert!(e.message().contains("no host"), "{e}");
    let e = Cache::builder()
        .sentinel(["127.0.0.1:26379"], "")
        .build()
        .await
        .unwrap_err();
    assert!(e.message().contains("names its master"), "{e}");
}
