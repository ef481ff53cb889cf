//! Events over HTTP: publish a JSON body; subscribe with Server-Sent Events (heartbeat
//! comments every 15 s keep proxies from closing idle streams). At most once: see the
//! library's `events` module.
//!
//! **Bounded**: one credential holds at most `[server] sse_per_credential` streams open
//! (429 `too_many_streams` past it), and a subscriber that falls `[server]
//! sse_buffer_bytes` (or 10 000 events) behind is sent a last `dropped` event saying how
//! far, and its stream ends: its unread events are freed, never buffered without bound.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::cache::NoQuery;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, ApiQuery, JsonDoc, ReadNs, ReadNsBy, WriteNs};
use super::json;
use super::params::{ChannelParam, NsParam};
use crate::auth::Principal;

/// What an open stream re-checks on each credentials reload.
struct Grant {
    reloads: tokio::sync::watch::Receiver<()>,
    state: AppState,
    principal: Principal,
    ns: String,
}

impl Grant {
    /// Whether the caller may still read the stream's namespace.
    fn holds(&self) -> bool {
        self.state.creds().may(&self.principal, &self.ns, false)
    }
}

/// Event streams open per credential.
#[derive(Debug, Default)]
pub struct Streams(parking_lot::Mutex<HashMap<Principal, usize>>);

/// One open stream of a credential, given back when dropped.
#[derive(Debug)]
pub struct StreamSlot {
    streams: Arc<Streams>,
    who: Principal,
}

impl Streams {
    /// A slot for `who`, or `None` if it already holds `limit` streams.
    fn take(self: &Arc<Self>, who: &Principal, limit: usize) -> Option<StreamSlot> {
        let mut open = self.0.lock();
        let n = open.entry(who.clone()).or_default();
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            streams: self.clone(),
            who: who.clone(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.streams.0.lock();
        if let Some(n) = open.get_mut(&self.who) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.who);
            }
        }
    }
}

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
    responses((status = 200, description = "one `data:` line per event; heartbeat comments every 15 s; \
        a subscriber that falls too far behind gets a last `event: dropped` with \
        `{\"reason\":\"slow_subscriber\",\"unread_events\",\"unread_bytes\"}` and the stream ends; \
        one whose credential loses read on the namespace (a reload) gets a last \
        `event: revoked` with `{\"reason\":\"credential_revoked\"}`",
        content_type = "text/event-stream", body = String),
        (status = 429, description = "this credential already holds `[server] sse_per_credential` streams (`too_many_streams`)", body = ErrorBody)))]
pub async fn subscribe(
    State(s): State<AppState>,
    ReadNsBy(n, caller): ReadNsBy,
    ApiPath(ChannelParam { channel }): ApiPath<ChannelParam>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    let Some(slot) = s.streams.take(&caller.principal, s.opts.sse_per_credential) else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            format!(
                "this credential already holds {} event streams open ([server] \
                 sse_per_credential): close one, or share one stream between listeners",
                s.opts.sse_per_credential
            ),
        ));
    };
    let sub = n.channel(&channel)?.subscribe().await?;
    // Counted in `sharecache_sse_subscribers` until the client goes and the stream drops;
    // the slot is held as long.
    let counted = s.metrics.sse_subscriber();
    // A reload that takes the caller's read on the namespace away ends the stream: a
    // revoked credential hears nothing more.
    let grant = Grant {
        reloads: s.reloads.subscribe(),
        state: s.clone(),
        principal: caller.principal,
        ns: n.name().to_owned(),
    };
    let stream =
        futures_util::stream::unfold(Some((sub, counted, slot, grant)), |state| async move {
            let (mut sub, mut counted, slot, mut grant) = state?;
            let got = loop {
                tokio::select! {
                    got = sub.recv() => break got,
                    _ = grant.reloads.changed() => {
                        if !grant.holds() {
                            let why = serde_json::json!({"reason": "credential_revoked"});
                            let event = Event::default().event("revoked").data(why.to_string());
                            return Some((Ok(event), None));
                        }
                    }
                }
            };
            match got {
                Some(b) => {
                    let event = Event::default().data(String::from_utf8_lossy(&b));
                    Some((
                        Ok::<_, Infallible>(event),
                        Some((sub, counted, slot, grant)),
                    ))
                }
                None => {
                    // Dropped for falling behind: say so, then end the stream.
                    let d = sub.dropped()?;
                    counted.skipped(sub.skipped());
                    counted.dropped_subscriber();
                    let why = serde_json::json!({
                        "reason": "slow_subscriber",
                        "unread_events": d.unread_events,
                        "unread_bytes": d.unread_bytes,
                    });
                    let event = Event::default().event("dropped").data(why.to_string());
                    Some((Ok(event), None))
                }
            }
        });
    let sse = Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("heartbeat"),
    );
    Ok(sse.into_response())
}
