//! Namespace permission and path validation on every route, driven by the one route
//! table of `tests/support/routes.rs`: a namespace not granted (or only readable, for a
//! write) is 403, an invalid namespace or key is 400, and none of these refusals changes
//! the store or leaks what it holds. The 401s of every route are in tests/isolation.rs.

#[macro_use]
mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;
use support::routes::{Perm, Route, routes};
use support::store::{Snap, assert_unchanged, snapshot};
use support::{Backend, Resp, TestApp, enc};

/// A value in every namespace the checks aim at, so "nothing deleted" means something.
async fn seed(app: &TestApp) -> Snap {
    for ns in ["user", "shared", "auth"] {
        let r = app
            .call(
                Method::PUT,
                &format!("/v1/cache/{ns}/k"),
                Some(&app.admin),
                Some(&json!({"secret": format!("VAL-{ns}")}).to_string()),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "seed {ns}: {}", r.text());
    }
    snapshot(app).await
}

async fn call(app: &TestApp, route: &Route, ns: &str, name: &str, token: Option<&str>) -> Resp {
    app.call(
        route.method.clone(),
        &route.uri(ns, name),
        token,
        route.body,
    )
    .await
}

fn expect(ok: bool, r: &Resp, route: &Route, what: &str) {
    assert!(
        ok,
        "{} {} {what}: {} {}",
        route.method,
        route.path,
        r.status,
        r.text()
    );
}

/// The status and, except for HEAD (no body), the error code and that the body names
/// nothing stored.
fn assert_refused(r: &Resp, route: &Route, status: StatusCode, code: &str, ctx: &str) {
    let ctx = format!("{} {} {ctx}", route.method, route.path);
    assert_eq!(r.status, status, "{ctx}: {}", r.text());
    if route.method != Method::HEAD {
        assert_eq!(r.code(), code, "{ctx}");
        assert!(
            !r.text().contains("VAL-"),
            "{ctx}: leaks a value: {}",
            r.text()
        );
    }
}

/// The public routes answer without a token. (Every other route's 401, for every kind of
/// bad credential, is `bad_credentials_are_401` in tests/isolation.rs, over this table.)
async fn public_routes_need_no_token(b: Backend) {
    let app = TestApp::new(b).await;
    for route in routes().into_iter().filter(|r| r.perm == Perm::Public) {
        let r = call(&app, &route, "user", "k", None).await;
        expect(r.status.is_success(), &r, &route, "is public");
    }
}

/// A credential without a grant on the namespace is 403 on every namespace route; one
/// that may only read it is 403 on every write and served on every read. The admin
/// routes are 403 for a service.
async fn every_route_checks_the_grant(b: Backend) {
    let app = TestApp::new(b).await;
    let before = seed(&app).await;
    // `auth` writes auth, reads shared, has nothing on user.
    let auth = Some(app.auth.as_str());
    for route in routes() {
        match route.perm {
            Perm::Public | Perm::Any | Perm::Login => {}
            Perm::Admin => {
                let r = call(&app, &route, "user", "k", auth).await;
                assert_refused(&r, &route, StatusCode::FORBIDDEN, "forbidden", "service");
            }
            Perm::Read | Perm::Write => {
                let r = call(&app, &route, "user", "k", auth).await;
                assert_refused(
                    &r,
                    &route,
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "not granted",
                );
                let r = call(&app, &route, "user", "k", Some(&app.a)).await;
                assert_refused(
                    &r,
                    &route,
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "other service",
                );
                if route.perm == Perm::Write {
                    let r = call(&app, &route, "shared", "k", auth).await;
                    assert_refused(&r, &route, StatusCode::FORBIDDEN, "forbidden", "read grant");
                }
            }
        }
    }
    assert_unchanged(&app, &before, "403s").await;
    // The grant that suffices is served (streams are only ever refused here).
    for route in routes() {
        let (ns, token) = match route.perm {
            Perm::Read if !route.streams => ("shared", app.auth.as_str()),
            Perm::Write => ("auth", app.auth.as_str()),
            Perm::Any => ("auth", app.auth.as_str()),
            Perm::Admin => ("auth", app.admin.as_str()),
            _ => continue,
        };
        let r = call(&app, &route, ns, "k", Some(token)).await;
        let refused = [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&r.status);
        expect(!refused, &r, &route, &format!("is served on {ns}"));
    }
}

/// Invalid namespaces are 400 `invalid_namespace` on every namespace route, even for the
/// admin; invalid keys, names, channels, queues and members are 400 `invalid_key`. None
/// changes the store.
async fn every_route_checks_namespace_and_key(b: Backend) {
    let app = TestApp::new(b).await;
    let before = seed(&app).await;
    let admin = Some(app.admin.as_str());
    let long = "k".repeat(1025);
    for route in routes().into_iter().filter(Route::has_ns) {
        for ns in ["UPPER", "a%2Fb", "a:b", "%2A", &"a".repeat(65)] {
            let r = call(&app, &route, ns, "k", admin).await;
            assert_refused(&r, &route, StatusCode::BAD_REQUEST, "invalid_namespace", ns);
        }
        if route.has_key() {
            for key in ["bad\nkey", "a\u{0}b", "\r", long.as_str()] {
                let r = call(&app, &route, "user", &enc(key), admin).await;
                assert_refused(
                    &r,
                    &route,
                    StatusCode::BAD_REQUEST,
                    "invalid_key",
                    &format!("{key:.20?}"),
                );
            }
        }
    }
    assert_unchanged(&app, &before, "400s").await;
}

/// A misspelt query option, a body that is not JSON and a typed body sent without its
/// content type are refused with the API's JSON error on every route (never axum's
/// plain-text rejection), and change nothing that was stored.
async fn every_route_answers_bad_input_in_json(b: Backend) {
    let app = TestApp::new(b).await;
    let before = seed(&app).await;
    let admin = Some(app.admin.as_str());
    for route in routes().into_iter().filter(Route::has_ns) {
        let uri = route.uri("user", "k");
        let sep = if uri.contains('?') { '&' } else { '?' };
        let r = app
            .call(
                route.method.clone(),
                &format!("{uri}{sep}zzz=1"),
                admin,
                route.body,
            )
            .await;
        assert_refused(
            &r,
            &route,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "?zzz=1",
        );
        if route.body.is_some() {
            for body in ["{", "[1,", "nope"] {
                let r = app
                    .call(route.method.clone(), &uri, admin, Some(body))
                    .await;
                assert_refused(&r, &route, StatusCode::BAD_REQUEST, "invalid_body", body);
            }
            if route.body.is_some_and(|b| b.starts_with('{')) {
                let r = without_content_type(&app, &route, &uri).await;
                let (status, code) = (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
                assert_refused(&r, &route, status, code, "no content type");
            }
        }
    }
    assert_unchanged(&app, &before, "bad input").await;
    // A body that may be any JSON document is taken as sent, content type or not.
    for route in routes() {
        if route.body.is_some_and(|b| !b.starts_with('{')) {
            let r = without_content_type(&app, &route, &route.uri("user", "k")).await;
            expect(r.status.is_success(), &r, &route, "without a content type");
        }
    }
}

/// The route's sample request as the admin, with no `content-type`.
async fn without_content_type(app: &TestApp, route: &Route, uri: &str) -> Resp {
    let req = Request::builder()
        .method(route.method.clone())
        .uri(uri)
        .header("authorization", format!("Bearer {}", app.admin))
        .body(Body::from(route.body.unwrap_or_default()))
        .unwrap();
    app.send(req).await
}

on_every_backend!(
    every_route_answers_bad_input_in_json,
    public_routes_need_no_token,
    every_route_checks_the_grant,
    every_route_checks_namespace_and_key,
);
