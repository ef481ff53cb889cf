//! Events over HTTP: publish a JSON body; subscribe with Server-Sent Events (heartbeat
//! comments every 15 s keep proxies from closing idle streams). At most once: see the
//! library's `events` module.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::cache::NoQuery;
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery, JsonDoc, ReadNs, WriteNs};
use super::json;
use super::params::{ChannelParam, NsParam};

/// `?durable=true`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PublishQuery {
    /// Also append the event to the channel's durable log (replayed by `_since`).
    durable: Option<bool>,
}

/// `?after=ID&count=N`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SinceQuery {
    /// Id of the last event seen; omit for the oldest kept.
    after: Option<String>,
    /// Most events returned (default 100).
    #[param(minimum = 1)]
    count: Option<usize>,
}

/// Durable events after an id (replay what a subscriber missed).
#[utoipa::path(get, path = "/v1/events/{ns}/{channel}/_since", tag = "events", operation_id = "events_since",
    params(NsParam, ChannelParam, SinceQuery),
    responses((status = 200, description = "{\"events\":[{\"id\",\"data\"}]}", body = serde_json::Value)))]
pub async fn since(
    ReadNs(n): ReadNs,
    ApiPath(ChannelParam { channel }): ApiPath<ChannelParam>,
    ApiQuery(q): ApiQuery<SinceQuery>,
) -> Result<Response, ApiError> {
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
    Ok(json(StatusCode::OK, out))
}

/// Publish an event (any JSON document).
#[utoipa::path(post, path = "/v1/events/{ns}/{channel}", tag = "events", operation_id = "publish",
    params(NsParam, ChannelParam, PublishQuery),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "{\"receivers\":n} (and \"id\" when durable)", body = serde_json::Value)))]
pub async fn publish(
    WriteNs(n): WriteNs,
    ApiPath(ChannelParam { channel }): ApiPath<ChannelParam>,
    ApiQuery(q): ApiQuery<PublishQuery>,
    JsonDoc(body): JsonDoc,
) -> Result<Response, ApiError> {
    let body = if q.durable == Some(true) {
        let (id, receivers) = n.channel(&channel)?.publish_durable(&body).await?;
        serde_json::json!({"receivers": receivers, "id": id})
    } else {
        serde_json::json!({"receivers": n.channel(&channel)?.publish(&body).await?})
    };
    Ok(axum::Json(body).into_response())
}

/// Subscribe (Server-Sent Events): each event is a `data:` line with the JSON document.
#[utoipa::path(get, path = "/v1/events/{ns}/{channel}", tag = "events", operation_id = "subscribe",
    params(NsParam, ChannelParam),
    responses((status = 200, description = "one `data:` line per event; heartbeat comments every 15 s",
        content_type = "text/event-stream", body = String)))]
pub async fn subscribe(
    State(s): State<AppState>,
    ReadNs(n): ReadNs,
    ApiPath(ChannelParam { channel }): ApiPath<ChannelParam>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    let sub = n.channel(&channel)?.subscribe().await?;
    // Counted in `sharecache_sse_subscribers` until the client goes and the stream drops.
    let counted = s.metrics.sse_subscriber();
    let stream =
        futures_util::stream::unfold((sub, counted), |(mut sub, mut counted)| async move {
            let b = sub.recv().await?;
            counted.skipped(sub.skipped());
            let event = Event::default().data(String::from_utf8_lossy(&b));
            Some((Ok::<_, Infallible>(event), (sub, counted)))
        });
    let sse = Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("heartbeat"),
    );
    Ok(sse.into_response())
}
