//! Queues over HTTP on the memory, Redis and Redis Cluster backends.

#[macro_use]
mod support;

use axum::http::{Method, StatusCode};
use support::{Backend, TestApp};

async fn queues(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.user.as_str());
    for i in 0..3 {
        let r = app
            .call(
                Method::POST,
                "/v1/queues/user/email",
                t,
                Some(&format!(r#"{{"to":"u{i}"}}"#)),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        assert!(r.json()["id"].as_str().is_some());
    }
    let claim = r#"{"consumer":"w1","count":2,"visibility_ms":200,"max_deliveries":2}"#;
    let r = app
        .call(Method::POST, "/v1/queues/user/email/_claim", t, Some(claim))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let msgs = r.json()["messages"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["payload"]["to"], "u0");
    assert_eq!(msgs[0]["deliveries"], 1);
    let id0 = msgs[0]["id"].as_str().unwrap().to_owned();
    let r = app
        .call(
            Method::POST,
            "/v1/queues/user/email/_ack",
            t,
            Some(&format!(r#"{{"ids":["{id0}"]}}"#)),
        )
        .await;
    assert_eq!(r.json(), serde_json::json!({"acked": 1}));
    // The unacknowledged one comes back after the visibility timeout, then dead-letters.
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let r = app
        .call(
            Method::POST,
            "/v1/queues/user/email/_claim",
            t,
            Some(r#"{"consumer":"w2","count":10,"visibility_ms":200,"max_deliveries":2}"#),
        )
        .await;
    let msgs = r.json()["messages"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    // u1 (2 deliveries) is dead-lettered; u2 (1 delivery) comes back a second time.
    let r = app
        .call(
            Method::POST,
            "/v1/queues/user/email/_claim",
            t,
            Some(r#"{"consumer":"w3","count":10,"visibility_ms":200,"max_deliveries":2}"#),
        )
        .await;
    let msgs = r.json()["messages"].as_array().unwrap().clone();
    assert_eq!(
        (msgs.len(), msgs[0]["deliveries"].as_u64()),
        (1, Some(2)),
        "{msgs:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let r = app
        .call(
            Method::POST,
            "/v1/queues/user/email/_claim",
            t,
            Some(r#"{"consumer":"w4","count":10,"visibility_ms":200,"max_deliveries":2}"#),
        )
        .await;
    assert_eq!(r.json()["messages"].as_array().unwrap().len(), 0);
    let r = app
        .call(Method::GET, "/v1/queues/user/email/_dead", t, None)
        .await;
    assert_eq!(r.json()["messages"].as_array().unwrap().len(), 2);
    // Bad input (401, 403 and invalid queue names of every route: tests/routes.rs).
    for (uri, body, code) in [
        ("/v1/queues/user/email", "{", "invalid_body"),
        (
            "/v1/queues/user/email/_claim",
            r#"{"count":1}"#,
            "invalid_body",
        ),
        (
            "/v1/queues/user/email/_claim",
            r#"{"consumer":"w","count":0}"#,
            "invalid_argument",
        ),
        (
            "/v1/queues/user/email/_claim",
            r#"{"consumer":"w","visibility_ms":0}"#,
            "invalid_argument",
        ),
        (
            "/v1/queues/user/email/_ack",
            r#"{"ids":["x"]}"#,
            "invalid_argument",
        ),
    ] {
        let r = app.call(Method::POST, uri, t, Some(body)).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, code),
            "{uri} {body}: {}",
            r.text()
        );
    }
    assert_eq!(
        app.call(
            Method::POST,
            "/v1/queues/user/email/_explode",
            t,
            Some("{}")
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
}

on_every_backend!(queues);
