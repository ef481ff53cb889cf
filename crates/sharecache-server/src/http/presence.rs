//! Presence over HTTP: heartbeats, leaving, who is online. Each namespace has presence
//! sets; `?set=` names one (default `default`), e.g. a chat room.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, ApiQuery, ReadNs, WriteNs};
use super::params::{MemberParam, NsParam};

const DEFAULT_SET: &str = "default";

/// Longest heartbeat: a day.
const MAX_BEAT_MS: u64 = 86_400_000;

/// `?ttl_ms=MILLISECONDS&set=NAME`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BeatQuery {
    /// Milliseconds online, 1..=86400000 (default 60000).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 86_400_000)]
    ttl_ms: Option<String>,
    /// Presence set (default `default`), 1..=1024 bytes.
    #[param(min_length = 1, max_length = 1024)]
    set: Option<String>,
}

/// `?set=NAME`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SetQuery {
    /// Presence set (default `default`), 1..=1024 bytes.
    #[param(min_length = 1, max_length = 1024)]
    set: Option<String>,
}

/// Heartbeat: `member` is online for `ttl_ms` milliseconds (default 60000).
#[utoipa::path(put, path = "/v1/presence/{ns}/{member}", tag = "presence", operation_id = "presence_beat",
    params(NsParam, MemberParam, BeatQuery),
    responses((status = 204, description = "online")))]
pub async fn beat(
    WriteNs(n): WriteNs,
    ApiPath(MemberParam { member }): ApiPath<MemberParam>,
    ApiQuery(q): ApiQuery<BeatQuery>,
) -> Result<StatusCode, ApiError> {
    let ttl = match q.ttl_ms.as_deref() {
        None => 60_000,
        Some(t) => t
            .parse::<u64>()
            .ok()
            .filter(|t| (1..=MAX_BEAT_MS).contains(t))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_ttl",
                    format!(
                        "ttl_ms must be a whole number of milliseconds from 1 to {MAX_BEAT_MS}"
                    ),
                )
            })?,
    };
    n.presence(q.set.as_deref().unwrap_or(DEFAULT_SET))?
        .beat(&member, Duration::from_millis(ttl))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `member` goes offline now.
#[utoipa::path(delete, path = "/v1/presence/{ns}/{member}", tag = "presence", operation_id = "presence_leave",
    params(NsParam, MemberParam, SetQuery),
    responses((status = 204, description = "left"), (status = 404, description = "was not online", body = ErrorBody)))]
pub async fn leave(
    WriteNs(n): WriteNs,
    ApiPath(MemberParam { member }): ApiPath<MemberParam>,
    ApiQuery(q): ApiQuery<SetQuery>,
) -> Result<StatusCode, ApiError> {
    let set = n.presence(q.set.as_deref().unwrap_or(DEFAULT_SET))?;
    if set.leave(&member).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("member is not online"))
    }
}

/// Who is online.
#[utoipa::path(get, path = "/v1/presence/{ns}", tag = "presence", operation_id = "presence_list",
    params(NsParam, SetQuery),
    responses((status = 200, description = "{\"members\":[{\"member\",\"expires_in_ms\"}],\"count\":n}", body = serde_json::Value)))]
pub async fn list(
    ReadNs(n): ReadNs,
    ApiQuery(q): ApiQuery<SetQuery>,
) -> Result<Response, ApiError> {
    let members = n
        .presence(q.set.as_deref().unwrap_or(DEFAULT_SET))?
        .list()
        .await?;
    let list: Vec<serde_json::Value> = members
        .iter()
        .map(|(m, left)| serde_json::json!({"member": m, "expires_in_ms": left.as_millis() as u64}))
        .collect();
    let body = serde_json::json!({"count": list.len(), "members": list});
    Ok(axum::Json(body).into_response())
}
