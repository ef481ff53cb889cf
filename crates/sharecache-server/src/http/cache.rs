//! The cache rows of the HTTP API v1. Keys in paths are percent-encoded and relative to
//! the namespace; values are JSON documents stored as sent. The batch operations are
//! routes of their own (`/v1/cache/{ns}/_mget`...): a key spelt like one is reached as
//! `%5Fmget`. Batch sizes are bounded by the library (`[server] max_batch`, given to the
//! cache builder), which answers `too_many_keys`.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use sharecache::{BackendState, RawJson, Source, Ttl};

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, JsonDoc, ReadNs, WriteNs};
use super::params::{KeyParam, NsParam};
use super::{AppState, json};

/// Header naming the tier that answered a read.
pub const TIER_HEADER: &str = "x-cache-tier";

fn tier(state: &AppState) -> HeaderValue {
    match state.cache.state() {
        BackendState::Degraded | BackendState::Recovering => HeaderValue::from_static("fallback"),
        _ => HeaderValue::from_static("l2"),
    }
}

/// A TTL in whole seconds, checked by the library (1 s..=ten years).
fn ttl_secs(secs: Option<u64>) -> Result<Ttl, ApiError> {
    match secs {
        None => Ok(Ttl::NEVER),
        Some(n) => {
            Ttl::secs(n).validate()?;
            Ok(Ttl::secs(n))
        }
    }
}

fn not_whole_seconds() -> ApiError {
    ApiError::bad_request("invalid_ttl", "ttl must be a whole number of seconds")
}

/// Routes that take no query parameters refuse any, so a misspelt option (a `match`
/// on a clear, a `ttl` on `_mset`) is an error instead of being silently ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoQuery {}

/// Query of a PUT.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PutQuery {
    /// Seconds to live (1..=315360000); omit for no expiry.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 315_360_000)]
    ttl: Option<String>,
    /// Comma-separated tags, each 1..=128 bytes; `_invalidate {"tags":[..]}` makes the
    /// value a miss.
    tags: Option<String>,
}

/// Read a value.
#[utoipa::path(get, path = "/v1/cache/{ns}/{key}", tag = "cache", operation_id = "get",
    params(NsParam, KeyParam),
    responses((status = 200, description = "the stored JSON value; header x-cache-tier: l1 | l2 | fallback",
            content_type = "application/json", body = serde_json::Value),
        (status = 404, description = "miss", body = ErrorBody)))]
pub async fn get_key(
    State(s): State<AppState>,
    ReadNs(n): ReadNs,
    ApiPath(KeyParam { key }): ApiPath<KeyParam>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    let value = n.get_with_source::<RawJson>(&key).await?;
    s.metrics.reads(
        n.name(),
        u64::from(value.is_some()),
        u64::from(value.is_none()),
    );
    let Some((body, source)) = value else {
        return Err(ApiError::not_found("key not found"));
    };
    let mut r = json(StatusCode::OK, body.into_bytes());
    let t = if source == Source::L1 {
        HeaderValue::from_static("l1")
    } else {
        tier(&s)
    };
    r.headers_mut().insert(TIER_HEADER, t);
    Ok(r)
}

/// Read a value and delete it in one atomic step (Redis `GETDEL`): of callers racing on
/// one key, exactly one gets it.
#[utoipa::path(post, path = "/v1/cache/{ns}/{key}/_take", tag = "cache", operation_id = "take",
    params(NsParam, KeyParam),
    responses((status = 200, description = "the stored JSON value, now deleted",
            content_type = "application/json", body = serde_json::Value),
        (status = 404, description = "nothing to take", body = ErrorBody),
        (status = 503, description = "Redis is down: the memory fallback cannot take what Redis holds", body = ErrorBody)))]
pub async fn take(
    WriteNs(n): WriteNs,
    ApiPath(KeyParam { key }): ApiPath<KeyParam>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    match n.take::<RawJson>(&key).await? {
        Some(body) => Ok(json(StatusCode::OK, body.into_bytes())),
        None => Err(ApiError::not_found("key not found")),
    }
}

/// Check that a key exists.
#[utoipa::path(head, path = "/v1/cache/{ns}/{key}", tag = "cache", operation_id = "exists",
    params(NsParam, KeyParam),
    responses((status = 200, description = "exists"), (status = 404, description = "does not exist (no body)")))]
pub async fn head_key(
    State(s): State<AppState>,
    ReadNs(n): ReadNs,
    ApiPath(KeyParam { key }): ApiPath<KeyParam>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    let status = if n.exists(&key).await? {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    let mut r = status.into_response();
    r.headers_mut().insert(TIER_HEADER, tier(&s));
    Ok(r)
}

/// `If-None-Match: *`: store only if the key holds nothing. Any other value is refused
/// (no entity tags yet), so a conditional write is never taken as a plain one.
fn only_if_absent(headers: &axum::http::HeaderMap) -> Result<bool, ApiError> {
    match headers.get(axum::http::header::IF_NONE_MATCH) {
        None => Ok(false),
        Some(v) if v.as_bytes().trim_ascii() == b"*" => Ok(true),
        Some(_) => Err(ApiError::bad_request(
            "invalid_precondition",
            "If-None-Match takes only \"*\" (store only if the key holds nothing)",
        )),
    }
}

/// Store a JSON value.
#[utoipa::path(put, path = "/v1/cache/{ns}/{key}", tag = "cache", operation_id = "set",
    params(NsParam, KeyParam, PutQuery,
        ("If-None-Match" = Option<String>, Header, description = "`*`: store only if the key holds nothing (412 otherwise); exactly one of many racing writers wins")),
    request_body(content = serde_json::Value, description = "any JSON document", content_type = "application/json"),
    responses((status = 204, description = "stored"),
        (status = 412, description = "`If-None-Match: *` and the key holds a value (`precondition_failed`)", body = ErrorBody)))]
pub async fn put_key(
    WriteNs(n): WriteNs,
    ApiPath(KeyParam { key }): ApiPath<KeyParam>,
    ApiQuery(q): ApiQuery<PutQuery>,
    headers: axum::http::HeaderMap,
    JsonDoc(body): JsonDoc,
) -> Result<StatusCode, ApiError> {
    let if_absent = only_if_absent(&headers)?;
    let secs = match q.ttl.as_deref() {
        None => None,
        Some(t) => Some(t.parse::<u64>().map_err(|_| not_whole_seconds())?),
    };
    let ttl = ttl_secs(secs)?;
    let tags: Vec<&str> = match q.tags.as_deref() {
        None => Vec::new(),
        Some(list) => list.split(',').collect(),
    };
    if if_absent {
        if !tags.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_precondition",
                "If-None-Match cannot be combined with tags",
            ));
        }
        if !n.set_if_absent(&key, &body, ttl).await? {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                "the key holds a value (If-None-Match: *)",
            ));
        }
    } else if tags.is_empty() {
        n.set(&key, &body, ttl).await?;
    } else {
        n.set_tagged(&key, &body, ttl, &tags).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a key.
#[utoipa::path(delete, path = "/v1/cache/{ns}/{key}", tag = "cache", operation_id = "del",
    params(NsParam, KeyParam),
    responses((status = 204, description = "deleted"), (status = 404, description = "did not exist", body = ErrorBody)))]
pub async fn delete_key(
    WriteNs(n): WriteNs,
    ApiPath(KeyParam { key }): ApiPath<KeyParam>,
    _q: ApiQuery<NoQuery>,
) -> Result<StatusCode, ApiError> {
    if n.del(&key).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("key not found"))
    }
}

/// `POST` on a key: not an operation. The batch operations are routes of their own, so
/// this answers 404 with the list (not 405, which would suggest POST exists elsewhere on
/// this key). Not in the OpenAPI document: there is nothing to call here.
pub async fn no_such_operation() -> ApiError {
    ApiError::not_found(
        "POST on a key is not an operation; the batch operations are _mget, _mset, _mdel and _invalidate, and PUT stores a value",
    )
}

/// `{"keys":[...]}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeysBody {
    /// Keys relative to the namespace, each 1..=1024 bytes; at most `[server] max_batch`
    /// (default 1000) of them.
    keys: Vec<String>,
}

/// `{"items":{"k":v},"ttl":300}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MsetBody {
    /// Keys and JSON values; at most `[server] max_batch` (default 1000) items.
    #[schema(value_type = HashMap<String, serde_json::Value>)]
    items: HashMap<String, Box<RawValue>>,
    /// Seconds to live for every item (1..=315360000); omit for no expiry.
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 315_360_000)]
    ttl: Option<serde_json::Value>,
}

/// `{"pattern":"p*"}` or `{"tags":[...]}`: exactly one of them.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvalidateBody {
    /// Glob pattern relative to the namespace (`*`, `?`, `[...]`; at most 16 wildcards,
    /// 1..=1024 bytes).
    #[schema(min_length = 1, max_length = 1024)]
    pattern: Option<String>,
    /// Tags to invalidate (every value written with one of them becomes a miss).
    tags: Option<Vec<String>>,
}

/// `{"values":[v or null, ...]}`
#[derive(Debug, utoipa::ToSchema)]
pub struct ValuesBody {
    /// The stored values in the order of the keys asked, `null` for a miss.
    pub values: Vec<serde_json::Value>,
}

/// `{"deleted":n}` (and `invalidated_tags` for a tag invalidation)
#[derive(Debug, utoipa::ToSchema)]
pub struct DeletedBody {
    /// Keys deleted now (0 for tags: tagged values become misses lazily).
    pub deleted: u64,
    /// Tags invalidated, for `{"tags":[...]}`.
    pub invalidated_tags: Option<u64>,
}

fn deleted_response(n: u64) -> Response {
    json(StatusCode::OK, format!("{{\"deleted\":{n}}}"))
}

/// Read many keys.
#[utoipa::path(post, path = "/v1/cache/{ns}/_mget", tag = "cache", operation_id = "mget",
    params(NsParam),
    request_body(content = KeysBody, content_type = "application/json"),
    responses((status = 200, description = "the values, null for a miss", body = ValuesBody)))]
pub async fn mget(
    State(s): State<AppState>,
    ReadNs(n): ReadNs,
    _q: ApiQuery<NoQuery>,
    ApiJson(b): ApiJson<KeysBody>,
) -> Result<Response, ApiError> {
    let values = n.mget::<Box<RawValue>>(&b.keys).await?;
    s.metrics.reads(
        n.name(),
        hits(&values),
        (values.len() as u64) - hits(&values),
    );
    let mut r = json(StatusCode::OK, values_json(&values));
    r.headers_mut().insert(TIER_HEADER, tier(&s));
    Ok(r)
}

fn hits(values: &[Option<Box<RawValue>>]) -> u64 {
    values.iter().filter(|v| v.is_some()).count() as u64
}

/// `{"values":[...]}`, splicing in the stored JSON as it is.
fn values_json(values: &[Option<Box<RawValue>>]) -> String {
    let mut out = String::with_capacity(16 + values.len() * 16);
    out.push_str("{\"values\":[");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(v.as_deref().map_or("null", RawValue::get));
    }
    out.push_str("]}");
    out
}

/// Write many keys with one TTL.
#[utoipa::path(post, path = "/v1/cache/{ns}/_mset", tag = "cache", operation_id = "mset",
    params(NsParam),
    request_body(content = MsetBody, content_type = "application/json"),
    responses((status = 204, description = "stored")))]
pub async fn mset(
    WriteNs(n): WriteNs,
    _q: ApiQuery<NoQuery>,
    ApiJson(b): ApiJson<MsetBody>,
) -> Result<StatusCode, ApiError> {
    let ttl = match &b.ttl {
        None | Some(serde_json::Value::Null) => Ttl::NEVER,
        Some(serde_json::Value::Number(n)) => {
            ttl_secs(Some(n.as_u64().ok_or_else(not_whole_seconds)?))?
        }
        Some(_) => return Err(not_whole_seconds()),
    };
    let items: Vec<(&str, &RawValue)> = b.items.iter().map(|(k, v)| (k.as_str(), &**v)).collect();
    n.mset(&items, ttl).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete many keys.
#[utoipa::path(post, path = "/v1/cache/{ns}/_mdel", tag = "cache", operation_id = "mdel",
    params(NsParam),
    request_body(content = KeysBody, content_type = "application/json"),
    responses((status = 200, description = "how many existed", body = DeletedBody)))]
pub async fn mdel(
    WriteNs(n): WriteNs,
    _q: ApiQuery<NoQuery>,
    ApiJson(b): ApiJson<KeysBody>,
) -> Result<Response, ApiError> {
    Ok(deleted_response(n.mdel(&b.keys).await?))
}

/// Delete the keys matching a pattern, or invalidate tags.
#[utoipa::path(post, path = "/v1/cache/{ns}/_invalidate", tag = "cache", operation_id = "invalidate",
    params(NsParam),
    request_body(content = InvalidateBody, content_type = "application/json"),
    responses((status = 200, description = "keys deleted (pattern) or tags invalidated", body = DeletedBody)))]
pub async fn invalidate(
    WriteNs(n): WriteNs,
    _q: ApiQuery<NoQuery>,
    ApiJson(b): ApiJson<InvalidateBody>,
) -> Result<Response, ApiError> {
    match (b.pattern, b.tags) {
        (Some(p), None) => Ok(deleted_response(n.delete_pattern(&p).await?)),
        (None, Some(tags)) => {
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            let invalidated = n.invalidate_tags(&tags).await?;
            // Tagged keys are invalidated lazily: how many there were is not known, and
            // none is deleted now.
            Ok(json(
                StatusCode::OK,
                format!("{{\"deleted\":0,\"invalidated_tags\":{invalidated}}}"),
            ))
        }
        _ => Err(ApiError::bad_request(
            "invalid_body",
            "give exactly one of \"pattern\" or \"tags\"",
        )),
    }
}

/// Query of a key listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Glob pattern relative to the namespace (default `*`).
    #[serde(rename = "match")]
    #[param(rename = "match", min_length = 1, max_length = 1024)]
    pattern: Option<String>,
    /// Cursor from the previous page.
    #[param(min_length = 1, max_length = 2048)]
    cursor: Option<String>,
    /// Page size hint, 1..=`[server] max_batch` (default 100).
    #[param(value_type = Option<u32>, minimum = 1)]
    count: Option<String>,
}

/// `{"keys":[...],"cursor":"..."}`
#[derive(Debug, utoipa::ToSchema)]
pub struct KeysPage {
    /// Keys of this page, relative to the namespace.
    pub keys: Vec<String>,
    /// Pass it back for the next page; `null` when the listing is done.
    pub cursor: Option<String>,
}

/// List keys of a namespace, a page at a time.
#[utoipa::path(get, path = "/v1/cache/{ns}", tag = "cache", operation_id = "list",
    params(NsParam, ListQuery),
    responses((status = 200, description = "one page of keys", body = KeysPage)))]
pub async fn list_keys(
    State(s): State<AppState>,
    ReadNs(n): ReadNs,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let count = match q.count.as_deref() {
        None => 100,
        Some(c) => c
            .parse::<usize>()
            .ok()
            .filter(|v| (1..=s.opts.max_batch).contains(v))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_count",
                    format!("count must be a number from 1 to {}", s.opts.max_batch),
                )
            })?,
    };
    let page = n
        .keys(
            q.pattern.as_deref().unwrap_or("*"),
            q.cursor.as_deref(),
            count,
        )
        .await?;
    let body = serde_json::json!({"keys": page.keys, "cursor": page.cursor});
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// Delete every key of a namespace.
#[utoipa::path(delete, path = "/v1/cache/{ns}", tag = "cache", operation_id = "clear",
    params(NsParam),
    responses((status = 200, description = "how many keys were deleted", body = DeletedBody)))]
pub async fn clear(WriteNs(n): WriteNs, _q: ApiQuery<NoQuery>) -> Result<Response, ApiError> {
    Ok(deleted_response(n.clear().await?))
}

/// `{"ttl_ms": n}`, or `{"ttl_ms": null}` for no expiry.
#[derive(Debug, serde::Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TtlBody {
    /// Milliseconds to live from now (1..=315360000000), or `null`: the key no longer
    /// expires. Required: an empty body is refused rather than taken as `null`.
    #[serde(deserialize_with = "present_or_null")]
    #[schema(minimum = 1, maximum = 315_360_000_000_u64)]
    ttl_ms: Option<u64>,
}

/// Makes an `Option` field required (serde takes a missing `Option` as `None`).
fn present_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<u64>::deserialize(d)
}

/// Read a key's remaining time to live.
#[utoipa::path(get, path = "/v1/cache/{ns}/{key}/_ttl", tag = "cache", operation_id = "get_ttl",
    params(NsParam, KeyParam),
    responses((status = 200, description = "`ttl_ms`: milliseconds left, `null` if the key does not expire", body = TtlBody),
        (status = 404, description = "no such key", body = ErrorBody)))]
pub async fn get_ttl(
    ReadNs(n): ReadNs,
    ApiPath(KeyParam { key }): ApiPath<KeyParam>,
    _q: ApiQuery<NoQuery>,
) -> Result<axum::Json<TtlBody>, ApiError> {
    let ttl = n
        .ttl(&key)
        .await?
        .ok_or_else(|| ApiError::not_found("key not found"))?;
    Ok(axum::Json(TtlBody {
        ttl_ms: ttl.duration().map(|d| d.as_millis() as u64),
    }))
}

/// Set or remove a key's time to live, without reading or changing its value.
#[utoipa::path(put, path = "/v1/cache/{ns}/{key}/_ttl", tag = "cache", operation_id = "set_ttl",
    params(NsParam, KeyParam),
    request_body(content = TtlBody, content_type = "application/json"),
    responses((status = 204, description = "the new TTL applies"),
        (status = 404, description = "no such key (nothing is created)", body = ErrorBody)))]
pub async fn set_ttl(
    WriteNs(n): WriteNs,
    ApiPath(KeyParam { key }): ApiPath<KeyParam>,
    _q: ApiQuery<NoQuery>,
    ApiJson(body): ApiJson<TtlBody>,
) -> Result<StatusCode, ApiError> {
    let ttl = body.ttl_ms.map_or(Ttl::NEVER, Ttl::millis);
    if n.expire(&key, ttl).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("key not found"))
    }
}

/// `{"by":1,"ttl":60}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncrBody {
    /// What to add (negative to subtract); default 1.
    #[serde(default = "one")]
    by: i64,
    /// Seconds to live for a counter this call creates (1..=315360000); an existing
    /// counter keeps its TTL. Omit for no expiry.
    #[schema(minimum = 1, maximum = 315_360_000)]
    ttl: Option<u64>,
}

fn one() -> i64 {
    1
}

/// `{"value":n}`
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CounterValue {
    /// The counter after this call.
    pub value: i64,
}

/// Add to a counter (created at 0 if absent), atomically across instances.
#[utoipa::path(post, path = "/v1/cache/{ns}/{key}/_incr", tag = "cache", operation_id = "incr",
    params(NsParam, KeyParam),
    request_body(content = IncrBody, content_type = "application/json"),
    responses((status = 200, description = "the new value; stored as the integer's text (RESP clients may INCRBY it too)", body = CounterValue),
        (status = 409, description = "the key holds something that is not an integer (`wrong_type`)", body = ErrorBody)))]
pub async fn incr(
    WriteNs(n): WriteNs,
    ApiPath(KeyParam { key }): ApiPath<KeyParam>,
    _q: ApiQuery<NoQuery>,
    ApiJson(body): ApiJson<IncrBody>,
) -> Result<axum::Json<CounterValue>, ApiError> {
    let ttl = ttl_secs(body.ttl)?;
    let value = n.incr(&key, body.by, ttl).await?;
    Ok(axum::Json(CounterValue { value }))
}
