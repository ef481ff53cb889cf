//! Locks over HTTP on the memory, Redis and Redis Cluster backends: acquire, 409 when held, owner-only
//! extend and release, fences, isolation and bad input.

#[macro_use]
mod support;

use axum::http::{Method, StatusCode};
use support::{Backend, TestApp};

async fn lock_lifecycle(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.user.as_str());
    let r = app
        .call(
            Method::POST,
            "/v1/locks/user/job%3A1",
            t,
            Some(r#"{"ttl_ms":10000}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let (token, fence) = (
        r.json()["token"].as_str().unwrap().to_owned(),
        r.json()["fence"].as_u64().unwrap(),
    );
    assert!(token.len() >= 32);
    let r = app
        .call(
            Method::POST,
            "/v1/locks/user/job%3A1",
            t,
            Some(r#"{"ttl_ms":10000,"wait_ms":50}"#),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "conflict")
    );
    let r = app
        .call(
            Method::POST,
            "/v1/locks/user/job%3A1/_extend",
            t,
            Some(r#"{"token":"forged","ttl_ms":10000}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app
        .call(
            Method::POST,
            "/v1/locks/user/job%3A1/_extend",
            t,
            Some(&format!(r#"{{"token":"{token}","ttl_ms":10000}}"#)),
        )
        .await;
    assert_eq!(r.json(), serde_json::json!({"extended": true}));
    assert_eq!(
        app.call(
            Method::DELETE,
            "/v1/locks/user/job%3A1?token=forged",
            t,
            None
        )
        .await
        .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.call(
            Method::DELETE,
            &format!("/v1/locks/user/job%3A1?token={token}"),
            t,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.call(
            Method::DELETE,
            &format!("/v1/locks/user/job%3A1?token={token}"),
            t,
            None
        )
        .await
        .status,
        StatusCode::CONFLICT
    );
    let r = app
        .call(
            Method::POST,
            "/v1/locks/user/job%3A1",
            t,
            Some(r#"{"ttl_ms":10000}"#),
        )
        .await;
    assert!(
        r.json()["fence"].as_u64().unwrap() > fence,
        "fences increase"
    );
}

async fn isolation_and_bad_input(b: Backend) {
    let app = TestApp::new(b).await;
    let body = r#"{"ttl_ms":10000}"#;
    // 401, 403 and invalid names: tests/routes.rs, for every route.
    // Same lock name in two namespaces: two locks.
    assert_eq!(
        app.call(
            Method::POST,
            "/v1/locks/user/x",
            Some(&app.user),
            Some(body)
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        app.call(
            Method::POST,
            "/v1/locks/auth/x",
            Some(&app.auth),
            Some(body)
        )
        .await
        .status,
        StatusCode::OK
    );
    let t = Some(app.user.as_str());
    for (bad, code) in [
        (r#"{"ttl_ms":0}"#, "invalid_argument"),
        (r#"{"ttl_ms":90000000}"#, "invalid_argument"),
        (r#"{"ttl_ms":1000,"wait_ms":4000000}"#, "invalid_argument"),
        (r#"{"ttl_ms":-1}"#, "invalid_body"),
        (r#"{}"#, "invalid_body"),
        (r#"{"ttl_ms":1000,"extra":true}"#, "invalid_body"),
    ] {
        let r = app
            .call(Method::POST, "/v1/locks/user/y", t, Some(bad))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, code),
            "{bad}: {}",
            r.text()
        );
    }
    assert_eq!(
        app.call(Method::DELETE, "/v1/locks/user/y", t, None)
            .await
            .status,
        StatusCode::BAD_REQUEST,
        "token required"
    );
    // None of the refused calls took the lock.
    assert_eq!(
        app.call(Method::POST, "/v1/locks/user/y", t, Some(body))
            .await
            .status,
        StatusCode::OK
    );
}

on_every_backend!(lock_lifecycle, isolation_and_bad_input);
