//! The HTTP API (v1): router, shared state and request accounting.
//!
//! `router(state)` is the whole application: tests drive it with `oneshot` and over a
//! real socket; `serve` binds it. Handlers live in `cache.rs` (the cache contract) and
//! `ops.rs` (health, readiness, metrics, stats, OpenAPI).

pub mod cache;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod extract;
pub mod locks;
pub mod ops;
pub mod presence;
pub mod queues;
pub mod ratelimit;
pub mod sessions;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::Mutex;
use sharecache::Cache;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

use crate::auth::Credentials;
use crate::metrics::Metrics;
use error::ApiError;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Largest request body (413 above).
    pub max_body_bytes: usize,
    /// Most keys in one batch request.
    pub max_batch: usize,
    /// Serve `/metrics` without a token.
    pub metrics_public: bool,
    /// Failed authentications per client address per minute before 429.
    pub auth_failures_per_minute: u32,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_batch: 1000,
            metrics_public: false,
            auth_failures_per_minute: 20,
        }
    }
}

/// Everything a handler needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// The shared state behind [`AppState`].
#[derive(Debug)]
pub struct Inner {
    /// The cache all tenants share.
    pub cache: Cache,
    /// Accepted credentials.
    pub creds: Credentials,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Failed-authentication limiter.
    pub auth_limiter: AuthLimiter,
    /// HTTP settings.
    pub opts: HttpOptions,
    /// Per-namespace request rates for `/v1/stats`.
    pub rates: ops::Rates,
    /// Every namespace some credential is granted (listed in the admin's stats).
    pub granted_namespaces: Vec<String>,
    /// Whether requests are still served while Redis is down (memory fallback).
    pub serves_during_outage: bool,
    /// Namespace handles already built (saves a lock and an allocation per request).
    handles: parking_lot::RwLock<HashMap<String, sharecache::Namespace>>,
}

/// Most namespace handles kept; past it (an admin touching many namespaces) handles are
/// built per request instead.
const MAX_HANDLES: usize = 10_000;

impl Inner {
    /// The handle of a validated, authorized namespace.
    pub fn namespace(&self, ns: &str) -> sharecache::Result<sharecache::Namespace> {
        if let Some(h) = self.handles.read().get(ns) {
            return Ok(h.clone());
        }
        let h = self.cache.namespace(ns)?;
        let mut w = self.handles.write();
        if w.len() < MAX_HANDLES {
            w.insert(ns.to_owned(), h.clone());
        }
        Ok(h)
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Builds the state. `serves_during_outage` is true with the memory fallback.
    pub fn new(
        cache: Cache,
        creds: Credentials,
        opts: HttpOptions,
        serves_during_outage: bool,
    ) -> Self {
        let auth_limiter = AuthLimiter::new(opts.auth_failures_per_minute);
        let granted_namespaces = creds.all_namespaces();
        Self(Arc::new(Inner {
            cache,
            creds,
            metrics: Metrics::new(),
            auth_limiter,
            opts,
            rates: ops::Rates::default(),
            granted_namespaces,
            serves_during_outage,
            handles: parking_lot::RwLock::new(HashMap::new()),
        }))
    }
}

/// Counts failed authentications per client address in one-minute windows; an address
/// over the budget gets 429 for the rest of its window, whatever token it sends.
#[derive(Debug)]
pub struct AuthLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

const WINDOW: Duration = Duration::from_secs(60);
/// Bound on tracked addresses; stale windows are dropped when it is reached.
const MAX_TRACKED: usize = 100_000;

impl AuthLimiter {
    fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn key(ip: Option<IpAddr>) -> IpAddr {
        ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    /// Whether `ip` has used up its failures for this window.
    pub fn is_blocked(&self, ip: Option<IpAddr>) -> bool {
        let w = self.windows.lock();
        w.get(&Self::key(ip))
            .is_some_and(|(start, n)| start.elapsed() < WINDOW && *n >= self.per_minute)
    }

    /// Records one failed authentication from `ip`.
    pub fn record_failure(&self, ip: Option<IpAddr>) {
        let mut w = self.windows.lock();
        if w.len() >= MAX_TRACKED {
            w.retain(|_, (start, _)| start.elapsed() < WINDOW);
        }
        let e = w.entry(Self::key(ip)).or_insert((Instant::now(), 0));
        if e.0.elapsed() >= WINDOW {
            *e = (Instant::now(), 0);
        }
        e.1 += 1;
    }
}

/// Set by handlers on their response: what the request was, for accounting. Requests
/// rejected before a handler ran (bad token, no route) are counted under `-`.
#[derive(Debug, Clone)]
pub struct OpInfo {
    /// Operation name from a fixed list.
    pub op: &'static str,
    /// Namespace, only once the caller was authorized for it.
    pub ns: String,
}

impl OpInfo {
    /// Attaches this info to a response.
    pub fn attach(op: &'static str, ns: &str, mut resp: Response) -> Response {
        resp.extensions_mut().insert(OpInfo {
            op,
            ns: ns.to_owned(),
        });
        resp
    }
}

async fn account(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let resp = next.run(req).await;
    let took = start.elapsed();
    let (op, ns) = match resp.extensions().get::<OpInfo>() {
        Some(i) => (i.op, i.ns.as_str()),
        None => ("-", "-"),
    };
    state.metrics.request(ns, op, resp.status().as_u16(), took);
    resp
}

async fn fallback_404() -> ApiError {
    ApiError::not_found("no such route; see /openapi.json")
}

async fn method_not_allowed(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this route",
        )
        .into_response();
    }
    resp
}

/// Request ids: a random per-process prefix and a counter. Unique across restarts
/// without a random number per request (UUIDv4 costs a getrandom call each).
#[derive(Debug, Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        let prefix = format!("{:08x}", rand::random::<u32>());
        Self {
            prefix: Arc::from(prefix),
            next: Arc::new(std::sync::atomic::AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _req: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        axum::http::HeaderValue::from_str(&format!("{}-{n:x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// The path as logged: everything after `/v1/sessions/{ns}/` is replaced by `…`.
fn log_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/v1/sessions/") {
        Some(rest) => match rest.split_once('/') {
            Some((ns, _)) => std::borrow::Cow::Owned(format!("/v1/sessions/{ns}/…")),
            None => std::borrow::Cow::Borrowed(path),
        },
        None => std::borrow::Cow::Borrowed(path),
    }
}

/// The application.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/", get(dashboard::index))
        .route("/dashboard.js", get(dashboard::script))
        .route("/dashboard.css", get(dashboard::style))
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/v1/stats", get(ops::stats))
        .route("/v1/cache/{ns}", get(cache::list_keys).delete(cache::clear))
        .route(
            "/v1/cache/{ns}/{key}",
            get(cache::get_key).put(cache::put_key).delete(cache::delete_key).head(cache::head_key).post(cache::batch),
        )
        .route("/v1/ratelimit/{ns}/{key}", axum::routing::post(ratelimit::decide))
        .route("/v1/locks/{ns}/{name}", axum::routing::post(locks::acquire).delete(locks::release))
        .route("/v1/locks/{ns}/{name}/_extend", axum::routing::post(locks::extend))
        .route(
            "/v1/sessions/{ns}",
            axum::routing::post(sessions::create).get(sessions::list).delete(sessions::end_all),
        )
        .route(
            "/v1/sessions/{ns}/{id}",
            get(sessions::read).patch(sessions::update).delete(sessions::end),
        )
        .route("/v1/sessions/{ns}/{id}/_rotate", axum::routing::post(sessions::rotate))
        .route("/v1/events/{ns}/{channel}", get(events::subscribe).post(events::publish))
        .route("/v1/events/{ns}/{channel}/_since", get(events::since))
        .route("/v1/queues/{ns}/{queue}", axum::routing::post(queues::push))
        .route("/v1/queues/{ns}/{queue}/_dead", get(queues::dead))
        .route("/v1/queues/{ns}/{queue}/{op}", axum::routing::post(queues::op))
        .route("/v1/presence/{ns}", get(presence::list))
        .route("/v1/presence/{ns}/{member}", axum::routing::put(presence::beat).delete(presence::leave))
        .fallback(fallback_404)
        .layer(middleware::from_fn(method_not_allowed))
        .layer(middleware::from_fn_with_state(state.clone(), account))
        .layer(DefaultBodyLimit::max(state.opts.max_body_bytes))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            // The path is logged without the query string (cursors, lock tokens), and with
            // session ids cut off: they are secrets.
            tracing::info_span!("request", method = %req.method(), path = %log_path(req.uri().path()), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(request_id, RequestIds::new()))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_ids_never_reach_the_log() {
        assert_eq!(
            super::log_path("/v1/sessions/auth/SECRETSECRET"),
            "/v1/sessions/auth/…"
        );
        assert_eq!(
            super::log_path("/v1/sessions/auth/SECRET/_rotate"),
            "/v1/sessions/auth/…"
        );
        assert_eq!(super::log_path("/v1/sessions/auth"), "/v1/sessions/auth");
        assert_eq!(super::log_path("/v1/cache/ns/k"), "/v1/cache/ns/k");
    }
}
