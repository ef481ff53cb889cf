//! Operational endpoints: liveness, readiness, metrics, stats and the OpenAPI document.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde::Serialize;
use sharecache::BackendState;
use utoipa::OpenApi;

use super::AppState;
use super::error::ApiError;
use super::extract::Caller;
use crate::auth::Principal;

/// Keys counted per namespace by `/v1/stats` before it reports "more".
const STATS_KEY_LIMIT: u64 = 100_000;
/// Shortest window over which `/v1/stats` computes ops/s.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, description = "{\"status\":\"ok\"}")))]
pub async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

#[derive(Serialize)]
struct Ready {
    ready: bool,
    backend: BackendState,
    reachable: bool,
    latency_ms: Option<f64>,
    fallback: bool,
}

/// Readiness: can requests be served, is the backend reachable, how fast.
#[utoipa::path(get, path = "/ready", tag = "ops", responses(
    (status = 200, description = "requests can be served (maybe from the memory fallback)"),
    (status = 503, description = "requests cannot be served")))]
pub async fn ready(State(s): State<AppState>) -> Response {
    let ping = s.cache.ping().await;
    let state = s.cache.state();
    let reachable = ping.is_ok();
    let fallback = matches!(state, BackendState::Degraded | BackendState::Recovering);
    // Serving from the memory fallback still answers requests; with Fallback::Fail the
    // store reports errors and readiness must say so.
    let ready = reachable || (fallback && s.serves_during_outage);
    let body = Ready {
        ready,
        backend: state,
        reachable,
        latency_ms: ping.ok().map(|d| d.as_secs_f64() * 1000.0),
        fallback,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// Prometheus metrics (admin token unless `metrics_public`).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(
    State(s): State<AppState>,
    mut parts: axum::http::request::Parts,
) -> Result<Response, ApiError> {
    if !s.opts.metrics_public {
        // The whole request's parts, so the failed-authentication limit sees the client
        // address exactly as on every other route.
        let caller = <Caller as axum::extract::FromRequestParts<AppState>>::from_request_parts(
            &mut parts, &s,
        )
        .await?;
        if caller.principal != Principal::Admin {
            return Err(ApiError::forbidden(
                "this endpoint needs the admin credential",
            ));
        }
    }
    let ping = s.cache.ping().await.ok();
    let text = s
        .metrics
        .render(s.cache.state(), ping, s.cache.tier_stats());
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(r)
}

/// Remembers operation totals to turn them into rates.
#[derive(Debug, Default)]
pub struct Rates {
    last: Mutex<HashMap<String, (Instant, u64, f64)>>,
}

impl Rates {
    /// Ops/s of `ns` given its running total, over a window of at least `RATE_WINDOW`.
    fn rate(&self, ns: &str, total: u64) -> f64 {
        let now = Instant::now();
        let mut last = self.last.lock();
        match last.get_mut(ns) {
            None => {
                last.insert(ns.to_owned(), (now, total, 0.0));
                0.0
            }
            Some((at, prev, rate)) => {
                let dt = now.duration_since(*at);
                if dt >= RATE_WINDOW {
                    *rate = total.saturating_sub(*prev) as f64 / dt.as_secs_f64();
                    *at = now;
                    *prev = total;
                }
                *rate
            }
        }
    }
}

#[derive(Serialize)]
struct NsStats {
    namespace: String,
    keys: u64,
    keys_truncated: bool,
    bytes_estimate: u64,
    hits: u64,
    misses: u64,
    hit_ratio: Option<f64>,
    /// Share of reads answered by the in-process L1 tier.
    l1_hit_ratio: Option<f64>,
    sets: u64,
    deletes: u64,
    ops_per_sec: f64,
}

/// Per-namespace figures: keys, memory, hit ratio, ops/s. An admin sees every namespace
/// in use or granted; a service sees the namespaces it may read.
#[utoipa::path(get, path = "/v1/stats", tag = "ops", responses((status = 200, description = "backend and per-namespace figures")))]
pub async fn stats(State(s): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let names: BTreeSet<String> = match s.creds.grants(&caller.principal) {
        Some(g) => g.readable().into_iter().collect(),
        None => s
            .cache
            .namespaces()
            .into_iter()
            .chain(s.granted_namespaces.iter().cloned())
            .collect(),
    };
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let ns = s.cache.namespace(&name)?;
        let st = ns.stats().await?;
        let usage = ns.usage(STATS_KEY_LIMIT).await?;
        let reads = st.hits + st.misses;
        out.push(NsStats {
            keys: usage.keys,
            keys_truncated: usage.truncated,
            bytes_estimate: usage.bytes,
            hit_ratio: (reads > 0).then(|| st.hits as f64 / reads as f64),
            l1_hit_ratio: (reads > 0).then(|| st.l1_hits as f64 / reads as f64),
            ops_per_sec: s.rates.rate(&name, reads + st.sets + st.deletes),
            namespace: name,
            hits: st.hits,
            misses: st.misses,
            sets: st.sets,
            deletes: st.deletes,
        });
    }
    // Store-wide figures describe every tenant together: only the admin sees them.
    let backend = match caller.principal {
        Principal::Admin => {
            let mut v = serde_json::to_value(s.cache.stats().await?).unwrap_or_default();
            v["l1"] = serde_json::to_value(s.cache.tier_stats()).unwrap_or_default();
            v
        }
        Principal::Service(_) => serde_json::json!({"state": s.cache.state()}),
    };
    let body = serde_json::json!({"backend": backend, "namespaces": out});
    Ok(axum::Json(body).into_response())
}

#[derive(OpenApi)]
#[openapi(
    info(title = "sharecache", description = "Shared, namespaced cache over HTTP. Every /v1 request carries Authorization: Bearer <token>. Errors are {\"error\":{\"code\",\"message\"}}."),
    paths(
        super::cache::get_key, super::cache::head_key, super::cache::put_key, super::cache::delete_key,
        super::cache::batch, super::cache::list_keys, super::cache::clear,
        super::ratelimit::decide,
        super::locks::acquire, super::locks::extend, super::locks::release,
        super::presence::beat, super::presence::leave, super::presence::list,
        super::sessions::create, super::sessions::read, super::sessions::update, super::sessions::end,
        super::sessions::rotate, super::sessions::list, super::sessions::end_all,
        super::events::publish, super::events::subscribe, super::events::since,
        super::queues::push, super::queues::op, super::queues::dead,
        health, ready, metrics, stats, openapi
    ),
    components(schemas(super::cache::KeysBody, super::cache::MsetBody, super::cache::InvalidateBody,
        super::ratelimit::RateLimitBody, super::locks::AcquireBody, super::locks::ExtendBody,
        super::sessions::CreateBody, super::sessions::UpdateBody)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// The OpenAPI document of this API, generated from the handlers.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}

/// The OpenAPI document as a value (for tests and tooling).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
