//! Bad input: malformed and oversized bodies, bad TTLs, query strings, batch shapes,
//! namespaces, patterns, counts, cursors and methods. Every case checks the status, the
//! error code, that the error body is `{"error":{"code","message"}}`, and that nothing
//! was stored or deleted (the whole store is read below the API before and after).
//!
//! Every test runs on the memory backend, on a real Redis and on a Redis Cluster (whose
//! store is read through the library, as the memory one is).

#[macro_use]
mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use support::routes::{Route, routes};
use support::store::{Snap, assert_unchanged, snapshot, store_change};
use support::{Backend, Resp, TestApp, enc};

/// A few keys in a few namespaces, so "nothing deleted" means something.
async fn seed(app: &TestApp) -> Snap {
    for (ns, key, value) in [
        ("a", "k1", json!({"v": 1})),
        ("a", "k2", json!("two")),
        ("a", "*", json!(3)),
        ("user", "k1", json!({"v": "user"})),
        ("ab", "k1", json!([1, 2])),
    ] {
        let r = app
            .call(
                Method::PUT,
                &format!("/v1/cache/{ns}/{}", enc(key)),
                Some(&app.admin),
                Some(&value.to_string()),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::NO_CONTENT,
            "seed {ns}/{key}: {}",
            r.text()
        );
    }
    let snap = snapshot(app).await;
    assert_eq!(snap.len(), 5);
    snap
}

/// Puts the store back to `before` (the seeded state) after a case that changed it, so
/// the remaining cases are checked independently.
async fn restore(app: &TestApp, before: &Snap) {
    let now = snapshot(app).await;
    for k in now.keys().filter(|k| !before.contains_key(*k)) {
        let (ns, key) = k.split_once(':').unwrap();
        let _ = app
            .call(
                Method::DELETE,
                &format!("/v1/cache/{ns}/{}", enc(key)),
                Some(&app.admin),
                None,
            )
            .await;
    }
    let again = seed(app).await;
    assert_eq!(&again, before, "restore");
}

/// Checks one case that must be `status`/`code` and leave the store alone; returns a
/// description of what was wrong (and restores the store), or `None`.
async fn check_refused(
    app: &TestApp,
    before: &Snap,
    r: &Resp,
    status: StatusCode,
    code: &str,
    ctx: &str,
) -> Option<String> {
    let mut problems = Vec::new();
    let got_code = serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
    if r.status != status || got_code.as_deref() != Some(code) {
        problems.push(format!("-> {} {}", r.status, r.text()));
    }
    if let Some(change) = store_change(app, before).await {
        problems.push(change);
        restore(app, before).await;
    }
    (!problems.is_empty()).then(|| format!("{ctx} {}", problems.join("; ")))
}

/// Status, code, and the error body's shape: a JSON object with only `error`, holding a
/// string `code` and a non-empty string `message`, served as application/json.
fn assert_error(r: &Resp, status: StatusCode, code: &str, ctx: &str) {
    assert_eq!(r.status, status, "{ctx}: body {}", r.text());
    assert_error_shape(r, ctx);
    assert_eq!(r.code(), code, "{ctx}: {}", r.text());
}

fn assert_error_shape(r: &Resp, ctx: &str) {
    let ct = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "{ctx}: content-type {ct:?}"
    );
    let body: Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{ctx}: error body is not JSON ({e}): {}", r.text()));
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("{ctx}: not an object: {body}"));
    assert_eq!(
        obj.keys().collect::<Vec<_>>(),
        vec!["error"],
        "{ctx}: {body}"
    );
    let e = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("{ctx}: error is not an object: {body}"));
    assert!(
        e["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{ctx}: no code: {body}"
    );
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{ctx}: no message: {body}"
    );
}

async fn assert_missing(app: &TestApp, ns: &str, key: &str, ctx: &str) {
    let r = app
        .call(
            Method::GET,
            &format!("/v1/cache/{ns}/{}", enc(key)),
            Some(&app.admin),
            None,
        )
        .await;
    assert_error(
        &r,
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("{ctx}: GET afterwards"),
    );
}

fn short(s: &str) -> String {
    let mut end = s.len().min(60);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    if end < s.len() {
        format!("{}...({} bytes)", &s[..end], s.len())
    } else {
        s.to_owned()
    }
}

// ---------------------------------------------------------------------------------------

/// PUT bodies that are not one JSON document are 400 invalid_body and store nothing.
async fn put_malformed_json_is_400(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    let bodies: Vec<&[u8]> = vec![
        b"",
        b" ",
        b"\n\t ",
        b"{",
        b"}",
        b"[1,2",
        b"nul",
        b"tru",
        b"{} x",
        b"{}}",
        b"{\"a\":1}{\"b\":2}",
        b"1 2",
        b"{\"a\":}",
        b"{\"a\":1,}",
        b"[1,]",
        b"{a:1}",
        b"'x'",
        b"\"unterminated",
        b"01",
        b"NaN",
        b"Infinity",
        b"undefined",
        b"\x00",
        b"\xff\xfe\x00",
        b"\xef\xbb",
        b"\"\\x41\"",
        b"\"\\u12\"",
        b"\"tab\there\"",
        b"<xml/>",
    ];
    for body in bodies {
        let ctx = format!("PUT body {:?}", String::from_utf8_lossy(body));
        let r = app
            .call_bytes(
                Method::PUT,
                "/v1/cache/a/new",
                Some(&app.admin),
                Some(body.to_vec()),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_body", &ctx);
        // The same on an existing key leaves its value.
        let r = app
            .call_bytes(
                Method::PUT,
                "/v1/cache/a/k1",
                Some(&app.a),
                Some(body.to_vec()),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_body", &ctx);
        assert_missing(&app, "a", "new", &ctx).await;
        assert_unchanged(&app, &before, &ctx).await;
    }
    // Deeply nested but valid JSON is stored or refused, never a crash or a 5xx.
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let r = app
        .call(Method::PUT, "/v1/cache/a/deep", Some(&app.a), Some(&deep))
        .await;
    match r.status {
        StatusCode::NO_CONTENT => {
            let got = app
                .call(Method::GET, "/v1/cache/a/deep", Some(&app.a), None)
                .await;
            assert_eq!(got.status, StatusCode::OK);
            assert_eq!(got.text(), deep, "deep document read back as stored");
        }
        _ => {
            assert_error(&r, StatusCode::BAD_REQUEST, "invalid_body", "deep nesting");
            assert_unchanged(&app, &before, "deep nesting").await;
        }
    }
}

/// JSON must be UTF-8 (RFC 8259 §8.1): a PUT body whose strings hold bytes that are not
/// UTF-8 is not JSON, so it is 400 invalid_body and nothing is stored (else a GET would
/// serve invalid UTF-8 as application/json).
async fn put_invalid_utf8_is_400(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    let bodies: Vec<&[u8]> = vec![
        b"\"\xff\"",
        b"\"abc\xfe\"",
        b"{\"a\":\"\xc3\x28\"}",
        b"{\"\xff\":1}",
        b"[\"\xed\xa0\x80\"]",
        b"\"\xc0\xaf\"",
        b"\"\xf8\x88\x80\x80\x80\"",
    ];
    let mut wrong = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let key = format!("utf8-{i}");
        let r = app
            .call_bytes(
                Method::PUT,
                &format!("/v1/cache/a/{key}"),
                Some(&app.a),
                Some(body.to_vec()),
            )
            .await;
        if r.status != StatusCode::BAD_REQUEST {
            let stored = app
                .call(
                    Method::GET,
                    &format!("/v1/cache/a/{key}"),
                    Some(&app.a),
                    None,
                )
                .await;
            let batch = app
                .call(
                    Method::POST,
                    "/v1/cache/a/_mget",
                    Some(&app.a),
                    Some(&json!({"keys": [key]}).to_string()),
                )
                .await;
            wrong.push(format!(
                "PUT /v1/cache/a/{key} body {body:?} -> {} {}; GET afterwards -> {} body {:?} (valid UTF-8: {}); _mget -> {}",
                r.status,
                r.text(),
                stored.status,
                stored.body,
                std::str::from_utf8(&stored.body).is_ok(),
                batch.text()
            ));
            // Put the store back so the remaining cases are checked independently.
            let _ = app
                .call(
                    Method::DELETE,
                    &format!("/v1/cache/a/{key}"),
                    Some(&app.a),
                    None,
                )
                .await;
        } else {
            assert_error(
                &r,
                StatusCode::BAD_REQUEST,
                "invalid_body",
                &format!("{body:?}"),
            );
        }
        assert_unchanged(&app, &before, &format!("{body:?}")).await;
    }
    assert!(
        wrong.is_empty(),
        "{} of {} bodies with invalid UTF-8 were accepted:\n{}",
        wrong.len(),
        bodies.len(),
        wrong.join("\n")
    );
}

/// The same bytes inside `_mset` values and keys are refused and store nothing.
async fn mset_invalid_utf8_is_400(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    let bodies: Vec<&[u8]> = vec![
        b"{\"items\":{\"new\":\"\xff\"}}",
        b"{\"items\":{\"new\":{\"a\":\"\xc3\x28\"}}}",
        b"{\"items\":{\"\xff\":1}}",
        b"{\"items\":{\"new\":1,\"k1\":\"\xed\xa0\x80\"}}",
    ];
    for body in bodies {
        let ctx = format!("_mset {body:?}");
        let r = app
            .call_bytes(
                Method::POST,
                "/v1/cache/a/_mset",
                Some(&app.a),
                Some(body.to_vec()),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_body", &ctx);
        assert_unchanged(&app, &before, &ctx).await;
    }
}

/// Bodies over max_body_bytes (65536) are 413 payload_too_large for PUT and for every
/// batch op, and store nothing; a body of exactly the limit is accepted.
async fn oversized_bodies_are_413(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    let string_of = |len: usize| format!("\"{}\"", "x".repeat(len - 2));
    for len in [65_537, 65_600, 1 << 20] {
        let body = string_of(len);
        assert_eq!(body.len(), len);
        let ctx = format!("PUT {len} bytes");
        let r = app
            .call(Method::PUT, "/v1/cache/a/big", Some(&app.a), Some(&body))
            .await;
        assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", &ctx);
        let r = app
            .call(
                Method::PUT,
                "/v1/cache/a/k1?ttl=60",
                Some(&app.a),
                Some(&body),
            )
            .await;
        assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", &ctx);
        assert_missing(&app, "a", "big", &ctx).await;

        // The same size in batch bodies.
        let pad = |prefix: &str, suffix: &str| {
            format!(
                "{prefix}{}{suffix}",
                "x".repeat(len - prefix.len() - suffix.len())
            )
        };
        let mset = pad("{\"items\":{\"big\":\"", "\"}}");
        let mset_many = {
            let items: serde_json::Map<String, Value> = (0..len / 1000 + 1)
                .map(|i| (format!("big{i}"), json!("y".repeat(1000))))
                .collect();
            json!({"items": items}).to_string()
        };
        let keys = pad("{\"keys\":[\"", "\"]}");
        let pattern = pad("{\"pattern\":\"", "\"}");
        for (op, body) in [
            ("_mset", &mset),
            ("_mset", &mset_many),
            ("_mget", &keys),
            ("_mdel", &keys),
            ("_invalidate", &pattern),
        ] {
            assert!(body.len() > 65_536, "{op} body {}", body.len());
            let ctx = format!("{op} {} bytes", body.len());
            let r = app
                .call(
                    Method::POST,
                    &format!("/v1/cache/a/{op}"),
                    Some(&app.a),
                    Some(body),
                )
                .await;
            assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", &ctx);
            assert_unchanged(&app, &before, &ctx).await;
        }
    }
    // Exactly the limit is fine.
    let body = string_of(65_536);
    let r = app
        .call(Method::PUT, "/v1/cache/a/limit", Some(&app.a), Some(&body))
        .await;
    assert_eq!(
        r.status,
        StatusCode::NO_CONTENT,
        "a body of exactly max_body_bytes: {}",
        r.text()
    );
    let r = app
        .call(Method::GET, "/v1/cache/a/limit", Some(&app.a), None)
        .await;
    assert_eq!(r.text(), body);
}

/// `?ttl=` that is negative, not a number, zero, fractional, over ten years or empty is
/// 400 invalid_ttl and stores nothing; the bounds 1 and 315360000 are accepted.
async fn invalid_ttl_in_query_is_400(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    for ttl in [
        "-1",
        "-5",
        "-0",
        "abc",
        "0",
        "00",
        "1.5",
        "0.5",
        "1e3",
        "315360001",
        "999999999999",
        "18446744073709551615",
        "99999999999999999999999",
        "",
        "%20",
        "5%20",
        "5s",
        "0x10",
        "NaN",
        "null",
    ] {
        let ctx = format!("PUT ?ttl={ttl}");
        let r = app
            .call(
                Method::PUT,
                &format!("/v1/cache/a/new?ttl={ttl}"),
                Some(&app.a),
                Some("1"),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_ttl", &ctx);
        let r = app
            .call(
                Method::PUT,
                &format!("/v1/cache/a/k1?ttl={ttl}"),
                Some(&app.a),
                Some("1"),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_ttl", &ctx);
        assert_missing(&app, "a", "new", &ctx).await;
        assert_unchanged(&app, &before, &ctx).await;
    }
    for ttl in ["1", "315360000"] {
        let r = app
            .call(
                Method::PUT,
                &format!("/v1/cache/a/ttl-{ttl}?ttl={ttl}"),
                Some(&app.a),
                Some("1"),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "ttl {ttl}: {}", r.text());
    }
}

/// `_mset` TTLs that are zero or over ten years are 400 invalid_ttl; negative, fractional
/// and non-numeric ones are 400 as well (a TTL error, not another status), and nothing is
/// stored.
async fn invalid_ttl_in_mset_is_400(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    let ttls = [
        "0",
        "315360001",
        "18446744073709551615",
        "-5",
        "-1",
        "1.5",
        "1e3",
        "\"60\"",
        "\"\"",
        "true",
        "[60]",
        "{}",
    ];
    let mut wrong = Vec::new();
    for ttl in ttls {
        let body = format!("{{\"items\":{{\"new\":1,\"k1\":2}},\"ttl\":{ttl}}}");
        let r = app
            .call(Method::POST, "/v1/cache/a/_mset", Some(&app.a), Some(&body))
            .await;
        assert_error_shape(&r, &body);
        wrong.extend(
            check_refused(
                &app,
                &before,
                &r,
                StatusCode::BAD_REQUEST,
                "invalid_ttl",
                &format!("POST /v1/cache/a/_mset {body}"),
            )
            .await,
        );
    }
    assert!(
        wrong.is_empty(),
        "{} of {} bad _mset TTLs were not 400 invalid_ttl:\n{}",
        wrong.len(),
        ttls.len(),
        wrong.join("\n")
    );
}

/// Same cases as above, checked only for what must hold whatever the status: an error
/// body and nothing stored. (The strict status/code checks are in
/// `invalid_ttl_in_mset_is_400`.)
async fn invalid_ttl_in_mset_stores_nothing(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    for ttl in [
        "0",
        "315360001",
        "-5",
        "-1",
        "1.5",
        "1e3",
        "\"60\"",
        "\"\"",
        "true",
        "[60]",
        "{}",
    ] {
        let body = format!("{{\"items\":{{\"new\":1,\"k1\":2}},\"ttl\":{ttl}}}");
        let ctx = format!("_mset {body}");
        let r = app
            .call(Method::POST, "/v1/cache/a/_mset", Some(&app.a), Some(&body))
            .await;
        assert!(
            r.status.is_client_error(),
            "{ctx}: {} {}",
            r.status,
            r.text()
        );
        assert_error_shape(&r, &ctx);
        assert!(
            ["invalid_ttl", "invalid_body"].contains(&r.code().as_str()),
            "{ctx}: {}",
            r.text()
        );
        assert_unchanged(&app, &before, &ctx).await;
    }
    let r = app
        .call(
            Method::POST,
            "/v1/cache/a/_mset",
            Some(&app.a),
            Some("{\"items\":{\"new\":1},\"ttl\":315360000}"),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NO_CONTENT,
        "the largest ttl is accepted: {}",
        r.text()
    );
}

/// Unknown query parameters on PUT and on a listing are 400 invalid_query; nothing stored.
async fn unknown_query_params_are_400(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    for q in [
        "foo=1",
        "TTL=5",
        "ttl=5&foo=",
        "expire=5",
        "ttl=5&ttl=6",
        "match=*",
        "nx=true",
    ] {
        let ctx = format!("PUT ?{q}");
        let r = app
            .call(
                Method::PUT,
                &format!("/v1/cache/a/new?{q}"),
                Some(&app.a),
                Some("1"),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_query", &ctx);
        let r = app
            .call(
                Method::PUT,
                &format!("/v1/cache/a/k1?{q}"),
                Some(&app.a),
                Some("1"),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_query", &ctx);
        assert_missing(&app, "a", "new", &ctx).await;
        assert_unchanged(&app, &before, &ctx).await;
    }
    for q in [
        "foo=1",
        "pattern=*",
        "Match=*",
        "limit=10",
        "count=5&page=2",
        "match=*&match=k*",
        "cursor=0&cursor=1",
    ] {
        let ctx = format!("list ?{q}");
        let r = app
            .call(Method::GET, &format!("/v1/cache/a?{q}"), Some(&app.a), None)
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_query", &ctx);
    }
    assert_unchanged(&app, &before, "list").await;
}

/// `DELETE /v1/cache/{ns}` takes no parameters: one with a query (say a client that thinks
/// it can clear by pattern) must be refused, not clear the whole namespace.
async fn clear_rejects_query_params(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    let queries = ["match=k*", "pattern=zzz*", "foo=1", "dry_run=true"];
    let mut wrong = Vec::new();
    for q in queries {
        let r = app
            .call(
                Method::DELETE,
                &format!("/v1/cache/a?{q}"),
                Some(&app.a),
                None,
            )
            .await;
        wrong.extend(
            check_refused(
                &app,
                &before,
                &r,
                StatusCode::BAD_REQUEST,
                "invalid_query",
                &format!("DELETE /v1/cache/a?{q}"),
            )
            .await,
        );
    }
    assert!(
        wrong.is_empty(),
        "{} of {} clears with a query were not refused:\n{}",
        wrong.len(),
        queries.len(),
        wrong.join("\n")
    );
}

/// Unknown query parameters on the routes that take none (single-key GET/HEAD/DELETE and
/// the batch ops) are 400 invalid_query too, and change nothing.
async fn key_and_batch_routes_reject_unknown_query(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    let cases: Vec<(Method, &str, Option<&str>)> = vec![
        (Method::GET, "/v1/cache/a/k1?foo=1", None),
        (Method::HEAD, "/v1/cache/a/k1?foo=1", None),
        (Method::DELETE, "/v1/cache/a/k1?if_match=x", None),
        (
            Method::POST,
            "/v1/cache/a/_mget?foo=1",
            Some("{\"keys\":[\"k1\"]}"),
        ),
        (
            Method::POST,
            "/v1/cache/a/_mset?ttl=60",
            Some("{\"items\":{\"new\":1}}"),
        ),
        (
            Method::POST,
            "/v1/cache/a/_mdel?foo=1",
            Some("{\"keys\":[\"k1\"]}"),
        ),
        (
            Method::POST,
            "/v1/cache/a/_invalidate?pattern=zzz*",
            Some("{\"pattern\":\"*\"}"),
        ),
    ];
    let n = cases.len();
    let mut wrong = Vec::new();
    for (method, uri, body) in cases {
        let r = app.call(method.clone(), uri, Some(&app.a), body).await;
        let ctx = format!("{method} {uri} {}", body.unwrap_or(""));
        if method == Method::HEAD {
            if r.status != StatusCode::BAD_REQUEST {
                wrong.push(format!("{ctx} -> {}", r.status));
            }
            continue;
        }
        wrong.extend(
            check_refused(
                &app,
                &before,
                &r,
                StatusCode::BAD_REQUEST,
                "invalid_query",
                &ctx,
            )
            .await,
        );
    }
    assert!(
        wrong.is_empty(),
        "{} of {n} requests with unknown query parameters were not refused:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// Batch bodies of the wrong shape. `{}` and `{"pattern":null}` for `_invalidate` are
/// checked by the handler itself; the rest by the JSON extractor.
fn wrong_shapes() -> Vec<(&'static str, &'static str)> {
    let mut v = Vec::new();
    for op in ["_mget", "_mdel"] {
        for body in [
            "{\"keys\":\"x\"}",
            "{\"keys\":[1,2]}",
            "{\"keys\":[\"k1\",2]}",
            "{\"keys\":[],\"extra\":1}",
            "{\"keys\":[\"k1\"],\"ttl\":5}",
            "{}",
            "null",
            "[]",
            "[\"k1\"]",
            "\"k1\"",
            "1",
            "true",
            "{\"keys\":null}",
            "{\"keys\":[[\"k1\"]]}",
            "{\"keys\":[null]}",
            "{\"keys\":{\"k1\":1}}",
            "{\"Keys\":[\"k1\"]}",
            "{\"items\":{\"k1\":1}}",
            "{\"keys\":[\"k1\"],\"keys\":[\"k2\"]}",
        ] {
            v.push((op, body));
        }
    }
    for body in [
        "{\"items\":[]}",
        "{\"items\":[[\"new\",1]]}",
        "{\"items\":\"x\"}",
        "{\"items\":null}",
        "{\"items\":{\"new\":1},\"extra\":1}",
        "{\"items\":{\"new\":1},\"tags\":[\"t\"]}",
        "{\"keys\":[\"new\"]}",
        "{}",
        "null",
        "[]",
        "[{\"new\":1}]",
        "\"new\"",
        "{\"Items\":{\"new\":1}}",
        "{\"items\":{\"new\":1},\"items\":{\"new2\":2}}",
    ] {
        v.push(("_mset", body));
    }
    for body in [
        "{}",
        "null",
        "[]",
        "\"*\"",
        "{\"pattern\":1}",
        "{\"pattern\":null}",
        "{\"pattern\":[\"*\"]}",
        "{\"pattern\":{\"glob\":\"*\"}}",
        "{\"pattern\":\"*\",\"extra\":1}",
        "{\"pattern\":\"*\",\"tags\":[\"x\"]}",
        "{\"patterns\":\"*\"}",
        "{\"keys\":[\"k1\"]}",
        "{\"pattern\":\"zzz\",\"pattern\":\"*\"}",
    ] {
        v.push(("_invalidate", body));
    }
    v
}

/// Wrong batch shapes are 400 invalid_body (the contract's status for a bad body).
async fn batch_wrong_shapes_are_400(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    let mut wrong = Vec::new();
    for (op, body) in wrong_shapes() {
        let r = app
            .call(
                Method::POST,
                &format!("/v1/cache/a/{op}"),
                Some(&app.a),
                Some(body),
            )
            .await;
        if r.status != StatusCode::BAD_REQUEST || r.code() != "invalid_body" {
            wrong.push(format!("{op} {body} -> {} {}", r.status, r.text()));
        }
        assert_unchanged(&app, &before, &format!("{op} {body}")).await;
    }
    assert!(
        wrong.is_empty(),
        "{} of {} wrong shapes were not 400 invalid_body:\n{}",
        wrong.len(),
        wrong_shapes().len(),
        wrong.join("\n")
    );
}

/// Whatever their status, wrong batch shapes are client errors with an invalid_body error
/// body and change nothing. (The strict 400 check is `batch_wrong_shapes_are_400`.)
async fn batch_wrong_shapes_store_nothing(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    for (op, body) in wrong_shapes() {
        let ctx = format!("{op} {body}");
        let r = app
            .call(
                Method::POST,
                &format!("/v1/cache/a/{op}"),
                Some(&app.a),
                Some(body),
            )
            .await;
        assert!(
            r.status.is_client_error(),
            "{ctx}: {} {}",
            r.status,
            r.text()
        );
        assert_error_shape(&r, &ctx);
        assert_eq!(r.code(), "invalid_body", "{ctx}");
        assert_unchanged(&app, &before, &ctx).await;
        assert_missing(&app, "a", "new", &ctx).await;
    }
}

/// Batch bodies that are not JSON at all are 400 invalid_body. (Each body is malformed
/// before anything in it could be taken for a field of the wrong name or type.)
async fn batch_malformed_json_is_400(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    let generic: Vec<Vec<u8>> = [
        &b""[..],
        b" ",
        b"{",
        b"{]",
        b"[}",
        b"{,}",
        b"{\"",
        b"{keys:[]}",
        b"{'keys':[]}",
        b"nul",
        b"\xff\xfe",
        b"{\"\xff\":1}",
        b"<keys/>",
    ]
    .iter()
    .map(|b| b.to_vec())
    .collect();
    for (op, valid) in [
        ("_mget", "{\"keys\":[\"k1\",\"new\"]}"),
        ("_mset", "{\"items\":{\"new\":1,\"k1\":2}}"),
        ("_mdel", "{\"keys\":[\"k1\",\"*\"]}"),
        ("_invalidate", "{\"pattern\":\"*\"}"),
    ] {
        let mut bodies = generic.clone();
        // The op's own valid body, broken: trailing garbage, truncated, a trailing comma.
        bodies.push(format!("{valid} x").into_bytes());
        bodies.push(format!("{valid}}}").into_bytes());
        bodies.push(format!("{valid}{valid}").into_bytes());
        bodies.push(valid.as_bytes()[..valid.len() - 1].to_vec());
        bodies.push(valid.as_bytes()[..valid.len() / 2].to_vec());
        bodies.push(format!("{},}}", &valid[..valid.len() - 1]).into_bytes());
        for body in bodies {
            let ctx = format!("{op} {:?}", String::from_utf8_lossy(&body));
            let r = app
                .call_bytes(
                    Method::POST,
                    &format!("/v1/cache/a/{op}"),
                    Some(&app.a),
                    Some(body),
                )
                .await;
            assert_error(&r, StatusCode::BAD_REQUEST, "invalid_body", &ctx);
            assert_unchanged(&app, &before, &ctx).await;
        }
    }
}

/// More than max_batch (100) keys in one batch is 400 too_many_keys and changes nothing;
/// exactly 100 is fine.
async fn too_many_keys_is_400(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    let keys = |n: usize| -> Vec<String> {
        let mut v: Vec<String> = vec!["k1".into(), "k2".into(), "*".into()];
        v.extend((v.len()..n).map(|i| format!("new{i}")));
        v
    };
    for n in [101, 102, 500] {
        let ks = keys(n);
        assert_eq!(ks.len(), n);
        let body = json!({"keys": ks}).to_string();
        for op in ["_mget", "_mdel"] {
            let ctx = format!("{op} with {n} keys");
            let r = app
                .call(
                    Method::POST,
                    &format!("/v1/cache/a/{op}"),
                    Some(&app.a),
                    Some(&body),
                )
                .await;
            assert_error(&r, StatusCode::BAD_REQUEST, "too_many_keys", &ctx);
            assert_unchanged(&app, &before, &ctx).await;
        }
        let items: serde_json::Map<String, Value> =
            ks.iter().map(|k| (k.clone(), json!(0))).collect();
        let ctx = format!("_mset with {n} items");
        let r = app
            .call(
                Method::POST,
                "/v1/cache/a/_mset",
                Some(&app.a),
                Some(&json!({"items": items}).to_string()),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "too_many_keys", &ctx);
        assert_unchanged(&app, &before, &ctx).await;
    }
    // The limit itself is fine.
    let ks = keys(100);
    let r = app
        .call(
            Method::POST,
            "/v1/cache/a/_mget",
            Some(&app.a),
            Some(&json!({"keys": ks}).to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["values"].as_array().unwrap().len(), 100);
    let items: serde_json::Map<String, Value> = ks.iter().map(|k| (k.clone(), json!(0))).collect();
    let r = app
        .call(
            Method::POST,
            "/v1/cache/a/_mset",
            Some(&app.a),
            Some(&json!({"items": items}).to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = app
        .call(
            Method::POST,
            "/v1/cache/a/_mdel",
            Some(&app.a),
            Some(&json!({"keys": ks}).to_string()),
        )
        .await;
    assert_eq!(r.json(), json!({"deleted": 100}));
}

/// Keys that are invalid inside batch bodies make the whole batch 400 invalid_key: the
/// valid keys of the same batch are neither stored, read nor deleted.
async fn invalid_keys_in_batches_are_400(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    let long = "k".repeat(1025);
    for bad in [
        "",
        "a\u{0}b",
        "\r",
        "\n",
        "x\r\ny",
        "\u{7f}",
        "\u{85}",
        long.as_str(),
    ] {
        let ctx = format!("bad key {:?}", short(bad));
        let mut items = serde_json::Map::new();
        items.insert("new".into(), json!(1));
        items.insert("k1".into(), json!("overwritten"));
        items.insert(bad.into(), json!(2));
        let r = app
            .call(
                Method::POST,
                "/v1/cache/a/_mset",
                Some(&app.a),
                Some(&json!({"items": items}).to_string()),
            )
            .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "invalid_key",
            &format!("_mset {ctx}"),
        );
        for op in ["_mget", "_mdel"] {
            let r = app
                .call(
                    Method::POST,
                    &format!("/v1/cache/a/{op}"),
                    Some(&app.a),
                    Some(&json!({"keys": ["k1", bad, "k2"]}).to_string()),
                )
                .await;
            assert_error(
                &r,
                StatusCode::BAD_REQUEST,
                "invalid_key",
                &format!("{op} {ctx}"),
            );
        }
        assert_unchanged(&app, &before, &ctx).await;
    }
    // Path segments that do not decode to UTF-8 are 400 too.
    for uri in ["/v1/cache/a/%FF", "/v1/cache/a/k%C3", "/v1/cache/%FF/k"] {
        for (method, body) in [
            (Method::GET, None),
            (Method::PUT, Some("1")),
            (Method::DELETE, None),
        ] {
            let r = app.call(method.clone(), uri, Some(&app.a), body).await;
            assert_eq!(
                r.status,
                StatusCode::BAD_REQUEST,
                "{method} {uri}: {}",
                r.text()
            );
            assert_error_shape(&r, uri);
            assert!(
                ["invalid_path", "invalid_key", "invalid_namespace"].contains(&r.code().as_str()),
                "{uri}: {}",
                r.text()
            );
        }
    }
    assert_unchanged(&app, &before, "paths").await;
}

/// POST on a key that is not one of the four batch ops is 404 and does nothing.
async fn unknown_batch_op_is_404(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    for op in [
        "_explode",
        "_MGET",
        "mget",
        "_mset_",
        "_",
        "k1",
        "_flushall",
        "_invalidate%00",
        "_keys",
    ] {
        for body in [
            "{\"keys\":[\"k1\"]}",
            "{\"items\":{\"new\":1}}",
            "{\"pattern\":\"*\"}",
        ] {
            let ctx = format!("POST /v1/cache/a/{op} {body}");
            let r = app
                .call(
                    Method::POST,
                    &format!("/v1/cache/a/{op}"),
                    Some(&app.a),
                    Some(body),
                )
                .await;
            assert_error(&r, StatusCode::NOT_FOUND, "not_found", &ctx);
            assert_unchanged(&app, &before, &ctx).await;
        }
    }
    // Extra segments after an op match no route.
    let r = app
        .call(
            Method::POST,
            "/v1/cache/a/_mset/x",
            Some(&app.a),
            Some("{\"items\":{\"new\":1}}"),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found", "_mset/x");
    assert_unchanged(&app, &before, "_mset/x").await;
}

/// Namespaces outside `[a-z0-9_-]{1,64}` are 400 invalid_namespace on every route, even for
/// the admin, and store nothing; 64 characters is fine.
async fn invalid_namespaces_are_400(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    let long = "a".repeat(65);
    let names = [
        "UPPER",
        "Upper",
        long.as_str(),
        "a:b",
        "a*",
        "a%2Fb",
        "a%2F",
        "a.b",
        "a%20b",
        "%C3%A9",
        "a%00",
        "%2A",
        "a%3F",
        "a%5B",
        "a%5Cb",
        "a%0Ab",
    ];
    for ns in names {
        for token in [app.admin.as_str(), app.a.as_str()] {
            let cases: Vec<(Method, String, Option<&str>)> = vec![
                (Method::GET, format!("/v1/cache/{ns}/k1"), None),
                (Method::PUT, format!("/v1/cache/{ns}/k1"), Some("1")),
                (Method::PUT, format!("/v1/cache/{ns}/k1?ttl=60"), Some("1")),
                (Method::DELETE, format!("/v1/cache/{ns}/k1"), None),
                (
                    Method::POST,
                    format!("/v1/cache/{ns}/_mget"),
                    Some("{\"keys\":[\"k1\"]}"),
                ),
                (
                    Method::POST,
                    format!("/v1/cache/{ns}/_mset"),
                    Some("{\"items\":{\"k1\":1}}"),
                ),
                (
                    Method::POST,
                    format!("/v1/cache/{ns}/_mdel"),
                    Some("{\"keys\":[\"k1\"]}"),
                ),
                (
                    Method::POST,
                    format!("/v1/cache/{ns}/_invalidate"),
                    Some("{\"pattern\":\"*\"}"),
                ),
                (Method::GET, format!("/v1/cache/{ns}"), None),
                (Method::GET, format!("/v1/cache/{ns}?match=*"), None),
                (Method::DELETE, format!("/v1/cache/{ns}"), None),
            ];
            for (method, uri, body) in cases {
                let ctx = format!("{method} {}", short(&uri));
                let r = app.call(method, &uri, Some(token), body).await;
                assert_error(&r, StatusCode::BAD_REQUEST, "invalid_namespace", &ctx);
            }
            let r = app
                .call(
                    Method::HEAD,
                    &format!("/v1/cache/{ns}/k1"),
                    Some(token),
                    None,
                )
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "HEAD {ns}");
            assert_unchanged(&app, &before, ns).await;
        }
    }
    let ok = "a".repeat(64);
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/cache/{ok}/k"),
            Some(&app.admin),
            Some("1"),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "64-character namespace");
}

/// Patterns that are malformed (`[abc`, a trailing backslash, 17+ stars, empty, `[]`,
/// control characters, over 1024 bytes) are 400 invalid_pattern in listings and
/// `_invalidate`, and delete nothing; 16 stars is fine.
async fn invalid_patterns_are_400(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    let long = "a".repeat(1025);
    let stars17 = "*".repeat(17);
    let stars40 = "a*".repeat(40);
    for p in [
        "[abc",
        "[",
        "k[1",
        "a\\",
        "\\",
        "*\\",
        "[a\\",
        stars17.as_str(),
        stars40.as_str(),
        "",
        "[]",
        "[^]",
        "a\nb",
        "\r*",
        "*\u{0}",
        long.as_str(),
    ] {
        let ctx = format!("pattern {:?}", short(p));
        let r = app
            .call(
                Method::GET,
                &format!("/v1/cache/a?match={}", enc(p)),
                Some(&app.a),
                None,
            )
            .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "invalid_pattern",
            &format!("list {ctx}"),
        );
        let r = app
            .call(
                Method::POST,
                "/v1/cache/a/_invalidate",
                Some(&app.a),
                Some(&json!({"pattern": p}).to_string()),
            )
            .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "invalid_pattern",
            &format!("_invalidate {ctx}"),
        );
        assert_unchanged(&app, &before, &ctx).await;
    }
    // 16 wildcards is the limit: accepted (and matching nothing here).
    let p16 = format!("zz{}", "*".repeat(16));
    let r = app
        .call(
            Method::GET,
            &format!("/v1/cache/a?match={}", enc(&p16)),
            Some(&app.a),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["keys"], json!([]));
    let r = app
        .call(
            Method::POST,
            "/v1/cache/a/_invalidate",
            Some(&app.a),
            Some(&json!({"pattern": p16}).to_string()),
        )
        .await;
    assert_eq!(r.json(), json!({"deleted": 0}));
    assert_unchanged(&app, &before, "16 stars").await;
}

/// List `count` outside 1..=max_batch or not a whole number is 400 invalid_count.
async fn invalid_list_count_is_400(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    for c in [
        "0",
        "-1",
        "abc",
        "1000000",
        "101",
        "",
        "1.5",
        "1e2",
        "%205",
        "18446744073709551616",
        "0x10",
        "null",
    ] {
        let ctx = format!("count={c}");
        let r = app
            .call(
                Method::GET,
                &format!("/v1/cache/a?count={c}"),
                Some(&app.a),
                None,
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_count", &ctx);
    }
    for c in ["1", "100"] {
        let r = app
            .call(
                Method::GET,
                &format!("/v1/cache/a?count={c}"),
                Some(&app.a),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "count={c}: {}", r.text());
    }
    assert_unchanged(&app, &before, "counts").await;
}

/// Cursors that cannot have come from a listing are 400 invalid_cursor: empty and
/// over-long ones on both backends, non-numeric ones on Redis (whose cursors are numbers).
async fn invalid_cursor_is_400(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    let long = "1".repeat(3000);
    let mut bad: Vec<&str> = vec!["", long.as_str()];
    if backend == Backend::Redis {
        bad.extend([
            "abc",
            "-1",
            "1.5",
            "99999999999999999999",
            "0x10",
            "a:k1",
            "%20",
            "1%200",
            "NaN",
            "+-1",
        ]);
    }
    for c in bad {
        let ctx = format!("cursor {:?}", short(c));
        let r = app
            .call(
                Method::GET,
                &format!("/v1/cache/a?count=1&cursor={c}"),
                Some(&app.a),
                None,
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_cursor", &ctx);
    }
    // A real cursor still works.
    let r = app
        .call(Method::GET, "/v1/cache/a?count=1", Some(&app.a), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    if let Some(c) = r.json()["cursor"].as_str() {
        let r = app
            .call(
                Method::GET,
                &format!("/v1/cache/a?count=1&cursor={}", enc(c)),
                Some(&app.a),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    assert_unchanged(&app, &before, "cursors").await;
}

/// Methods a route does not serve are 405 with a JSON error body, and do nothing.
async fn wrong_methods_are_405(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    let cases: Vec<(Method, &str, Option<&str>)> = vec![
        (Method::PATCH, "/v1/cache/a/k1", Some("{\"v\":2}")),
        (Method::PATCH, "/v1/cache/a/new", Some("1")),
        (Method::OPTIONS, "/v1/cache/a/k1", None),
        (Method::POST, "/v1/cache/a", Some("{\"items\":{\"new\":1}}")),
        (Method::PUT, "/v1/cache/a", Some("{\"new\":1}")),
        (Method::PATCH, "/v1/cache/a", Some("{}")),
        (Method::POST, "/v1/stats", Some("{}")),
        (Method::DELETE, "/v1/stats", None),
        (Method::DELETE, "/metrics", None),
        (Method::PUT, "/health", Some("1")),
    ];
    for (method, uri, body) in cases {
        let ctx = format!("{method} {uri}");
        for token in [Some(app.a.as_str()), Some(app.admin.as_str())] {
            let r = app.call(method.clone(), uri, token, body).await;
            assert_error(
                &r,
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &ctx,
            );
        }
        assert_unchanged(&app, &before, &ctx).await;
    }
    assert_missing(&app, "a", "new", "PATCH").await;
}

/// A 405 says which methods the resource does serve (RFC 9110 §15.5.6: `Allow` is required).
async fn method_not_allowed_lists_allowed_methods(backend: Backend) {
    let app = TestApp::new(backend).await;
    let r = app
        .call(Method::PATCH, "/v1/cache/a/k1", Some(&app.a), Some("1"))
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let allow = r
        .headers
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("405 without Allow: {:?}", r.headers));
    for m in ["GET", "PUT", "DELETE"] {
        assert!(allow.contains(m), "Allow: {allow}");
    }
}

/// One error of each kind has the documented JSON shape and content type.
async fn error_bodies_have_code_and_message(backend: Backend) {
    let app = TestApp::new(backend).await;
    let big = format!("\"{}\"", "x".repeat(70_000));
    let a = Some(app.a.as_str());
    type Case<'a> = (
        Method,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        StatusCode,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            Method::GET,
            "/v1/cache/a/k",
            None,
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Method::GET,
            "/v1/cache/user/k",
            a,
            None,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            Method::GET,
            "/v1/cache/a/missing",
            a,
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::DELETE,
            "/v1/cache/a/missing",
            a,
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/v1/nope",
            a,
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/v1/cache/a/%00",
            a,
            None,
            StatusCode::BAD_REQUEST,
            "invalid_key",
        ),
        (
            Method::GET,
            "/v1/cache/A/k",
            a,
            None,
            StatusCode::BAD_REQUEST,
            "invalid_namespace",
        ),
        (
            Method::PUT,
            "/v1/cache/a/k?ttl=0",
            a,
            Some("1"),
            StatusCode::BAD_REQUEST,
            "invalid_ttl",
        ),
        (
            Method::PUT,
            "/v1/cache/a/k",
            a,
            Some("{"),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            Method::PUT,
            "/v1/cache/a/k?x=1",
            a,
            Some("1"),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            Method::PUT,
            "/v1/cache/a/k",
            a,
            Some(&big),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            Method::GET,
            "/v1/cache/a?match=%5B",
            a,
            None,
            StatusCode::BAD_REQUEST,
            "invalid_pattern",
        ),
        (
            Method::GET,
            "/v1/cache/a?count=0",
            a,
            None,
            StatusCode::BAD_REQUEST,
            "invalid_count",
        ),
        (
            Method::GET,
            "/v1/cache/a?cursor=",
            a,
            None,
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
        ),
        (
            Method::POST,
            "/v1/cache/a/_mget",
            a,
            Some("{"),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            Method::POST,
            "/v1/cache/a/_explode",
            a,
            Some("{}"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::PATCH,
            "/v1/cache/a/k",
            a,
            Some("1"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::GET,
            "/metrics",
            a,
            None,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
    ];
    for (method, uri, token, body, status, code) in cases {
        let ctx = format!("{method} {uri}");
        let r = app.call(method, uri, token, body).await;
        assert_error(&r, status, code, &ctx);
    }
}

/// Hostile values in every parameter of every route (issue 11: no input reaches a 500):
/// each path parameter, each query and each field of each sample body is replaced by
/// values an attacker or a broken client sends (too long, control and invalid UTF-8
/// bytes, glob and path characters, numbers past every bound, wrong JSON types, deep
/// nesting). Every answer must be below 500; an error must have the JSON error shape.
/// Streams (SSE) are only checked for their status, never read.
async fn no_hostile_value_reaches_a_5xx(backend: Backend) {
    let app = TestApp::new(backend).await;
    let token = Some(app.admin.as_str());
    let long = "a".repeat(5000);
    let names: Vec<String> = [
        long.as_str(),
        "%00",
        "%0A%0D",
        "%FF%FE",
        "..%2F..%2Fetc",
        "%2A",
        "%5B",
        "%5C",
        "%7B%7D",
        "%20",
        "a%3Ab%3Ac",
        "%F0%9F%92%A9",
        "-",
        "_",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let big = "18446744073709551616";
    let queries: Vec<String> = [
        "ttl=-1".to_owned(),
        format!("ttl={big}"),
        "ttl=1e400".to_owned(),
        "count=0".to_owned(),
        format!("count={big}"),
        "cursor=%FF".to_owned(),
        format!("cursor={long}"),
        "match=%5B".to_owned(),
        format!("match={}", "*".repeat(500)),
        format!("token={long}"),
        "user=%00".to_owned(),
        format!("user={long}"),
        "after=18446744073709551615-18446744073709551615".to_owned(),
        "after=-1".to_owned(),
        "durable=maybe".to_owned(),
        "set=%FF".to_owned(),
        "tags=,,,".to_owned(),
        format!("tags={}", "t,".repeat(2000)),
        "prefix=%FF&sep=".to_owned(),
        "ttl=1&ttl=2".to_owned(),
        "%FF=%FF".to_owned(),
    ]
    .to_vec();
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let hostile_values = [
        "null".to_owned(),
        "-1".to_owned(),
        big.to_owned(),
        "-18446744073709551617".to_owned(),
        "1e400".to_owned(),
        "0.5".to_owned(),
        "\"x\"".to_owned(),
        format!("\"{long}\""),
        "\"\\u0000\"".to_owned(),
        "[]".to_owned(),
        "{}".to_owned(),
        "true".to_owned(),
        deep.clone(),
    ];
    let mut checked = 0;
    for route in routes() {
        let body_variants: Vec<Option<String>> = match route.body {
            None => vec![None, Some(deep.clone()), Some("{".to_owned())],
            Some(sample) => {
                let mut v = vec![
                    Some(deep.clone()),
                    Some("{".to_owned()),
                    Some("null".to_owned()),
                    Some("[]".to_owned()),
                    Some("\"\"".to_owned()),
                ];
                // Each field of an object sample replaced by each hostile value.
                if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(sample) {
                    for field in fields.keys() {
                        for h in &hostile_values {
                            let mut o = fields.clone();
                            o.insert(field.clone(), serde_json::Value::Null);
                            let text = serde_json::Value::Object(o)
                                .to_string()
                                .replace(&format!("\"{field}\":null"), &format!("\"{field}\":{h}"));
                            v.push(Some(text));
                        }
                    }
                }
                v
            }
        };
        let mut uris: Vec<String> = Vec::new();
        if route.has_ns() {
            for n in &names {
                uris.push(route.uri(n, "k"));
            }
        }
        if route.path.matches('{').count() > 1 {
            for n in &names {
                uris.push(route.uri("user", n));
            }
        }
        let base = route.uri("user", "k");
        let (path, _) = base.split_once('?').unwrap_or((&base, ""));
        for q in &queries {
            uris.push(format!("{path}?{q}"));
        }
        for uri in &uris {
            checked += 1;
            check_no_5xx(&app, &route, uri, token, route.body.map(str::to_owned)).await;
        }
        for body in body_variants {
            checked += 1;
            check_no_5xx(&app, &route, &base, token, body).await;
        }
    }
    assert!(checked > 1000, "only {checked} requests");
}

/// Sends one request; fails on a 5xx or, for an error, a body without the error shape.
async fn check_no_5xx(
    app: &TestApp,
    route: &Route,
    uri: &str,
    token: Option<&str>,
    body: Option<String>,
) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut b = Request::builder().method(route.method.clone()).uri(uri);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let req = match &body {
        Some(text) => b
            .header("content-type", "application/json")
            .body(Body::from(text.clone()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    };
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let ctx = format!(
        "{} {} body {:?}",
        route.method,
        short(uri),
        body.as_deref().map(short)
    );
    let streams = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if streams {
        assert!(status.is_success(), "{ctx}: {status}");
        return;
    }
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        status.as_u16() < 500,
        "{ctx}: {status} {}",
        String::from_utf8_lossy(&bytes)
    );
    if status.is_client_error() && route.method != Method::HEAD {
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{ctx}: {status} not JSON ({e}): {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert!(
            v["error"]["code"].is_string() && v["error"]["message"].is_string(),
            "{ctx}: {v}"
        );
    }
}

on_every_backend!(
    no_hostile_value_reaches_a_5xx,
    put_malformed_json_is_400,
    put_invalid_utf8_is_400,
    mset_invalid_utf8_is_400,
    oversized_bodies_are_413,
    invalid_ttl_in_query_is_400,
    invalid_ttl_in_mset_is_400,
    invalid_ttl_in_mset_stores_nothing,
    unknown_query_params_are_400,
    clear_rejects_query_params,
    key_and_batch_routes_reject_unknown_query,
    batch_wrong_shapes_are_400,
    batch_wrong_shapes_store_nothing,
    batch_malformed_json_is_400,
    too_many_keys_is_400,
    invalid_keys_in_batches_are_400,
    unknown_batch_op_is_404,
    invalid_namespaces_are_400,
    invalid_patterns_are_400,
    invalid_list_count_is_400,
    invalid_cursor_is_400,
    wrong_methods_are_405,
    method_not_allowed_lists_allowed_methods,
    error_bodies_have_code_and_message,
);
