//! Presence over HTTP on the memory, Redis and Redis Cluster backends.

#[macro_use]
mod support;

use axum::http::{Method, StatusCode};
use support::{Backend, TestApp};

async fn presence(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.user.as_str());
    assert_eq!(
        app.call(Method::PUT, "/v1/presence/user/ada?ttl_ms=60000", t, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.call(
            Method::PUT,
            "/v1/presence/user/bob?ttl_ms=30000&set=room%3A1",
            t,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let r = app.call(Method::GET, "/v1/presence/user", t, None).await;
    assert_eq!(r.json()["count"], 1);
    assert_eq!(r.json()["members"][0]["member"], "ada");
    assert!(r.json()["members"][0]["expires_in_ms"].as_u64().unwrap() > 59_000);
    let r = app
        .call(Method::GET, "/v1/presence/user?set=room%3A1", t, None)
        .await;
    assert_eq!(r.json()["members"][0]["member"], "bob");
    assert_eq!(
        app.call(Method::DELETE, "/v1/presence/user/ada", t, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.call(Method::DELETE, "/v1/presence/user/ada", t, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call(Method::GET, "/v1/presence/user", t, None)
            .await
            .json()["count"],
        0
    );
    // A read grant lists what others wrote (its 403 on a beat, and every other 401 and
    // 403: tests/routes.rs).
    app.call(Method::PUT, "/v1/presence/shared/ada", t, None)
        .await;
    assert_eq!(
        app.call(Method::GET, "/v1/presence/shared", Some(&app.auth), None)
            .await
            .json()["count"],
        1
    );
    // Bad input.
    for (uri, code) in [
        ("/v1/presence/user/ada?ttl_ms=0", "invalid_ttl"),
        ("/v1/presence/user/ada?ttl_ms=-5", "invalid_ttl"),
        ("/v1/presence/user/ada?ttl_ms=abc", "invalid_ttl"),
        ("/v1/presence/user/ada?ttl_ms=86400001", "invalid_ttl"),
        ("/v1/presence/user/ada?foo=1", "invalid_query"),
        // Durations are milliseconds everywhere: the old seconds name is refused.
        ("/v1/presence/user/ada?ttl=60", "invalid_query"),
        ("/v1/presence/user/ada?set=", "invalid_key"),
    ] {
        let r = app.call(Method::PUT, uri, t, None).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, code),
            "{uri}: {}",
            r.text()
        );
    }
    assert_eq!(
        app.call(Method::GET, "/v1/presence/user", t, None)
            .await
            .json()["count"],
        0,
        "nothing was added"
    );
}

on_every_backend!(presence);
