//! The dashboard's key browser: a lazy tree of a namespace's keys split on a separator,
//! a key's value with its TTL and size, edits that keep the TTL, TTL changes, deletes,
//! and deleting every key a pattern matches after a preview of the count.
//!
//! Nothing here walks a whole namespace in one request: a tree level scans at most
//! [`TREE_BUDGET`] keys and answers a cursor to go on (the page merges the counts), a
//! preview counts at most [`PREVIEW_LIMIT`], and a bulk delete removes at most
//! [`DELETE_BATCH`] keys per call (the page calls again until `done`, showing progress).
//! Permission is the namespace extractors': reading needs read on `{ns}`, changing needs
//! write, so a viewer's forged change is refused like a service's outside its grants.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::cache::NoQuery;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, JsonDoc, ReadNs, WriteNs};
use super::login::AuditNote;
use super::params::{KeyParam, NsParam};

/// Keys scanned for one tree level per request.
pub const TREE_BUDGET: usize = 5000;
/// Keys counted by a preview at most.
pub const PREVIEW_LIMIT: u64 = 100_000;
/// Keys removed by one bulk-delete call at most.
pub const DELETE_BATCH: usize = 1000;
/// Bytes of a binary value shown (as hex).
const HEX_LIMIT: usize = 4096;
/// SCAN steps per request at most (SCAN may answer empty pages).
const MAX_STEPS: usize = 500;

/// Escapes a literal prefix for a glob pattern.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Query of a tree level.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TreeQuery {
    /// The node to open: keys starting with it (`""` for the namespace's first level).
    #[serde(default)]
    prefix: String,
    /// Separator between levels (default `:`), 1 to 4 characters.
    sep: Option<String>,
    /// Cursor from the previous answer for this prefix, to scan on.
    cursor: Option<String>,
}

/// One node of a tree level.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Node {
    /// The segment (without the separator).
    name: String,
    /// The prefix to open this node with (`prefix + name + sep`).
    prefix: String,
    /// Keys scanned under it (itself included).
    count: u64,
    /// Whether `prefix + name` is itself a key.
    key: bool,
}

/// One tree level (or part of it).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TreePage {
    /// The nodes seen in this part of the scan, by name.
    nodes: Vec<Node>,
    /// Pass back to scan on; `null` when the level is complete.
    cursor: Option<String>,
    /// Keys scanned in this part.
    scanned: u64,
}

/// One level of the key tree of `{ns}`: the next segments after `prefix` with a count of
/// keys under each, from at most 5000 keys per call (follow `cursor` for more).
#[utoipa::path(get, path = "/v1/dashboard/tree/{ns}", tag = "dashboard", operation_id = "dashboard_tree",
    params(NsParam, TreeQuery),
    responses((status = 200, description = "nodes of this level", body = TreePage)))]
pub async fn tree(
    ReadNs(ns): ReadNs,
    ApiQuery(q): ApiQuery<TreeQuery>,
) -> Result<Response, ApiError> {
    let sep = q.sep.unwrap_or_else(|| ":".to_owned());
    if sep.is_empty() || sep.chars().count() > 4 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "sep must be 1 to 4 characters",
        ));
    }
    let pattern = format!("{}*", glob_escape(&q.prefix));
    let mut groups: BTreeMap<String, (u64, bool)> = BTreeMap::new();
    let mut cursor = q.cursor;
    let mut scanned = 0u64;
    for _ in 0..MAX_STEPS {
        let page = ns.keys(&pattern, cursor.as_deref(), 1000).await?;
        for k in &page.keys {
            let Some(rest) = k.strip_prefix(q.prefix.as_str()) else {
                continue;
            };
            let (name, is_key) = match rest.find(sep.as_str()) {
                Some(i) => (&rest[..i], false),
                None => (rest, true),
            };
            let e = groups.entry(name.to_owned()).or_default();
            e.0 += 1;
            e.1 |= is_key;
        }
        scanned += page.keys.len() as u64;
        cursor = page.cursor;
        if cursor.is_none() || scanned as usize >= TREE_BUDGET {
            break;
        }
    }
    let nodes = groups
        .into_iter()
        .map(|(name, (count, key))| Node {
            prefix: format!("{}{name}{sep}", q.prefix),
            name,
            count,
            key,
        })
        .collect();
    Ok(axum::Json(TreePage {
        nodes,
        cursor,
        scanned,
    })
    .into_response())
}

/// A key's value and metadata.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    /// `json` (the value decodes as JSON) or `binary`.
    kind: &'static str,
    /// Milliseconds left; `null` for no expiry.
    ttl_ms: Option<u64>,
    /// Bytes the store reports for the key.
    size: u64,
    /// The value, when `kind` is `json`.
    #[schema(value_type = Option<Object>)]
    value: Option<Box<serde_json::value::RawValue>>,
    /// Hex of the first 4096 stored bytes, when `kind` is `binary`.
    hex: Option<String>,
    /// Stored bytes in all.
    stored_bytes: u64,
}

/// A key's value (decoded: framed JSON/MessagePack, compressed or not, or plain JSON;
/// hex for anything else), its TTL and size. On Redis, a hash, list, set, sorted set or
/// stream is answered as `kind`, `columns`, `rows` (at most 200), `length`, `truncated`.
#[utoipa::path(get, path = "/v1/dashboard/key/{ns}/{key}", tag = "dashboard", operation_id = "dashboard_key",
    params(NsParam, KeyParam),
    responses((status = 200, description = "the key", body = KeyView)))]
pub async fn show_key(
    State(s): State<AppState>,
    ReadNs(ns): ReadNs,
    _: ApiQuery<NoQuery>,
    ApiPath(p): ApiPath<KeyParam>,
) -> Result<Response, ApiError> {
    // On Redis, a key another client wrote as a hash, list, set, sorted set or stream is
    // shown as a bounded table (`rawview.rs`); values go through the library.
    let stored = ns.stored_key(&p.key)?;
    match s.raw.kind(&stored).await?.as_deref() {
        Some("none") => return Err(ApiError::not_found("no such key")),
        Some("string") | None => {}
        Some(kind) => return Ok(axum::Json(s.raw.view(&stored, kind).await?).into_response()),
    }
    let Some(found) = ns.inspect(&p.key).await? else {
        return Err(ApiError::not_found("no such key"));
    };
    let value = found
        .json
        .as_ref()
        .and_then(|j| serde_json::value::RawValue::from_string(j.get().to_owned()).ok());
    let view = KeyView {
        kind: if value.is_some() { "json" } else { "binary" },
        ttl_ms: found.ttl.map(|t| t.as_millis() as u64),
        size: found.size,
        hex: value
            .is_none()
            .then(|| hex::encode(&found.raw[..found.raw.len().min(HEX_LIMIT)])),
        value,
        stored_bytes: found.raw.len() as u64,
    };
    Ok(axum::Json(view).into_response())
}

/// Replaces an existing key's value with the JSON body, keeping the time it has left.
#[utoipa::path(put, path = "/v1/dashboard/key/{ns}/{key}", tag = "dashboard", operation_id = "dashboard_edit_key",
    params(NsParam, KeyParam),
    request_body(content = Object, description = "the new value (any JSON document)"),
    responses((status = 204, description = "written, TTL kept")))]
pub async fn edit_key(
    WriteNs(ns): WriteNs,
    _: ApiQuery<NoQuery>,
    ApiPath(p): ApiPath<KeyParam>,
    JsonDoc(value): JsonDoc,
) -> Result<Response, ApiError> {
    if !ns.set_keeping_ttl(&p.key, &value).await? {
        return Err(ApiError::not_found("no such key"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Deletes one key.
#[utoipa::path(delete, path = "/v1/dashboard/key/{ns}/{key}", tag = "dashboard", operation_id = "dashboard_delete_key",
    params(NsParam, KeyParam),
    responses((status = 204, description = "deleted")))]
pub async fn delete_key(
    WriteNs(ns): WriteNs,
    _: ApiQuery<NoQuery>,
    ApiPath(p): ApiPath<KeyParam>,
) -> Result<Response, ApiError> {
    if !ns.del(&p.key).await? {
        return Err(ApiError::not_found("no such key"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A pattern to preview or delete.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatternBody {
    /// Glob pattern relative to the namespace (`*`, `?`, `[..]`, `\` escapes).
    pattern: String,
    /// Must be `true` to delete (the page sets it once the person confirmed the preview).
    #[serde(default)]
    confirm: bool,
}

/// How many keys a pattern matches (at most 100000 counted) and the first few of them.
#[utoipa::path(post, path = "/v1/dashboard/match/{ns}", tag = "dashboard", operation_id = "dashboard_preview",
    params(NsParam),
    request_body = PatternBody,
    responses((status = 200, description = "count and sample", body = serde_json::Value)))]
pub async fn preview(
    ReadNs(ns): ReadNs,
    _: ApiQuery<NoQuery>,
    ApiJson(body): ApiJson<PatternBody>,
) -> Result<Response, ApiError> {
    let count = ns.count_matching(&body.pattern, PREVIEW_LIMIT).await?;
    let mut sample = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_STEPS {
        let page = ns.keys(&body.pattern, cursor.as_deref(), 100).await?;
        sample.extend(page.keys);
        cursor = page.cursor;
        if cursor.is_none() || sample.len() >= 20 {
            break;
        }
    }
    sample.truncate(20);
    Ok(axum::Json(serde_json::json!({
        "keys": count.keys,
        "truncated": count.truncated,
        "sample": sample,
    }))
    .into_response())
}

/// Deletes up to 1000 keys matching the pattern (`confirm` must be true); answers how
/// many went and whether none are left. Call again until `done` for more.
#[utoipa::path(post, path = "/v1/dashboard/delete/{ns}", tag = "dashboard", operation_id = "dashboard_bulk_delete",
    params(NsParam),
    request_body = PatternBody,
    responses((status = 200, description = "deleted in this batch", body = serde_json::Value)))]
pub async fn bulk_delete(
    State(s): State<AppState>,
    WriteNs(ns): WriteNs,
    _: ApiQuery<NoQuery>,
    ApiJson(body): ApiJson<PatternBody>,
) -> Result<Response, ApiError> {
    if !body.confirm {
        return Err(ApiError::bad_request(
            "not_confirmed",
            "preview the pattern first, then send confirm: true",
        ));
    }
    let mut deleted = 0u64;
    let mut cursor = None;
    let mut done = false;
    for _ in 0..MAX_STEPS {
        let page = ns.keys(&body.pattern, cursor.as_deref(), 1000).await?;
        // SCAN may answer more than its COUNT: take only what this batch has room for.
        // The rest still exists, so the next call (which scans from the start) finds it.
        let take = page.keys.len().min(DELETE_BATCH - deleted as usize);
        for chunk in page.keys[..take].chunks(s.opts.max_batch.clamp(1, 1000)) {
            deleted += ns.mdel(chunk).await?;
        }
        if take < page.keys.len() {
            break;
        }
        cursor = page.cursor;
        if cursor.is_none() {
            done = true;
            break;
        }
        if deleted as usize >= DELETE_BATCH {
            break;
        }
    }
    let mut r = axum::Json(serde_json::json!({ "deleted": deleted, "done": done })).into_response();
    r.extensions_mut().insert(AuditNote(format!(
        "deleted {deleted} keys matching {:?}",
        body.pattern
    )));
    Ok(r)
}
