//! `POST /v1/ratelimit/{ns}/{key}`: one rate-limit decision (GCRA). Always 200 with the
//! decision (a refusal is an answer, not an error), and the standard `RateLimit-*`
//! headers; `Retry-After` when refused. 503 only if the backend is down under
//! `fallback = "fail"`: never a refusal that was not computed.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sharecache::ratelimit::Limit;

use super::cache::NoQuery;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, WriteNs};
use super::params::{LimitParam, NsParam};

/// `{"limit":5,"period_ms":60000,"cost":1}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitBody {
    /// Calls allowed per period (and burst size), 1..=1e9.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    limit: u64,
    /// The period in milliseconds, 1..=31536000000.
    #[schema(minimum = 1, maximum = 31_536_000_000.0)]
    period_ms: u64,
    /// Cost of this call (default 1; 0 reads without spending; at most `limit`).
    #[serde(default = "one")]
    #[schema(maximum = 1_000_000_000)]
    cost: u64,
    /// `gcra` (default: smooth) or `sliding_window`.
    #[serde(default)]
    algorithm: AlgorithmName,
}

/// Algorithm names in request bodies.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlgorithmName {
    /// GCRA (default).
    #[default]
    Gcra,
    /// Sliding window counter.
    SlidingWindow,
}

fn one() -> u64 {
    1
}

/// `{"allowed":b,"remaining":n,"retry_after_ms":n,"reset_after_ms":n}`
#[derive(Debug, utoipa::ToSchema)]
pub struct Decision {
    /// Whether this call may go ahead (a refusal is an answer: still 200).
    pub allowed: bool,
    /// Calls left in the current period.
    pub remaining: u64,
    /// When a refused call may be retried, ms (0 when allowed).
    pub retry_after_ms: u64,
    /// When the bucket is full again, ms.
    pub reset_after_ms: u64,
}

/// `{"reset":b}`
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ResetBody {
    /// Whether the key had spent anything (false: it already had its full budget).
    pub reset: bool,
}

/// Forget what a key has spent (after a successful login, say): its next call starts a
/// full budget.
#[utoipa::path(delete, path = "/v1/ratelimit/{ns}/{key}", tag = "ratelimit", operation_id = "ratelimit_reset",
    params(NsParam, LimitParam),
    responses((status = 200, description = "reset", body = ResetBody)))]
pub async fn reset(
    WriteNs(n): WriteNs,
    ApiPath(LimitParam { key }): ApiPath<LimitParam>,
    _q: ApiQuery<NoQuery>,
) -> Result<axum::Json<ResetBody>, ApiError> {
    let reset = n.rate_limits().reset(&key).await?;
    Ok(axum::Json(ResetBody { reset }))
}

/// One rate-limit decision (a rate limit spends state, so it needs write).
#[utoipa::path(post, path = "/v1/ratelimit/{ns}/{key}", tag = "ratelimit", operation_id = "ratelimit",
    params(NsParam, LimitParam),
    request_body(content = RateLimitBody, content_type = "application/json"),
    responses((status = 200, description = "the decision, with RateLimit-* headers (and Retry-After when refused)", body = Decision)))]
pub async fn decide(
    WriteNs(n): WriteNs,
    ApiPath(LimitParam { key }): ApiPath<LimitParam>,
    _q: ApiQuery<NoQuery>,
    ApiJson(b): ApiJson<RateLimitBody>,
) -> Result<Response, ApiError> {
    let limit = Limit::per(b.limit, std::time::Duration::from_millis(b.period_ms)).cost(b.cost);
    let limit = limit.algorithm(match b.algorithm {
        AlgorithmName::Gcra => sharecache::ratelimit::Algorithm::Gcra,
        AlgorithmName::SlidingWindow => sharecache::ratelimit::Algorithm::SlidingWindow,
    });
    let d = n.rate_limits().check(&key, limit).await?;
    let body = serde_json::json!({
        "allowed": d.allowed,
        "remaining": d.remaining,
        "retry_after_ms": d.retry_after.as_millis() as u64,
        "reset_after_ms": d.reset_after.as_millis() as u64,
    });
    let mut r = (StatusCode::OK, axum::Json(body)).into_response();
    let h = r.headers_mut();
    let secs = |ms: u128| ms.div_ceil(1000) as u64;
    h.insert("ratelimit-limit", HeaderValue::from(b.limit));
    h.insert("ratelimit-remaining", HeaderValue::from(d.remaining));
    h.insert(
        "ratelimit-reset",
        HeaderValue::from(secs(d.reset_after.as_millis())),
    );
    if let Ok(v) =
        HeaderValue::from_str(&format!("{};w={}", b.limit, secs(u128::from(b.period_ms))))
    {
        h.insert("ratelimit-policy", v);
    }
    if !d.allowed {
        h.insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from(secs(d.retry_after.as_millis()).max(1)),
        );
    }
    Ok(r)
}
