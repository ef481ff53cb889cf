//! Events over HTTP on the memory, Redis and Redis Cluster backends: publish, Server-Sent
//! Events over a real socket, durable replay, bad input.

#[macro_use]
mod support;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use futures_util::StreamExt;
use support::{Backend, TestApp};

/// Forwards the SSE `data:` lines of a streaming response, as they arrive.
fn data_lines(resp: reqwest::Response) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut body = resp.bytes_stream();
        let mut buf = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(i) = buf.find("\n\n") {
                let frame: String = buf.drain(..i + 2).collect();
                for line in frame.lines() {
                    if let Some(d) = line.strip_prefix("data:")
                        && tx.send(d.trim().to_owned()).is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    rx
}

async fn sse(b: Backend) {
    let app = TestApp::new(b).await;
    let addr = app.spawn().await;
    let c = support::client();
    let resp = c
        .get(format!("http://{addr}/v1/events/user/room%3A1"))
        .bearer_auth(&app.user)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut events = data_lines(resp);
    // Publish until the subscription is live (an event comes through: on a Redis Cluster
    // PUBLISH counts only the receivers on the node it ran on, so the count cannot tell),
    // then three events in order.
    let t = Some(app.user.as_str());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        app.call(
            Method::POST,
            "/v1/events/user/room%3A1",
            t,
            Some(r#"{"hello":0}"#),
        )
        .await;
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), events.recv()).await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscription never went live"
        );
    }
    for i in 1..=3 {
        app.call(
            Method::POST,
            "/v1/events/user/room%3A1",
            t,
            Some(&format!(r#"{{"n":{i}}}"#)),
        )
        .await;
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        let e = tokio::time::timeout_at(deadline + Duration::from_secs(5), events.recv())
            .await
            .expect("events in time")
            .expect("stream open");
        // Greetings published while the subscription was starting may still arrive.
        if e != r#"{"hello":0}"# {
            got.push(e);
        }
    }
    assert_eq!(got, [r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#]);
}

async fn isolation_and_bad_input(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.user.as_str());
    // Subscribing needs read, publishing write: the 401, 403 and invalid channels of
    // every route are checked in tests/routes.rs.
    for (body, code) in [
        ("", "invalid_body"),
        ("{", "invalid_body"),
        ("nope", "invalid_body"),
    ] {
        let r = app
            .call(Method::POST, "/v1/events/user/c", t, Some(body))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, code),
            "{body:?}"
        );
    }
    let big = format!("\"{}\"", "x".repeat(70_000));
    assert_eq!(
        app.call(Method::POST, "/v1/events/user/c", t, Some(&big))
            .await
            .status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

async fn durable(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.user.as_str());
    let r = app
        .call(
            Method::POST,
            "/v1/events/user/audit?durable=true",
            t,
            Some(r#"{"n":1}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let id1 = r.json()["id"].as_str().unwrap().to_owned();
    app.call(
        Method::POST,
        "/v1/events/user/audit?durable=true",
        t,
        Some(r#"{"n":2}"#),
    )
    .await;
    let r = app
        .call(Method::GET, "/v1/events/user/audit/_since", t, None)
        .await;
    assert_eq!(r.json()["events"].as_array().unwrap().len(), 2);
    let r = app
        .call(
            Method::GET,
            &format!("/v1/events/user/audit/_since?after={id1}"),
            t,
            None,
        )
        .await;
    assert_eq!(r.json()["events"][0]["data"]["n"], 2);
    assert_eq!(r.json()["events"].as_array().unwrap().len(), 1);
    let r = app
        .call(
            Method::GET,
            "/v1/events/user/audit/_since?after=junk",
            t,
            None,
        )
        .await;
    assert_eq!(r.code(), "invalid_argument");
    assert_eq!(
        app.call(
            Method::POST,
            "/v1/events/user/audit?durable=maybe",
            t,
            Some("1")
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
}

on_every_backend!(durable, sse, isolation_and_bad_input);

/// One credential holds at most `[server] sse_per_credential` streams: the next one is
/// 429 `too_many_streams`, other credentials are not affected, and closing a stream gives
/// its slot back.
#[tokio::test]
async fn streams_are_limited_per_credential() {
    use tower::ServiceExt;
    let app = TestApp::with_server_config(Backend::Memory, "sse_per_credential = 2").await;
    let open = |token: &str| {
        let req = axum::http::Request::get("/v1/events/user/room")
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let router = app.router.clone();
        async move { router.oneshot(req).await.unwrap() }
    };
    let first = open(&app.user).await;
    let second = open(&app.user).await;
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let third = open(&app.user).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let body = axum::body::to_bytes(third.into_body(), 1 << 16)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sse_per_credential"),
        "{body}"
    );
    // Another credential has its own slots.
    assert_eq!(open(&app.admin).await.status(), StatusCode::OK);
    drop(first);
    assert_eq!(
        open(&app.user).await.status(),
        StatusCode::OK,
        "a closed stream's slot is free again"
    );
}
