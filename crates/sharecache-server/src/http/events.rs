//! Events over HTTP: publish a JSON body; subscribe with Server-Sent Events (heartbeat
//! comments every 15 s keep proxies from closing idle streams). At most once: see the
//! library's `events` module.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use serde::Deserialize;

use super::extract::{ApiPath, ApiQuery, Caller};
use super::{AppState, OpInfo};
use crate::http::cache::NoQuery;

/// `?durable=true`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishQuery {
    durable: Option<bool>,
}

/// `?after=ID&count=N`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinceQuery {
    after: Option<String>,
    count: Option<usize>,
}

/// Durable events after an id (replay what a subscriber missed).
#[utoipa::path(get, path = "/v1/events/{ns}/{channel}/_since", tag = "events",
    params(("ns" = String, Path), ("channel" = String, Path), ("after" = Option<String>, Query), ("count" = Option<u32>, Query)),
    responses((status = 200, description = "{\"events\":[{\"id\",\"data\"}]}")))]
pub async fn since(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, channel)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<SinceQuery>,
) -> Result<Response, ApiError> {
    let n = caller.read(&s, &ns)?;
    let events = n
        .channel(&channel)?
        .since(q.after.as_deref(), q.count.unwrap_or(100))
        .await?;
    let mut out = String::from("{\"events\":[");
    for (i, (id, data)) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Durable payloads were validated JSON when published.
        out.push_str(&format!(
            "{{\"id\":{},\"data\":{}}}",
            serde_json::Value::String(id.clone()),
            data.get()
        ));
    }
    out.push_str("]}");
    let resp = (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response();
    Ok(OpInfo::attach("events_since", &ns, resp))
}

/// Publish an event (any JSON document).
#[utoipa::path(post, path = "/v1/events/{ns}/{channel}", tag = "events",
    params(("ns" = String, Path), ("channel" = String, Path)),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "{\"receivers\":n}")))]
pub async fn publish(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, channel)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<PublishQuery>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let n = caller.write(&s, &ns)?;
    let body = super::cache::json_body(body)?;
    let body = if q.durable == Some(true) {
        let (id, receivers) = n.channel(&channel)?.publish_durable(&body).await?;
        serde_json::json!({"receivers": receivers, "id": id})
    } else {
        serde_json::json!({"receivers": n.channel(&channel)?.publish(&body).await?})
    };
    let resp = (StatusCode::OK, axum::Json(body)).into_response();
    Ok(OpInfo::attach("publish", &ns, resp))
}

/// Subscribe (Server-Sent Events): each event is a `data:` line with the JSON document.
#[utoipa::path(get, path = "/v1/events/{ns}/{channel}", tag = "events",
    params(("ns" = String, Path), ("channel" = String, Path)),
    responses((status = 200, description = "text/event-stream")))]
pub async fn subscribe(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, channel)): ApiPath<(String, String)>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    let n = caller.read(&s, &ns)?;
    let sub = n.channel(&channel)?.subscribe().await?;
    let stream = futures_util::stream::unfold(sub, |mut sub| async move {
        let b = sub.recv().await?;
        let event = Event::default().data(String::from_utf8_lossy(&b));
        Some((Ok::<_, Infallible>(event), sub))
    });
    let sse = Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("heartbeat"),
    );
    Ok(OpInfo::attach("subscribe", &ns, sse.into_response()))
}
