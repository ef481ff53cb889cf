//! The dashboard's views of the coordination primitives of a namespace: locks held
//! (name, TTL left, current fence; never the holder's token), presence sets with their
//! members, sessions (a count, the users, one user's sessions by handle, never ids;
//! ending one or all of them), and queues (their names; dead letters are read from
//! `GET /v1/queues/{ns}/{queue}/_dead`).
//!
//! Every listing is one bounded page from the library (SCAN steps with a cursor, never
//! `KEYS`), so no request walks a whole namespace. Permission is the namespace
//! extractors': reading needs read on `{ns}` (the admin, a viewer, a service granted
//! it), ending sessions needs write, so a viewer's forged change is refused with 403
//! like a service's outside its grants, and a change made with the dashboard cookie is
//! audited with a note saying what it did.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::cache::NoQuery;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, ApiQuery, ReadNs, WriteNs};
use super::login::AuditNote;
use super::params::{HandleParam, NsParam, UserParam};

/// Sessions counted per namespace at most (the count says when it stopped there).
pub const SESSION_COUNT_LIMIT: u64 = 10_000;
/// Members shown per presence set at most.
pub const MEMBERS_SHOWN: usize = 100;

/// `?cursor=&count=` of a listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The cursor of the previous page; none for the first.
    cursor: Option<String>,
    /// Items per page (default 50; at most 100 are returned).
    count: Option<usize>,
}

impl PageQuery {
    fn count(&self) -> usize {
        self.count.unwrap_or(50)
    }
}

/// A held lock, as shown to operators.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LockView {
    /// The lock's name.
    name: String,
    /// Milliseconds left before it expires unless extended (`null`: no expiry).
    ttl_ms: Option<u64>,
    /// The fence last drawn for it.
    fence: u64,
}

/// One page of held locks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LockPage {
    locks: Vec<LockView>,
    /// Pass back for the next page; `null` when the listing is complete.
    cursor: Option<String>,
}

/// The locks held in `{ns}` with their time left and fence (never a token), one page.
#[utoipa::path(get, path = "/v1/dashboard/locks/{ns}", tag = "dashboard", operation_id = "dashboard_locks",
    params(NsParam, PageQuery),
    responses((status = 200, description = "one page of held locks", body = LockPage)))]
pub async fn locks(
    ReadNs(ns): ReadNs,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let page = ns.locks().held(q.cursor.as_deref(), q.count()).await?;
    let locks = page
        .locks
        .into_iter()
        .map(|l| LockView {
            name: l.name,
            ttl_ms: l.ttl.map(|t| t.as_millis() as u64),
            fence: l.fence,
        })
        .collect();
    Ok(axum::Json(LockPage {
        locks,
        cursor: page.cursor,
    })
    .into_response())
}

/// A member of a presence set.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberView {
    member: String,
    /// Milliseconds before it drops out unless it beats again.
    expires_in_ms: u64,
}

/// A presence set with (the first 100 of) its members, soonest to expire first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SetView {
    name: String,
    /// Members alive.
    count: usize,
    members: Vec<MemberView>,
}

/// One page of presence sets.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SetPage {
    sets: Vec<SetView>,
    /// Pass back for the next page; `null` when the listing is complete.
    cursor: Option<String>,
}

/// The presence sets of `{ns}` with their members and the time each has left, one page.
#[utoipa::path(get, path = "/v1/dashboard/presence/{ns}", tag = "dashboard", operation_id = "dashboard_presence",
    params(NsParam, PageQuery),
    responses((status = 200, description = "one page of presence sets", body = SetPage)))]
pub async fn presence(
    ReadNs(ns): ReadNs,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let page = ns.presence_sets(q.cursor.as_deref(), q.count()).await?;
    let mut sets = Vec::with_capacity(page.keys.len());
    for name in page.keys {
        let members = ns.presence(&name)?.list().await?;
        // A set whose last member expired since the listing is left out.
        if members.is_empty() {
            continue;
        }
        sets.push(SetView {
            count: members.len(),
            members: members
                .into_iter()
                .take(MEMBERS_SHOWN)
                .map(|(member, left)| MemberView {
                    member,
                    expires_in_ms: left.as_millis() as u64,
                })
                .collect(),
            name,
        });
    }
    Ok(axum::Json(SetPage {
        sets,
        cursor: page.cursor,
    })
    .into_response())
}

/// Sessions of a namespace: how many, and (a page of) the users they were created for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionsView {
    /// Live sessions, counted up to 10000.
    count: u64,
    /// The count stopped at its limit: there are more.
    count_truncated: bool,
    /// Users with sessions recorded (one page).
    users: Vec<String>,
    /// Pass back for the next page of users; `null` when complete.
    cursor: Option<String>,
}

/// How many sessions `{ns}` holds, and a page of the users they belong to.
#[utoipa::path(get, path = "/v1/dashboard/sessions/{ns}", tag = "dashboard", operation_id = "dashboard_sessions",
    params(NsParam, PageQuery),
    responses((status = 200, description = "the count and a page of users", body = SessionsView)))]
pub async fn sessions(
    ReadNs(ns): ReadNs,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let s = ns.sessions();
    let users = s.users(q.cursor.as_deref(), q.count()).await?;
    let n = s.count(SESSION_COUNT_LIMIT).await?;
    Ok(axum::Json(SessionsView {
        count: n.keys,
        count_truncated: n.truncated,
        users: users.keys,
        cursor: users.cursor,
    })
    .into_response())
}

/// The live sessions of `{user}` in `{ns}`: handles and times, never ids.
#[utoipa::path(get, path = "/v1/dashboard/sessions/{ns}/{user}", tag = "dashboard", operation_id = "dashboard_user_sessions",
    params(NsParam, UserParam),
    responses((status = 200, description = "{\"sessions\":[{\"handle\",\"created_ms\",\"expires_at_ms\"}]}", body = serde_json::Value)))]
pub async fn user_sessions(
    ReadNs(ns): ReadNs,
    ApiPath(p): ApiPath<UserParam>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    let sessions = ns.sessions().list(&p.user).await?;
    Ok(axum::Json(serde_json::json!({ "sessions": sessions })).into_response())
}

/// Ends every session of `{user}` in `{ns}`.
#[utoipa::path(delete, path = "/v1/dashboard/sessions/{ns}/{user}", tag = "dashboard", operation_id = "dashboard_end_user_sessions",
    params(NsParam, UserParam),
    responses((status = 200, description = "{\"ended\":n}", body = serde_json::Value)))]
pub async fn end_user_sessions(
    WriteNs(ns): WriteNs,
    ApiPath(p): ApiPath<UserParam>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    let ended = ns.sessions().end_all(&p.user).await?;
    let mut r = axum::Json(serde_json::json!({ "ended": ended })).into_response();
    r.extensions_mut().insert(AuditNote(format!(
        "ended {ended} sessions of user {:?}",
        p.user
    )));
    Ok(r)
}

/// `{handle}` and `{user}` together.
#[derive(Debug, Deserialize)]
pub struct UserHandle {
    user: String,
    handle: String,
}

/// Ends the session of `{user}` in `{ns}` listed with `{handle}`.
#[utoipa::path(delete, path = "/v1/dashboard/sessions/{ns}/{user}/{handle}", tag = "dashboard", operation_id = "dashboard_end_session",
    params(NsParam, UserParam, HandleParam),
    responses((status = 204, description = "ended"),
        (status = 404, description = "no live session of this user has this handle", body = ErrorBody)))]
pub async fn end_session(
    WriteNs(ns): WriteNs,
    ApiPath(p): ApiPath<UserHandle>,
    _q: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    if !ns.sessions().end_handle(&p.user, &p.handle).await? {
        return Err(ApiError::not_found(
            "no live session of this user has this handle",
        ));
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.extensions_mut().insert(AuditNote(format!(
        "ended session {} of user {:?}",
        p.handle, p.user
    )));
    Ok(r)
}

/// One page of queue names.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueuePage {
    /// Queue names (on Redis and Cluster; the embedded memory store lists none).
    queues: Vec<String>,
    /// Pass back for the next page; `null` when the listing is complete.
    cursor: Option<String>,
}

/// The work queues of `{ns}`, one page (dead letters: `GET /v1/queues/{ns}/{queue}/_dead`).
#[utoipa::path(get, path = "/v1/dashboard/queues/{ns}", tag = "dashboard", operation_id = "dashboard_queues",
    params(NsParam, PageQuery),
    responses((status = 200, description = "one page of queue names", body = QueuePage)))]
pub async fn queues(
    ReadNs(ns): ReadNs,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let page = ns.queues(q.cursor.as_deref(), q.count()).await?;
    Ok(axum::Json(QueuePage {
        queues: page.keys,
        cursor: page.cursor,
    })
    .into_response())
}
