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

/// `_stats` counts, a dead letter requeued (once) and one dropped; a viewer may read the
/// figures but change nothing.
async fn figures_requeue_and_drop(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.user.as_str());
    let stats = || async {
        app.call(Method::GET, "/v1/queues/user/jobs/_stats", t, None)
            .await
            .json()
    };
    assert_eq!(
        stats().await,
        serde_json::json!({"ready":0,"pending":0,"dead":0})
    );
    for i in 0..2 {
        let body = format!(r#"{{"n":{i}}}"#);
        app.call(Method::POST, "/v1/queues/user/jobs", t, Some(&body))
            .await;
    }
    let claim = r#"{"consumer":"w","count":2,"visibility_ms":1,"max_deliveries":1}"#;
    let r = app
        .call(Method::POST, "/v1/queues/user/jobs/_claim", t, Some(claim))
        .await;
    assert_eq!(
        r.json()["messages"].as_array().unwrap().len(),
        2,
        "{}",
        r.text()
    );
    assert_eq!(
        stats().await,
        serde_json::json!({"ready":0,"pending":2,"dead":0})
    );
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    app.call(Method::POST, "/v1/queues/user/jobs/_claim", t, Some(claim))
        .await;
    assert_eq!(
        stats().await,
        serde_json::json!({"ready":0,"pending":0,"dead":2})
    );
    let dead = app
        .call(Method::GET, "/v1/queues/user/jobs/_dead", t, None)
        .await
        .json();
    let (a, b) = (
        dead["messages"][0]["id"].as_str().unwrap().to_owned(),
        dead["messages"][1]["id"].as_str().unwrap().to_owned(),
    );
    let viewer = Some(app.viewer.as_str());
    let r = app
        .call(Method::GET, "/v1/queues/user/jobs/_stats", viewer, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call(
            Method::POST,
            &format!("/v1/queues/user/jobs/_dead/{a}/_requeue"),
            viewer,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .call(
            Method::POST,
            &format!("/v1/queues/user/jobs/_dead/{a}/_requeue"),
            t,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_ne!(r.json()["id"], a.as_str());
    let r = app
        .call(
            Method::POST,
            &format!("/v1/queues/user/jobs/_dead/{a}/_requeue"),
            t,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "once");
    let r = app
        .call(
            Method::DELETE,
            &format!("/v1/queues/user/jobs/_dead/{b}"),
            t,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .call(
            Method::DELETE,
            &format!("/v1/queues/user/jobs/_dead/{b}"),
            t,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        stats().await,
        serde_json::json!({"ready":1,"pending":0,"dead":0})
    );
    let r = app
        .call(
            Method::DELETE,
            "/v1/queues/user/jobs/_dead/not-an-id",
            t,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
}

on_every_backend!(queues, figures_requeue_and_drop);
