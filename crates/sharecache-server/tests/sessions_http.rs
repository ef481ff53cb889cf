//! Sessions over HTTP on the memory, Redis and Redis Cluster backends: lifecycle, rotation, never
//! adopting unknown ids, isolation and bad input.

#[macro_use]
mod support;

use axum::http::{Method, StatusCode};
use support::{Backend, TestApp};

async fn lifecycle(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.auth.as_str());
    let r = app
        .call(
            Method::POST,
            "/v1/sessions/auth",
            t,
            Some(r#"{"data":{"user":42},"idle_ttl_ms":1800000,"absolute_ttl_ms":86400000}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 43);
    assert!(r.json()["expires_at"].as_u64().unwrap() > 0);
    let r = app
        .call(Method::GET, &format!("/v1/sessions/auth/{id}"), t, None)
        .await;
    assert_eq!(
        (r.status, r.json()["data"]["user"].as_u64()),
        (StatusCode::OK, Some(42))
    );
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/sessions/auth/{id}"),
            t,
            Some(r#"{"data":{"user":42,"mfa":true}}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .call(
            Method::POST,
            &format!("/v1/sessions/auth/{id}/_rotate"),
            t,
            None,
        )
        .await;
    let new = r.json()["id"].as_str().unwrap().to_owned();
    assert_ne!(new, id);
    assert_eq!(
        app.call(Method::GET, &format!("/v1/sessions/auth/{id}"), t, None)
            .await
            .status,
        StatusCode::NOT_FOUND,
        "old id dead"
    );
    assert_eq!(
        app.call(Method::GET, &format!("/v1/sessions/auth/{new}"), t, None)
            .await
            .json()["data"]["mfa"],
        true
    );
    assert_eq!(
        app.call(Method::DELETE, &format!("/v1/sessions/auth/{new}"), t, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.call(Method::DELETE, &format!("/v1/sessions/auth/{new}"), t, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Unknown or forged ids are 404 on every route, and nothing is created for them.
    for bad in [
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "short",
        "..%2F..",
        "%00",
    ] {
        assert_eq!(
            app.call(Method::GET, &format!("/v1/sessions/auth/{bad}"), t, None)
                .await
                .status,
            StatusCode::NOT_FOUND,
            "{bad}"
        );
        assert_eq!(
            app.call(
                Method::PATCH,
                &format!("/v1/sessions/auth/{bad}"),
                t,
                Some(r#"{"data":1}"#)
            )
            .await
            .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.call(
                Method::POST,
                &format!("/v1/sessions/auth/{bad}/_rotate"),
                t,
                None
            )
            .await
            .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.call(Method::GET, &format!("/v1/sessions/auth/{bad}"), t, None)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
    }
}

async fn isolation_and_bad_input(b: Backend) {
    let app = TestApp::new(b).await;
    let r = app
        .call(
            Method::POST,
            "/v1/sessions/auth",
            Some(&app.auth),
            Some(r#"{"data":1}"#),
        )
        .await;
    let id = r.json()["id"].as_str().unwrap().to_owned();
    // Another service cannot read, end or rotate it, even knowing the id.
    for (m, uri) in [
        (Method::GET, format!("/v1/sessions/auth/{id}")),
        (Method::DELETE, format!("/v1/sessions/auth/{id}")),
        (Method::POST, format!("/v1/sessions/auth/{id}/_rotate")),
    ] {
        assert_eq!(
            app.call(m, &uri, Some(&app.user), None).await.status,
            StatusCode::FORBIDDEN
        );
    }
    // The same id in another namespace is unknown there.
    assert_eq!(
        app.call(
            Method::GET,
            &format!("/v1/sessions/user/{id}"),
            Some(&app.user),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    // 401 and 403 on every session route: tests/routes.rs.
    let t = Some(app.auth.as_str());
    for (body, code) in [
        (
            r#"{"idle_ttl_ms":100000,"absolute_ttl_ms":10000}"#,
            "invalid_ttl",
        ),
        (r#"{"idle_ttl_ms":0}"#, "invalid_ttl"),
        (r#"{"idle_ttl_ms":-1}"#, "invalid_body"),
        (r#"{"data":1,"extra":2}"#, "invalid_body"),
        // Durations are milliseconds everywhere: the old seconds names are refused.
        (r#"{"idle_ttl":1800}"#, "invalid_body"),
        (r#"{"absolute_ttl":86400}"#, "invalid_body"),
        ("null", "invalid_body"),
    ] {
        let r = app
            .call(Method::POST, "/v1/sessions/auth", t, Some(body))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, code),
            "{body}: {}",
            r.text()
        );
    }
    // Under the body limit (64 KiB here) but over the 64 KiB session data limit once sealed.
    let big = format!(r#"{{"data":"{}"}}"#, "x".repeat(65_460));
    let r = app
        .call(Method::POST, "/v1/sessions/auth", t, Some(&big))
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "value_too_large")
    );
    // Still the one session we made, alive.
    assert_eq!(
        app.call(Method::GET, &format!("/v1/sessions/auth/{id}"), t, None)
            .await
            .status,
        StatusCode::OK
    );
}

async fn per_user(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.auth.as_str());
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = app
            .call(
                Method::POST,
                "/v1/sessions/auth",
                t,
                Some(r#"{"data":{},"user":"user:42"}"#),
            )
            .await;
        ids.push(r.json()["id"].as_str().unwrap().to_owned());
    }
    let r = app
        .call(Method::GET, "/v1/sessions/auth?user=user%3A42", t, None)
        .await;
    let list = r.json()["sessions"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert!(
        !r.text().contains(&ids[0]) && !r.text().contains(&ids[1]),
        "a listing never shows ids"
    );
    let r = app
        .call(Method::DELETE, "/v1/sessions/auth?user=user%3A42", t, None)
        .await;
    assert_eq!(r.json(), serde_json::json!({"ended": 2}));
    assert_eq!(
        app.call(
            Method::GET,
            &format!("/v1/sessions/auth/{}", ids[0]),
            t,
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call(Method::GET, "/v1/sessions/auth", t, None)
            .await
            .status,
        StatusCode::BAD_REQUEST,
        "user is required"
    );
}

/// Sessions moved from another store keep their ids: `PUT /v1/sessions/{ns}/{id}`
/// creates one under a caller-given id (checked for length and entropy), once.
async fn import_under_a_given_id(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.auth.as_str());
    // What express-session hands out (uid-safe, 24 bytes as base64url).
    let id = "eZbsxpMWD0Bf3hBqJ1hS2nuckVUiLhQz";
    let body = r#"{"data":{"user":7},"user":"ada","idle_ttl_ms":600000,"absolute_ttl_ms":3600000}"#;
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/sessions/auth/{id}"),
            t,
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["id"], id);
    let left = r.json()["expires_at"].as_u64().unwrap() - now_ms();
    assert!((590_000..=600_000).contains(&left), "idle timeout: {left}");
    let r = app
        .call(Method::GET, &format!("/v1/sessions/auth/{id}"), t, None)
        .await;
    assert_eq!(
        (r.status, r.json()["data"]["user"].as_u64()),
        (StatusCode::OK, Some(7))
    );
    // Listed under its user, and ended with the others.
    let r = app
        .call(Method::GET, "/v1/sessions/auth?user=ada", t, None)
        .await;
    assert_eq!(
        r.json()["sessions"].as_array().unwrap().len(),
        1,
        "{}",
        r.text()
    );
    // A second import of the same id changes nothing.
    let other = r#"{"data":{"user":666},"user":"mallory"}"#;
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/sessions/auth/{id}"),
            t,
            Some(other),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "session_exists"),
        "{}",
        r.text()
    );
    let r = app
        .call(Method::GET, &format!("/v1/sessions/auth/{id}"), t, None)
        .await;
    assert_eq!(r.json()["data"]["user"], 7);
    let r = app
        .call(Method::GET, "/v1/sessions/auth?user=mallory", t, None)
        .await;
    assert_eq!(
        r.json()["sessions"],
        serde_json::json!([]),
        "not listed under the loser"
    );
    let r = app
        .call(Method::DELETE, "/v1/sessions/auth?user=ada", t, None)
        .await;
    assert_eq!(r.json()["ended"], 1);
    // Ids that are short, repetitive, guessable or not URL-safe are refused, and nothing
    // is created for them.
    for bad in [
        "0123456789abcdef",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "session-of-ada-lovelace",
        "short",
        "has%20a%20space%20and%20is%20long%20enough",
        &"A1b2".repeat(80),
    ] {
        let r = app
            .call(
                Method::PUT,
                &format!("/v1/sessions/auth/{bad}"),
                t,
                Some("{}"),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
        assert!(
            r.text().contains("imported session id"),
            "{bad}: the message says what an id must be: {}",
            r.text()
        );
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

on_every_backend!(
    lifecycle,
    isolation_and_bad_input,
    per_user,
    import_under_a_given_id
);
