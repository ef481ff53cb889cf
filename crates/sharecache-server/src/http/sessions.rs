//! Sessions over HTTP. Session ids are secrets: they travel in paths here, so the
//! request log redacts every path under `/v1/sessions/` (see `mod.rs`).

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::cache::NoQuery;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, WriteNs};
use super::params::{NsParam, SessionParam};

/// `{"data":{},"idle_ttl_ms":1800000,"absolute_ttl_ms":86400000}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// Any JSON (at most 64 KiB).
    #[serde(default)]
    data: serde_json::Value,
    /// Milliseconds without use before it ends (default 1800000, 30 minutes).
    #[serde(default = "default_idle")]
    #[schema(minimum = 1, maximum = 31_536_000_000u64)]
    idle_ttl_ms: u64,
    /// Milliseconds after creation at which it ends however used, at least
    /// `idle_ttl_ms` (default 86400000, 24 hours; at most a year).
    #[serde(default = "default_absolute")]
    #[schema(minimum = 1, maximum = 31_536_000_000u64)]
    absolute_ttl_ms: u64,
    /// The user it belongs to (to list and end all of a user's sessions).
    user: Option<String>,
}

/// `?user=...`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// The user the sessions belong to.
    user: String,
}

/// `{"id":"...","expires_at":ms}`
#[derive(Debug, utoipa::ToSchema)]
pub struct NewSession {
    /// The session id: a secret, sent back in paths.
    pub id: String,
    /// When it ends at the latest, ms since the Unix epoch.
    pub expires_at: u64,
}

fn default_idle() -> u64 {
    1_800_000
}

fn default_absolute() -> u64 {
    86_400_000
}

/// `{"data":...}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    /// The new data.
    data: serde_json::Value,
}

fn not_found() -> ApiError {
    ApiError::not_found("no such session")
}

/// Create a session.
#[utoipa::path(post, path = "/v1/sessions/{ns}", tag = "sessions", operation_id = "session_create",
    params(NsParam),
    request_body(content = CreateBody, content_type = "application/json"),
    responses((status = 201, description = "created", body = NewSession)))]
pub async fn create(
    WriteNs(n): WriteNs,
    _q: ApiQuery<NoQuery>,
    ApiJson(b): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let (idle, absolute) = (
        Duration::from_millis(b.idle_ttl_ms),
        Duration::from_millis(b.absolute_ttl_ms),
    );
    let new = match &b.user {
        Some(user) => {
            n.sessions()
                .create_for(user, b.data, idle, absolute)
                .await?
        }
        None => n.sessions().create(b.data, idle, absolute).await?,
    };
    Ok(created(new))
}

fn created(new: sharecache::session::NewSession) -> Response {
    let body = serde_json::json!({"id": new.id, "expires_at": new.expires_at_ms});
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

/// Create a session under an id the caller gives: for moving sessions from another
/// store (express-session, connect-redis...) without logging everybody out. The id is
/// 16..=256 characters of `A-Z a-z 0-9 - _ . ~` and must look random (at least 96 bits
/// of entropy, estimated); it is stored hashed, like every id.
#[utoipa::path(put, path = "/v1/sessions/{ns}/{id}", tag = "sessions", operation_id = "session_import",
    params(NsParam, SessionParam),
    request_body(content = CreateBody, content_type = "application/json"),
    responses((status = 201, description = "created under that id", body = NewSession),
        (status = 400, description = "the id is too short, has other characters or does not look random (`invalid_argument`)", body = ErrorBody),
        (status = 409, description = "a session already has that id (`session_exists`): nothing was changed", body = ErrorBody)))]
pub async fn import(
    WriteNs(n): WriteNs,
    ApiPath(SessionParam { id }): ApiPath<SessionParam>,
    _q: ApiQuery<NoQuery>,
    ApiJson(b): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let new = n
        .sessions()
        .import(
            &id,
            b.user.as_deref(),
            b.data,
            Duration::from_millis(b.idle_ttl_ms),
            Duration::from_millis(b.absolute_ttl_ms),
        )
        .await?;
    match new {
        Some(new) => Ok(created(new)),
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "session_exists",
            "a session already has that id: nothing was changed",
        )),
    }
}

/// The live sessions of a user (handles and times, never ids).
#[utoipa::path(get, path = "/v1/sessions/{ns}", tag = "sessions", operation_id = "session_list",
    params(NsParam, UserQuery),
    responses((status = 200, description = "{\"sessions\":[{\"handle\",\"created_ms\",\"expires_at_ms\"}]}", body = serde_json::Value)))]
pub async fn list(
    WriteNs(n): WriteNs,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> Result<Response, ApiError> {
    let sessions = n.sessions().list(&q.user).await?;
    Ok(axum::Json(serde_json::json!({"sessions": sessions})).into_response())
}

/// End every session of a user.
#[utoipa::path(delete, path = "/v1/sessions/{ns}", tag = "sessions", operation_id = "session_end_all",
    params(NsParam, UserQuery),
    responses((status = 200, description = "{\"ended\":n}", body = serde_json::Value)))]
pub async fn end_all(
    WriteNs(n): WriteNs,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> Result<Response, ApiError> {
    let ended = n.sessions().end_all(&q.user).await?;
    Ok(axum::Json(serde_json::json!({"ended": ended})).into_response())
}

/// Read a session (renews its idle timeout, so it needs write).
#[utoipa::path(get, path = "/v1/sessions/{ns}/{id}", tag = "sessions", operation_id = "session_get",
    params(NsParam, SessionParam),
    responses((status = 200, description = "{\"data\",\"created_ms\",\"expires_at_ms\"}", body = serde_json::Value),
        (status = 404, description = "unknown, expired or invalid", body = ErrorBody)))]
pub async fn read(
    WriteNs(n): WriteNs,
    ApiPath(SessionParam { id }): ApiPath<SessionParam>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    match n.sessions().get(&id).await? {
        Some(d) => Ok(axum::Json(d).into_response()),
        None => Err(not_found()),
    }
}

/// Replace a session's data.
#[utoipa::path(patch, path = "/v1/sessions/{ns}/{id}", tag = "sessions", operation_id = "session_update",
    params(NsParam, SessionParam),
    request_body(content = UpdateBody, content_type = "application/json"),
    responses((status = 204, description = "updated"), (status = 404, description = "no such session", body = ErrorBody)))]
pub async fn update(
    WriteNs(n): WriteNs,
    ApiPath(SessionParam { id }): ApiPath<SessionParam>,
    _q: ApiQuery<NoQuery>,
    ApiJson(b): ApiJson<UpdateBody>,
) -> Result<StatusCode, ApiError> {
    if n.sessions().update(&id, b.data).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

/// End a session.
#[utoipa::path(delete, path = "/v1/sessions/{ns}/{id}", tag = "sessions", operation_id = "session_end",
    params(NsParam, SessionParam),
    responses((status = 204, description = "ended"), (status = 404, description = "no such session", body = ErrorBody)))]
pub async fn end(
    WriteNs(n): WriteNs,
    ApiPath(SessionParam { id }): ApiPath<SessionParam>,
    _q: ApiQuery<NoQuery>,
) -> Result<StatusCode, ApiError> {
    if n.sessions().end(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

/// Give a session a new id; the old one is dead at once.
#[utoipa::path(post, path = "/v1/sessions/{ns}/{id}/_rotate", tag = "sessions", operation_id = "session_rotate",
    params(NsParam, SessionParam),
    responses((status = 200, description = "the new id", body = NewSession),
        (status = 404, description = "no such session", body = ErrorBody)))]
pub async fn rotate(
    WriteNs(n): WriteNs,
    ApiPath(SessionParam { id }): ApiPath<SessionParam>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    match n.sessions().rotate(&id).await? {
        Some(new) => Ok(axum::Json(
            serde_json::json!({"id": new.id, "expires_at": new.expires_at_ms}),
        )
        .into_response()),
        None => Err(not_found()),
    }
}
