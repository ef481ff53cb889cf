//! Presence over HTTP: heartbeats, leaving, who is online. Each namespace has presence
//! sets; `?set=` names one (default `default`), e.g. a chat room.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery, Caller};
use super::{AppState, OpInfo};

const DEFAULT_SET: &str = "default";

/// `?ttl=SECONDS&set=NAME`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeatQuery {
    ttl: Option<String>,
    set: Option<String>,
}

/// `?set=NAME`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetQuery {
    set: Option<String>,
}

/// Heartbeat: `member` is online for `ttl` seconds (default 60).
#[utoipa::path(put, path = "/v1/presence/{ns}/{member}", tag = "presence",
    params(("ns" = String, Path), ("member" = String, Path), ("ttl" = Option<u64>, Query, description = "seconds, default 60"),
        ("set" = Option<String>, Query, description = "presence set, default \"default\"")),
    responses((status = 204, description = "online")))]
pub async fn beat(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, member)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<BeatQuery>,
) -> Result<Response, ApiError> {
    let n = caller.write(&s, &ns)?;
    let ttl = match q.ttl.as_deref() {
        None => 60,
        Some(t) => t
            .parse::<u64>()
            .ok()
            .filter(|t| (1..=86_400).contains(t))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_ttl",
                    "ttl must be a whole number of seconds from 1 to 86400",
                )
            })?,
    };
    n.presence(q.set.as_deref().unwrap_or(DEFAULT_SET))?
        .beat(&member, Duration::from_secs(ttl))
        .await?;
    Ok(OpInfo::attach(
        "presence_beat",
        &ns,
        StatusCode::NO_CONTENT.into_response(),
    ))
}

/// `member` goes offline now.
#[utoipa::path(delete, path = "/v1/presence/{ns}/{member}", tag = "presence",
    params(("ns" = String, Path), ("member" = String, Path), ("set" = Option<String>, Query)),
    responses((status = 204, description = "left"), (status = 404, description = "was not online")))]
pub async fn leave(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, member)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<SetQuery>,
) -> Result<Response, ApiError> {
    let n = caller.write(&s, &ns)?;
    let set = n.presence(q.set.as_deref().unwrap_or(DEFAULT_SET))?;
    let resp = if set.leave(&member).await? {
        StatusCode::NO_CONTENT.into_response()
    } else {
        ApiError::not_found("member is not online").into_response()
    };
    Ok(OpInfo::attach("presence_leave", &ns, resp))
}

/// Who is online.
#[utoipa::path(get, path = "/v1/presence/{ns}", tag = "presence",
    params(("ns" = String, Path), ("set" = Option<String>, Query)),
    responses((status = 200, description = "{\"members\":[{\"member\",\"expires_in_ms\"}],\"count\":n}")))]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(ns): ApiPath<String>,
    ApiQuery(q): ApiQuery<SetQuery>,
) -> Result<Response, ApiError> {
    let n = caller.read(&s, &ns)?;
    let members = n
        .presence(q.set.as_deref().unwrap_or(DEFAULT_SET))?
        .list()
        .await?;
    let list: Vec<serde_json::Value> = members
        .iter()
        .map(|(m, left)| serde_json::json!({"member": m, "expires_in_ms": left.as_millis() as u64}))
        .collect();
    let body = serde_json::json!({"count": list.len(), "members": list});
    Ok(OpInfo::attach(
        "presence_list",
        &ns,
        (StatusCode::OK, axum::Json(body)).into_response(),
    ))
}
