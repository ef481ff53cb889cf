//! Queues over HTTP: push, claim (consumer group, visibility timeout, dead-letter) and
//! acknowledge. At least once: see the library's `queue` module.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sharecache::queue::{ClaimOptions, QueueMessage};

use super::cache::NoQuery;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, JsonDoc, ReadNs, WriteNs};
use super::json;
use super::params::{DeadLetterParam, NsParam, QueueParam};

/// `{"consumer":"w1","count":10,"wait_ms":0,"visibility_ms":30000,"max_deliveries":5}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    /// Consumer name (who holds the messages until acknowledged).
    consumer: String,
    /// Most messages to claim (1..=1000, default 1).
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 1000)]
    count: usize,
    /// How long to wait for a message, ms (default 0).
    #[serde(default)]
    wait_ms: u64,
    /// Redeliver messages unacknowledged for this long, ms (default 30000).
    #[serde(default = "thirty_s")]
    #[schema(minimum = 1)]
    visibility_ms: u64,
    /// Dead-letter after this many deliveries (default 5).
    #[serde(default = "five")]
    #[schema(minimum = 1)]
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
    /// Ids of claimed messages; at most `[server] max_batch` (default 1000).
    ids: Vec<String>,
}

/// `{"messages":[{"id","deliveries","payload"}]}`
#[derive(Debug, utoipa::ToSchema)]
pub struct Messages {
    /// The messages, oldest first.
    pub messages: Vec<Message>,
}

/// One queue message.
#[derive(Debug, utoipa::ToSchema)]
pub struct Message {
    /// Id, to acknowledge it.
    pub id: String,
    /// How many times it was delivered, this time included.
    pub deliveries: u64,
    /// The JSON document pushed.
    pub payload: serde_json::Value,
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

/// Push a message (any JSON document).
#[utoipa::path(post, path = "/v1/queues/{ns}/{queue}", tag = "queues", operation_id = "queue_push",
    params(NsParam, QueueParam),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 201, description = "{\"id\":\"...\"}", body = serde_json::Value)))]
pub async fn push(
    WriteNs(n): WriteNs,
    ApiPath(QueueParam { queue }): ApiPath<QueueParam>,
    _q: ApiQuery<NoQuery>,
    JsonDoc(body): JsonDoc,
) -> Result<Response, ApiError> {
    let id = n.queue(&queue)?.push(&body).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({"id": id})),
    )
        .into_response())
}

/// Claim messages for a consumer (consumer group, visibility timeout, dead-letter).
#[utoipa::path(post, path = "/v1/queues/{ns}/{queue}/_claim", tag = "queues", operation_id = "queue_claim",
    params(NsParam, QueueParam),
    request_body(content = ClaimBody, content_type = "application/json"),
    responses((status = 200, description = "the claimed messages (maybe none)", body = Messages)))]
pub async fn claim(
    WriteNs(n): WriteNs,
    ApiPath(QueueParam { queue }): ApiPath<QueueParam>,
    _q: ApiQuery<NoQuery>,
    ApiJson(b): ApiJson<ClaimBody>,
) -> Result<Response, ApiError> {
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
    Ok(json(StatusCode::OK, messages_json(&msgs)))
}

/// Acknowledge claimed messages: they are done and not redelivered.
#[utoipa::path(post, path = "/v1/queues/{ns}/{queue}/_ack", tag = "queues", operation_id = "queue_ack",
    params(NsParam, QueueParam),
    request_body(content = AckBody, content_type = "application/json"),
    responses((status = 200, description = "{\"acked\":n}: how many were pending", body = serde_json::Value)))]
pub async fn ack(
    WriteNs(n): WriteNs,
    ApiPath(QueueParam { queue }): ApiPath<QueueParam>,
    _q: ApiQuery<NoQuery>,
    ApiJson(b): ApiJson<AckBody>,
) -> Result<Response, ApiError> {
    let acked = n.queue(&queue)?.ack(&b.ids).await?;
    Ok(json(StatusCode::OK, format!("{{\"acked\":{acked}}}")))
}

/// How many messages the queue holds: ready (not yet delivered), pending (delivered, not
/// acknowledged) and dead (dead-lettered).
#[utoipa::path(get, path = "/v1/queues/{ns}/{queue}/_stats", tag = "queues", operation_id = "queue_stats",
    params(NsParam, QueueParam),
    responses((status = 200, description = "the queue's figures", body = QueueFigures)))]
pub async fn stats(
    ReadNs(n): ReadNs,
    ApiPath(QueueParam { queue }): ApiPath<QueueParam>,
    _q: ApiQuery<NoQuery>,
) -> Result<axum::Json<sharecache::queue::QueueStats>, ApiError> {
    Ok(axum::Json(n.queue(&queue)?.stats().await?))
}

/// `{"ready":n,"pending":n,"dead":n}`
#[derive(Debug, utoipa::ToSchema)]
pub struct QueueFigures {
    /// Pushed and not yet delivered.
    pub ready: u64,
    /// Delivered and not yet acknowledged.
    pub pending: u64,
    /// Dead-lettered.
    pub dead: u64,
}

fn no_dead_letter() -> ApiError {
    ApiError::not_found("no dead letter with that id (among the first 10 000)")
}

/// Put a dead letter back on the queue as a new message, delivered afresh.
#[utoipa::path(post, path = "/v1/queues/{ns}/{queue}/_dead/{id}/_requeue", tag = "queues", operation_id = "queue_requeue",
    params(NsParam, DeadLetterParam),
    responses((status = 200, description = "{\"id\":\"...\"}: the new message's id", body = serde_json::Value),
        (status = 404, description = "no such dead letter", body = ErrorBody)))]
pub async fn requeue(
    WriteNs(n): WriteNs,
    ApiPath(DeadLetterParam { queue, id }): ApiPath<DeadLetterParam>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    match n.queue(&queue)?.requeue_dead(&id).await? {
        Some(new) => Ok(axum::Json(serde_json::json!({ "id": new })).into_response()),
        None => Err(no_dead_letter()),
    }
}

/// Drop a dead letter for good.
#[utoipa::path(delete, path = "/v1/queues/{ns}/{queue}/_dead/{id}", tag = "queues", operation_id = "queue_drop_dead",
    params(NsParam, DeadLetterParam),
    responses((status = 204, description = "dropped"),
        (status = 404, description = "no such dead letter", body = ErrorBody)))]
pub async fn drop_dead(
    WriteNs(n): WriteNs,
    ApiPath(DeadLetterParam { queue, id }): ApiPath<DeadLetterParam>,
    _q: ApiQuery<NoQuery>,
) -> Result<StatusCode, ApiError> {
    if n.queue(&queue)?.drop_dead(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_dead_letter())
    }
}

/// Dead-lettered messages (the oldest 100).
#[utoipa::path(get, path = "/v1/queues/{ns}/{queue}/_dead", tag = "queues", operation_id = "queue_dead",
    params(NsParam, QueueParam),
    responses((status = 200, description = "the dead letters", body = Messages)))]
pub async fn dead(
    ReadNs(n): ReadNs,
    ApiPath(QueueParam { queue }): ApiPath<QueueParam>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    let msgs = n.queue(&queue)?.dead_letters(100).await?;
    Ok(json(StatusCode::OK, messages_json(&msgs)))
}
