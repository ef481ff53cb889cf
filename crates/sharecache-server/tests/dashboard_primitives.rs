//! The dashboard's primitive views over HTTP (`http/primitives.rs`): what each role
//! sees and may change (the admin everything; a viewer sees everything and changes
//! nothing, by bearer token or by cookie; a service only its granted namespaces, read or
//! write as granted), and hostile input answered with 4xx, never 5xx. On the memory
//! store, Redis and a Cluster. The page itself is driven in Chromium by
//! `tests/dashboard.rs`.

#[macro_use]
mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use support::{Backend, Resp, TestApp, enc};

/// What `seed` left in namespace `user`: the lock's token (never to be shown) and fence.
struct Seeded {
    lock_token: String,
    lock_fence: u64,
}

/// A held lock, a presence member, two sessions of `ada` and one of `bob`, a queue with
/// a dead letter, all in `user` (and a lock in `shared`), through the API as a service.
async fn seed(app: &TestApp) -> Seeded {
    let t = Some(app.user.as_str());
    let r = app
        .call(
            Method::POST,
            "/v1/locks/user/job%3A1",
            t,
            Some(r#"{"ttl_ms":60000}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let lock = r.json();
    let r = app
        .call(
            Method::POST,
            "/v1/locks/shared/nightly",
            t,
            Some(r#"{"ttl_ms":60000}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = app
        .call(
            Method::PUT,
            "/v1/presence/user/ada?ttl_ms=60000&set=room%3A1",
            t,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    for user in ["ada", "ada", "bob"] {
        let body = format!(r#"{{"data":{{"n":1}},"user":"{user}"}}"#);
        let r = app
            .call(Method::POST, "/v1/sessions/user", t, Some(&body))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    let r = app
        .call(
            Method::POST,
            "/v1/queues/user/email",
            t,
            Some(r#"{"to":"ada"}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let claim = r#"{"consumer":"w","count":1,"visibility_ms":1,"max_deliveries":1}"#;
    for _ in 0..2 {
        let r = app
            .call(Method::POST, "/v1/queues/user/email/_claim", t, Some(claim))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Seeded {
        lock_token: lock["token"].as_str().unwrap().to_owned(),
        lock_fence: lock["fence"].as_u64().unwrap(),
    }
}

fn ok(r: &Resp, what: &str) -> Value {
    assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.text());
    r.json()
}

/// The cookie of a dashboard login with `token`.
async fn cookie(app: &TestApp, token: &str) -> String {
    let r = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/v1/dashboard/login")
                .header("host", "dash.test")
                .header("sec-fetch-site", "same-origin")
                .header("content-type", "application/json")
                .body(Body::from(format!(r#"{{"token":"{token}"}}"#)))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let set = r.headers["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

/// A same-origin request from the page, with its cookie.
async fn by_cookie(app: &TestApp, method: Method, uri: &str, cookie: &str) -> Resp {
    app.send(
        Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "dash.test")
            .header("sec-fetch-site", "same-origin")
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

/// Everyone who may read `user` sees the same views; the lock's token is never in them.
async fn readers_see_every_primitive(b: Backend) {
    let app = TestApp::new(b).await;
    let seeded = seed(&app).await;
    for token in [&app.admin, &app.viewer, &app.user] {
        let t = Some(token.as_str());
        let r = app
            .call(Method::GET, "/v1/dashboard/locks/user", t, None)
            .await;
        assert!(!r.text().contains(&seeded.lock_token), "never the token");
        let locks = ok(&r, "locks");
        assert_eq!(locks["locks"].as_array().unwrap().len(), 1, "{locks}");
        let l = &locks["locks"][0];
        assert_eq!(
            (l["name"].as_str(), l["fence"].as_u64()),
            (Some("job:1"), Some(seeded.lock_fence))
        );
        let ttl = l["ttl_ms"].as_u64().unwrap();
        assert!(ttl > 50_000 && ttl <= 60_000, "{l}");
        assert_eq!(locks["cursor"], Value::Null);

        let p = ok(
            &app.call(Method::GET, "/v1/dashboard/presence/user", t, None)
                .await,
            "presence",
        );
        assert_eq!(p["sets"].as_array().unwrap().len(), 1, "{p}");
        assert_eq!(p["sets"][0]["name"], "room:1");
        assert_eq!(p["sets"][0]["count"], 1);
        assert_eq!(p["sets"][0]["members"][0]["member"], "ada");
        let left = p["sets"][0]["members"][0]["expires_in_ms"]
            .as_u64()
            .unwrap();
        assert!(left > 50_000 && left <= 60_000, "{p}");

        let s = ok(
            &app.call(Method::GET, "/v1/dashboard/sessions/user", t, None)
                .await,
            "sessions",
        );
        assert_eq!(
            (s["count"].as_u64(), s["count_truncated"].as_bool()),
            (Some(3), Some(false)),
            "{s}"
        );
        let mut users: Vec<&str> = s["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap())
            .collect();
        users.sort();
        assert_eq!(users, ["ada", "bob"]);
        let ada = ok(
            &app.call(Method::GET, "/v1/dashboard/sessions/user/ada", t, None)
                .await,
            "ada",
        );
        let list = ada["sessions"].as_array().unwrap();
        assert_eq!(list.len(), 2, "{ada}");
        assert!(
            list.iter()
                .all(|s| s["handle"].as_str().unwrap().len() == 16 && s.get("id").is_none())
        );

        let q = ok(
            &app.call(Method::GET, "/v1/dashboard/queues/user", t, None)
                .await,
            "queues",
        );
        let want: Vec<Value> = match b {
            Backend::Memory => vec![],
            _ => vec!["email".into()],
        };
        assert_eq!(q["queues"].as_array().unwrap(), &want, "{q}");
        let dead = ok(
            &app.call(Method::GET, "/v1/queues/user/email/_dead", t, None)
                .await,
            "dead",
        );
        assert_eq!(dead["messages"][0]["payload"]["to"], "ada", "{dead}");
    }
    // `shared`, where the lock is another: each namespace lists its own.
    let r = app
        .call(
            Method::GET,
            "/v1/dashboard/locks/shared",
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(ok(&r, "shared")["locks"][0]["name"], "nightly");
}

/// A service sees only its granted namespaces, and changes only where it may write; a
/// viewer changes nothing, by token or by cookie; the admin's cookie changes are
/// audited.
async fn changes_follow_the_grants(b: Backend) {
    let app = TestApp::new(b).await;
    seed(&app).await;
    let gets = [
        "/v1/dashboard/locks/user",
        "/v1/dashboard/presence/user",
        "/v1/dashboard/sessions/user",
        "/v1/dashboard/sessions/user/ada",
        "/v1/dashboard/queues/user",
    ];
    // `auth` has no grant on `user`, `a` neither.
    for token in [&app.auth, &app.a] {
        for path in gets {
            let r = app.call(Method::GET, path, Some(token), None).await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::FORBIDDEN, "forbidden".to_owned()),
                "{path}"
            );
        }
    }
    // `auth` may read `shared` but not write it.
    for path in gets {
        let path = path.replace("/user", "/shared");
        let r = app.call(Method::GET, &path, Some(&app.auth), None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
    }
    let r = app
        .call(
            Method::DELETE,
            "/v1/dashboard/sessions/shared/ada",
            Some(&app.auth),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());

    let ada = ok(
        &app.call(
            Method::GET,
            "/v1/dashboard/sessions/user/ada",
            Some(&app.admin),
            None,
        )
        .await,
        "ada",
    );
    let handle = ada["sessions"][0]["handle"].as_str().unwrap().to_owned();
    let one = format!("/v1/dashboard/sessions/user/ada/{handle}");
    let all = "/v1/dashboard/sessions/user/ada";
    // The viewer's forged changes, by token and by cookie, and another service's.
    let viewer = cookie(&app, &app.viewer).await;
    for path in [one.as_str(), all] {
        let r = app
            .call(Method::DELETE, path, Some(&app.viewer), None)
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::FORBIDDEN, "forbidden".to_owned()),
            "{path}"
        );
        let r = by_cookie(&app, Method::DELETE, path, &viewer).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::FORBIDDEN, "forbidden".to_owned()),
            "{path}"
        );
        let r = app.call(Method::DELETE, path, Some(&app.auth), None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
    }
    let still = ok(
        &app.call(Method::GET, all, Some(&app.admin), None).await,
        "ada",
    );
    assert_eq!(
        still["sessions"].as_array().unwrap().len(),
        2,
        "nothing was ended"
    );

    // The admin by cookie: one session by handle, then the rest of the user's.
    let admin = cookie(&app, &app.admin).await;
    let r = by_cookie(&app, Method::DELETE, &one, &admin).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = by_cookie(&app, Method::DELETE, &one, &admin).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "not_found".to_owned())
    );
    let left = ok(
        &app.call(Method::GET, all, Some(&app.admin), None).await,
        "ada",
    );
    assert_eq!(left["sessions"].as_array().unwrap().len(), 1);
    assert_ne!(left["sessions"][0]["handle"], handle.as_str());
    let r = by_cookie(&app, Method::DELETE, all, &admin).await;
    assert_eq!(ok(&r, "end all")["ended"], 1);
    // A service with write on `user` ends `bob`'s by token.
    let r = app
        .call(
            Method::DELETE,
            "/v1/dashboard/sessions/user/bob",
            Some(&app.user),
            None,
        )
        .await;
    assert_eq!(ok(&r, "bob")["ended"], 1);
    let s = ok(
        &app.call(
            Method::GET,
            "/v1/dashboard/sessions/user",
            Some(&app.admin),
            None,
        )
        .await,
        "count",
    );
    assert_eq!(s["count"], 0, "{s}");

    let audit = ok(
        &app.call(Method::GET, "/v1/admin/audit", Some(&app.admin), None)
            .await,
        "audit",
    );
    let entries = audit["entries"].as_array().unwrap();
    let note = |path: &str, status: u64| {
        entries
            .iter()
            .find(|e| e["who"] == "admin" && e["path"] == path && e["status"] == status)
            .map(|e| e["note"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(
        note(&one, 204).as_deref(),
        Some(format!("ended session {handle} of user \"ada\"").as_str()),
        "{audit}"
    );
    assert_eq!(
        note(all, 200).as_deref(),
        Some("ended 1 sessions of user \"ada\""),
        "{audit}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["who"] == "ops" && e["status"] == 403),
        "the viewer's forged change is recorded: {audit}"
    );
}

/// Bad names, cursors and counts are refused with 4xx (never 5xx), before or by the
/// library, and change nothing.
async fn hostile_input_is_4xx(b: Backend) {
    let app = TestApp::new(b).await;
    seed(&app).await;
    let admin = Some(app.admin.as_str());
    let long = "x".repeat(3000);
    let lists = ["locks", "presence", "sessions", "queues"];
    let mut uris = Vec::new();
    for list in lists {
        // The empty, over-long and non-text cursors are refused; any other string is a
        // position to the memory store (keys after it) and malformed to Redis (4xx):
        // never a 5xx.
        for q in [
            "cursor=garbage".to_owned(),
            "cursor=-1".to_owned(),
            "cursor=99999999999999999999999999".to_owned(),
            "cursor=0-99999999999999999999999".to_owned(),
            "cursor=16383-x".to_owned(),
            "cursor=%FF".to_owned(),
            "cursor=%00".to_owned(),
        ] {
            let uri = format!("/v1/dashboard/{list}/user?{q}");
            let r = app.call(Method::GET, &uri, admin, None).await;
            assert!(
                r.status == StatusCode::OK || r.status.is_client_error(),
                "{uri}: {} {}",
                r.status,
                r.text()
            );
            if r.status != StatusCode::OK {
                assert_eq!(r.code(), "invalid_cursor", "{uri}");
            }
        }
        for q in [
            "cursor=".to_owned(),
            format!("cursor={long}"),
            "count=-1".to_owned(),
            "count=99999999999999999999999999".to_owned(),
            "count=lots".to_owned(),
            "other=1".to_owned(),
        ] {
            uris.push((Method::GET, format!("/v1/dashboard/{list}/user?{q}")));
        }
        // Huge counts that parse are clamped: a page, not a walk.
        let r = app
            .call(
                Method::GET,
                &format!("/v1/dashboard/{list}/user?count={}", usize::MAX),
                admin,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{list}: {}", r.text());
        let r = app
            .call(
                Method::GET,
                &format!("/v1/dashboard/{list}/user?count=0"),
                admin,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{list}: {}", r.text());
    }
    for user in ["bad\nuser", "\u{0}", &"u".repeat(1025)] {
        for method in [Method::GET, Method::DELETE] {
            uris.push((method, format!("/v1/dashboard/sessions/user/{}", enc(user))));
        }
        uris.push((
            Method::DELETE,
            format!("/v1/dashboard/sessions/user/{}/0123456789abcdef", enc(user)),
        ));
    }
    for handle in [
        "zz",
        "0123456789ABCDEF",
        &"0".repeat(64),
        &long,
        "%00",
        "..",
        "%2F",
    ] {
        uris.push((
            Method::DELETE,
            format!("/v1/dashboard/sessions/user/ada/{handle}"),
        ));
    }
    uris.push((
        Method::GET,
        "/v1/dashboard/sessions/user/ada?x=1".to_owned(),
    ));
    uris.push((Method::GET, "/v1/dashboard/locks/UPPER".to_owned()));
    uris.push((Method::GET, "/v1/dashboard/locks/a%3Ab".to_owned()));
    for (method, uri) in uris {
        let r = app.call(method.clone(), &uri, admin, None).await;
        assert!(
            r.status.is_client_error(),
            "{method} {uri}: {} {}",
            r.status,
            r.text()
        );
        r.code();
    }
    let ada = ok(
        &app.call(Method::GET, "/v1/dashboard/sessions/user/ada", admin, None)
            .await,
        "ada",
    );
    assert_eq!(
        ada["sessions"].as_array().unwrap().len(),
        2,
        "nothing was ended"
    );
}

/// At 100k cache keys the locks listing is still pages of bounded cost (each a few SCAN
/// steps within the listing budget, never one walk of the namespace), and following the
/// cursor finds every held lock.
#[tokio::test]
async fn listings_stay_bounded_at_100k_keys() {
    let app = TestApp::with_server_config(Backend::Redis, "max_batch = 1000").await;
    let ns = app.cache.namespace("user").unwrap();
    for chunk in 0..100 {
        let items: Vec<(String, u8)> = (0..1000)
            .map(|i| (format!("item:{}", chunk * 1000 + i), 1))
            .collect();
        ns.mset(&items, sharecache::Ttl::NEVER).await.unwrap();
    }
    for name in ["a", "b", "c"] {
        ns.locks()
            .acquire_lease(name, Duration::from_secs(60), Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
    }
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= 100, "the listing ends");
        let uri = match &cursor {
            Some(c) => format!("/v1/dashboard/locks/user?count=100&cursor={}", enc(c)),
            None => "/v1/dashboard/locks/user?count=100".to_owned(),
        };
        let start = std::time::Instant::now();
        let page = ok(
            &app.call(Method::GET, &uri, Some(&app.admin), None).await,
            "page",
        );
        let took = start.elapsed();
        // A debug build on a shared machine; each page stops at the 250 ms budget.
        assert!(took < Duration::from_secs(2), "page {pages}: {took:?}");
        for l in page["locks"].as_array().unwrap() {
            names.push(l["name"].as_str().unwrap().to_owned());
        }
        match page["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    names.sort();
    assert_eq!(names, ["a", "b", "c"], "in {pages} pages");
    eprintln!("locks listed among 100k keys in {pages} pages");
}

on_every_backend!(
    readers_see_every_primitive,
    changes_follow_the_grants,
    hostile_input_is_4xx
);
