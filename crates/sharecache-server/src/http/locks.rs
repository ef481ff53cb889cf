//! Locks over HTTP: acquire (`{"token","fence"}` or 409), extend and release by the
//! owner only (409 otherwise).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use super::{AppState, OpInfo};
use crate::http::cache::NoQuery;

/// `{"ttl_ms":10000,"wait_ms":0}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcquireBody {
    /// Lock lifetime in ms (1..=86400000).
    ttl_ms: u64,
    /// How long to wait for a held lock, ms (0..=3600000; default 0: try once).
    #[serde(default)]
    wait_ms: u64,
}

/// `{"token":"...","ttl_ms":10000}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    /// The token the acquire returned.
    token: String,
    /// New lifetime in ms.
    ttl_ms: u64,
}

/// `?token=...`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseQuery {
    token: String,
}

fn conflict(message: &str) -> Response {
    ApiError::new(StatusCode::CONFLICT, "conflict", message).into_response()
}

/// Acquire a lock.
#[utoipa::path(post, path = "/v1/locks/{ns}/{name}", tag = "locks",
    params(("ns" = String, Path), ("name" = String, Path)),
    request_body(content = AcquireBody, content_type = "application/json"),
    responses((status = 200, description = "{\"token\":\"...\",\"fence\":n}"), (status = 409, description = "held by someone else")))]
pub async fn acquire(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, name)): ApiPath<(String, String)>,
    _q: ApiQuery<NoQuery>,
    ApiJson(b): ApiJson<AcquireBody>,
) -> Result<Response, ApiError> {
    let n = caller.write(&s, &ns)?;
    let lease = n
        .locks()
        .acquire_lease(
            &name,
            Duration::from_millis(b.ttl_ms),
            Duration::from_millis(b.wait_ms),
        )
        .await?;
    let resp = match lease {
        Some(l) => (StatusCode::OK, axum::Json(l)).into_response(),
        None => conflict("the lock is held by someone else"),
    };
    Ok(OpInfo::attach("lock", &ns, resp))
}

/// Extend a lock (owner only).
#[utoipa::path(post, path = "/v1/locks/{ns}/{name}/_extend", tag = "locks",
    params(("ns" = String, Path), ("name" = String, Path)),
    request_body(content = ExtendBody, content_type = "application/json"),
    responses((status = 200, description = "{\"extended\":true}"), (status = 409, description = "not the owner (or expired)")))]
pub async fn extend(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, name)): ApiPath<(String, String)>,
    _q: ApiQuery<NoQuery>,
    ApiJson(b): ApiJson<ExtendBody>,
) -> Result<Response, ApiError> {
    let n = caller.write(&s, &ns)?;
    let resp = if n
        .locks()
        .extend(&name, &b.token, Duration::from_millis(b.ttl_ms))
        .await?
    {
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({"extended": true})),
        )
            .into_response()
    } else {
        conflict("this token does not hold the lock")
    };
    Ok(OpInfo::attach("lock_extend", &ns, resp))
}

/// Release a lock (owner only).
#[utoipa::path(delete, path = "/v1/locks/{ns}/{name}", tag = "locks",
    params(("ns" = String, Path), ("name" = String, Path), ("token" = String, Query)),
    responses((status = 204, description = "released"), (status = 409, description = "not the owner (or expired)")))]
pub async fn release(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, name)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<ReleaseQuery>,
) -> Result<Response, ApiError> {
    let n = caller.write(&s, &ns)?;
    let resp = if n.locks().release(&name, &q.token).await? {
        StatusCode::NO_CONTENT.into_response()
    } else {
        conflict("this token does not hold the lock")
    };
    Ok(OpInfo::attach("unlock", &ns, resp))
}
