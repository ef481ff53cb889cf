//! The cache rows of the HTTP API v1. Keys in paths are percent-encoded and relative to
//! the namespace; values are JSON documents stored as sent. The batch operations are
//! routes of their own (`/v1/cache/{ns}/_mget`...): a key spelt like one is reached as
//! `%5Fmget`. Batch sizes are bounded by the library (`[server] max_batch`, given to the
//! cache builder), which answers `too_many_keys`.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use sharecache::{BackendState, Entry, RawBytes, RawJson, Source, Ttl, Version};

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, ReadNs, ValueBody, WriteNs};
use super::params::{KeyParam, NsParam};
use super::{AppState, json};

/// Header naming the tier that answered a read.
pub const TIER_HEADER: &str = "x-cache-tier";
/// Header of a read: milliseconds the key has left (absent: it does not expire).
pub const TTL_HEADER: &str = "x-cache-ttl-ms";
const OCTETS: &str = "application/octet-stream";

fn tier(state: &AppState) -> HeaderValue {
    match state.cache.state() {
        BackendState::Degraded | BackendState::Recovering => HeaderValue::from_static("fallback"),
        _ => HeaderValue::from_static("l2"),
    }
}

/// A cache TTL, given as `ttl` (whole seconds, Redis `EX`) or `ttl_ms` (milliseconds,
/// `PX`), at most one of them; checked by the library (1 ms..=ten years). Neither: no
/// expiry.
fn cache_ttl(secs: Option<u64>, ms: Option<u64>) -> Result<Ttl, ApiError> {
    let ttl = match (secs, ms) {
        (None, None) => return Ok(Ttl::NEVER),
        (Some(s), None) => Ttl::secs(s),
        (None, Some(ms)) => Ttl::millis(ms),
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_ttl",
                "give ttl (seconds) or ttl_ms (milliseconds), not both",
            ));
        }
    };
    ttl.validate()?;
    Ok(ttl)
}

/// A query parameter that must be a whole number of `unit`.
fn whole(name: &str, unit: &str, v: Option<&str>) -> Result<Option<u64>, ApiError> {
    v.map(|t| {
        t.parse::<u64>().map_err(|_| {
            ApiError::bad_request(
                "invalid_ttl",
                format!("{name} must be a whole number of {unit}"),
            )
        })
    })
    .transpose()
}

/// A body field that must be a whole number of `unit` (or null).
fn whole_json(
    name: &str,
    unit: &str,
    v: Option<&serde_json::Value>,
) -> Result<Option<u64>, ApiError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_ttl",
                format!("{name} must be a whole number of {unit}"),
            )
        }),
    }
}

/// Whether a read asks for the value's bytes (`Accept: application/octet-stream`
/// without `application/json`) rather than its JSON.
fn wants_bytes(headers: &HeaderMap) -> bool {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let (mut bytes, mut json) = (false, false);
    for t in accept {
        bytes |= t == OCTETS;
        json |= t == "application/json";
    }
    bytes && !json
}

/// The `ETag` of a value: its [`Version`], quoted.
fn etag(v: Version) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{v}\"")).expect("hex digits are a valid header")
}

/// The one entity tag of an `If-Match` or `If-None-Match` header (quoted, as `ETag`
/// gives it; weak tags never match a strong comparison, so they are refused).
fn entity_tag(name: &str, v: &HeaderValue) -> Result<Version, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_precondition",
            format!(
                "{name} takes one ETag as a read returned it, e.g. \"0123...\" (32 hex digits in quotes)"
            ),
        )
    };
    let t = v.to_str().map_err(|_| bad())?.trim();
    let t = t
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(t);
    t.parse::<Version>().map_err(|_| bad())
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
    /// Seconds to live (1..=315360000, Redis `EX`); omit (and `ttl_ms`) for no expiry.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 315_360_000)]
    ttl: Option<String>,
    /// Milliseconds to live (1..=315360000000, Redis `PX`), instead of `ttl`.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 315_360_000_000u64)]
    ttl_ms: Option<String>,
    /// Comma-separated tags, each 1..=128 bytes; `_invalidate {"tags":[..]}` makes the
    /// value a miss.
    tags: Option<String>,
}

/// Read a value.
#[utoipa::path(get, path = "/v1/cache/{ns}/{key}", tag = "cache", operation_id = "get",
    params(NsParam, KeyParam,
        ("Accept" = Option<String>, Header, description = "`application/octet-stream`: the value's bytes as stored (any string value: binary, text another client wrote); otherwise its JSON"),
        ("If-None-Match" = Option<String>, Header, description = "an `ETag` a read returned: 304 with no body if the value is still that one")),
    responses((status = 200, description = "the stored JSON value (or bytes, see `Accept`); headers `ETag` (the value's version, for `If-Match`), `x-cache-ttl-ms` (milliseconds left; absent if the key does not expire), `x-cache-tier: l1 | l2 | fallback`",
            content_type = "application/json", body = serde_json::Value),
        (status = 304, description = "`If-None-Match` names the value's current `ETag`"),
        (status = 404, description = "miss", body = ErrorBody),
        (status = 409, description = "the key holds another Redis type (`wrong_type`)", body = ErrorBody),
        (status = 422, description = "the key holds bytes that are not JSON (`not_json`): read them with `Accept: application/octet-stream`", body = ErrorBody)))]
pub async fn get_key(
    State(s): State<AppState>,
    ReadNs(n): ReadNs,
    ApiPath(KeyParam { key }): ApiPath<KeyParam>,
    _q: ApiQuery<NoQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let bytes = wants_bytes(&headers);
    let entry = if bytes {
        n.get_entry::<RawBytes>(&key)
            .await?
            .map(|e| (e.value.into_bytes(), e.source, e.ttl))
    } else {
        n.get_entry::<RawJson>(&key).await?.map(
            |Entry {
                 value, source, ttl, ..
             }| (value.into_bytes(), source, ttl),
        )
    };
    s.metrics.reads(
        n.name(),
        u64::from(entry.is_some()),
        u64::from(entry.is_none()),
    );
    let Some((body, source, ttl)) = entry else {
        return Err(ApiError::not_found("key not found"));
    };
    let version = Version::of(&body);
    let not_modified = match headers.get(header::IF_NONE_MATCH) {
        Some(v) => entity_tag("If-None-Match", v)? == version,
        None => false,
    };
    let mut r = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else if bytes {
        let mut r = Response::new(axum::body::Body::from(body));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(OCTETS));
        r
    } else {
        json(StatusCode::OK, body)
    };
    let h = r.headers_mut();
    h.insert(header::ETAG, etag(version));
    if let Some(left) = ttl {
        h.insert(TTL_HEADER, HeaderValue::from(left.as_millis() as u64));
    }
    let t = if source == Source::L1 {
        HeaderValue::from_static("l1")
    } else {
        tier(&s)
    };
    h.insert(TIER_HEADER, t);
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

/// The condition of a PUT: `If-None-Match: *` (only if the key holds nothing) or
/// `If-Match: "<etag>"` (only over that value). `None` inside: no condition.
fn condition(headers: &HeaderMap) -> Result<Option<Option<Version>>, ApiError> {
    match (
        headers.get(header::IF_NONE_MATCH),
        headers.get(header::IF_MATCH),
    ) {
        (None, None) => Ok(None),
        (Some(v), None) if v.as_bytes().trim_ascii() == b"*" => Ok(Some(None)),
        (Some(_), None) => Err(ApiError::bad_request(
            "invalid_precondition",
            "on a PUT, If-None-Match takes only \"*\" (store only if the key holds nothing)",
        )),
        (None, Some(v)) => Ok(Some(Some(entity_tag("If-Match", v)?))),
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "invalid_precondition",
            "give If-None-Match: * or If-Match, not both",
        )),
    }
}

/// Store a JSON value (or, with `Content-Type: application/octet-stream`, bytes as they are).
#[utoipa::path(put, path = "/v1/cache/{ns}/{key}", tag = "cache", operation_id = "set",
    params(NsParam, KeyParam, PutQuery,
        ("If-None-Match" = Option<String>, Header, description = "`*`: store only if the key holds nothing (412 otherwise); exactly one of many racing writers wins"),
        ("If-Match" = Option<String>, Header, description = "an `ETag` a read returned: store only if the key still holds that value (412 otherwise), compare-and-set")),
    request_body(content = serde_json::Value, description = "any JSON document; with `Content-Type: application/octet-stream`, any bytes, stored as they are (RESP clients read exactly them)", content_type = "application/json"),
    responses((status = 204, description = "stored"),
        (status = 412, description = "the condition failed (`precondition_failed`): `If-None-Match: *` and the key holds a value, or `If-Match` and it holds another value or none", body = ErrorBody)))]
pub async fn put_key(
    WriteNs(n): WriteNs,
    ApiPath(KeyParam { key }): ApiPath<KeyParam>,
    ApiQuery(q): ApiQuery<PutQuery>,
    headers: HeaderMap,
    body: ValueBody,
) -> Result<StatusCode, ApiError> {
    let condition = condition(&headers)?;
    let ttl = cache_ttl(
        whole("ttl", "seconds", q.ttl.as_deref())?,
        whole("ttl_ms", "milliseconds", q.ttl_ms.as_deref())?,
    )?;
    let tags: Vec<&str> = match q.tags.as_deref() {
        None => Vec::new(),
        Some(list) => list.split(',').collect(),
    };
    if !tags.is_empty() && (condition.is_some() || matches!(body, ValueBody::Bytes(_))) {
        return Err(ApiError::bad_request(
            "invalid_precondition",
            "tags go with an unconditional JSON write: not with If-None-Match, If-Match or a body of bytes",
        ));
    }
    let stored = match (body, condition) {
        (ValueBody::Json(v), None) if tags.is_empty() => {
            n.set(&key, &v, ttl).await.map(|()| true)?
        }
        (ValueBody::Json(v), None) => n.set_tagged(&key, &v, ttl, &tags).await.map(|()| true)?,
        (ValueBody::Json(v), Some(None)) => n.set_if_absent(&key, &v, ttl).await?,
        (ValueBody::Json(v), Some(Some(version))) => {
            n.set_if_version(&key, &v, ttl, version).await?
        }
        (ValueBody::Bytes(b), None) => n.set_bytes(&key, &b, ttl).await.map(|()| true)?,
        (ValueBody::Bytes(b), Some(expected)) => n.set_bytes_if(&key, &b, ttl, expected).await?,
    };
    if !stored {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            if headers.contains_key(header::IF_MATCH) {
                "the key no longer holds the value of that ETag (If-Match): read it again"
            } else {
                "the key holds a value (If-None-Match: *)"
            },
        ));
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

/// `{"items":{"k":v},"ttl":300}` (or `"ttl_ms":300000`)
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MsetBody {
    /// Keys and JSON values; at most `[server] max_batch` (default 1000) items.
    #[schema(value_type = HashMap<String, serde_json::Value>)]
    items: HashMap<String, Box<RawValue>>,
    /// Seconds to live for every item (1..=315360000); omit (and `ttl_ms`) for no expiry.
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 315_360_000)]
    ttl: Option<serde_json::Value>,
    /// Milliseconds to live for every item (1..=315360000000), instead of `ttl`.
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 315_360_000_000u64)]
    ttl_ms: Option<serde_json::Value>,
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
    let ttl = cache_ttl(
        whole_json("ttl", "seconds", b.ttl.as_ref())?,
        whole_json("ttl_ms", "milliseconds", b.ttl_ms.as_ref())?,
    )?;
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

/// Set or remove a key's time to live, without reading or changing its value: the
/// touch of a sliding expiry (`{"ttl_ms":1800000}` after each use), or `null` to make the
/// key persistent.
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

/// `{"by":1,"ttl":60}` (or `"ttl_ms":60000`)
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncrBody {
    /// What to add (negative to subtract); default 1.
    #[serde(default = "one")]
    by: i64,
    /// Seconds to live for a counter this call creates (1..=315360000); an existing
    /// counter keeps its TTL. Omit (and `ttl_ms`) for no expiry.
    #[schema(minimum = 1, maximum = 315_360_000)]
    ttl: Option<u64>,
    /// Milliseconds to live for a counter this call creates (1..=315360000000), instead
    /// of `ttl`.
    #[schema(minimum = 1, maximum = 315_360_000_000u64)]
    ttl_ms: Option<u64>,
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
    let ttl = cache_ttl(body.ttl, body.ttl_ms)?;
    let value = n.incr(&key, body.by, ttl).await?;
    Ok(axum::Json(CounterValue { value }))
}
