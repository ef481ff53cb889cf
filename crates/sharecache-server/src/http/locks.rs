//! Locks over HTTP: acquire (`{"token","fence"}` or 409), extend and release by the
//! owner only (409 otherwise).

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::cache::NoQuery;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, WriteNs};
use super::params::{LockParam, NsParam};

/// `{"ttl_ms":10000,"wait_ms":0}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcquireBody {
    /// Lock lifetime in ms (1..=86400000).
    #[schema(minimum = 1, maximum = 86_400_000)]
    ttl_ms: u64,
    /// How long to wait for a held lock, ms (0..=3600000; default 0: try once).
    #[serde(default)]
    #[schema(maximum = 3_600_000)]
    wait_ms: u64,
}

/// `{"token":"...","ttl_ms":10000}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    /// The token the acquire returned.
    token: String,
    /// New lifetime in ms (1..=86400000).
    #[schema(minimum = 1, maximum = 86_400_000)]
    ttl_ms: u64,
}

/// `?token=...`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReleaseQuery {
    /// The token the acquire returned.
    token: String,
}

/// `{"token":"...","fence":n}`
#[derive(Debug, utoipa::ToSchema)]
pub struct Lease {
    /// Proves ownership to extend and release.
    pub token: String,
    /// Strictly increases with every acquisition of this lock: pass it to what the lock
    /// protects to refuse a late writer.
    pub fence: u64,
}

fn conflict(message: &str) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "conflict", message)
}

/// Acquire a lock.
#[utoipa::path(post, path = "/v1/locks/{ns}/{name}", tag = "locks", operation_id = "lock",
    params(NsParam, LockParam),
    request_body(content = AcquireBody, content_type = "application/json"),
    responses((status = 200, description = "acquired", body = Lease),
        (status = 409, description = "held by someone else", body = ErrorBody)))]
pub async fn acquire(
    WriteNs(n): WriteNs,
    ApiPath(LockParam { name }): ApiPath<LockParam>,
    _q: ApiQuery<NoQuery>,
    ApiJson(b): ApiJson<AcquireBody>,
) -> Result<Response, ApiError> {
    let lease = n
        .locks()
        .acquire_lease(
            &name,
            Duration::from_millis(b.ttl_ms),
            Duration::from_millis(b.wait_ms),
        )
        .await?;
    match lease {
        Some(l) => Ok(axum::Json(l).into_response()),
        None => Err(conflict("the lock is held by someone else")),
    }
}

/// Extend a lock (owner only).
#[utoipa::path(post, path = "/v1/locks/{ns}/{name}/_extend", tag = "locks", operation_id = "lock_extend",
    params(NsParam, LockParam),
    request_body(content = ExtendBody, content_type = "application/json"),
    responses((status = 200, description = "{\"extended\":true}", body = serde_json::Value),
        (status = 409, description = "not the owner (or expired)", body = ErrorBody)))]
pub async fn extend(
    WriteNs(n): WriteNs,
    ApiPath(LockParam { name }): ApiPath<LockParam>,
    _q: ApiQuery<NoQuery>,
    ApiJson(b): ApiJson<ExtendBody>,
) -> Result<Response, ApiError> {
    if n.locks()
        .extend(&name, &b.token, Duration::from_millis(b.ttl_ms))
        .await?
    {
        Ok(axum::Json(serde_json::json!({"extended": true})).into_response())
    } else {
        Err(conflict("this token does not hold the lock"))
    }
}

/// Release a lock (owner only).
#[utoipa::path(delete, path = "/v1/locks/{ns}/{name}", tag = "locks", operation_id = "unlock",
    params(NsParam, LockParam, ReleaseQuery),
    responses((status = 204, description = "released"),
        (status = 409, description = "not the owner (or expired)", body = ErrorBody)))]
pub async fn release(
    WriteNs(n): WriteNs,
    ApiPath(LockParam { name }): ApiPath<LockParam>,
    ApiQuery(q): ApiQuery<ReleaseQuery>,
) -> Result<StatusCode, ApiError> {
    if n.locks().release(&name, &q.token).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(conflict("this token does not hold the lock"))
    }
}
