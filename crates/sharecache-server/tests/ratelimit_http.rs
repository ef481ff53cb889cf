//! `POST /v1/ratelimit/{ns}/{key}` on the memory, Redis and Redis Cluster backends: decisions and
//! headers, isolation, bad input.

#[macro_use]
mod support;

use axum::http::{Method, StatusCode};
use support::{Backend, TestApp};

async fn decisions_and_headers(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.auth.as_str());
    let body = r#"{"limit":3,"period_ms":60000}"#;
    for i in 0..3u64 {
        let r = app
            .call(
                Method::POST,
                "/v1/ratelimit/auth/attempts%3Aada%40example.com",
                t,
                Some(body),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let j = r.json();
        assert_eq!(
            (j["allowed"].as_bool(), j["remaining"].as_u64()),
            (Some(true), Some(2 - i))
        );
        assert_eq!(r.headers["ratelimit-limit"], "3");
        assert_eq!(
            r.headers["ratelimit-remaining"].to_str().unwrap(),
            (2 - i).to_string()
        );
        assert_eq!(r.headers["ratelimit-policy"], "3;w=60");
        assert!(!r.headers.contains_key("retry-after"));
    }
    // The fourth attempt is refused with 200 and the decision, never 429.
    let r = app
        .call(
            Method::POST,
            "/v1/ratelimit/auth/attempts%3Aada%40example.com",
            t,
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let j = r.json();
    assert_eq!(j["allowed"], false);
    let retry = j["retry_after_ms"].as_u64().unwrap();
    assert!((19_000..=20_000).contains(&retry), "{retry}");
    assert_eq!(r.headers["retry-after"], "20");
    // The sliding-window variant.
    for i in 0..2 {
        let r = app
            .call(
                Method::POST,
                "/v1/ratelimit/auth/sw",
                t,
                Some(r#"{"limit":2,"period_ms":60000,"algorithm":"sliding_window"}"#),
            )
            .await;
        assert_eq!(r.json()["allowed"], true, "call {i}");
    }
    let r = app
        .call(
            Method::POST,
            "/v1/ratelimit/auth/sw",
            t,
            Some(r#"{"limit":2,"period_ms":60000,"algorithm":"sliding_window"}"#),
        )
        .await;
    assert_eq!(r.json()["allowed"], false);
    let r = app
        .call(
            Method::POST,
            "/v1/ratelimit/auth/sw",
            t,
            Some(r#"{"limit":2,"period_ms":60000,"algorithm":"leaky"}"#),
        )
        .await;
    assert_eq!(r.code(), "invalid_body");
    // cost 0 peeks.
    let r = app
        .call(
            Method::POST,
            "/v1/ratelimit/auth/other",
            t,
            Some(r#"{"limit":3,"period_ms":60000,"cost":0}"#),
        )
        .await;
    assert_eq!(
        (
            r.json()["allowed"].as_bool(),
            r.json()["remaining"].as_u64()
        ),
        (Some(true), Some(3))
    );
}

async fn isolation_and_bad_input(b: Backend) {
    let app = TestApp::new(b).await;
    let body = r#"{"limit":3,"period_ms":60000}"#;
    // A rate limit spends state, so it needs write: the 401, 403 (a read grant included)
    // and invalid keys are checked in tests/routes.rs, for every route.
    // Spending in one namespace does not spend another's bucket of the same key.
    for _ in 0..3 {
        app.call(
            Method::POST,
            "/v1/ratelimit/user/k",
            Some(&app.user),
            Some(body),
        )
        .await;
    }
    let r = app
        .call(
            Method::POST,
            "/v1/ratelimit/auth/k",
            Some(&app.auth),
            Some(body),
        )
        .await;
    assert_eq!(r.json()["remaining"], 2);
    let t = Some(app.auth.as_str());
    for (bad, code) in [
        (r#"{"limit":0,"period_ms":1000}"#, "invalid_argument"),
        (r#"{"limit":5,"period_ms":0}"#, "invalid_argument"),
        (
            r#"{"limit":5,"period_ms":1000,"cost":6}"#,
            "invalid_argument",
        ),
        (
            r#"{"limit":5,"period_ms":99999999999999}"#,
            "invalid_argument",
        ),
        (r#"{"limit":-1,"period_ms":1000}"#, "invalid_body"),
        (r#"{"limit":"5","period_ms":1000}"#, "invalid_body"),
        (r#"{"period_ms":1000}"#, "invalid_body"),
        (r#"{"limit":5,"period_ms":1000,"extra":1}"#, "invalid_body"),
        ("not json", "invalid_body"),
    ] {
        let r = app
            .call(Method::POST, "/v1/ratelimit/auth/bad", t, Some(bad))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, code),
            "{bad}: {}",
            r.text()
        );
    }
    let r = app
        .call(Method::POST, "/v1/ratelimit/auth/k?limit=1", t, Some(body))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // None of the refused calls spent anything.
    let r = app
        .call(Method::POST, "/v1/ratelimit/auth/bad", t, Some(body))
        .await;
    assert_eq!(r.json()["remaining"], 2);
}

on_every_backend!(decisions_and_headers, isolation_and_bad_input);
