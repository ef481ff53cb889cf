//! What a load balancer and a caller learn when Redis cannot take the request: a full
//! Redis answers `507 backend_full` (never 500) and `/ready` 503 with the reason; an
//! unreachable one makes `/ready` 503 unless `readiness = "lenient"`; every 5xx is
//! counted by its code in `/metrics`.

mod support;

use axum::http::{Method, StatusCode};
use sharecache_testkit::{RedisConfig, RedisServer};
use support::{Backend, TestApp};

/// A URL that lives as long as the test process (the test owns the server behind it).
fn leak(url: String) -> &'static str {
    Box::leak(url.into_boxed_str())
}

#[tokio::test]
async fn a_full_redis_answers_507_and_is_not_ready_until_it_has_room() {
    let server = RedisServer::start_with(RedisConfig::full_at(3));
    let app = TestApp::new(Backend::Url(leak(server.url()))).await;
    let user = Some(app.user.as_str());
    assert_eq!(
        app.call(Method::GET, "/ready", None, None).await.status,
        StatusCode::OK
    );

    // JSON strings of random letters (so compression cannot shrink them) until Redis
    // refuses, then smaller ones until even those are refused (Redis counts a command's
    // own size, so a big write is refused before a small one): every answer is 204 or
    // 507, never 500.
    let mut written = 0;
    for size in [60 * 1024, 4 * 1024, 64] {
        let mut refused = None;
        for _ in 0..5000 {
            let text: String = (0..size)
                .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
                .collect();
            let body = format!("\"{text}\"");
            let r = app
                .call(
                    Method::PUT,
                    &format!("/v1/cache/user/k{written}"),
                    user,
                    Some(&body),
                )
                .await;
            if r.status != StatusCode::NO_CONTENT {
                refused = Some(r);
                break;
            }
            written += 1;
        }
        let r = refused.unwrap_or_else(|| panic!("3 MB of Redis fills with {size}-byte values"));
        assert_eq!(r.status, StatusCode::INSUFFICIENT_STORAGE, "{}", r.text());
        assert_eq!(r.code(), "backend_full");
        assert!(
            r.text().contains("maxmemory"),
            "the message names the setting: {}",
            r.text()
        );
    }

    let r = app.call(Method::GET, "/ready", None, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    let j = r.json();
    assert_eq!(
        (j["ready"].as_bool(), j["code"].as_str()),
        (Some(false), Some("backend_full")),
        "{j}"
    );
    assert_eq!(j["reachable"], true, "{j}");
    // Reads still work: what was stored stays readable.
    let r = app.call(Method::GET, "/v1/cache/user/k0", user, None).await;
    assert_eq!(r.status, StatusCode::OK);

    let metrics = app
        .call(Method::GET, "/metrics", Some(app.admin.as_str()), None)
        .await
        .text();
    assert!(
        metrics.contains("sharecache_http_server_errors_total{code=\"backend_full\"} 3"),
        "{metrics}"
    );

    // Room again: ready again.
    server.cmd(&["FLUSHALL"]);
    let r = app.call(Method::GET, "/ready", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.json().get("reason").is_none());
}

#[tokio::test]
async fn an_unreachable_redis_is_not_ready_unless_readiness_is_lenient() {
    let url = leak(format!(
        "redis://127.0.0.1:{}",
        sharecache_testkit::free_port()
    ));
    let strict = TestApp::new(Backend::Url(url)).await;
    let r = strict.call(Method::GET, "/ready", None, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    let j = r.json();
    assert_eq!(j["code"], "fallback", "{j}");
    assert_eq!(
        (j["fallback"].as_bool(), j["reachable"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(j["reason"].as_str().unwrap().contains("lenient"), "{j}");
    // The fallback still answers requests; readiness only says where traffic should go.
    let user = Some(strict.user.as_str());
    let r = strict
        .call(Method::PUT, "/v1/cache/user/k", user, Some("1"))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    let lenient = TestApp::with_server_config(Backend::Url(url), "readiness = \"lenient\"").await;
    let r = lenient.call(Method::GET, "/ready", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["fallback"], true);

    let bad =
        sharecache_server::config::Config::parse("t.toml", "[server]\nreadiness = \"sometimes\"\n")
            .unwrap_err()
            .to_string();
    assert!(bad.contains("t.toml:2") && bad.contains("strict"), "{bad}");
}

/// A replica refuses writes with READONLY: with `fallback = "fail"` the answer names it,
/// and `/ready` says so.
#[tokio::test]
async fn a_read_only_replica_is_named() {
    let master = RedisServer::start();
    let replica = RedisServer::start();
    replica.cmd(&["REPLICAOF", "127.0.0.1", &master.port().to_string()]);
    let app = TestApp::with_server_config(
        Backend::Url(leak(replica.url())),
        "[backend]\nfallback = \"fail\"",
    )
    .await;
    let user = Some(app.user.as_str());
    let r = app
        .call(Method::PUT, "/v1/cache/user/k", user, Some("1"))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(r.code(), "backend_read_only", "{}", r.text());
    let r = app.call(Method::GET, "/ready", None, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
}

/// A Redis whose `maxmemory-policy` may evict keys without a TTL (`allkeys-lru`) stays
/// ready, but `/ready` warns, naming the policy, what it puts at risk and the fix; a
/// `volatile-lru` one has no warning.
#[tokio::test]
async fn an_evicting_policy_is_warned_about_in_ready() {
    let risky = RedisServer::start_with(RedisConfig::args(&["--maxmemory-policy", "allkeys-lru"]));
    let app = TestApp::new(Backend::Url(leak(risky.url()))).await;
    let r = app.call(Method::GET, "/ready", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let warnings = r.json()["warnings"].clone();
    let w = warnings[0]
        .as_str()
        .unwrap_or_else(|| panic!("a warning: {}", r.text()));
    assert!(
        w.contains("allkeys-lru") && w.contains("volatile-lru") && w.contains("queued"),
        "{w}"
    );
    let safe = RedisServer::start_with(RedisConfig::args(&["--maxmemory-policy", "volatile-lru"]));
    let app = TestApp::new(Backend::Url(leak(safe.url()))).await;
    let r = app.call(Method::GET, "/ready", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.json().get("warnings").is_none(), "{}", r.text());
}
