//! The cache rows of the HTTP API v1. Keys in paths are percent-encoded and relative to
//! the namespace; values are JSON documents stored as sent.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use sharecache::{BackendState, Namespace, RawJson, Source, Ttl};

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use super::{AppState, OpInfo};

/// Header naming the tier that answered a read.
pub const TIER_HEADER: &str = "x-cache-tier";

fn tier(state: &AppState) -> HeaderValue {
    match state.cache.state() {
        BackendState::Degraded | BackendState::Recovering => HeaderValue::from_static("fallback"),
        _ => HeaderValue::from_static("l2"),
    }
}

fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn parse_ttl(raw: Option<&str>) -> Result<Ttl, ApiError> {
    match raw {
        None => Ok(Ttl::NEVER),
        Some(s) => match s.parse::<u64>() {
            Ok(0) => Err(ApiError::bad_request(
                "invalid_ttl",
                "ttl must be at least 1 second; omit it for no expiry",
            )),
            Ok(n) if n > sharecache::MAX_TTL.as_secs() => Err(ApiError::bad_request(
                "invalid_ttl",
                format!(
                    "ttl must be at most {} seconds",
                    sharecache::MAX_TTL.as_secs()
                ),
            )),
            Ok(n) => Ok(Ttl::secs(n)),
            Err(_) => Err(ApiError::bad_request(
                "invalid_ttl",
                "ttl must be a whole number of seconds",
            )),
        },
    }
}

/// A request body that must be a JSON document: 413 over the size limit, 400 if it is
/// not UTF-8 JSON.
pub(crate) fn json_body(
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<RawJson, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body is over the size limit",
            )
        } else {
            ApiError::bad_request("invalid_body", e.body_text())
        }
    })?;
    RawJson::from_bytes(body)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("the body: {}", e.message())))
}

/// Routes that take no query parameters refuse any, so a misspelt option (a `match`
/// on a clear, a `ttl` on `_mset`) is an error instead of being silently ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoQuery {}

/// Query of a PUT.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutQuery {
    /// Seconds to live; omit for no expiry.
    ttl: Option<String>,
    /// Comma-separated tags; `_invalidate {"tags":[..]}` makes the value a miss.
    tags: Option<String>,
}

/// Read a value.
#[utoipa::path(get, path = "/v1/cache/{ns}/{key}", tag = "cache",
    params(("ns" = String, Path, description = "namespace"), ("key" = String, Path, description = "key, percent-encoded")),
    responses((status = 200, description = "the stored JSON value; header x-cache-tier"), (status = 404, description = "miss")))]
pub async fn get_key(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, key)): ApiPath<(String, String)>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    let n = caller.read(&s, &ns)?;
    let value = n.get_with_source::<RawJson>(&key).await?;
    s.metrics
        .reads(&ns, u64::from(value.is_some()), u64::from(value.is_none()));
    let resp = match value {
        Some((json, source)) => {
            let mut r = json_response(StatusCode::OK, json.into_bytes());
            let t = if source == Source::L1 {
                HeaderValue::from_static("l1")
            } else {
                tier(&s)
            };
            r.headers_mut().insert(TIER_HEADER, t);
            r
        }
        None => ApiError::not_found("key not found").into_response(),
    };
    Ok(OpInfo::attach("get", &ns, resp))
}

/// Check that a key exists.
#[utoipa::path(head, path = "/v1/cache/{ns}/{key}", tag = "cache",
    params(("ns" = String, Path), ("key" = String, Path)),
    responses((status = 200, description = "exists"), (status = 404, description = "does not exist")))]
pub async fn head_key(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, key)): ApiPath<(String, String)>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    let n = caller.read(&s, &ns)?;
    let status = if n.exists(&key).await? {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    let mut r = status.into_response();
    r.headers_mut().insert(TIER_HEADER, tier(&s));
    Ok(OpInfo::attach("exists", &ns, r))
}

/// Store a JSON value.
#[utoipa::path(put, path = "/v1/cache/{ns}/{key}", tag = "cache",
    params(("ns" = String, Path), ("key" = String, Path),
        ("ttl" = Option<u64>, Query, description = "seconds to live (1..=315360000); omit for no expiry"),
        ("tags" = Option<String>, Query, description = "comma-separated tags, each 1..=128 bytes; _invalidate {\"tags\":[..]} makes the value a miss")),
    request_body(content = serde_json::Value, description = "any JSON document", content_type = "application/json"),
    responses((status = 204, description = "stored"), (status = 400, description = "invalid key, TTL or body"),
        (status = 413, description = "body over the limit")))]
pub async fn put_key(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, key)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<PutQuery>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let n = caller.write(&s, &ns)?;
    let ttl = parse_ttl(q.ttl.as_deref())?;
    let tags: Vec<&str> = match q.tags.as_deref() {
        None => Vec::new(),
        Some(list) => list.split(',').collect(),
    };
    let body = json_body(body)?;
    if tags.is_empty() {
        n.set(&key, &body, ttl).await?;
    } else {
        n.set_tagged(&key, &body, ttl, &tags).await?;
    }
    Ok(OpInfo::attach(
        "set",
        &ns,
        StatusCode::NO_CONTENT.into_response(),
    ))
}

/// Delete a key.
#[utoipa::path(delete, path = "/v1/cache/{ns}/{key}", tag = "cache",
    params(("ns" = String, Path), ("key" = String, Path)),
    responses((status = 204, description = "deleted"), (status = 404, description = "did not exist")))]
pub async fn delete_key(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, key)): ApiPath<(String, String)>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    let n = caller.write(&s, &ns)?;
    let resp = if n.del(&key).await? {
        StatusCode::NO_CONTENT.into_response()
    } else {
        ApiError::not_found("key not found").into_response()
    };
    Ok(OpInfo::attach("del", &ns, resp))
}

/// `{"keys":[...]}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeysBody {
    /// Keys, relative to the namespace.
    keys: Vec<String>,
}

/// `{"items":{"k":v},"ttl":300}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MsetBody {
    /// Keys and JSON values.
    #[schema(value_type = HashMap<String, serde_json::Value>)]
    items: HashMap<String, Box<RawValue>>,
    /// Seconds to live for every item; omit for no expiry.
    #[schema(value_type = Option<u64>)]
    ttl: Option<serde_json::Value>,
}

/// `{"pattern":"p*"}` or `{"tags":[...]}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvalidateBody {
    /// Glob pattern relative to the namespace.
    pattern: Option<String>,
    /// Tags to invalidate (every value written with one of them becomes a miss).
    tags: Option<Vec<String>>,
}

fn check_batch(s: &AppState, n: usize) -> Result<(), ApiError> {
    if n > s.opts.max_batch {
        return Err(ApiError::bad_request(
            "too_many_keys",
            format!(
                "{n} keys in one request, over the limit of {}; split the batch",
                s.opts.max_batch
            ),
        ));
    }
    Ok(())
}

/// Batch operations: `_mget`, `_mset`, `_mdel`, `_invalidate`.
#[utoipa::path(post, path = "/v1/cache/{ns}/{op}", tag = "cache",
    params(("ns" = String, Path), ("op" = String, Path, description = "_mget | _mset | _mdel | _invalidate")),
    request_body(content = serde_json::Value, description = "_mget/_mdel: KeysBody; _mset: MsetBody; _invalidate: InvalidateBody"),
    responses((status = 200, description = "_mget: {\"values\":[v|null,...]}; _mdel, _invalidate: {\"deleted\":n}"),
        (status = 204, description = "_mset done"), (status = 400, description = "bad body")))]
pub async fn batch(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, op)): ApiPath<(String, String)>,
    _q: ApiQuery<NoQuery>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    match op.as_str() {
        "_mget" => {
            let n = caller.read(&s, &ns)?;
            let ApiJson(b) = ApiJson::<KeysBody>::from_request_checked(req, &s).await?;
            check_batch(&s, b.keys.len())?;
            Ok(OpInfo::attach("mget", &ns, mget(&s, &n, &b.keys).await?))
        }
        "_mset" => {
            let n = caller.write(&s, &ns)?;
            let ApiJson(b) = ApiJson::<MsetBody>::from_request_checked(req, &s).await?;
            check_batch(&s, b.items.len())?;
            let ttl = match &b.ttl {
                None | Some(serde_json::Value::Null) => Ttl::NEVER,
                Some(serde_json::Value::Number(n)) if n.is_u64() => {
                    parse_ttl(Some(&n.to_string()))?
                }
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "invalid_ttl",
                        "ttl must be a whole number of seconds",
                    ));
                }
            };
            let items: Vec<(&str, &RawValue)> =
                b.items.iter().map(|(k, v)| (k.as_str(), &**v)).collect();
            n.mset(&items, ttl).await?;
            Ok(OpInfo::attach(
                "mset",
                &ns,
                StatusCode::NO_CONTENT.into_response(),
            ))
        }
        "_mdel" => {
            let n = caller.write(&s, &ns)?;
            let ApiJson(b) = ApiJson::<KeysBody>::from_request_checked(req, &s).await?;
            check_batch(&s, b.keys.len())?;
            let deleted = n.mdel(&b.keys).await?;
            Ok(OpInfo::attach("mdel", &ns, deleted_response(deleted)))
        }
        "_invalidate" => {
            let n = caller.write(&s, &ns)?;
            let ApiJson(b) = ApiJson::<InvalidateBody>::from_request_checked(req, &s).await?;
            let deleted = match (b.pattern, b.tags) {
                (Some(p), None) => n.delete_pattern(&p).await?,
                (None, Some(tags)) => {
                    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                    let invalidated = n.invalidate_tags(&tags).await?;
                    // Tagged keys are invalidated lazily: how many there were is not
                    // known, and none is deleted now.
                    let body = format!("{{\"deleted\":0,\"invalidated_tags\":{invalidated}}}");
                    return Ok(OpInfo::attach(
                        "invalidate",
                        &ns,
                        json_response(StatusCode::OK, body),
                    ));
                }
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid_body",
                        "give exactly one of \"pattern\" or \"tags\"",
                    ));
                }
            };
            Ok(OpInfo::attach("invalidate", &ns, deleted_response(deleted)))
        }
        _ => Err(ApiError::not_found(
            "POST on a key is one of _mget, _mset, _mdel, _invalidate; use PUT to store a value",
        )),
    }
}

impl<T: serde::de::DeserializeOwned> ApiJson<T> {
    async fn from_request_checked(
        req: axum::extract::Request,
        s: &AppState,
    ) -> Result<Self, ApiError> {
        <ApiJson<T> as axum::extract::FromRequest<AppState>>::from_request(req, s).await
    }
}

fn deleted_response(n: u64) -> Response {
    json_response(StatusCode::OK, format!("{{\"deleted\":{n}}}"))
}

async fn mget(s: &AppState, n: &Namespace, keys: &[String]) -> Result<Response, ApiError> {
    let values = n.mget::<Box<RawValue>>(keys).await?;
    let (mut hits, mut misses) = (0, 0);
    let mut out = String::with_capacity(16 + values.len() * 16);
    out.push_str("{\"values\":[");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match v {
            Some(raw) => {
                hits += 1;
                out.push_str(raw.get());
            }
            None => {
                misses += 1;
                out.push_str("null");
            }
        }
    }
    out.push_str("]}");
    s.metrics.reads(n.name(), hits, misses);
    let mut r = json_response(StatusCode::OK, out);
    r.headers_mut().insert(TIER_HEADER, tier(s));
    Ok(r)
}

/// Query of a key listing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Glob pattern relative to the namespace (default `*`).
    #[serde(rename = "match")]
    pattern: Option<String>,
    /// Cursor from the previous page.
    cursor: Option<String>,
    /// Page size hint (default 100).
    count: Option<String>,
}

/// List keys of a namespace, a page at a time.
#[utoipa::path(get, path = "/v1/cache/{ns}", tag = "cache",
    params(("ns" = String, Path), ("match" = Option<String>, Query, description = "glob, default *"),
        ("cursor" = Option<String>, Query), ("count" = Option<u32>, Query, description = "page size hint, default 100")),
    responses((status = 200, description = "{\"keys\":[...],\"cursor\":\"...\"|null}")))]
pub async fn list_keys(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(ns): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let n = caller.read(&s, &ns)?;
    let count = match q.count.as_deref() {
        None => 100,
        Some(c) => match c.parse::<usize>() {
            Ok(v) if (1..=s.opts.max_batch).contains(&v) => v,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_count",
                    format!("count must be a number from 1 to {}", s.opts.max_batch),
                ));
            }
        },
    };
    let page = n
        .keys(
            q.pattern.as_deref().unwrap_or("*"),
            q.cursor.as_deref(),
            count,
        )
        .await?;
    let body = serde_json::json!({"keys": page.keys, "cursor": page.cursor});
    Ok(OpInfo::attach(
        "list",
        &ns,
        json_response(StatusCode::OK, body.to_string()),
    ))
}

/// Delete every key of a namespace.
#[utoipa::path(delete, path = "/v1/cache/{ns}", tag = "cache", params(("ns" = String, Path)),
    responses((status = 200, description = "{\"deleted\":n}")))]
pub async fn clear(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(ns): ApiPath<String>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    let n = caller.write(&s, &ns)?;
    let deleted = n.clear().await?;
    Ok(OpInfo::attach("clear", &ns, deleted_response(deleted)))
}
