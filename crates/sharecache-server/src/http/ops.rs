//! Operational endpoints: liveness, readiness, metrics, stats and the OpenAPI document.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde::Serialize;
use sharecache::BackendState;

use super::AppState;
use super::error::{ApiError, ErrorBody, describe};
use super::extract::{Admin, Caller, MetricsReader};
use crate::auth::Principal;

/// How long one walk of the keyspace answers every `/v1/stats` request.
const USAGE_TTL: Duration = Duration::from_secs(10);
/// Most keys one such walk looks at before it reports "more".
const USAGE_WALK_LIMIT: u64 = 1_000_000;

/// Keys per namespace from one walk of the keyspace, shared by every `/v1/stats`
/// request for [`USAGE_TTL`]: however many tenants ask, however often, Redis is walked
/// at most once per period, and concurrent requests wait for the same walk.
#[derive(Debug, Default)]
pub struct UsageCache(tokio::sync::Mutex<Option<(Instant, Arc<sharecache::UsageByNamespace>)>>);

impl UsageCache {
    /// The last walk and its age, or a new walk if it is older than [`USAGE_TTL`].
    pub async fn get(
        &self,
        cache: &sharecache::Cache,
    ) -> sharecache::Result<(Arc<sharecache::UsageByNamespace>, Duration)> {
        let mut last = self.0.lock().await;
        if let Some((at, usage)) = last.as_ref()
            && at.elapsed() < USAGE_TTL
        {
            return Ok((usage.clone(), at.elapsed()));
        }
        let usage = Arc::new(cache.usage_by_namespace(USAGE_WALK_LIMIT).await?);
        *last = Some((Instant::now(), usage.clone()));
        Ok((usage, Duration::ZERO))
    }
}
/// Shortest window over which `/v1/stats` computes ops/s.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "ops", operation_id = "health",
    responses((status = 200, description = "{\"status\":\"ok\"}", body = serde_json::Value)))]
pub async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// Readiness and the backend's state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Ready {
    /// Send traffic here: the backend is reachable and takes writes (with `readiness =
    /// "lenient"`: requests can be served at all, maybe from the memory fallback).
    ready: bool,
    /// `memory`, `connected`, `degraded` or `recovering`.
    #[schema(value_type = String)]
    backend: BackendState,
    /// The backend answered a ping.
    reachable: bool,
    /// Round trip of that ping.
    latency_ms: Option<f64>,
    /// Requests are served from the memory fallback.
    fallback: bool,
    /// Why not ready, with the fix; absent when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The error code behind `reason` (`backend_full`, `backend_read_only`,
    /// `unavailable`, `fallback`...), absent when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    code: Option<&'static str>,
    /// What works but puts a guarantee at risk, with the fix (for example a
    /// `maxmemory-policy` that may evict queues and fence counters); absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// How often the backend's eviction policy is read again for `/ready`.
const POLICY_RECHECK: Duration = Duration::from_secs(30);

/// The backend's eviction policy as last read (at most every [`POLICY_RECHECK`], so a
/// probe every second costs Redis nothing more than its ping).
#[derive(Debug, Default)]
pub struct EvictionCheck(tokio::sync::Mutex<Option<(Instant, Option<String>)>>);

impl EvictionCheck {
    /// The warning for an evicting policy, if the backend has one.
    pub async fn warning(&self, cache: &sharecache::Cache) -> Option<String> {
        let mut last = self.0.lock().await;
        let stale = last
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= POLICY_RECHECK);
        if stale
            && cache.state() == BackendState::Connected
            && let Ok(stats) = cache.stats().await
        {
            *last = Some((Instant::now(), stats.evicting_policy));
        }
        last.as_ref()?.1.as_deref().map(eviction_warning)
    }
}

/// What an `allkeys-*` policy puts at risk, and the fix.
pub fn eviction_warning(policy: &str) -> String {
    format!(
        "Redis maxmemory-policy is {policy}: when memory is full it may evict keys without a \
         TTL, so queued messages, durable events and user session indexes can vanish, and a \
         lock's fence counter falls back on the server clock; set maxmemory-policy to \
         volatile-lru (evicts only keys with a TTL) or noeviction, or give Redis more memory \
         (sharecache doctor checks this)"
    )
}

/// Readiness: is the backend reachable and taking writes, how fast (see `[server]
/// readiness`).
#[utoipa::path(get, path = "/ready", tag = "ops", operation_id = "ready", responses(
    (status = 200, description = "send traffic here", body = Ready),
    (status = 503, description = "do not: `reason` says why and how to fix it", body = Ready)))]
pub async fn ready(State(s): State<AppState>) -> Response {
    let ping = s.cache.ping().await;
    let state = s.cache.state();
    let reachable = ping.is_ok();
    let fallback = matches!(state, BackendState::Degraded | BackendState::Recovering);
    let refusal = if s.opts.lenient_readiness {
        // Serving from the memory fallback still answers requests; with Fallback::Fail
        // the store reports errors and readiness must say so.
        (!(reachable || (fallback && s.serves_during_outage))).then(|| outage(&ping))
    } else {
        strict_refusal(&s, state, &ping).await
    };
    let body = Ready {
        ready: refusal.is_none(),
        backend: s.cache.state(),
        reachable,
        latency_ms: ping.as_ref().ok().map(|d| d.as_secs_f64() * 1000.0),
        fallback,
        code: refusal.as_ref().map(|e| e.code),
        reason: refusal.map(|e| e.message),
        warnings: s.eviction.warning(&s.cache).await.into_iter().collect(),
    };
    let status = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

fn outage(ping: &sharecache::Result<Duration>) -> ApiError {
    match ping {
        Err(e) => describe(e),
        Ok(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the cache backend is unavailable",
        ),
    }
}

/// Why a strict readiness check refuses, if it does: the embedded store is always
/// ready; Redis must be reachable, not replaced by the fallback, and take a write.
async fn strict_refusal(
    s: &AppState,
    state: BackendState,
    ping: &sharecache::Result<Duration>,
) -> Option<ApiError> {
    let fallback = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "fallback",
            "Redis is unreachable: requests are answered from this process's memory, which \
             other instances do not see; fix the [backend] url or the network (readiness = \
             \"lenient\" takes traffic anyway)",
        )
    };
    match state {
        BackendState::Memory => None,
        BackendState::Connected if ping.is_err() => Some(outage(ping)),
        BackendState::Connected => match s.cache.ping_write().await {
            Err(e) => Some(describe(&e)),
            // The probe itself may have tripped the fallback.
            Ok(_) if s.cache.state() != BackendState::Connected => Some(fallback()),
            Ok(_) => None,
        },
        // Degraded, recovering, or a state added later: not where the data is.
        _ => Some(fallback()),
    }
}

/// Prometheus metrics (admin token unless `metrics_public`).
#[utoipa::path(get, path = "/metrics", tag = "ops", operation_id = "metrics",
    responses((status = 200, description = "OpenMetrics text format", content_type = "application/openmetrics-text", body = String),
        (status = 403, description = "not the admin credential", body = ErrorBody)))]
pub async fn metrics(State(s): State<AppState>, _: MetricsReader) -> Response {
    let ping = s.cache.ping().await.ok();
    let state = s.cache.state();
    // Redis's figures need Redis: skip them (keeping the last) when its ping failed and
    // calls still go to it; otherwise they are Redis's or the memory store's.
    let store = if ping.is_none() && state == BackendState::Connected {
        None
    } else {
        s.cache.stats().await.ok()
    };
    let text = s
        .metrics
        .render(state, ping, s.cache.tier_stats(), store.as_ref());
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
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
/// in use, granted or holding keys; a service sees the namespaces it may read. Key
/// counts come from one shared walk at most 10 s old (`usage_age_ms`).
#[utoipa::path(get, path = "/v1/stats", tag = "ops", operation_id = "stats",
    responses((status = 200, description = "backend and per-namespace figures", body = serde_json::Value)))]
pub async fn stats(State(s): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let (usage, age) = s.usage.get(&s.cache).await?;
    let names: BTreeSet<String> = match s.creds().grants(&caller.principal) {
        Some(g) => g.readable().into_iter().collect(),
        None => s
            .cache
            .namespaces()
            .into_iter()
            .chain(s.creds().all_namespaces().iter().cloned())
            .chain(usage.namespaces.keys().cloned())
            .collect(),
    };
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let st = s.namespace(&name)?.stats().await?;
        let held = usage
            .namespaces
            .get(&name)
            .copied()
            .unwrap_or(sharecache::Usage {
                keys: 0,
                truncated: usage.truncated,
                bytes: 0,
            });
        let reads = st.hits + st.misses;
        out.push(NsStats {
            keys: held.keys,
            keys_truncated: held.truncated,
            bytes_estimate: held.bytes,
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
        Principal::Admin | Principal::Viewer(_) => {
            let mut v = serde_json::to_value(s.cache.stats().await?).unwrap_or_default();
            v["l1"] = serde_json::to_value(s.cache.tier_stats()).unwrap_or_default();
            v
        }
        Principal::Service(_) => serde_json::json!({"state": s.cache.state()}),
    };
    let body = serde_json::json!({
        "backend": backend,
        "namespaces": out,
        "usage_age_ms": age.as_millis() as u64,
    });
    Ok(axum::Json(body).into_response())
}

/// The OpenAPI document, rendered once when the router is built.
#[derive(Debug, Clone)]
pub struct OpenApiJson(pub axum::body::Bytes);

/// The OpenAPI document of this API, generated from the routes.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", operation_id = "openapi",
    responses((status = 200, description = "OpenAPI 3.1 document", body = serde_json::Value)))]
pub async fn openapi(Extension(doc): Extension<OpenApiJson>) -> Response {
    super::json(StatusCode::OK, doc.0)
}

/// The `sharecache doctor` report on the backend: every check with pass, warn, fail or
/// unknown, why and fix (admin only). The checks run on a blocking thread, one node
/// after the other, with a 3 s timeout per node.
#[utoipa::path(get, path = "/v1/admin/doctor", tag = "ops", operation_id = "doctor",
    responses((status = 200, description = "every check of `sharecache doctor`", body = crate::doctor::Report),
        (status = 403, description = "not the admin credential", body = ErrorBody),
        (status = 503, description = "no Redis node answered", body = ErrorBody)))]
pub async fn doctor(State(s): State<AppState>, _: Admin) -> Result<Response, ApiError> {
    use crate::doctor::{Check, Report, Status};
    let Some(url) = s.opts.doctor_url.clone() else {
        let checks = vec![Check {
            id: "backend".into(),
            status: Status::Unknown,
            message: "the embedded memory store: there is no Redis to check".into(),
            fix: "set [backend] url (or REDIS_URL) to the shared Redis".into(),
        }];
        return Ok(axum::Json(Report {
            target: "memory://".into(),
            checks,
        })
        .into_response());
    };
    match tokio::task::spawn_blocking(move || crate::doctor::diagnose_url(&url)).await {
        Ok(Ok(report)) => Ok(axum::Json(report).into_response()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "doctor: no Redis node answered");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("no Redis node answered: {e}"),
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, "doctor panicked");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; see the server log",
            ))
        }
    }
}
