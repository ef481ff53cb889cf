//! The HTTP API (v1): router, shared state and request accounting.
//!
//! `router(state)` is the whole application: tests drive it with `oneshot` and over a
//! real socket; `serve` binds it. One file per route family (`cache.rs`, `locks.rs`...,
//! `ops.rs` for health, readiness, metrics, stats and the document); `extract.rs` owns
//! authentication and namespace permission, `openapi.rs` the document's shared parts.
//!
//! Each route is declared once, with its handler's `#[utoipa::path]`: [`api`] registers
//! it with `utoipa_axum::routes!`, which adds it to the router and to the OpenAPI
//! document together. The metrics' operation label is the matched route's operationId,
//! looked up by the accounting layer from `MatchedPath`, so handlers carry no accounting.

pub mod browse;
pub mod cache;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod extract;
pub mod locks;
pub mod login;
pub mod monitor;
pub mod openapi;
pub mod ops;
pub mod params;
pub mod presence;
pub mod primitives;
pub mod queues;
pub mod ratelimit;
pub mod rawview;
pub mod sessions;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Extension, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use parking_lot::Mutex;
use sharecache::Cache;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Credentials;
use crate::metrics::Metrics;
use error::{ApiError, ErrorCode};
use extract::AuthorizedNs;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// The Redis that `/v1/admin/doctor` checks (`None` on the memory store). Its
    /// `Debug` hides the password.
    pub doctor_url: Option<sharecache::RedisUrl>,
    /// Largest request body (413 above).
    pub max_body_bytes: usize,
    /// `[server] max_batch`: the same value is given to the cache builder, whose
    /// `too_many_keys` error answers batches over it; here it only bounds a listing's
    /// `count`.
    pub max_batch: usize,
    /// Serve `/metrics` without a token.
    pub metrics_public: bool,
    /// Failed authentications per client address per minute before 429.
    pub auth_failures_per_minute: u32,
    /// `[server] readiness = "lenient"`: `/ready` answers 200 while requests are served
    /// from the memory fallback or the backend refuses writes.
    pub lenient_readiness: bool,
    /// `[backend] memory_max_bytes` when a memory store exists (the embedded backend or
    /// the memory fallback), 0 otherwise: the budget `/metrics` reports.
    pub memory_budget_bytes: u64,
    /// `[server] body_timeout_ms`: a request body not received within it answers 408.
    pub body_timeout: std::time::Duration,
    /// `[server] sse_per_credential`: event streams one credential may hold open.
    pub sse_per_credential: usize,
}

/// Everything a handler needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// The shared state behind [`AppState`].
#[derive(Debug)]
pub struct Inner {
    /// The cache all tenants share.
    pub cache: Cache,
    /// Accepted credentials: swapped whole by a reload (SIGHUP), read through
    /// [`AppState::creds`].
    creds: arc_swap::ArcSwap<Credentials>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Failed-authentication limiter.
    pub auth_limiter: AuthLimiter,
    /// HTTP settings.
    pub opts: HttpOptions,
    /// Per-namespace request rates for `/v1/stats`.
    pub rates: ops::Rates,
    /// Whether requests are still served while Redis is down (memory fallback).
    pub serves_during_outage: bool,
    /// Dashboard sessions (cookie logins).
    pub logins: login::Logins,
    /// Changes made through the dashboard.
    pub audit: login::Audit,
    /// Typed reads of non-string keys for the key browser.
    pub raw: rawview::RawRedis,
    /// Monitoring samples of the last hour.
    pub samples: monitor::Samples,
    /// Namespace handles already built (saves a lock and an allocation per request).
    handles: parking_lot::RwLock<HashMap<String, sharecache::Namespace>>,
    /// Open event streams per credential.
    pub streams: Arc<events::Streams>,
    /// Told of each credentials reload, so open event streams re-check their grant.
    pub reloads: tokio::sync::watch::Sender<()>,
    /// The backend's eviction policy, for `/ready`'s warnings.
    pub eviction: ops::EvictionCheck,
    /// Keys per namespace for `/v1/stats`, walked at most every 10 s.
    pub usage: ops::UsageCache,
}

/// Most namespace handles kept; past it (an admin touching many namespaces) handles are
/// built per request instead, so the library can forget the counters of namespaces no
/// longer used (it keeps at most 4096).
const MAX_HANDLES: usize = 1024;

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
        let metrics = Metrics::new(cache.tier_stats().is_some());
        metrics.set_memory_budget(opts.memory_budget_bytes);
        let auth_limiter = AuthLimiter::new(opts.auth_failures_per_minute, metrics.auth_failures());
        metrics.label_namespaces(creds.all_namespaces().iter().map(String::as_str));
        let raw = rawview::RawRedis::new(opts.doctor_url.clone());
        Self(Arc::new(Inner {
            cache,
            creds: arc_swap::ArcSwap::from_pointee(creds),
            metrics,
            auth_limiter,
            opts,
            rates: ops::Rates::default(),
            serves_during_outage,
            logins: login::Logins::default(),
            audit: login::Audit::default(),
            raw,
            samples: monitor::Samples::default(),
            handles: parking_lot::RwLock::new(HashMap::new()),
            streams: Arc::new(events::Streams::default()),
            reloads: tokio::sync::watch::Sender::new(()),
            eviction: ops::EvictionCheck::default(),
            usage: ops::UsageCache::default(),
        }))
    }
}

impl Inner {
    /// The credentials in force: one snapshot, for the whole of a request's checks.
    pub fn creds(&self) -> Arc<Credentials> {
        self.creds.load_full()
    }

    /// Puts new credentials in force (a reload): requests already past authentication
    /// finish with the snapshot they took; a principal keeps its name, so a removed
    /// service's dashboard login has no grants left.
    pub fn replace_credentials(&self, creds: Credentials) {
        self.metrics
            .label_namespaces(creds.all_namespaces().iter().map(String::as_str));
        self.creds.store(Arc::new(creds));
        self.reloads.send_replace(());
    }
}

/// Counts failed authentications per client address in one-minute windows; past the
/// budget, an address's further failures are answered 429 (with `Retry-After`) instead
/// of 401 for the rest of its window. A valid token or session is never refused: behind
/// a proxy or sidecar many tenants share one address, and one broken client must not
/// lock the others out. (Tokens are 256-bit random; the budget slows probing and keeps
/// it out of the logs, it is not what makes guessing hopeless.)
#[derive(Debug)]
pub struct AuthLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    /// `sharecache_auth_failures_total`.
    failures: prometheus_client::metrics::counter::Counter,
}

const WINDOW: Duration = Duration::from_secs(60);
/// Bound on tracked addresses; stale windows are dropped when it is reached.
const MAX_TRACKED: usize = 100_000;

impl AuthLimiter {
    fn new(per_minute: u32, failures: prometheus_client::metrics::counter::Counter) -> Self {
        Self {
            per_minute,
            windows: Mutex::new(HashMap::new()),
            failures,
        }
    }

    fn key(ip: Option<IpAddr>) -> IpAddr {
        ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    /// Records one failed authentication from `ip` and answers it: `refusal` (401)
    /// within the budget, 429 past it.
    pub fn refuse(&self, ip: Option<IpAddr>, refusal: ApiError) -> ApiError {
        if self.record_failure(ip) <= self.per_minute {
            return refusal;
        }
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many failed authentications from this address; wait a minute \
             (valid credentials are still accepted)",
        );
        e.retry_after = Some(60);
        e
    }

    /// Records one failed authentication from `ip`; returns its failures this window.
    /// The map holds at most `MAX_TRACKED` addresses: when it is full of live windows,
    /// a new address is not tracked (many addresses cannot be limited per address).
    fn record_failure(&self, ip: Option<IpAddr>) -> u32 {
        self.failures.inc();
        let mut w = self.windows.lock();
        let key = Self::key(ip);
        if w.len() >= MAX_TRACKED && !w.contains_key(&key) {
            w.retain(|_, (start, _)| start.elapsed() < WINDOW);
            if w.len() >= MAX_TRACKED {
                return 1;
            }
        }
        let e = w.entry(key).or_insert((Instant::now(), 0));
        if e.0.elapsed() >= WINDOW {
            *e = (Instant::now(), 0);
        }
        e.1 += 1;
        e.1
    }
}

/// What the accounting layer needs: the state (metrics) and the operation labels.
#[derive(Debug, Clone)]
struct Accounting {
    state: AppState,
    labels: Arc<OpLabels>,
}

/// Records every request by namespace, operation and status, with its latency. The
/// operation is the matched route's operationId (`Router::layer` runs inside the route,
/// after `MatchedPath` is known); `-` when no route matched. The namespace is the one a
/// namespace extractor authorized, `-` otherwise, so unauthenticated traffic cannot
/// create metric series.
async fn account(State(acc): State<Accounting>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let op = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| acc.labels.get(p.as_str(), req.method()))
        .unwrap_or_else(|| acc.labels.none.clone());
    let authorized = AuthorizedNs::default();
    req.extensions_mut().insert(authorized.clone());
    // Set by the caller extractor when a session cookie authenticated a change.
    let audit = login::AuditSlot::default();
    req.extensions_mut().insert(audit.clone());
    let resp = next.run(req).await;
    if let Some((who, method, path)) = audit.get() {
        acc.state.audit.record(login::AuditEntry {
            at_ms: 0,
            who: who.clone(),
            method: method.clone(),
            path: path.clone(),
            status: resp.status().as_u16(),
            note: resp
                .extensions()
                .get::<login::AuditNote>()
                .map(|n| n.0.clone()),
        });
    }
    let took = start.elapsed();
    let ns = authorized.get().unwrap_or("-");
    let status = resp.status();
    acc.state.metrics.request(ns, op, status.as_u16(), took);
    if status.is_server_error() {
        let code = resp.extensions().get::<ErrorCode>().map_or("-", |c| c.0);
        acc.state.metrics.server_error(code);
    }
    resp
}

/// The operationId of each documented (path, method), for the metrics' operation label.
#[derive(Debug)]
struct OpLabels {
    ops: HashMap<String, Vec<(axum::http::Method, Arc<str>)>>,
    /// The label of a request that matched no documented operation.
    none: Arc<str>,
}

impl OpLabels {
    fn new(doc: &utoipa::openapi::OpenApi) -> Self {
        let mut map: HashMap<String, Vec<_>> = HashMap::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in openapi::operations(item) {
                if let Some(id) = &op.operation_id {
                    map.entry(path.clone())
                        .or_default()
                        .push((method, Arc::from(id.as_str())));
                }
            }
        }
        Self {
            ops: map,
            none: Arc::from("-"),
        }
    }

    /// The operation of `method` on `path`; a HEAD that the route's GET serves is that
    /// GET's operation.
    fn get(&self, path: &str, method: &axum::http::Method) -> Option<Arc<str>> {
        let ops = self.ops.get(path)?;
        let find = |method: &axum::http::Method| {
            ops.iter()
                .find(|(m, _)| m == method)
                .map(|(_, op)| op.clone())
        };
        find(method).or_else(|| {
            (method == axum::http::Method::HEAD)
                .then(|| find(&axum::http::Method::GET))
                .flatten()
        })
    }
}

/// A response whose body is already JSON text (values are stored and served as sent).
pub(crate) fn json(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

async fn fallback_404() -> ApiError {
    ApiError::not_found("no such route; see /openapi.json")
}

async fn method_not_allowed(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
        let mut body = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this route",
        )
        .into_response();
        // The router's `Allow` (RFC 9110 §15.5.6 requires it) carries over.
        if let Some(allow) = resp.headers().get(axum::http::header::ALLOW) {
            body.headers_mut()
                .insert(axum::http::header::ALLOW, allow.clone());
        }
        return body;
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

/// Every documented route, each declared once: its `#[utoipa::path]` gives the path, the
/// method and the document entry. One `routes!` per path (the macro registers its
/// handlers on one path).
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(ops::health))
        .routes(routes!(ops::ready))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi))
        .routes(routes!(ops::stats))
        .routes(routes!(ops::doctor))
        .routes(routes!(cache::list_keys, cache::clear))
        .routes(routes!(
            cache::get_key,
            cache::head_key,
            cache::put_key,
            cache::delete_key
        ))
        .routes(routes!(cache::get_ttl, cache::set_ttl))
        .routes(routes!(cache::incr))
        .routes(routes!(cache::take))
        .routes(routes!(cache::mget))
        .routes(routes!(cache::mset))
        .routes(routes!(cache::mdel))
        .routes(routes!(cache::invalidate))
        .routes(routes!(ratelimit::decide, ratelimit::reset))
        .routes(routes!(locks::acquire, locks::release))
        .routes(routes!(locks::extend))
        .routes(routes!(sessions::create, sessions::list, sessions::end_all))
        .routes(routes!(
            sessions::read,
            sessions::import,
            sessions::update,
            sessions::end
        ))
        .routes(routes!(sessions::rotate))
        .routes(routes!(events::subscribe, events::publish))
        .routes(routes!(events::since))
        .routes(routes!(queues::push))
        .routes(routes!(queues::claim))
        .routes(routes!(queues::ack))
        .routes(routes!(queues::dead))
        .routes(routes!(queues::stats))
        .routes(routes!(queues::requeue))
        .routes(routes!(queues::drop_dead))
        .routes(routes!(presence::list))
        .routes(routes!(presence::beat, presence::leave))
        .routes(routes!(login::login))
        .routes(routes!(login::logout))
        .routes(routes!(login::whoami))
        .routes(routes!(login::audit_log))
        .routes(routes!(monitor::monitor))
        .routes(routes!(monitor::redis_view))
        .routes(routes!(browse::tree))
        .routes(routes!(
            browse::show_key,
            browse::edit_key,
            browse::delete_key
        ))
        .routes(routes!(browse::preview))
        .routes(routes!(browse::bulk_delete))
        .routes(routes!(primitives::locks))
        .routes(routes!(primitives::presence))
        .routes(routes!(primitives::sessions))
        .routes(routes!(
            primitives::user_sessions,
            primitives::end_user_sessions
        ))
        .routes(routes!(primitives::end_session))
        .routes(routes!(primitives::queues))
}

/// The OpenAPI document as served with these options (for tests and tooling).
pub fn openapi_document(opts: &HttpOptions) -> utoipa::openapi::OpenApi {
    let mut doc = api().into_openapi();
    openapi::finish(&mut doc, opts);
    doc
}

/// The application.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let (api, mut doc) = api().split_for_parts();
    openapi::finish(&mut doc, &state.opts);
    let labels = Arc::new(OpLabels::new(&doc));
    let doc_json = ops::OpenApiJson(
        serde_json::to_vec(&doc)
            .expect("the OpenAPI document serializes")
            .into(),
    );
    let routes = api
        // Not an operation, so not documented: answers 404 rather than 405 (see there).
        .route("/v1/cache/{ns}/{key}", post(cache::no_such_operation))
        .route("/", get(dashboard::index))
        .route("/dashboard.js", get(dashboard::script))
        .route("/dashboard.css", get(dashboard::style))
        .route("/vendor/uplot.js", get(dashboard::uplot_script))
        .route("/vendor/uplot.css", get(dashboard::uplot_style))
        .fallback(fallback_404)
        // Inside the routes: the operation label is the matched route's.
        .layer(middleware::from_fn_with_state(
            Accounting {
                state: state.clone(),
                labels,
            },
            account,
        ))
        .with_state(state.clone());
    // The rest wraps the whole router once: `Router::layer` would wrap each route in its
    // own boxed copy of every layer, cloned per request. That cost ~8.7k instructions per
    // GET (callgrind of `benches/http.rs`, see docs/BENCHMARKS.md "The redesign").
    let shared = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), RequestIds::new()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            // The path is logged without the query string (cursors, lock tokens), and with
            // session ids cut off: they are secrets.
            tracing::info_span!("request", method = %req.method(), path = %log_path(req.uri().path()), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(DefaultBodyLimit::max(state.opts.max_body_bytes))
        .layer(RequestBodyTimeoutLayer::new(state.opts.body_timeout))
        .map_request(|req: Request<tower_http::timeout::TimeoutBody<Body>>| req.map(Body::new))
        .layer(middleware::from_fn(method_not_allowed))
        .layer(Extension(doc_json))
        .service(routes);
    Router::new().fallback_service(shared)
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
