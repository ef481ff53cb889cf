//! Services that speak RESP and services that speak HTTP share the same keys: values are
//! stored as plain JSON text by default (`[values] format = "plain"`), reads accept plain
//! and framed values in every namespace, and a key holding something else gets a clear
//! error (`422 not_json`, `409 wrong_type` naming the Redis type), never 404 or 500.

mod support;

use axum::http::{Method, StatusCode};
use support::{Backend, TestApp};

/// ioredis (the seeds' client, from npm) and the HTTP API on one namespace, with L1 on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ioredis_and_http_read_each_others_values() {
    let app = TestApp::new(Backend::Redis).await;
    let addr = app.spawn().await;
    let server = app.server.as_ref().unwrap();
    let (redis_url, http_url) = (server.url(), format!("http://{addr}"));
    let token = app.user.clone();
    let j = tokio::task::spawn_blocking(move || {
        support::node::run_node(
            "ioredis_interop.mjs",
            &[
                ("REDIS_URL", redis_url.as_str()),
                ("SHARECACHE_URL", http_url.as_str()),
                ("TOKEN", token.as_str()),
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(j["ok"], true, "{j}");
}

/// The same with redis-cli's view of the stored bytes, and a framed namespace beside a
/// plain one.
#[tokio::test]
async fn stored_bytes_are_the_json_sent_unless_a_namespace_is_framed() {
    let app =
        TestApp::with_server_config(Backend::Redis, "[values]\nnamespaces = { a = \"json\" }")
            .await;
    let server = app.server.as_ref().unwrap();
    let big = format!("{{\"bio\":\"{}\"}}", "y".repeat(2000));
    for (token, ns) in [(&app.user, "user"), (&app.a, "a")] {
        let r = app
            .call(
                Method::PUT,
                &format!("/v1/cache/{ns}/k"),
                Some(token),
                Some(&big),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = app
            .call(Method::GET, &format!("/v1/cache/{ns}/k"), Some(token), None)
            .await;
        assert_eq!((r.status, r.text()), (StatusCode::OK, big.clone()));
    }
    let plain = server.cmd(&["GET", "user:k"]);
    assert_eq!(
        plain.text(),
        Some(big.as_str()),
        "a plain namespace stores the JSON as sent"
    );
    // The testkit reads replies as UTF-8 (lossy): the header byte shows as U+FFFD.
    let framed = server.cmd(&["GET", "a:k"]).text().unwrap().to_owned();
    assert!(
        framed.starts_with('\u{fffd}'),
        "a framed namespace keeps the header"
    );
    assert!(
        !framed.contains(&"y".repeat(100)),
        "and compresses from 1 KiB"
    );

    // Written by hand: plain JSON reads in both namespaces; the rest is a clear error.
    server.cmd(&["SET", "a:by-hand", "[1,2,3]"]);
    let r = app
        .call(Method::GET, "/v1/cache/a/by-hand", Some(&app.a), None)
        .await;
    assert_eq!((r.status, r.text()), (StatusCode::OK, "[1,2,3]".to_owned()));
    server.cmd(&["SET", "user:bin", "\u{1}\u{2}not json"]);
    server.cmd(&["RPUSH", "user:list", "x"]);
    let t = Some(app.user.as_str());
    let r = app.call(Method::GET, "/v1/cache/user/bin", t, None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "not_json".to_owned())
    );
    let r = app.call(Method::GET, "/v1/cache/user/list", t, None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "wrong_type".to_owned())
    );
    assert!(r.text().contains("Redis list"), "{}", r.text());
    // HEAD and listing agree with GET: the keys exist.
    let r = app.call(Method::HEAD, "/v1/cache/user/bin", t, None).await;
    assert_eq!(r.status, StatusCode::OK);
}

/// Bytes both ways: what HTTP stores as `application/octet-stream` is what redis-cli
/// reads, what redis-cli writes (text that is not JSON, even starting with 0xC5) reads as
/// its bytes over HTTP, and L1 (on) follows a RESP client's write.
#[tokio::test]
async fn bytes_are_shared_with_resp_clients() {
    let app = TestApp::new(Backend::Redis).await;
    let server = app.server.as_ref().unwrap();
    let t = Some(app.user.as_str());
    let accept = [("accept", "application/octet-stream")];
    let r = app
        .call_with(
            Method::PUT,
            "/v1/cache/user/note",
            t,
            &[("content-type", "application/octet-stream")],
            Some(b"remember the milk".to_vec()),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        server.cmd(&["GET", "user:note"]).text(),
        Some("remember the milk")
    );
    server.cmd(&["SET", "user:city", "Łódź, not JSON"]);
    for _ in 0..2 {
        let r = app
            .call_with(Method::GET, "/v1/cache/user/city", t, &accept, None)
            .await;
        assert_eq!(
            (r.status, r.body.as_slice()),
            (StatusCode::OK, "Łódź, not JSON".as_bytes())
        );
    }
    let r = app.call(Method::GET, "/v1/cache/user/city", t, None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "not_json")
    );
    // The key is in L1 now; a RESP write invalidates it.
    server.cmd(&["SET", "user:city", "Kraków"]);
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = app
            .call_with(Method::GET, "/v1/cache/user/city", t, &accept, None)
            .await
            .body;
        if seen == "Kraków".as_bytes() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen,
        "Kraków".as_bytes(),
        "L1 follows a RESP client's write"
    );
}
