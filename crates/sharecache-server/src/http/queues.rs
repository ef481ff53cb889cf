//! Queues over HTTP: push, claim (consumer group, visibility timeout, dead-letter) and
//! acknowledge. At least once: see the library's `queue` module.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sharecache::queue::{ClaimOptions, QueueMessage};

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use super::{AppState, OpInfo};
use crate::http::cache::NoQuery;

/// `{"consumer":"w1","count":10,"wait_ms":0,"visibility_ms":30000,"max_deliveries":5}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    /// Consumer name (who holds the messages until acknowledged).
    consumer: String,
    /// Most messages to claim (1..=1000, default 1).
    #[serde(default = "one")]
    count: usize,
    /// How long to wait for a message, ms (default 0).
    #[serde(default)]
    wait_ms: u64,
    /// Redeliver messages unacknowledged for this long, ms (default 30000).
    #[serde(default = "thirty_s")]
    visibility_ms: u64,
    /// Dead-letter after this many deliveries (default 5).
    #[serde(default = "five")]
    max_deliveries: u64,
}

fn one() -> usize {
    1
}
fn thirty_s() -> u64 {
    30_000
}
fn five() -> u64 {
    5
}

/// `{"ids":[...]}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    ids: Vec<String>,
}

fn messages_json(msgs: &[QueueMessage]) -> String {
    let mut out = String::from("{\"messages\":[");
    for (i, m) in msgs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Payloads were validated JSON when pushed: splice them in as they are.
        out.push_str(&format!(
            "{{\"id\":{},\"deliveries\":{},\"payload\":{}}}",
            serde_json::Value::String(m.id.clone()),
            m.deliveries,
            String::from_utf8_lossy(&m.payload)
        ));
    }
    out.push_str("]}");
    out
}

fn json(status: StatusCode, body: String) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// Push a message (any JSON document).
#[utoipa::path(post, path = "/v1/queues/{ns}/{queue}", tag = "queues",
    params(("ns" = String, Path), ("queue" = String, Path)),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 201, description = "{\"id\":\"...\"}"), (status = 503, description = "Redis down: not accepted")))]
pub async fn push(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, queue)): ApiPath<(String, String)>,
    _q: ApiQuery<NoQuery>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let n = caller.write(&s, &ns)?;
    let body = super::cache::json_body(body)?;
    let id = n.queue(&queue)?.push(&body).await?;
    Ok(OpInfo::attach(
        "queue_push",
        &ns,
        (
            StatusCode::CREATED,
            axum::Json(serde_json::json!({"id": id})),
        )
            .into_response(),
    ))
}

/// `_claim`, `_ack`.
#[utoipa::path(post, path = "/v1/queues/{ns}/{queue}/{op}", tag = "queues",
    params(("ns" = String, Path), ("queue" = String, Path), ("op" = String, Path, description = "_claim | _ack")),
    request_body(content = serde_json::Value, description = "_claim: ClaimBody; _ack: AckBody"),
    responses((status = 200, description = "_claim: {\"messages\":[{\"id\",\"deliveries\",\"payload\"}]}; _ack: {\"acked\":n}")))]
pub async fn op(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, queue, op)): ApiPath<(String, String, String)>,
    _q: ApiQuery<NoQuery>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let n = caller.write(&s, &ns)?;
    match op.as_str() {
        "_claim" => {
            let ApiJson(b) =
                <ApiJson<ClaimBody> as axum::extract::FromRequest<AppState>>::from_request(req, &s)
                    .await?;
            let opts = ClaimOptions {
                visibility: Duration::from_millis(b.visibility_ms),
                max_deliveries: b.max_deliveries,
            };
            let msgs = n
                .queue(&queue)?
                .claim(
                    &b.consumer,
                    b.count,
                    Duration::from_millis(b.wait_ms),
                    &opts,
                )
                .await?;
            Ok(OpInfo::attach(
                "queue_claim",
                &ns,
                json(StatusCode::OK, messages_json(&msgs)),
            ))
        }
        "_ack" => {
            let ApiJson(b) =
                <ApiJson<AckBody> as axum::extract::FromRequest<AppState>>::from_request(req, &s)
                    .await?;
            let acked = n.queue(&queue)?.ack(&b.ids).await?;
            Ok(OpInfo::attach(
                "queue_ack",
                &ns,
                json(StatusCode::OK, format!("{{\"acked\":{acked}}}")),
            ))
        }
        _ => Err(ApiError::not_found(
            "queue operations are _claim and _ack; GET .../_dead lists dead letters",
        )),
    }
}

/// Dead-lettered messages.
#[utoipa::path(get, path = "/v1/queues/{ns}/{queue}/_dead", tag = "queues",
    params(("ns" = String, Path), ("queue" = String, Path)),
    responses((status = 200, description = "{\"messages\":[...]}")))]
pub async fn dead(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, queue)): ApiPath<(String, String)>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    let n = caller.read(&s, &ns)?;
    let msgs = n.queue(&queue)?.dead_letters(100).await?;
    Ok(OpInfo::attach(
        "queue_dead",
        &ns,
        json(StatusCode::OK, messages_json(&msgs)),
    ))
}
