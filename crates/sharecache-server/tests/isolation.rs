//! Tenant isolation: no endpoint lets a service read, write, list, match or delete what it
//! was not granted, whatever keys, patterns, cursors or credentials it sends.
//!
//! Every test runs on the memory backend, a real Redis and a Redis Cluster. After each attempt the
//! whole store is inspected below the API (raw `KEYS`/`MGET` on Redis; every opened
//! namespace plus the store's key count on the others) to check that keys of other
//! namespaces are untouched and that no key appeared outside the caller's grants.

#[macro_use]
mod support;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sharecache::key::glob_match;
use support::routes::{Perm, routes};
use support::store::{Snap, assert_unchanged, snapshot};
use support::{Backend, Resp, TestApp, enc};
use tower::ServiceExt;

/// Every namespace seeded; `a` is a prefix of `ab`, which is a prefix of `abc`.
const NAMESPACES: [&str; 6] = ["auth", "user", "shared", "a", "ab", "abc"];

/// Keys seeded in every namespace besides the `secret-<ns>-<n>` markers.
const HOSTILE_KEYS: &[&str] = &[
    "*",
    "?",
    "[",
    "]",
    "\\",
    "..",
    "../x",
    "..%2F..%2Fuser%2Fx",
    "../../user/x",
    "%2F",
    "/",
    "x%3Ay",
    "x:y",
    ":",
    "b:x",
    "bc:x",
    "ab:x",
    "xab:y",
    "*ab:*",
    "[a-z]*",
    "x\\*",
    "a b",
    "ключ",
    "emoji 🎉",
];

/// Patterns a service may try to reach outside its namespace with.
const HOSTILE_PATTERNS: &[&str] = &[
    "*",
    "**",
    "?*",
    "*?",
    "[a-z]*",
    "\\*",
    "*:*",
    "../*",
    "../../*",
    "../ab:*",
    "*ab:*",
    "ab:*",
    "b*",
    "b:*",
    "bc*",
    ":*",
    "*secret-ab*",
    "*secret*",
    "*VAL*",
    "[^s]*",
    "a*",
    "*\\\\*",
    "..%2F*",
    "%2A",
    "?",
    "??",
    "[ab]*",
    "*[:]*",
    "\\[",
    "x\\\\\\*",
    "*/*",
    "\\a\\b:*",
    "*ключ*",
];

/// One service credential of the test app and its grants.
struct Svc<'a> {
    name: &'static str,
    token: &'a str,
    read: &'static [&'static str],
    write: &'static [&'static str],
}

impl Svc<'_> {
    fn can_read(&self, ns: &str) -> bool {
        self.read.contains(&ns) || self.write.contains(&ns)
    }

    fn can_write(&self, ns: &str) -> bool {
        self.write.contains(&ns)
    }
}

fn services(app: &TestApp) -> Vec<Svc<'_>> {
    vec![
        Svc {
            name: "auth",
            token: &app.auth,
            read: &["auth", "shared"],
            write: &["auth"],
        },
        Svc {
            name: "user",
            token: &app.user,
            read: &["user", "shared"],
            write: &["user", "shared"],
        },
        Svc {
            name: "a",
            token: &app.a,
            read: &["a"],
            write: &["a"],
        },
    ]
}

fn seeded_keys(ns: &str) -> Vec<String> {
    let mut keys = vec![format!("secret-{ns}-1"), format!("secret-{ns}-2")];
    keys.extend(HOSTILE_KEYS.iter().map(|k| (*k).to_owned()));
    keys
}

fn seeded_value(ns: &str, i: usize) -> Value {
    json!({"v": format!("VAL-{ns}-{i}"), "ns": ns})
}

/// Seeds (or re-seeds) every key of `ns` as admin.
async fn seed_ns(app: &TestApp, ns: &str) {
    for (i, key) in seeded_keys(ns).iter().enumerate() {
        let r = app
            .call(
                Method::PUT,
                &format!("/v1/cache/{ns}/{}", enc(key)),
                Some(&app.admin),
                Some(&seeded_value(ns, i).to_string()),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::NO_CONTENT,
            "seed {ns}/{key:?}: {}",
            r.text()
        );
    }
}

async fn seed(app: &TestApp) -> Snap {
    for ns in NAMESPACES {
        seed_ns(app, ns).await;
    }
    let snap = snapshot(app).await;
    assert_eq!(
        snap.len(),
        NAMESPACES.len() * seeded_keys("x").len(),
        "seeded keys: {:?}",
        snap.keys()
    );
    snap
}

fn in_namespaces(stored: &str, namespaces: &[&str]) -> bool {
    namespaces
        .iter()
        .any(|ns| stored.starts_with(&format!("{ns}:")))
}

/// Keys outside `writable` are exactly as before, and no key appeared outside `writable`.
fn assert_confined(before: &Snap, after: &Snap, writable: &[&str], ctx: &str) {
    for (k, v) in before {
        if !in_namespaces(k, writable) {
            assert_eq!(
                after.get(k),
                Some(v),
                "{ctx}: key {k:?} outside {writable:?} changed or vanished"
            );
        }
    }
    for k in after.keys() {
        if !before.contains_key(k) {
            assert!(
                in_namespaces(k, writable),
                "{ctx}: key {k:?} was created outside {writable:?}"
            );
        }
    }
}

/// The keys of `ns` in a snapshot, relative to the namespace.
fn keys_of(snap: &Snap, ns: &str) -> BTreeSet<String> {
    let head = format!("{ns}:");
    snap.keys()
        .filter_map(|k| k.strip_prefix(&head))
        .map(str::to_owned)
        .collect()
}

/// A body of a refusal must never carry a key name or value of any namespace.
fn assert_no_leak(r: &Resp, ctx: &str) {
    let text = r.text();
    for needle in ["VAL-", "secret-", "ключ", "emoji"] {
        assert!(
            !text.contains(needle),
            "{ctx}: refusal body leaks {needle:?}: {text}"
        );
    }
}

fn assert_error(r: &Resp, status: StatusCode, code: &str, ctx: &str) {
    assert_eq!(r.status, status, "{ctx}: {}", r.text());
    let body = r.json();
    assert_eq!(body["error"]["code"], code, "{ctx}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{ctx}: no message: {body}"
    );
}

fn forbidden(r: &Resp, ctx: &str) {
    assert_error(r, StatusCode::FORBIDDEN, "forbidden", ctx);
    assert_no_leak(r, ctx);
}

fn forbidden_head(r: &Resp, ctx: &str) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{ctx}");
    assert_no_leak(r, ctx);
}

/// A request with arbitrary headers (for credentials the helper cannot express).
async fn raw(
    app: &TestApp,
    method: Method,
    uri: &str,
    auth: Option<HeaderValue>,
    body: Option<&str>,
) -> Resp {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(v) = auth {
        b = b.header("authorization", v);
    }
    let req = match body {
        Some(body) => b
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    };
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

/// Walks a whole listing (bounded); `Err` with the first refusal.
async fn list_all(
    app: &TestApp,
    token: &str,
    ns: &str,
    pattern: &str,
    count: usize,
) -> Result<BTreeSet<String>, Resp> {
    let mut keys = BTreeSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..500 {
        let mut uri = format!("/v1/cache/{ns}?match={}&count={count}", enc(pattern));
        if let Some(c) = &cursor {
            uri.push_str(&format!("&cursor={}", enc(c)));
        }
        let r = app.call(Method::GET, &uri, Some(token), None).await;
        if r.status != StatusCode::OK {
            return Err(r);
        }
        let body = r.json();
        for k in body["keys"]
            .as_array()
            .unwrap_or_else(|| panic!("no keys in {body}"))
        {
            keys.insert(k.as_str().unwrap().to_owned());
        }
        match &body["cursor"] {
            Value::Null => return Ok(keys),
            Value::String(c) => cursor = Some(c.clone()),
            other => panic!("bad cursor {other}"),
        }
    }
    panic!("listing {ns} with {pattern:?} did not finish in 500 pages");
}

/// A per-test app; the 401 test raises the failed-auth budget so it is not cut short by 429.
async fn app_with_auth_budget(backend: Backend, per_minute: u32) -> TestApp {
    TestApp::with_server_config(
        backend,
        &format!(
            "max_body_bytes = 65536\nmax_batch = 100\nauth_failures_per_minute = {per_minute}"
        ),
    )
    .await
}

// ---------------------------------------------------------------------------------------

/// GET/HEAD/PUT/DELETE of single keys in namespaces a service was not granted are 403,
/// leak nothing and change nothing; granted reads return the right namespace's value.
async fn single_key_ops_are_confined(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    let probe: Vec<(usize, String)> = seeded_keys("x").into_iter().enumerate().collect();
    for svc in services(&app) {
        for ns in NAMESPACES {
            for (i, key_template) in &probe {
                let key = if key_template.starts_with("secret-") {
                    key_template.replace("-x-", &format!("-{ns}-"))
                } else {
                    key_template.clone()
                };
                let uri = format!("/v1/cache/{ns}/{}", enc(&key));
                let ctx = format!("{} {ns}/{key:?}", svc.name);
                let r = app.call(Method::GET, &uri, Some(svc.token), None).await;
                if svc.can_read(ns) {
                    assert_eq!(r.status, StatusCode::OK, "{ctx}: {}", r.text());
                    assert_eq!(r.json(), seeded_value(ns, *i), "{ctx}");
                    let h = app.call(Method::HEAD, &uri, Some(svc.token), None).await;
                    assert_eq!(h.status, StatusCode::OK, "{ctx} HEAD");
                } else {
                    forbidden(&r, &format!("GET {ctx}"));
                    let h = app.call(Method::HEAD, &uri, Some(svc.token), None).await;
                    forbidden_head(&h, &format!("HEAD {ctx}"));
                }
                if !svc.can_write(ns) {
                    // Overwrite an existing key, create a new one, delete an existing one.
                    let r = app
                        .call(
                            Method::PUT,
                            &uri,
                            Some(svc.token),
                            Some("{\"v\":\"overwritten\"}"),
                        )
                        .await;
                    forbidden(&r, &format!("PUT {ctx}"));
                    let new_uri = format!("/v1/cache/{ns}/{}", enc(&format!("new-{key}")));
                    let r = app
                        .call(
                            Method::PUT,
                            &format!("{new_uri}?ttl=60"),
                            Some(svc.token),
                            Some("1"),
                        )
                        .await;
                    forbidden(&r, &format!("PUT new {ctx}"));
                    let r = app.call(Method::DELETE, &uri, Some(svc.token), None).await;
                    forbidden(&r, &format!("DELETE {ctx}"));
                    assert_unchanged(&app, &before, &ctx).await;
                }
            }
        }
    }
    assert_unchanged(&app, &before, "end").await;
}

/// Percent-encoded, upper-case and look-alike spellings of a namespace resolve to the
/// real name (and its grants) or are refused; none reaches another namespace.
async fn namespace_spellings_are_confined(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    // `%75ser` is `user`: the grant check applies to the decoded name.
    let r = app
        .call(
            Method::GET,
            "/v1/cache/%75ser/secret-user-1",
            Some(&app.a),
            None,
        )
        .await;
    forbidden(&r, "a GET %75ser");
    let r = app
        .call(Method::PUT, "/v1/cache/%75ser/x", Some(&app.a), Some("1"))
        .await;
    forbidden(&r, "a PUT %75ser");
    let r = app
        .call(
            Method::GET,
            "/v1/cache/%75ser/secret-user-1",
            Some(&app.user),
            None,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "user reads its own namespace however spelled"
    );
    let r = app
        .call(
            Method::GET,
            "/v1/cache/%61b/secret-ab-1",
            Some(&app.a),
            None,
        )
        .await;
    forbidden(&r, "a GET %61b");
    assert_unchanged(&app, &before, "encoded names").await;

    // Spellings that must never be taken for `a`, `ab` or `user`.
    let bad = [
        "A",
        "AB",
        "User",
        "a%20",
        "%20a",
        "a%00",
        "a%0A",
        "%EF%BD%81",
        "a%3Ab",
        "a%3A",
        "a%2Fb",
        "a%2F..%2Fab",
        "..",
        "%2E%2E",
        "a*",
        "a%2A",
        "%2A",
        "a%3F",
        "ab%5B",
        "us%C3%A9r",
    ];
    for token in [&app.a, &app.user, &app.admin] {
        for ns in bad {
            for (method, uri, body) in [
                (Method::GET, format!("/v1/cache/{ns}/secret-ab-1"), None),
                (Method::PUT, format!("/v1/cache/{ns}/k"), Some("1")),
                (Method::DELETE, format!("/v1/cache/{ns}/secret-a-1"), None),
                (Method::GET, format!("/v1/cache/{ns}"), None),
                (Method::DELETE, format!("/v1/cache/{ns}"), None),
                (
                    Method::POST,
                    format!("/v1/cache/{ns}/_invalidate"),
                    Some("{\"pattern\":\"*\"}"),
                ),
                (
                    Method::POST,
                    format!("/v1/cache/{ns}/_mset"),
                    Some("{\"items\":{\"k\":1}}"),
                ),
            ] {
                let ctx = format!("{method} {uri}");
                let r = app.call(method, &uri, Some(token), body).await;
                assert_error(&r, StatusCode::BAD_REQUEST, "invalid_namespace", &ctx);
                assert_no_leak(&r, &ctx);
            }
        }
    }
    // Raw dot segments and extra segments match no route: nothing is touched.
    for uri in [
        "/v1/cache/a/../user/secret-user-1",
        "/v1/cache/a/../../v1/cache/user/secret-user-1",
        "/v1/cache/a/x/../../user",
        "/v1/cache/a/..%2F..%2Fuser/x",
    ] {
        for (method, body) in [
            (Method::GET, None),
            (Method::PUT, Some("1")),
            (Method::DELETE, None),
        ] {
            let ctx = format!("{method} {uri}");
            let r = app.call(method, uri, Some(&app.a), body).await;
            assert!(
                r.status.is_client_error(),
                "{ctx}: {} {}",
                r.status,
                r.text()
            );
            assert_no_leak(&r, &ctx);
        }
    }
    assert_unchanged(&app, &before, "bad spellings").await;
}

/// Hostile keys a service writes in its own namespace land exactly at `<ns>:<key>`, read
/// back as written, and never create or change a key anywhere else; keys with control
/// characters or over the length limit are 400 on every verb, never a success.
async fn hostile_keys_stay_in_namespace(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    // (path segment as sent, key it must decode to)
    let mut cases: Vec<(String, String)> = HOSTILE_KEYS
        .iter()
        .map(|k| (enc(k), (*k).to_owned()))
        .collect();
    for (seg, key) in [
        ("..", ".."),
        ("%2E%2E", ".."),
        (".", "."),
        ("..%2F..%2Fuser%2Fx", "../../user/x"),
        ("..%2Fab%3Asecret-ab-1", "../ab:secret-ab-1"),
        ("%2F", "/"),
        ("%2Fuser%2Fsecret-user-1", "/user/secret-user-1"),
        ("x%3Ay", "x:y"),
        ("%3Asecret-ab-1", ":secret-ab-1"),
        ("b%3Asecret-ab-1", "b:secret-ab-1"),
        ("%5C", "\\"),
        ("%2A", "*"),
        ("%3F", "?"),
        ("%5B", "["),
        ("%25", "%"),
        ("%252F", "%2F"),
        ("a%20b", "a b"),
        ("%F0%9F%8E%89", "🎉"),
        ("%E2%80%AE", "\u{202e}"),
    ] {
        cases.push((seg.to_owned(), key.to_owned()));
    }
    cases.push((enc(&"k".repeat(1024)), "k".repeat(1024)));
    let mut expected = before.clone();
    for (i, (seg, key)) in cases.iter().enumerate() {
        let uri = format!("/v1/cache/a/{seg}");
        let ctx = format!("a PUT {seg}");
        let value = json!({"hostile": i});
        let r = app
            .call(Method::PUT, &uri, Some(&app.a), Some(&value.to_string()))
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{ctx}: {}", r.text());
        let after = snapshot(&app).await;
        assert_confined(&before, &after, &["a"], &ctx);
        let stored = format!("a:{key}");
        assert!(
            after.contains_key(&stored),
            "{ctx}: not stored as {stored:?}"
        );
        expected.insert(stored.clone(), after[&stored].clone());
        assert_eq!(after, expected, "{ctx}: more than {stored:?} changed");
        let r = app.call(Method::GET, &uri, Some(&app.a), None).await;
        assert_eq!(r.status, StatusCode::OK, "{ctx} GET");
        assert_eq!(r.json(), value, "{ctx} GET");
        // The same key through a batch read answers the same value.
        let r = app
            .call(
                Method::POST,
                "/v1/cache/a/_mget",
                Some(&app.a),
                Some(&json!({"keys": [key]}).to_string()),
            )
            .await;
        assert_eq!(r.json(), json!({"values": [value]}), "{ctx} _mget");
    }
    // Delete them again: only `a:` keys go.
    for (seg, key) in &cases {
        let uri = format!("/v1/cache/a/{seg}");
        let r = app.call(Method::DELETE, &uri, Some(&app.a), None).await;
        let stored = format!("a:{key}");
        if expected.remove(&stored).is_some() {
            assert_eq!(r.status, StatusCode::NO_CONTENT, "DELETE {seg}");
        } else {
            assert_error(
                &r,
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("DELETE {seg} again"),
            );
        }
    }
    let after = snapshot(&app).await;
    assert_confined(&before, &after, &["a"], "deletes");
    assert_eq!(after, expected);

    // Invalid keys: 400 invalid_key on every verb, nothing stored anywhere.
    let now = snapshot(&app).await;
    let long = "k".repeat(10_000);
    let invalid: Vec<String> = vec![
        "%00".into(),
        "x%00y".into(),
        "secret-a-1%00".into(),
        "%0D".into(),
        "%0A".into(),
        "x%0D%0Ay".into(),
        "x%0D%0ASET%20ab%3Ax%201".into(),
        "%09".into(),
        "%7F".into(),
        "%C2%85".into(),
        enc(&long),
        long.clone(),
        enc(&"k".repeat(1025)),
        enc(&"é".repeat(513)),
    ];
    for seg in &invalid {
        let uri = format!("/v1/cache/a/{seg}");
        let ctx = format!("invalid key {}", &seg[..seg.len().min(40)]);
        for (method, body) in [
            (Method::PUT, Some("1")),
            (Method::GET, None),
            (Method::DELETE, None),
        ] {
            let r = app.call(method.clone(), &uri, Some(&app.a), body).await;
            assert_error(
                &r,
                StatusCode::BAD_REQUEST,
                "invalid_key",
                &format!("{method} {ctx}"),
            );
        }
        let r = app.call(Method::HEAD, &uri, Some(&app.a), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "HEAD {ctx}");
        assert_unchanged(&app, &now, &ctx).await;
    }
}

/// `_mget`, `_mset`, `_mdel` and `_invalidate` on namespaces not granted are 403 and change
/// nothing; inside a granted namespace, batch keys are literal keys of that namespace only.
async fn batch_ops_are_confined(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    for svc in services(&app) {
        for ns in NAMESPACES {
            let ctx = |op: &str| format!("{} {op} {ns}", svc.name);
            let keys = json!({"keys": [format!("secret-{ns}-1"), "*", "..", "../a:x", format!("{ns}:secret-{ns}-1")]}).to_string();
            if !svc.can_read(ns) {
                let r = app
                    .call(
                        Method::POST,
                        &format!("/v1/cache/{ns}/_mget"),
                        Some(svc.token),
                        Some(&keys),
                    )
                    .await;
                forbidden(&r, &ctx("_mget"));
            }
            if svc.can_write(ns) {
                continue;
            }
            let items = json!({"items": {format!("secret-{ns}-1"): "overwritten", "brand-new": 1, "*": 2}, "ttl": 60}).to_string();
            for (op, body) in [
                ("_mset", items.as_str()),
                ("_mdel", keys.as_str()),
                ("_invalidate", "{\"pattern\":\"*\"}"),
                ("_invalidate", "{\"pattern\":\"secret-*\"}"),
                ("_invalidate", "{\"pattern\":\"../*\"}"),
            ] {
                let r = app
                    .call(
                        Method::POST,
                        &format!("/v1/cache/{ns}/{op}"),
                        Some(svc.token),
                        Some(body),
                    )
                    .await;
                forbidden(&r, &ctx(op));
                assert_unchanged(&app, &before, &ctx(op)).await;
            }
        }
    }

    // Inside `a`: keys that spell other namespaces' stored keys are plain keys of `a`.
    let lookalikes = [
        "../ab:secret-ab-1",
        ":secret-ab-1",
        "b:secret-ab-1",
        "ab:secret-ab-1",
        "bc:secret-abc-1",
        "../user/secret-user-1",
        "user:secret-user-1",
        "%2E%2E%2Fab%3Asecret-ab-1",
    ];
    let r = app
        .call(
            Method::POST,
            "/v1/cache/a/_mget",
            Some(&app.a),
            Some(&json!({"keys": lookalikes}).to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"values": vec![Value::Null; lookalikes.len()]}),
        "look-alike keys read nothing"
    );
    // `*` in a batch read is the literal key `*`, not a glob.
    let star = seeded_keys("a").iter().position(|k| k == "*").unwrap();
    let r = app
        .call(
            Method::POST,
            "/v1/cache/a/_mget",
            Some(&app.a),
            Some("{\"keys\":[\"*\",\"?\",\"[a-z]*\"]}"),
        )
        .await;
    let q = seeded_keys("a").iter().position(|k| k == "?").unwrap();
    let class = seeded_keys("a").iter().position(|k| k == "[a-z]*").unwrap();
    assert_eq!(
        r.json(),
        json!({"values": [seeded_value("a", star), seeded_value("a", q), seeded_value("a", class)]})
    );
    assert_unchanged(&app, &before, "reads").await;

    // _mdel of look-alikes deletes nothing; of `*` deletes only the literal `a:*`.
    let r = app
        .call(
            Method::POST,
            "/v1/cache/a/_mdel",
            Some(&app.a),
            Some(&json!({"keys": lookalikes}).to_string()),
        )
        .await;
    assert_eq!(r.json(), json!({"deleted": 0}), "look-alike deletes");
    assert_unchanged(&app, &before, "look-alike deletes").await;
    let r = app
        .call(
            Method::POST,
            "/v1/cache/a/_mdel",
            Some(&app.a),
            Some("{\"keys\":[\"*\"]}"),
        )
        .await;
    assert_eq!(r.json(), json!({"deleted": 1}), "_mdel of the literal *");
    let mut expected = before.clone();
    expected.remove("a:*");
    assert_eq!(snapshot(&app).await, expected, "_mdel [*] removes only a:*");

    // _mset of look-alikes writes them into `a` only.
    let items: serde_json::Map<String, Value> = lookalikes
        .iter()
        .map(|k| ((*k).to_owned(), json!("mine")))
        .collect();
    let r = app
        .call(
            Method::POST,
            "/v1/cache/a/_mset",
            Some(&app.a),
            Some(&json!({"items": items, "ttl": 600}).to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let after = snapshot(&app).await;
    assert_confined(&before, &after, &["a"], "_mset look-alikes");
    for k in lookalikes {
        assert!(after.contains_key(&format!("a:{k}")), "a:{k} stored");
    }
    assert_eq!(after.len(), expected.len() + lookalikes.len());
    // ...and the owners still read their own values.
    let r = app
        .call(
            Method::GET,
            "/v1/cache/ab/secret-ab-1",
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(r.json(), seeded_value("ab", 0));
    let r = app
        .call(
            Method::GET,
            "/v1/cache/user/secret-user-1",
            Some(&app.user),
            None,
        )
        .await;
    assert_eq!(r.json(), seeded_value("user", 0));
}

/// `auth` may read `shared` (GET, HEAD, _mget, list) but every write to it is 403 and
/// changes nothing; `user`, which holds the write grant, can.
async fn read_only_grant_is_read_only(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    let t = app.auth.as_str();
    let r = app
        .call(
            Method::GET,
            "/v1/cache/shared/secret-shared-1",
            Some(t),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), seeded_value("shared", 0));
    let r = app
        .call(
            Method::HEAD,
            "/v1/cache/shared/secret-shared-2",
            Some(t),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call(
            Method::POST,
            "/v1/cache/shared/_mget",
            Some(t),
            Some("{\"keys\":[\"secret-shared-1\",\"nope\"]}"),
        )
        .await;
    assert_eq!(
        r.json(),
        json!({"values": [seeded_value("shared", 0), null]})
    );
    let listed = list_all(&app, t, "shared", "*", 7)
        .await
        .unwrap_or_else(|r| panic!("auth lists shared: {}", r.text()));
    assert_eq!(listed, keys_of(&before, "shared"));

    let writes: Vec<(Method, &str, Option<&str>)> = vec![
        (
            Method::PUT,
            "/v1/cache/shared/secret-shared-1",
            Some("\"overwritten\""),
        ),
        (Method::PUT, "/v1/cache/shared/new-key?ttl=60", Some("1")),
        (Method::PUT, "/v1/cache/shared/%2A", Some("1")),
        (Method::DELETE, "/v1/cache/shared/secret-shared-1", None),
        (Method::DELETE, "/v1/cache/shared/missing", None),
        (
            Method::POST,
            "/v1/cache/shared/_mset",
            Some("{\"items\":{\"secret-shared-1\":0,\"new\":1}}"),
        ),
        (
            Method::POST,
            "/v1/cache/shared/_mset",
            Some("{\"items\":{}}"),
        ),
        (
            Method::POST,
            "/v1/cache/shared/_mdel",
            Some("{\"keys\":[\"secret-shared-1\",\"*\"]}"),
        ),
        (
            Method::POST,
            "/v1/cache/shared/_mdel",
            Some("{\"keys\":[]}"),
        ),
        (
            Method::POST,
            "/v1/cache/shared/_invalidate",
            Some("{\"pattern\":\"*\"}"),
        ),
        (
            Method::POST,
            "/v1/cache/shared/_invalidate",
            Some("{\"pattern\":\"no-match-*\"}"),
        ),
        (Method::DELETE, "/v1/cache/shared", None),
    ];
    for (method, uri, body) in &writes {
        let ctx = format!("auth {method} {uri}");
        let r = app.call(method.clone(), uri, Some(t), *body).await;
        forbidden(&r, &ctx);
        assert!(
            r.text().contains("write"),
            "{ctx}: the refusal names the missing grant: {}",
            r.text()
        );
        assert_unchanged(&app, &before, &ctx).await;
    }
    // The writer of `shared` may do the same.
    let r = app
        .call(
            Method::PUT,
            "/v1/cache/shared/new-key",
            Some(&app.user),
            Some("1"),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let after = snapshot(&app).await;
    assert_confined(&before, &after, &["shared"], "user writes shared");
    let r = app
        .call(Method::DELETE, "/v1/cache/shared", Some(&app.user), None)
        .await;
    assert_eq!(
        r.json(),
        json!({"deleted": seeded_keys("shared").len() + 1})
    );
    let after = snapshot(&app).await;
    assert_confined(&before, &after, &["shared"], "user clears shared");
    assert!(keys_of(&after, "shared").is_empty());
}

/// Listing and clearing namespaces not granted is 403 whatever the pattern; cursors from
/// other namespaces or made up never list anything outside the caller's namespace.
async fn list_and_clear_are_confined(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    for svc in services(&app) {
        for ns in NAMESPACES {
            if !svc.can_read(ns) {
                for p in ["*", "secret-*", "../*"] {
                    let uri = format!("/v1/cache/{ns}?match={}", enc(p));
                    let r = app.call(Method::GET, &uri, Some(svc.token), None).await;
                    forbidden(&r, &format!("{} list {uri}", svc.name));
                }
                let r = app
                    .call(
                        Method::GET,
                        &format!("/v1/cache/{ns}?count=1&cursor=0"),
                        Some(svc.token),
                        None,
                    )
                    .await;
                forbidden(&r, &format!("{} list {ns} with cursor", svc.name));
            }
            if !svc.can_write(ns) {
                let r = app
                    .call(
                        Method::DELETE,
                        &format!("/v1/cache/{ns}"),
                        Some(svc.token),
                        None,
                    )
                    .await;
                forbidden(&r, &format!("{} clear {ns}", svc.name));
                assert_unchanged(&app, &before, &format!("{} clear {ns}", svc.name)).await;
            }
        }
    }

    // Cursors: real ones from listings of other namespaces, and made-up ones.
    let a_keys = keys_of(&before, "a");
    let mut cursors: Vec<String> = vec![
        "0".into(),
        "1".into(),
        "ab:".into(),
        "ab:secret-ab-1".into(),
        "user:secret-user-1".into(),
        "a:".into(),
        "a;".into(),
        "~".into(),
        "!".into(),
        "*".into(),
        "../ab".into(),
        "18446744073709551615".into(),
    ];
    for ns in ["ab", "abc", "user"] {
        let r = app
            .call(
                Method::GET,
                &format!("/v1/cache/{ns}?count=1"),
                Some(&app.admin),
                None,
            )
            .await;
        if let Some(c) = r.json()["cursor"].as_str() {
            cursors.push(c.to_owned());
        }
    }
    for c in &cursors {
        let uri = format!("/v1/cache/a?count=5&cursor={}", enc(c));
        let r = app.call(Method::GET, &uri, Some(&app.a), None).await;
        let ctx = format!("a list with cursor {c:?}");
        match r.status {
            StatusCode::OK => {
                for k in r.json()["keys"].as_array().unwrap() {
                    let k = k.as_str().unwrap();
                    assert!(a_keys.contains(k), "{ctx}: listed {k:?}, not a key of a");
                }
                assert_no_leak_of_others(&r, "a", &ctx);
            }
            StatusCode::BAD_REQUEST => {
                assert_error(&r, StatusCode::BAD_REQUEST, "invalid_cursor", &ctx)
            }
            other => panic!("{ctx}: {other} {}", r.text()),
        }
    }
    assert_unchanged(&app, &before, "cursors").await;
}

/// No value of a namespace other than `mine` appears in a body.
fn assert_no_leak_of_others(r: &Resp, mine: &str, ctx: &str) {
    let text = r.text();
    for ns in NAMESPACES.iter().filter(|n| **n != mine) {
        assert!(
            !text.contains(&format!("VAL-{ns}-")),
            "{ctx}: leaks a value of {ns}: {text}"
        );
        assert!(
            !text.contains(&format!("secret-{ns}-")),
            "{ctx}: leaks a key of {ns}: {text}"
        );
    }
}

/// Hostile glob patterns in list and `_invalidate` only ever match keys of the caller's
/// namespace: the listing equals the namespace's keys filtered by the glob, and
/// invalidation deletes exactly those.
async fn patterns_cannot_escape_namespace(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    let a_keys = keys_of(&before, "a");
    for p in HOSTILE_PATTERNS {
        let ctx = format!("pattern {p:?}");
        let want: BTreeSet<String> = a_keys
            .iter()
            .filter(|k| glob_match(p.as_bytes(), k.as_bytes()))
            .cloned()
            .collect();
        for count in [3, 100] {
            let got = list_all(&app, &app.a, "a", p, count)
                .await
                .unwrap_or_else(|r| panic!("{ctx}: {} {}", r.status, r.text()));
            assert_eq!(got, want, "{ctx}: listing of a (count {count})");
        }
        // Other namespaces stay closed to `a` with the same pattern.
        for ns in ["ab", "abc", "user"] {
            let r = app
                .call(
                    Method::GET,
                    &format!("/v1/cache/{ns}?match={}", enc(p)),
                    Some(&app.a),
                    None,
                )
                .await;
            forbidden(&r, &format!("{ctx} list {ns}"));
            let r = app
                .call(
                    Method::POST,
                    &format!("/v1/cache/{ns}/_invalidate"),
                    Some(&app.a),
                    Some(&json!({"pattern": p}).to_string()),
                )
                .await;
            forbidden(&r, &format!("{ctx} invalidate {ns}"));
        }
        assert_unchanged(&app, &before, &ctx).await;

        let r = app
            .call(
                Method::POST,
                "/v1/cache/a/_invalidate",
                Some(&app.a),
                Some(&json!({"pattern": p}).to_string()),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{ctx}: {}", r.text());
        assert_eq!(
            r.json(),
            json!({"deleted": want.len()}),
            "{ctx}: invalidate count"
        );
        let after = snapshot(&app).await;
        let mut expected = before.clone();
        for k in &want {
            expected.remove(&format!("a:{k}"));
        }
        assert_eq!(
            after.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{ctx}: invalidate removed other keys"
        );
        assert_eq!(after, expected, "{ctx}");
        seed_ns(&app, "a").await;
        assert_unchanged(&app, &before, &format!("{ctx} reseeded")).await;
    }
}

/// `a` is a prefix of `ab` and `abc`: clearing or invalidating `a` never touches them, and
/// listing `a` never returns their keys, whatever the page size.
async fn prefix_namespace_never_reaches_longer_names(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    let a_keys = keys_of(&before, "a");
    for count in [1, 2, 5, 100] {
        let got = list_all(&app, &app.a, "a", "*", count)
            .await
            .unwrap_or_else(|r| panic!("{}", r.text()));
        assert_eq!(got, a_keys, "list a, count {count}");
    }
    // The same from the admin: `a` holds exactly its own keys.
    let got = list_all(&app, &app.admin, "a", "*", 4).await.unwrap();
    assert_eq!(got, a_keys);
    for ns in ["ab", "abc"] {
        let r = app
            .call(Method::GET, &format!("/v1/cache/{ns}"), Some(&app.a), None)
            .await;
        forbidden(&r, &format!("a lists {ns}"));
        let r = app
            .call(
                Method::GET,
                &format!("/v1/cache/{ns}/secret-{ns}-1"),
                Some(&app.a),
                None,
            )
            .await;
        forbidden(&r, &format!("a reads {ns}"));
    }

    let without_a = |snap: &Snap| -> Snap {
        snap.iter()
            .filter(|(k, _)| !k.starts_with("a:"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let n_a = a_keys.len();

    let r = app
        .call(Method::DELETE, "/v1/cache/a", Some(&app.a), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"deleted": n_a}), "clear a");
    assert_eq!(
        snapshot(&app).await,
        without_a(&before),
        "clear a left ab/abc and the rest intact"
    );
    seed_ns(&app, "a").await;

    for p in ["*", "b*", "b:*", "bc*", "*ab*", "?*"] {
        let r = app
            .call(
                Method::POST,
                "/v1/cache/a/_invalidate",
                Some(&app.a),
                Some(&json!({"pattern": p}).to_string()),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{p}");
        let after = snapshot(&app).await;
        assert_eq!(
            without_a(&after),
            without_a(&before),
            "invalidate {p:?} in a touched another namespace"
        );
        seed_ns(&app, "a").await;
    }
    let r = app
        .call(
            Method::POST,
            "/v1/cache/a/_invalidate",
            Some(&app.a),
            Some("{\"pattern\":\"*\"}"),
        )
        .await;
    assert_eq!(r.json(), json!({"deleted": n_a}));
    seed_ns(&app, "a").await;

    // The admin clearing `a` and `ab` behaves the same.
    let r = app
        .call(Method::DELETE, "/v1/cache/a", Some(&app.admin), None)
        .await;
    assert_eq!(r.json(), json!({"deleted": n_a}));
    let r = app
        .call(Method::DELETE, "/v1/cache/ab", Some(&app.admin), None)
        .await;
    assert_eq!(r.json(), json!({"deleted": keys_of(&before, "ab").len()}));
    let after = snapshot(&app).await;
    assert_eq!(keys_of(&after, "abc"), keys_of(&before, "abc"));
    for (k, v) in &before {
        if !k.starts_with("a:") && !k.starts_with("ab:") {
            assert_eq!(after.get(k), Some(v), "{k} after clearing a and ab");
        }
    }
    assert!(keys_of(&after, "a").is_empty() && keys_of(&after, "ab").is_empty());
}

/// `/v1/stats` shows a service only the namespaces it may read, and no other namespace's
/// name, key or value; the admin sees them all.
async fn stats_show_only_readable_namespaces(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    // Some traffic in every namespace, so each has counters.
    for ns in NAMESPACES {
        let _ = app
            .call(
                Method::GET,
                &format!("/v1/cache/{ns}/secret-{ns}-1"),
                Some(&app.admin),
                None,
            )
            .await;
        let _ = app
            .call(
                Method::GET,
                &format!("/v1/cache/{ns}/missing"),
                Some(&app.admin),
                None,
            )
            .await;
    }
    for svc in services(&app) {
        let r = app
            .call(Method::GET, "/v1/stats", Some(svc.token), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", svc.name);
        let body = r.json();
        let names: BTreeSet<String> = body["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["namespace"].as_str().unwrap().to_owned())
            .collect();
        let want: BTreeSet<String> = NAMESPACES
            .iter()
            .filter(|n| svc.can_read(n))
            .map(|n| (*n).to_owned())
            .collect();
        assert_eq!(names, want, "{} sees", svc.name);
        let text = r.text();
        for other in NAMESPACES.iter().filter(|n| !svc.can_read(n)) {
            assert!(
                !text.contains(&format!("\"{other}\"")),
                "{}: stats name {other}: {text}",
                svc.name
            );
            assert!(
                !text.contains(&format!("{other}:")),
                "{}: stats show a key of {other}: {text}",
                svc.name
            );
            if other.len() > 2 {
                assert!(
                    !text.contains(*other),
                    "{}: stats mention {other}: {text}",
                    svc.name
                );
            }
        }
        assert!(
            !text.contains("VAL-") && !text.contains("secret-"),
            "{}: {text}",
            svc.name
        );
    }
    let r = app
        .call(Method::GET, "/v1/stats", Some(&app.admin), None)
        .await;
    let names: BTreeSet<String> = r.json()["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["namespace"].as_str().unwrap().to_owned())
        .collect();
    for ns in NAMESPACES {
        assert!(names.contains(ns), "admin sees {ns}: {names:?}");
    }
    assert_unchanged(&app, &before, "stats").await;
}

/// `/metrics` is 403 for every service token and 401 without one; the admin gets it.
async fn metrics_is_admin_only(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    for svc in services(&app) {
        let r = app
            .call(Method::GET, "/metrics", Some(svc.token), None)
            .await;
        forbidden(&r, &format!("{} /metrics", svc.name));
        let text = r.text();
        assert!(
            !text.contains("sharecache_") && !text.contains("namespace="),
            "{text}"
        );
        for ns in NAMESPACES {
            assert!(!text.contains(&format!("\"{ns}\"")), "{text}");
        }
    }
    let r = app.call(Method::GET, "/metrics", None, None).await;
    assert_error(
        &r,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "/metrics without a token",
    );
    let r = app
        .call(Method::GET, "/metrics", Some(&app.admin), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_unchanged(&app, &before, "metrics").await;
}

/// Missing, empty, wrong-scheme, wrong-length, altered and garbage credentials are 401 on
/// every route of the route table, with a body that names nothing stored, and change
/// nothing.
async fn bad_credentials_are_401(backend: Backend) {
    let app = app_with_auth_budget(backend, 1_000_000).await;
    let before = seed(&app).await;
    let change = |t: &str, at: usize| -> String {
        let mut b = t.as_bytes().to_vec();
        b[at] = if b[at] == b'0' { b'1' } else { b'0' };
        String::from_utf8(b).unwrap()
    };
    let h = |s: &str| Some(HeaderValue::from_str(s).unwrap());
    let creds: Vec<(String, Option<HeaderValue>)> = vec![
        ("no header".into(), None),
        ("empty header".into(), h("")),
        ("Bearer".into(), h("Bearer")),
        ("empty bearer".into(), h("Bearer ")),
        ("blank bearer".into(), h("Bearer    ")),
        ("Basic".into(), h(&format!("Basic {}", app.user))),
        ("Basic user:pass".into(), h("Basic dXNlcjpwYXNz")),
        ("Token scheme".into(), h(&format!("Token {}", app.user))),
        ("no scheme".into(), h(&app.user)),
        (
            "Bearer without space".into(),
            h(&format!("Bearer{}", app.user)),
        ),
        (
            "short token".into(),
            h(&format!("Bearer {}", &app.user[..app.user.len() - 1])),
        ),
        ("long token".into(), h(&format!("Bearer {}0", app.user))),
        ("prefix only".into(), h("Bearer sc_")),
        (
            "user token, last char changed".into(),
            h(&format!("Bearer {}", change(&app.user, app.user.len() - 1))),
        ),
        (
            "user token, first hex changed".into(),
            h(&format!("Bearer {}", change(&app.user, 3))),
        ),
        (
            "admin token, middle changed".into(),
            h(&format!("Bearer {}", change(&app.admin, 30))),
        ),
        (
            "a token, last changed".into(),
            h(&format!("Bearer {}", change(&app.a, app.a.len() - 1))),
        ),
        (
            "admin token upper-cased".into(),
            h(&format!("Bearer {}", app.admin.to_uppercase())),
        ),
        (
            "two tokens".into(),
            h(&format!("Bearer {} {}", app.a, app.user)),
        ),
        (
            "10k token".into(),
            h(&format!("Bearer {}", "a".repeat(10_000))),
        ),
        (
            "hash of a token".into(),
            h(&format!("Bearer {}", "0".repeat(64))),
        ),
        (
            "invalid utf-8".into(),
            Some(HeaderValue::from_bytes(b"Bearer sc_\xff\xfe").unwrap()),
        ),
    ];
    // Every route of the table that needs a token, aimed at a stored key.
    let mut endpoints: Vec<(Method, String, Option<&str>, bool)> = routes()
        .into_iter()
        .filter(|r| !matches!(r.perm, Perm::Public | Perm::Login))
        .map(|r| {
            let uri = r.uri("user", "secret-user-1");
            (r.method, uri, r.body, r.perm == Perm::Write)
        })
        .collect();
    // Tokens in the query string are not credentials.
    endpoints.push((
        Method::GET,
        "/v1/cache/user/secret-user-1?token=PLACEHOLDER".to_owned(),
        None,
        false,
    ));
    for (what, cred) in &creds {
        for (method, uri, body, writes) in &endpoints {
            let uri = uri.replace("PLACEHOLDER", &app.user);
            let ctx = format!("{what}: {method} {uri}");
            let r = raw(&app, method.clone(), &uri, cred.clone(), *body).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{ctx}: {}", r.text());
            assert_eq!(
                r.headers.get("www-authenticate").map(|v| v.as_bytes()),
                Some(&b"Bearer"[..]),
                "{ctx}"
            );
            if *method != Method::HEAD {
                assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized", &ctx);
            }
            assert_no_leak(&r, &ctx);
            for ns in NAMESPACES {
                assert!(!r.text().contains(&format!("{ns}:")), "{ctx}: {}", r.text());
            }
            if *writes {
                assert_unchanged(&app, &before, &ctx).await;
            }
        }
    }
    assert_unchanged(&app, &before, "end").await;
    // The right tokens still work afterwards (the budget was raised for this test).
    let r = app
        .call(
            Method::GET,
            "/v1/cache/user/secret-user-1",
            Some(&app.user),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

/// After 20 failed authentications from one address, its further failures are 429 with
/// Retry-After instead of 401, and change nothing; valid tokens from the same address
/// (other tenants behind the same proxy, the admin) are still served; other addresses'
/// failures are still plain 401s.
async fn failed_auths_are_rate_limited(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = seed(&app).await;
    let addr = app.spawn().await;
    let client = support::client();
    let url = |path: &str| format!("http://{addr}{path}");
    for i in 0..20 {
        let r = client
            .get(url("/v1/cache/user/secret-user-1"))
            .bearer_auth(format!("sc_wrong_{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "failure {i} is a plain 401"
        );
    }
    for (what, token) in [("wrong", Some("sc_wrong")), ("none", None)] {
        let mut req = client.put(url("/v1/cache/user/while-blocked"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req
            .body("1")
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{what} token past the budget"
        );
        let retry: u64 = r
            .headers()
            .get("retry-after")
            .unwrap_or_else(|| panic!("{what}: 429 without Retry-After"))
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "rate_limited", "{body}");
        let text = body.to_string();
        assert!(
            !text.contains("VAL-") && !text.contains("secret-"),
            "{text}"
        );
    }
    // Claiming another address in forwarding headers does not reset the count.
    for (h, v) in [
        ("x-forwarded-for", "203.0.113.7"),
        ("x-real-ip", "203.0.113.8"),
        ("forwarded", "for=203.0.113.9"),
    ] {
        let r = client
            .get(url("/v1/cache/user/secret-user-1"))
            .bearer_auth("sc_wrong")
            .header(h, v)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{h}: {v}");
    }
    assert_unchanged(&app, &before, "past the budget").await;
    // Valid tokens from the same address are served: one broken client behind a proxy
    // does not lock out every tenant (or the admin) behind it.
    for (what, token) in [("user", &app.user), ("admin", &app.admin)] {
        let r = client
            .get(url("/v1/cache/user/secret-user-1"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{what} token from the same address"
        );
    }
    // Another client address's failures are its own.
    let r = client_from([127, 0, 0, 2])
        .get(url("/v1/cache/user/secret-user-1"))
        .bearer_auth("sc_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "another address");
}

fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `/metrics` authenticates like every other route: failed tokens there count against the
/// caller's own address, so one client guessing tokens on `/metrics` gets 429 itself, and
/// the Prometheus scraper with the admin token is served.
async fn metrics_auth_failures_count_per_address(backend: Backend) {
    let app = TestApp::new(backend).await;
    let addr = app.spawn().await;
    let attacker = client_from([127, 0, 0, 1]);
    let scraper = client_from([127, 0, 0, 2]);
    let metrics = format!("http://{addr}/metrics");
    let mut statuses = Vec::new();
    for i in 0..25 {
        let r = attacker
            .get(&metrics)
            .bearer_auth(format!("sc_wrong_{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(
        &statuses[..20],
        &[401; 20][..],
        "the first 20 failures are 401"
    );
    assert_eq!(
        &statuses[20..],
        &[429; 5][..],
        "then the guessing address is blocked"
    );
    let r = scraper
        .get(&metrics)
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "another address with the admin token is served: {:?}",
        r.headers()
    );
    let r = scraper
        .get(format!("http://{addr}/v1/stats"))
        .bearer_auth(&app.user)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "another address is served on /v1 too"
    );
    let r = attacker
        .get(format!("http://{addr}/v1/stats"))
        .bearer_auth("sc_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the guessing address's failures are 429 on /v1 too"
    );
}

/// Failures counted on the cache routes count on `/metrics` too (it is no way around the
/// budget): past it, a wrong token there is 429, while the admin token is served.
async fn blocked_address_is_blocked_on_metrics(backend: Backend) {
    let app = TestApp::new(backend).await;
    let addr = app.spawn().await;
    let client = client_from([127, 0, 0, 1]);
    for i in 0..20 {
        let r = client
            .get(format!("http://{addr}/v1/cache/user/k"))
            .bearer_auth(format!("sc_wrong_{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let mut got = Vec::new();
    for (what, token) in [("admin", app.admin.as_str()), ("wrong", "sc_wrong_again")] {
        let r = client
            .get(format!("http://{addr}/metrics"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        got.push(format!("{what} token -> {}", r.status()));
    }
    assert_eq!(
        got,
        vec![
            "admin token -> 200 OK",
            "wrong token -> 429 Too Many Requests"
        ],
        "GET /metrics from the address past its budget"
    );
}

on_every_backend!(
    single_key_ops_are_confined,
    namespace_spellings_are_confined,
    hostile_keys_stay_in_namespace,
    batch_ops_are_confined,
    read_only_grant_is_read_only,
    list_and_clear_are_confined,
    patterns_cannot_escape_namespace,
    prefix_namespace_never_reaches_longer_names,
    stats_show_only_readable_namespaces,
    metrics_is_admin_only,
    bad_credentials_are_401,
    failed_auths_are_rate_limited,
    metrics_auth_failures_count_per_address,
    blocked_address_is_blocked_on_metrics,
);

/// Tenants cannot slow each other through stats or make `/metrics` grow without bound
/// (issue 11, item 8): with 20 000 keys in `ab`, 30 `/v1/stats` requests from `auth` cost
/// Redis one walk of the keyspace, not one per request; an admin touching 600 namespaces
/// leaves at most 256 unlisted namespaces with their own series in `/metrics`.
#[tokio::test]
async fn stats_and_metrics_stay_bounded_whatever_other_tenants_do() {
    let app = TestApp::new(Backend::Redis).await;
    let server = app.server.as_ref().unwrap();
    let mut c = ::redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    for chunk in 0..20 {
        let mut p = ::redis::pipe();
        for i in 0..1000 {
            p.cmd("SET")
                .arg(format!("ab:k{chunk}-{i}"))
                .arg("1")
                .ignore();
        }
        let () = p.query(&mut c).unwrap();
    }
    let scans = |c: &mut ::redis::Connection| -> u64 {
        let info: String = ::redis::cmd("INFO").arg("commandstats").query(c).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_scan:calls="))
            .and_then(|v| v.split(',').next())
            .map_or(0, |v| v.parse().unwrap())
    };
    let auth = services(&app)
        .into_iter()
        .find(|s| s.can_read("auth") && !s.can_read("ab"))
        .expect("a service that reads auth, not ab");
    let before = scans(&mut c);
    for _ in 0..30 {
        let r = app
            .call(Method::GET, "/v1/stats", Some(auth.token), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let spent = scans(&mut c) - before;
    // One walk of 20 000 keys is about 20 SCAN steps; one per request would be 600.
    assert!(spent <= 40, "{spent} SCAN calls for 30 stats requests");
    // The admin's stats count `ab` from the same walk.
    let r = app
        .call(Method::GET, "/v1/stats", Some(&app.admin), None)
        .await;
    let ab = r.json()["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["namespace"] == "ab")
        .cloned()
        .unwrap_or_else(|| panic!("ab listed: {}", r.text()));
    assert_eq!(ab["keys"], 20_000, "{ab}");

    for i in 0..600 {
        let r = app
            .call(
                Method::GET,
                &format!("/v1/cache/n{i}/k"),
                Some(&app.admin),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
    // A granted namespace used after all of those still gets its own series.
    app.call(Method::GET, "/v1/cache/auth/k", Some(auth.token), None)
        .await;
    let m = app
        .call(Method::GET, "/metrics", Some(&app.admin), None)
        .await
        .text();
    let labelled: BTreeSet<&str> = m
        .lines()
        .filter(|l| l.starts_with("sharecache_http_requests_total{"))
        .filter_map(|l| l.split("namespace=\"").nth(1)?.split('"').next())
        .filter(|ns| ns.starts_with('n') && ns[1..].chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert!(
        labelled.len() <= 256,
        "{} namespaces labelled",
        labelled.len()
    );
    assert!(
        m.contains("namespace=\"_other\""),
        "the rest counted together"
    );
    assert!(
        m.contains("namespace=\"auth\""),
        "granted namespaces keep their series"
    );
}
