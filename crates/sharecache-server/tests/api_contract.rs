//! The cache rows of the HTTP API v1 and the operational endpoints, on the memory, Redis
//! and Redis Cluster backends, through the router (`oneshot`) and over a real socket.

#[macro_use]
mod support;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use support::{Backend, TestApp, enc};

async fn single_keys(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.user.as_str());
    let r = app
        .call(Method::GET, "/v1/cache/user/profile%3A42", t, None)
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let r = app
        .call(
            Method::PUT,
            "/v1/cache/user/profile%3A42?ttl=60",
            t,
            Some(r#"{"name":"Ada","n":[1,2]}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = app
        .call(Method::GET, "/v1/cache/user/profile%3A42", t, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["x-cache-tier"], "l2");
    assert!(r.headers.contains_key("x-request-id"));
    assert_eq!(r.json(), serde_json::json!({"name": "Ada", "n": [1, 2]}));
    // The stored value is the JSON document as sent, scalars included.
    for v in [
        "1",
        "\"text\"",
        "null",
        "true",
        "[]",
        "{\"nested\":{\"deep\":[{}]}}",
    ] {
        let r = app
            .call(Method::PUT, "/v1/cache/user/scalar", t, Some(v))
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(
            app.call(Method::GET, "/v1/cache/user/scalar", t, None)
                .await
                .text(),
            v
        );
    }
    assert_eq!(
        app.call(Method::HEAD, "/v1/cache/user/profile%3A42", t, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.call(Method::HEAD, "/v1/cache/user/nope", t, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call(Method::DELETE, "/v1/cache/user/profile%3A42", t, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let r = app
        .call(Method::DELETE, "/v1/cache/user/profile%3A42", t, None)
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    // The library sees what HTTP stored, under the same namespace.
    app.call(
        Method::PUT,
        "/v1/cache/user/shared-with-lib",
        t,
        Some(r#"{"id":7}"#),
    )
    .await;
    let v: Option<serde_json::Value> = app
        .cache
        .namespace("user")
        .unwrap()
        .get("shared-with-lib")
        .await
        .unwrap();
    assert_eq!(v.unwrap()["id"], 7);
}

async fn ttl_expires(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.user.as_str());
    app.call(Method::PUT, "/v1/cache/user/short?ttl=1", t, Some("1"))
        .await;
    app.call(Method::PUT, "/v1/cache/user/forever", t, Some("2"))
        .await;
    assert_eq!(
        app.call(Method::GET, "/v1/cache/user/short", t, None)
            .await
            .status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        app.call(Method::GET, "/v1/cache/user/short", t, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call(Method::GET, "/v1/cache/user/forever", t, None)
            .await
            .status,
        StatusCode::OK
    );
}

async fn keys_with_every_kind_of_character(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.user.as_str());
    let keys = [
        "a/b",
        "a b",
        "ключ",
        "🎉",
        "x*y",
        "q?",
        "[z]",
        "back\\slash",
        "..",
        "%41",
        "a:b:c",
        "?x=1&y=2",
        "#frag",
    ];
    for (i, k) in keys.iter().enumerate() {
        let r = app
            .call(
                Method::PUT,
                &format!("/v1/cache/user/{}", enc(k)),
                t,
                Some(&i.to_string()),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{k}: {}", r.text());
    }
    for (i, k) in keys.iter().enumerate() {
        let r = app
            .call(Method::GET, &format!("/v1/cache/user/{}", enc(k)), t, None)
            .await;
        assert_eq!(r.text(), i.to_string(), "{k}");
    }
    let r = app
        .call(Method::GET, "/v1/cache/user?count=100", t, None)
        .await;
    let mut listed: Vec<String> = serde_json::from_value(r.json()["keys"].clone()).unwrap();
    listed.sort();
    let mut want: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(listed, want);
}

async fn batches(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.user.as_str());
    let r = app
        .call(
            Method::POST,
            "/v1/cache/user/_mset",
            t,
            Some(r#"{"items":{"a":1,"b":{"x":[true]},"c":"s"},"ttl":300}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = app
        .call(
            Method::POST,
            "/v1/cache/user/_mget",
            t,
            Some(r#"{"keys":["a","missing","b","c"]}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        serde_json::json!({"values": [1, null, {"x": [true]}, "s"]})
    );
    let r = app
        .call(
            Method::POST,
            "/v1/cache/user/_mdel",
            t,
            Some(r#"{"keys":["a","missing","c"]}"#),
        )
        .await;
    assert_eq!(r.json(), serde_json::json!({"deleted": 2}));
    let r = app
        .call(
            Method::POST,
            "/v1/cache/user/_mget",
            t,
            Some(r#"{"keys":[]}"#),
        )
        .await;
    assert_eq!(r.json(), serde_json::json!({"values": []}));
    // mset without ttl: no expiry.
    app.call(
        Method::POST,
        "/v1/cache/user/_mset",
        t,
        Some(r#"{"items":{"p":1}}"#),
    )
    .await;
    assert_eq!(
        app.call(Method::GET, "/v1/cache/user/p", t, None)
            .await
            .text(),
        "1"
    );
}

/// The batch operations are routes of their own; a key spelt like one is still a key,
/// reached by percent-encoding its first character.
async fn keys_named_like_operations(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.user.as_str());
    for op in ["_mget", "_mset", "_mdel", "_invalidate"] {
        let uri = format!("/v1/cache/user/%5F{}", &op[1..]);
        let r = app
            .call(Method::PUT, &uri, t, Some(&format!("\"{op}\"")))
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{op}: {}", r.text());
        let r = app.call(Method::GET, &uri, t, None).await;
        assert_eq!(r.json(), serde_json::json!(op), "{op}");
        // Unencoded, the same segment is the operation.
        let r = app
            .call(Method::GET, &format!("/v1/cache/user/{op}"), t, None)
            .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "GET {op}");
    }
    let r = app
        .call(
            Method::POST,
            "/v1/cache/user/_mget",
            t,
            Some(r#"{"keys":["_mget","_mdel"]}"#),
        )
        .await;
    assert_eq!(r.json(), serde_json::json!({"values": ["_mget", "_mdel"]}));
    let r = app
        .call(Method::GET, "/v1/cache/user?match=_m*", t, None)
        .await;
    let mut keys: Vec<String> = serde_json::from_value(r.json()["keys"].clone()).unwrap();
    keys.sort();
    assert_eq!(keys, ["_mdel", "_mget", "_mset"]);
    let r = app
        .call(Method::DELETE, "/v1/cache/user/%5Fmdel", t, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

async fn patterns_listing_and_clear(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.user.as_str());
    for i in 0..30 {
        app.call(
            Method::PUT,
            &format!("/v1/cache/user/session%3A{i}"),
            t,
            Some("1"),
        )
        .await;
        app.call(
            Method::PUT,
            &format!("/v1/cache/user/profile%3A{i}"),
            t,
            Some("1"),
        )
        .await;
    }
    // Page through session:* with small pages.
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let uri = match &cursor {
            Some(c) => format!("/v1/cache/user?match=session%3A*&count=7&cursor={}", enc(c)),
            None => "/v1/cache/user?match=session%3A*&count=7".to_owned(),
        };
        let r = app.call(Method::GET, &uri, t, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let j = r.json();
        for k in j["keys"].as_array().unwrap() {
            assert!(k.as_str().unwrap().starts_with("session:"));
            seen.insert(k.as_str().unwrap().to_owned());
        }
        match j["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 30);
    let r = app
        .call(
            Method::POST,
            "/v1/cache/user/_invalidate",
            t,
            Some(r#"{"pattern":"session:1*"}"#),
        )
        .await;
    assert_eq!(r.json(), serde_json::json!({"deleted": 11}));
    let r = app.call(Method::DELETE, "/v1/cache/user", t, None).await;
    assert_eq!(r.json(), serde_json::json!({"deleted": 49}));
    let r = app.call(Method::GET, "/v1/cache/user", t, None).await;
    assert_eq!(r.json()["keys"], serde_json::json!([]));
}

async fn tags(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.user.as_str());
    let put = |k: &'static str, tags: &'static str| {
        let app = &app;
        async move {
            app.call(
                Method::PUT,
                &format!("/v1/cache/user/{k}?ttl=60&tags={tags}"),
                t,
                Some("1"),
            )
            .await
        }
    };
    assert_eq!(
        put("a", "user%3A42,org%3A1").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(put("b", "user%3A42").await.status, StatusCode::NO_CONTENT);
    assert_eq!(put("c", "org%3A1").await.status, StatusCode::NO_CONTENT);
    let r = app
        .call(
            Method::POST,
            "/v1/cache/user/_invalidate",
            t,
            Some(r#"{"tags":["user:42"]}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"deleted": 0, "invalidated_tags": 1})
    );
    assert_eq!(
        app.call(Method::GET, "/v1/cache/user/a", t, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call(Method::GET, "/v1/cache/user/b", t, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call(Method::GET, "/v1/cache/user/c", t, None)
            .await
            .text(),
        "1"
    );
    let r = app
        .call(
            Method::POST,
            "/v1/cache/user/_mget",
            t,
            Some(r#"{"keys":["a","c"]}"#),
        )
        .await;
    assert_eq!(r.json(), serde_json::json!({"values": [null, 1]}));
    // Bad tags: 400 and nothing stored.
    for bad in ["", "a,,b", "%0A", &"t".repeat(129)] {
        let r = app
            .call(
                Method::PUT,
                &format!("/v1/cache/user/bad?tags={bad}"),
                t,
                Some("1"),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}: {}", r.text());
        assert_eq!(r.code(), "invalid_key");
    }
    assert_eq!(
        app.call(Method::GET, "/v1/cache/user/bad", t, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .call(
            Method::POST,
            "/v1/cache/user/_invalidate",
            t,
            Some(r#"{"tags":[""]}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // A service without write access cannot invalidate another namespace's tags.
    let r = app
        .call(
            Method::POST,
            "/v1/cache/user/_invalidate",
            Some(&app.auth),
            Some(r#"{"tags":["org:1"]}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.call(Method::GET, "/v1/cache/user/c", t, None)
            .await
            .text(),
        "1"
    );
}

async fn operations_endpoints(b: Backend) {
    let app = TestApp::new(b).await;
    let r = app.call(Method::GET, "/health", None, None).await;
    assert_eq!(
        (r.status, r.json()["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let r = app.call(Method::GET, "/ready", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let j = r.json();
    assert_eq!(j["ready"], true);
    assert_eq!(j["reachable"], true);
    assert_eq!(
        j["backend"],
        if b == Backend::Memory {
            "memory"
        } else {
            "connected"
        }
    );
    assert!(j["latency_ms"].as_f64().is_some());

    let t = Some(app.user.as_str());
    app.call(Method::PUT, "/v1/cache/user/k", t, Some("1"))
        .await;
    app.call(Method::GET, "/v1/cache/user/k", t, None).await;
    app.call(Method::GET, "/v1/cache/user/missing", t, None)
        .await;
    // Refused before the grant check: the operation is the route's, the namespace unknown.
    app.call(Method::GET, "/v1/cache/user/k", Some(&app.auth), None)
        .await;

    let r = app
        .call(Method::GET, "/metrics", Some(&app.admin), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let m = r.text();
    assert!(
        m.contains(
            r#"sharecache_http_requests_total{namespace="user",operation="get",status="200"} 1"#
        ),
        "{m}"
    );
    assert!(
        m.contains(
            r#"sharecache_http_requests_total{namespace="user",operation="get",status="404"} 1"#
        ),
        "{m}"
    );
    assert!(
        m.contains(
            r#"sharecache_http_requests_total{namespace="-",operation="get",status="403"} 1"#
        ),
        "{m}"
    );
    assert!(
        m.contains(r#"sharecache_cache_hits_total{namespace="user"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"sharecache_cache_misses_total{namespace="user"} 1"#),
        "{m}"
    );
    assert!(
        m.contains("sharecache_http_request_duration_seconds_bucket"),
        "{m}"
    );
    let state = if b == Backend::Memory {
        "memory"
    } else {
        "connected"
    };
    assert!(
        m.contains(&format!("sharecache_backend_state{{state=\"{state}\"}} 1")),
        "{m}"
    );
    assert_eq!(
        app.call(Method::GET, "/metrics", None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.call(Method::GET, "/metrics", t, None).await.status,
        StatusCode::FORBIDDEN
    );

    let r = app
        .call(Method::GET, "/v1/stats", Some(&app.admin), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let j = r.json();
    let user = j["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["namespace"] == "user")
        .unwrap()
        .clone();
    assert_eq!(
        (
            user["keys"].as_u64(),
            user["hits"].as_u64(),
            user["misses"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(user["hit_ratio"].as_f64(), Some(0.5));
    assert!(user["bytes_estimate"].as_u64().unwrap() > 0);
    assert!(j["backend"]["keys"].as_u64().unwrap() >= 1);

    // A service sees its namespaces but not the store-wide figures of every tenant.
    let r = app.call(Method::GET, "/v1/stats", t, None).await;
    let j = r.json();
    assert_eq!(
        j["backend"].as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["state"]
    );

    let r = app.call(Method::GET, "/openapi.json", None, None).await;
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/v1/cache/{ns}/{key}",
        "/v1/cache/{ns}",
        "/v1/cache/{ns}/_mget",
        "/v1/cache/{ns}/_mset",
        "/v1/cache/{ns}/_mdel",
        "/v1/cache/{ns}/_invalidate",
        "/health",
        "/ready",
        "/metrics",
        "/v1/stats",
    ] {
        assert!(doc["paths"].get(p).is_some(), "openapi lacks {p}");
    }
    let r = app.call(Method::GET, "/no/such/route", None, None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

async fn over_a_real_socket(b: Backend) {
    let app = TestApp::new(b).await;
    let addr = app.spawn().await;
    let c = support::client();
    let base = format!("http://{addr}");
    let r = c
        .put(format!("{base}/v1/cache/user/sock?ttl=30"))
        .bearer_auth(&app.user)
        .header("content-type", "application/json")
        .body(r#"{"v":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c
        .get(format!("{base}/v1/cache/user/sock"))
        .bearer_auth(&app.user)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache-tier"], "l2");
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["v"], 1);
    // Many concurrent clients over keep-alive connections.
    let mut tasks = Vec::new();
    for i in 0..32 {
        let (c, base, tok) = (c.clone(), base.clone(), app.user.clone());
        tasks.push(tokio::spawn(async move {
            for j in 0..20 {
                let url = format!("{base}/v1/cache/user/c{i}-{j}");
                let r = c
                    .put(&url)
                    .bearer_auth(&tok)
                    .header("content-type", "application/json")
                    .body(j.to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 204);
                let r = c.get(&url).bearer_auth(&tok).send().await.unwrap();
                assert_eq!(r.text().await.unwrap(), j.to_string());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// `_ttl`: read a key's TTL in ms, change it, make the key persistent; 404 for a key that
/// does not exist (and nothing is created); bad bodies refused.
async fn ttl_routes(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.user.as_str());
    app.call(
        Method::PUT,
        "/v1/cache/user/k?ttl=60",
        t,
        Some(r#"{"a":1}"#),
    )
    .await;
    let r = app
        .call(Method::GET, "/v1/cache/user/k/_ttl", t, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let ms = r.json()["ttl_ms"].as_u64().unwrap();
    assert!((58_000..=60_000).contains(&ms), "{ms}");

    let put = |body: &'static str| app.call(Method::PUT, "/v1/cache/user/k/_ttl", t, Some(body));
    assert_eq!(
        put(r#"{"ttl_ms":null}"#).await.status,
        StatusCode::NO_CONTENT
    );
    let r = app
        .call(Method::GET, "/v1/cache/user/k/_ttl", t, None)
        .await;
    assert_eq!(r.json(), serde_json::json!({"ttl_ms": null}));
    assert_eq!(
        put(r#"{"ttl_ms":250}"#).await.status,
        StatusCode::NO_CONTENT
    );
    let r = app.call(Method::GET, "/v1/cache/user/k", t, None).await;
    assert_eq!(r.text(), r#"{"a":1}"#, "the value is untouched");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let r = app.call(Method::GET, "/v1/cache/user/k", t, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "expired on the new TTL");

    for body in [
        r#"{}"#,
        r#"{"ttl_ms":0}"#,
        r#"{"ttl_ms":-5}"#,
        r#"{"ttl_ms":"60"}"#,
        r#"{"ttl_ms":1,"x":1}"#,
        r#"{"ttl_ms":315360000001}"#,
    ] {
        app.call(Method::PUT, "/v1/cache/user/k2", t, Some("1"))
            .await;
        let r = app
            .call(Method::PUT, "/v1/cache/user/k2/_ttl", t, Some(body))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text());
    }
    let r = app
        .call(Method::GET, "/v1/cache/user/nope/_ttl", t, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .call(
            Method::PUT,
            "/v1/cache/user/nope/_ttl",
            t,
            Some(r#"{"ttl_ms":1000}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.call(Method::HEAD, "/v1/cache/user/nope", t, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "nothing was created");
}

/// Counters, `If-None-Match: *` (one winner among racing writers) and a rate-limit reset.
async fn counters_conditional_puts_and_resets(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.user.as_str());
    let incr =
        |body: &'static str| app.call(Method::POST, "/v1/cache/user/hits/_incr", t, Some(body));
    assert_eq!(
        incr(r#"{"ttl":60}"#).await.json(),
        serde_json::json!({"value": 1})
    );
    assert_eq!(
        incr(r#"{"by":-5}"#).await.json(),
        serde_json::json!({"value": -4})
    );
    let r = app.call(Method::GET, "/v1/cache/user/hits", t, None).await;
    assert_eq!(
        (r.status, r.text()),
        (StatusCode::OK, "-4".to_owned()),
        "a counter reads as a number"
    );
    for bad in [
        r#"{"by":"1"}"#,
        r#"{"by":1.5}"#,
        r#"{"ttl":0}"#,
        r#"{"x":1}"#,
    ] {
        assert_eq!(incr(bad).await.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    app.call(Method::PUT, "/v1/cache/user/doc", t, Some(r#"{"a":1}"#))
        .await;
    let r = app
        .call(Method::POST, "/v1/cache/user/doc/_incr", t, Some("{}"))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "wrong_type".to_owned())
    );

    // Eight writers race to create one key: exactly one wins.
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let req = axum::http::Request::builder()
                .method(Method::PUT)
                .uri("/v1/cache/user/slot")
                .header("authorization", format!("Bearer {}", app.user))
                .header("content-type", "application/json")
                .header("if-none-match", "*")
                .body(axum::body::Body::from(format!("{i}")))
                .unwrap();
            app.send(req).await.status
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let won = statuses
        .iter()
        .filter(|s| **s == StatusCode::NO_CONTENT)
        .count();
    let lost = statuses
        .iter()
        .filter(|s| **s == StatusCode::PRECONDITION_FAILED)
        .count();
    assert_eq!((won, lost), (1, 7), "{statuses:?}");
    let bad = axum::http::Request::builder()
        .method(Method::PUT)
        .uri("/v1/cache/user/slot2")
        .header("authorization", format!("Bearer {}", app.user))
        .header("if-none-match", "\"abc\"")
        .body(axum::body::Body::from("1"))
        .unwrap();
    let r = app.send(bad).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_precondition".to_owned())
    );
    let t = Some(app.user.as_str());
    let r = app
        .call(Method::HEAD, "/v1/cache/user/slot2", t, None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "a refused precondition writes nothing"
    );

    // A rate limit spent, reset, and full again.
    let limit = r#"{"limit":1,"period_ms":600000}"#;
    let decide = || app.call(Method::POST, "/v1/ratelimit/user/login:ada", t, Some(limit));
    assert_eq!(decide().await.json()["allowed"], true);
    assert_eq!(decide().await.json()["allowed"], false);
    let r = app
        .call(Method::DELETE, "/v1/ratelimit/user/login:ada", t, None)
        .await;
    assert_eq!(r.json(), serde_json::json!({"reset": true}));
    assert_eq!(decide().await.json()["allowed"], true);
}

/// Reads carry an `ETag` (the value's version) and `x-cache-ttl-ms`; `If-Match` with
/// that tag is compare-and-set (one winner among racing writers, 412 for the others),
/// `If-None-Match` with it on a GET answers 304; `ttl_ms` sets TTLs in milliseconds
/// beside `ttl` in seconds.
async fn etags_and_ttls(b: Backend) {
    let app = std::sync::Arc::new(TestApp::new(b).await);
    let t = Some(app.user.as_str());
    let r = app
        .call(
            Method::PUT,
            "/v1/cache/user/doc?ttl_ms=90000",
            t,
            Some(r#"{"v":0}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let mut tag = String::new();
    for _ in 0..2 {
        // The second read may come from L1: the same tag and a TTL counting down.
        let r = app.call(Method::GET, "/v1/cache/user/doc", t, None).await;
        assert_eq!(r.status, StatusCode::OK);
        let etag = r.headers["etag"].to_str().unwrap().to_owned();
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34,
            "{etag}"
        );
        assert!(tag.is_empty() || tag == etag, "a value keeps its tag");
        tag = etag;
        let left: u64 = r.headers["x-cache-ttl-ms"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((80_000..=90_000).contains(&left), "{left}");
    }
    let r = app
        .call_with(
            Method::GET,
            "/v1/cache/user/doc",
            t,
            &[("if-none-match", &tag)],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.body.is_empty());
    // Eight writers with the same tag: exactly one wins.
    let mut tasks = Vec::new();
    for i in 1..=8 {
        let (app, tag) = (app.clone(), tag.clone());
        tasks.push(tokio::spawn(async move {
            let body = format!(r#"{{"v":{i}}}"#).into_bytes();
            let r = app
                .call_with(
                    Method::PUT,
                    "/v1/cache/user/doc",
                    Some(&app.user),
                    &[("if-match", &tag)],
                    Some(body),
                )
                .await;
            (r.status, i)
        }));
    }
    let mut won = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (StatusCode::NO_CONTENT, i) => won.push(i),
            (StatusCode::PRECONDITION_FAILED, _) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    let r = app.call(Method::GET, "/v1/cache/user/doc", t, None).await;
    assert_eq!(r.json()["v"], won[0]);
    assert_ne!(
        r.headers["etag"].to_str().unwrap(),
        tag,
        "a new value, a new tag"
    );
    assert!(
        r.headers.get("x-cache-ttl-ms").is_none(),
        "the winner set no TTL"
    );
    let r = app
        .call_with(
            Method::PUT,
            "/v1/cache/user/doc",
            t,
            &[("if-match", &tag)],
            Some(b"1".to_vec()),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PRECONDITION_FAILED, "precondition_failed")
    );
    let r = app
        .call_with(
            Method::PUT,
            "/v1/cache/user/absent",
            t,
            &[("if-match", &tag)],
            Some(b"1".to_vec()),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::PRECONDITION_FAILED,
        "nothing to match"
    );
    assert_eq!(
        app.call(Method::HEAD, "/v1/cache/user/absent", t, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Malformed conditions are refused, and nothing is written.
    for headers in [
        &[("if-match", "*")][..],
        &[("if-match", "\"nothex\"")],
        &[("if-match", "W/\"00000000000000000000000000000000\"")],
        &[("if-match", "\"a\", \"b\"")],
        &[("if-match", &tag), ("if-none-match", "*")],
    ] {
        let r = app
            .call_with(
                Method::PUT,
                "/v1/cache/user/c",
                t,
                headers,
                Some(b"1".to_vec()),
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "invalid_precondition"),
            "{headers:?}"
        );
    }
    assert_eq!(
        app.call(Method::HEAD, "/v1/cache/user/c", t, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .call_with(
            Method::PUT,
            "/v1/cache/user/c?tags=x",
            t,
            &[("if-match", &tag)],
            Some(b"1".to_vec()),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // ttl_ms on every write that takes a TTL; never both units at once.
    let r = app
        .call(
            Method::POST,
            "/v1/cache/user/_mset",
            t,
            Some(r#"{"items":{"m":1},"ttl_ms":1500}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = app
        .call(Method::GET, "/v1/cache/user/m/_ttl", t, None)
        .await;
    assert!(r.json()["ttl_ms"].as_u64().unwrap() <= 1500, "{}", r.text());
    let r = app
        .call(
            Method::POST,
            "/v1/cache/user/n/_incr",
            t,
            Some(r#"{"by":2,"ttl_ms":2500}"#),
        )
        .await;
    assert_eq!(r.json()["value"], 2);
    let r = app.call(Method::GET, "/v1/cache/user/n", t, None).await;
    let left: u64 = r.headers["x-cache-ttl-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(left <= 2500, "{left}");
    for (uri, body) in [
        ("/v1/cache/user/k?ttl=5&ttl_ms=5000", Some("1")),
        ("/v1/cache/user/k?ttl_ms=0", Some("1")),
        ("/v1/cache/user/k?ttl_ms=1.5", Some("1")),
        ("/v1/cache/user/k?ttl_ms=315360000001", Some("1")),
    ] {
        let r = app.call(Method::PUT, uri, t, body).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "invalid_ttl"),
            "{uri}"
        );
    }
    for body in [
        r#"{"items":{"m":1},"ttl":1,"ttl_ms":1000}"#,
        r#"{"items":{"m":1},"ttl_ms":"1"}"#,
    ] {
        let r = app
            .call(Method::POST, "/v1/cache/user/_mset", t, Some(body))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "invalid_ttl"),
            "{body}"
        );
    }
}

/// `Content-Type: application/octet-stream` stores bytes as they are; `Accept:
/// application/octet-stream` reads any string value's bytes. A JSON read of bytes that
/// are not JSON is a 422 that names the bytes read.
async fn bytes_in_and_out(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.user.as_str());
    let octets = [("content-type", "application/octet-stream")];
    let accept = [("accept", "application/octet-stream")];
    for (key, body) in [
        ("png", vec![0x89, b'P', b'N', b'G', 0, 0xFF, 0xC5]),
        ("header-byte-first", vec![0xC5, 0x01, b'{', b'}']),
        ("empty", vec![]),
    ] {
        let uri = format!("/v1/cache/user/{key}");
        let r = app
            .call_with(Method::PUT, &uri, t, &octets, Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{key}: {}", r.text());
        for _ in 0..2 {
            let r = app.call_with(Method::GET, &uri, t, &accept, None).await;
            assert_eq!((r.status, &r.body), (StatusCode::OK, &body), "{key}");
            assert_eq!(r.headers["content-type"], "application/octet-stream");
        }
        let r = app.call(Method::GET, &uri, t, None).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "not_json"),
            "{key}"
        );
        assert!(
            r.text().contains("application/octet-stream"),
            "the error names the way to read it: {}",
            r.text()
        );
    }
    // A JSON value reads as its text; Accept with JSON too reads JSON.
    app.call(Method::PUT, "/v1/cache/user/j", t, Some(r#"{"a":1}"#))
        .await;
    let r = app
        .call_with(Method::GET, "/v1/cache/user/j", t, &accept, None)
        .await;
    assert_eq!(r.body, br#"{"a":1}"#);
    let r = app
        .call_with(
            Method::GET,
            "/v1/cache/user/j",
            t,
            &[("accept", "application/octet-stream, application/json")],
            None,
        )
        .await;
    assert_eq!(r.headers["content-type"], "application/json");
    // Bytes are bounded like any body.
    let r = app
        .call_with(
            Method::PUT,
            "/v1/cache/user/big",
            t,
            &octets,
            Some(vec![1u8; 70_000]),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Conditions work on bytes too; tags do not go with them.
    let r = app
        .call_with(
            Method::PUT,
            "/v1/cache/user/png",
            t,
            &[octets[0], ("if-none-match", "*")],
            Some(vec![1]),
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = app
        .call_with(Method::GET, "/v1/cache/user/png", t, &accept, None)
        .await;
    let tag = r.headers["etag"].to_str().unwrap().to_owned();
    let r = app
        .call_with(
            Method::PUT,
            "/v1/cache/user/png",
            t,
            &[octets[0], ("if-match", &tag)],
            Some(vec![2]),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .call_with(
            Method::PUT,
            "/v1/cache/user/png?tags=a",
            t,
            &octets,
            Some(vec![3]),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .call_with(Method::GET, "/v1/cache/user/png", t, &accept, None)
        .await;
    assert_eq!(r.body, [2]);
}

/// `POST .../_take` answers the stored JSON once and deletes it; then 404. A viewer-only
/// grant cannot take (it is a write).
async fn take_route(b: Backend) {
    let app = TestApp::new(b).await;
    let t = Some(app.user.as_str());
    let r = app
        .call(
            Method::PUT,
            "/v1/cache/user/otp",
            t,
            Some(r#"{"code":"4711"}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = app
        .call(Method::POST, "/v1/cache/user/otp/_take", t, None)
        .await;
    assert_eq!(
        (r.status, r.text()),
        (StatusCode::OK, r#"{"code":"4711"}"#.to_owned())
    );
    let r = app
        .call(Method::POST, "/v1/cache/user/otp/_take", t, None)
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let r = app.call(Method::GET, "/v1/cache/user/otp", t, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "gone");
    let r = app
        .call(
            Method::POST,
            "/v1/cache/user/otp/_take",
            Some(&app.viewer),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
}

on_every_backend!(
    etags_and_ttls,
    bytes_in_and_out,
    take_route,
    counters_conditional_puts_and_resets,
    ttl_routes,
    single_keys,
    ttl_expires,
    keys_with_every_kind_of_character,
    batches,
    keys_named_like_operations,
    patterns_listing_and_clear,
    operations_endpoints,
    over_a_real_socket,
    tags,
);
