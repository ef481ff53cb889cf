//! Sessions over HTTP. Session ids are secrets: they travel in paths here, so the
//! request log redacts every path under `/v1/sessions/` (see `mod.rs`).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use super::{AppState, OpInfo};
use crate::http::cache::NoQuery;

/// `{"data":{},"idle_ttl":1800,"absolute_ttl":86400}` (seconds)
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// Any JSON (at most 64 KiB).
    #[serde(default)]
    data: serde_json::Value,
    /// Seconds without use before it ends (default 1800).
    #[serde(default = "default_idle")]
    idle_ttl: u64,
    /// Seconds after creation at which it ends however used (default 86400).
    #[serde(default = "default_absolute")]
    absolute_ttl: u64,
    /// The user it belongs to (to list and end all of a user's sessions).
    user: Option<String>,
}

/// `?user=...`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    user: String,
}

fn default_idle() -> u64 {
    1800
}

fn default_absolute() -> u64 {
    86_400
}

/// `{"data":...}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    /// The new data.
    data: serde_json::Value,
}

fn not_found() -> Response {
    ApiError::not_found("no such session").into_response()
}

/// Create a session.
#[utoipa::path(post, path = "/v1/sessions/{ns}", tag = "sessions", params(("ns" = String, Path)),
    request_body(content = CreateBody, content_type = "application/json"),
    responses((status = 201, description = "{\"id\":\"...\",\"expires_at\":ms}")))]
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(ns): ApiPath<String>,
    _q: ApiQuery<NoQuery>,
    ApiJson(b): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let n = caller.write(&s, &ns)?;
    let (idle, absolute) = (
        Duration::from_secs(b.idle_ttl),
        Duration::from_secs(b.absolute_ttl),
    );
    let new = match &b.user {
        Some(user) => {
            n.sessions()
                .create_for(user, b.data, idle, absolute)
                .await?
        }
        None => n.sessions().create(b.data, idle, absolute).await?,
    };
    let body = serde_json::json!({"id": new.id, "expires_at": new.expires_at_ms});
    Ok(OpInfo::attach(
        "session_create",
        &ns,
        (StatusCode::CREATED, axum::Json(body)).into_response(),
    ))
}

/// The live sessions of a user (handles and times, never ids).
#[utoipa::path(get, path = "/v1/sessions/{ns}", tag = "sessions", params(("ns" = String, Path), ("user" = String, Query)),
    responses((status = 200, description = "{\"sessions\":[{\"handle\",\"created_ms\",\"expires_at_ms\"}]}")))]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(ns): ApiPath<String>,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> Result<Response, ApiError> {
    let n = caller.write(&s, &ns)?;
    let sessions = n.sessions().list(&q.user).await?;
    Ok(OpInfo::attach(
        "session_list",
        &ns,
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({"sessions": sessions})),
        )
            .into_response(),
    ))
}

/// End every session of a user.
#[utoipa::path(delete, path = "/v1/sessions/{ns}", tag = "sessions", params(("ns" = String, Path), ("user" = String, Query)),
    responses((status = 200, description = "{\"ended\":n}")))]
pub async fn end_all(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(ns): ApiPath<String>,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> Result<Response, ApiError> {
    let n = caller.write(&s, &ns)?;
    let ended = n.sessions().end_all(&q.user).await?;
    Ok(OpInfo::attach(
        "session_end_all",
        &ns,
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({"ended": ended})),
        )
            .into_response(),
    ))
}

/// Read a session (renews its idle timeout).
#[utoipa::path(get, path = "/v1/sessions/{ns}/{id}", tag = "sessions", params(("ns" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "{\"data\",\"created_ms\",\"expires_at_ms\"}"), (status = 404, description = "unknown, expired or invalid")))]
pub async fn read(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, id)): ApiPath<(String, String)>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    // Reading renews the session, so it needs write.
    let n = caller.write(&s, &ns)?;
    let resp = match n.sessions().get(&id).await? {
        Some(d) => (StatusCode::OK, axum::Json(d)).into_response(),
        None => not_found(),
    };
    Ok(OpInfo::attach("session_get", &ns, resp))
}

/// Replace a session's data.
#[utoipa::path(patch, path = "/v1/sessions/{ns}/{id}", tag = "sessions", params(("ns" = String, Path), ("id" = String, Path)),
    request_body(content = UpdateBody, content_type = "application/json"),
    responses((status = 204, description = "updated"), (status = 404, description = "no such session")))]
pub async fn update(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, id)): ApiPath<(String, String)>,
    _q: ApiQuery<NoQuery>,
    ApiJson(b): ApiJson<UpdateBody>,
) -> Result<Response, ApiError> {
    let n = caller.write(&s, &ns)?;
    let resp = if n.sessions().update(&id, b.data).await? {
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found()
    };
    Ok(OpInfo::attach("session_update", &ns, resp))
}

/// End a session.
#[utoipa::path(delete, path = "/v1/sessions/{ns}/{id}", tag = "sessions", params(("ns" = String, Path), ("id" = String, Path)),
    responses((status = 204, description = "ended"), (status = 404, description = "no such session")))]
pub async fn end(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, id)): ApiPath<(String, String)>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    let n = caller.write(&s, &ns)?;
    let resp = if n.sessions().end(&id).await? {
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found()
    };
    Ok(OpInfo::attach("session_end", &ns, resp))
}

/// Give a session a new id; the old one is dead at once.
#[utoipa::path(post, path = "/v1/sessions/{ns}/{id}/_rotate", tag = "sessions", params(("ns" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "{\"id\":\"...\",\"expires_at\":ms}"), (status = 404, description = "no such session")))]
pub async fn rotate(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, id)): ApiPath<(String, String)>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    let n = caller.write(&s, &ns)?;
    let resp = match n.sessions().rotate(&id).await? {
        Some(new) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"id": new.id, "expires_at": new.expires_at_ms})),
        )
            .into_response(),
        None => not_found(),
    };
    Ok(OpInfo::attach("session_rotate", &ns, resp))
}
