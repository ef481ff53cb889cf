//! What the HTTP layer costs per request, without a socket: `Router::oneshot` of a
//! request through the real router (authentication, namespace grant, extractors,
//! metrics, the handler) over the embedded memory store.
//!
//! * `http/get_admin`: `GET /v1/cache/user/profile:42` with the admin token.
//! * `http/get_service`: the same with a service token (the grant check included).
//! * `http/put_service`: `PUT` of a 60-byte JSON document with a service token.
//!
//! `cargo bench -p sharecache-server --bench http`. A socket adds what `scripts/bench-http`
//! measures with wrk; this isolates what our code adds to each request.
//!
//! On a busy machine, count instructions instead of timing: with `HTTP_BENCH_ITERS=N` the
//! binary runs each case N times without criterion, so under
//! `valgrind --tool=callgrind` the difference between two values of N, divided by their
//! difference, is the instructions per request (repeatable whatever else runs).

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request};
use criterion::{Criterion, criterion_group, criterion_main};
use sharecache_server::auth::{hash_token, new_token};
use sharecache_server::config::Config;
use sharecache_server::http::router;
use sharecache_server::serve::{app_state, open_cache};
use tower::ServiceExt;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (admin, service) = (new_token(), new_token());
    let text = format!(
        "[admin]\ntoken_sha256 = \"{}\"\n[[services]]\nname = \"user\"\ntoken_sha256 = \"{}\"\nwrite = [\"user\"]\n",
        hex::encode(hash_token(&admin)),
        hex::encode(hash_token(&service)),
    );
    let mut cfg = Config::parse("bench.toml", &text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    cfg.server.state_dir = dir.path().to_owned();
    let app = rt.block_on(async {
        let cache = open_cache(&cfg).await.unwrap();
        router(app_state(&cfg, cache, hash_token(&admin)))
    });
    let body = r#"{"name":"Ada","email":"ada@example.com","roles":["admin"]}"#;
    let request = |method: Method, token: &str, body: Option<&'static str>| {
        let b = Request::builder()
            .method(method)
            .uri("/v1/cache/user/profile:42")
            .header("authorization", format!("Bearer {token}"));
        match body {
            Some(s) => b
                .header("content-type", "application/json")
                .body(Body::from(s))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        }
    };
    let status = rt.block_on(
        app.clone()
            .oneshot(request(Method::PUT, &service, Some(body))),
    );
    assert!(
        status.unwrap().status().is_success(),
        "the bench key must be stored"
    );

    if let Some(n) = std::env::var("HTTP_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let (get, put) = (
            (Method::GET, service.as_str(), None),
            (Method::PUT, service.as_str(), Some(body)),
        );
        let case = std::env::var("HTTP_BENCH_CASE").unwrap_or_else(|_| "get".into());
        let (method, token, body) = if case == "put" { put } else { get };
        rt.block_on(async {
            for _ in 0..n {
                let resp = app
                    .clone()
                    .oneshot(request(method.clone(), token, body))
                    .await
                    .unwrap();
                assert!(resp.status().is_success());
            }
        });
        return;
    }

    let mut g = c.benchmark_group("http");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    let cases: [(&str, Method, &str, Option<&'static str>); 3] = [
        ("get_admin", Method::GET, &admin, None),
        ("get_service", Method::GET, &service, None),
        ("put_service", Method::PUT, &service, Some(body)),
    ];
    for (name, method, token, body) in cases {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let resp = app
                            .clone()
                            .oneshot(request(method.clone(), token, body))
                            .await
                            .unwrap();
                        assert!(resp.status().is_success(), "{name}: {}", resp.status());
                        std::hint::black_box(resp);
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
