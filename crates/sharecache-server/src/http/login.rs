//! Dashboard logins and the audit log.
//!
//! The page posts a token once to `POST /v1/dashboard/login`; the service answers with a
//! session cookie (`HttpOnly`, `SameSite=Strict`, `Path=/`, `Secure` when the request came
//! over HTTPS as `X-Forwarded-Proto` or the page's `Origin` says) and the page never keeps
//! the token. Sessions live in this process only (a restart logs everyone out): the
//! cookie holds 256 random bits and the table keeps only their SHA-256, with an idle and
//! an absolute expiry and a bound on how many are held.
//!
//! A cookie is sent by the browser on its own, so a change authenticated by one must
//! come from this origin: [`same_origin`] requires `Sec-Fetch-Site: same-origin` (or,
//! from a browser that sends no fetch metadata, an `Origin` equal to this host). Bearer
//! tokens are not sent on their own, so API clients keep working as before.
//!
//! Every change made with a session cookie (a method other than GET/HEAD) is recorded
//! in the bounded [`Audit`] log: who, method and path, status, when, and what the handler
//! noted (how many keys a bulk delete removed). The admin reads it at
//! `GET /v1/admin/audit`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::AppState;
use super::cache::NoQuery;
use super::error::{ApiError, ErrorBody};
use super::extract::{Admin, ApiJson, ApiQuery, Caller};
use crate::auth::{Credentials, Principal, Role};

/// Name of the session cookie.
pub const COOKIE: &str = "sharecache_session";
/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after login, however busy.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);
/// Most sessions held; past it the oldest is dropped.
const MAX_SESSIONS: usize = 10_000;
/// Audit entries kept (the oldest go first).
pub const AUDIT_LEN: usize = 1000;

#[derive(Debug)]
struct Login {
    principal: Principal,
    created: Instant,
    seen: Instant,
}

/// Server-side dashboard sessions, keyed by the SHA-256 of the cookie's value.
#[derive(Debug, Default)]
pub struct Logins {
    map: Mutex<HashMap<[u8; 32], Login>>,
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Logins {
    /// Starts a session for `principal`; returns the cookie value.
    pub fn start(&self, principal: Principal) -> String {
        let id = crate::auth::new_token();
        let now = Instant::now();
        let mut map = self.map.lock();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, l| live(l, now));
            if map.len() >= MAX_SESSIONS
                && let Some(oldest) = map.iter().min_by_key(|(_, l)| l.created).map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            digest(&id),
            Login {
                principal,
                created: now,
                seen: now,
            },
        );
        id
    }

    /// The principal of a live session (and marks it used).
    pub fn check(&self, id: &str) -> Option<Principal> {
        if id.len() > crate::auth::MAX_TOKEN_LEN {
            return None;
        }
        let key = digest(id);
        let now = Instant::now();
        let mut map = self.map.lock();
        let login = map.get_mut(&key)?;
        if !live(login, now) {
            map.remove(&key);
            return None;
        }
        login.seen = now;
        Some(login.principal.clone())
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        self.map.lock().remove(&digest(id));
    }
}

fn live(l: &Login, now: Instant) -> bool {
    now.duration_since(l.seen) < IDLE && now.duration_since(l.created) < ABSOLUTE
}

/// The session cookie's value in a request, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// Whether a request comes from a page of this origin: `Sec-Fetch-Site: same-origin`, or
/// without fetch metadata an `Origin` naming this host. A request with neither is
/// refused: every browser that holds the cookie sends one of them on a change.
pub fn same_origin(parts: &Parts) -> bool {
    let h = &parts.headers;
    if let Some(site) = h.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let (Some(origin), Some(host)) = (
        h.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        h.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| o == host)
}

fn is_https(h: &HeaderMap) -> bool {
    h.get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes() == b"https")
        || h.get(header::ORIGIN)
            .is_some_and(|v| v.as_bytes().starts_with(b"https://"))
}

fn cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("a cookie of token characters")
}

/// Where the accounting layer learns that a session cookie authenticated the request
/// (and whose), so that a change is written to the audit log once it has an answer.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditSlot(Arc<OnceLock<(String, String, String)>>);

impl AuditSlot {
    /// Marks the request as a change by `who` (method and path from `parts`).
    pub(crate) fn set(&self, who: String, parts: &Parts) {
        let _ = self
            .0
            .set((who, parts.method.to_string(), parts.uri.path().to_owned()));
    }
    /// Who, method, path.
    pub(crate) fn get(&self) -> Option<&(String, String, String)> {
        self.0.get()
    }
}

/// A note a handler adds to its response for the audit log ("deleted 120 keys").
#[derive(Debug, Clone)]
pub struct AuditNote(pub String);

/// One recorded change.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The credential's name (`admin`, a viewer's or a service's name).
    pub who: String,
    /// HTTP method.
    pub method: String,
    /// Path, with the key as sent (percent-encoded).
    pub path: String,
    /// Status of the answer.
    pub status: u16,
    /// What the handler noted, if anything.
    pub note: Option<String>,
}

/// The last [`AUDIT_LEN`] changes made through the dashboard, newest last.
#[derive(Debug, Default)]
pub struct Audit {
    entries: Mutex<VecDeque<AuditEntry>>,
}

impl Audit {
    /// Records one change.
    pub fn record(&self, mut e: AuditEntry) {
        e.at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        tracing::info!(who = %e.who, method = %e.method, path = %e.path, status = e.status, "dashboard change");
        let mut q = self.entries.lock();
        if q.len() >= AUDIT_LEN {
            q.pop_front();
        }
        q.push_back(e);
    }

    /// The entries, newest first.
    pub fn newest_first(&self) -> Vec<AuditEntry> {
        self.entries.lock().iter().rev().cloned().collect()
    }
}

/// `POST /v1/dashboard/login` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// An admin, viewer or service token.
    token: String,
}

/// Who the caller is and what it may do.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    /// `admin`, `viewer` or `service`.
    #[schema(value_type = String)]
    role: Role,
    /// The credential's name.
    name: String,
    /// Namespaces it may read; `null` for every namespace.
    read: Option<Vec<String>>,
    /// Namespaces it may change; `null` for every namespace.
    write: Option<Vec<String>>,
}

fn me(creds: &Credentials, p: &Principal) -> Me {
    let role = Credentials::role(p);
    let (read, write) = match (role, creds.grants(p)) {
        (Role::Admin, _) => (None, None),
        (Role::Viewer, _) => (None, Some(Vec::new())),
        (Role::Service, Some(g)) => (Some(g.readable()), Some(g.writable())),
        (Role::Service, None) => (Some(Vec::new()), Some(Vec::new())),
    };
    Me {
        role,
        name: p.name().to_owned(),
        read,
        write,
    }
}

/// Starts a dashboard session with a token: answers who it is and sets the session
/// cookie. Refused from another site (login forgery) and counted by the
/// failed-authentication limit like any bad token.
#[utoipa::path(post, path = "/v1/dashboard/login", tag = "dashboard", operation_id = "dashboard_login",
    security(()),
    request_body = LoginBody,
    responses((status = 200, description = "logged in; the cookie is set", body = Me),
        (status = 401, description = "the token is not one of this service's (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "not from this origin (`cross_site`)", body = ErrorBody),
        (status = 429, description = "too many failed logins from this address (`rate_limited`)", body = ErrorBody)))]
pub async fn login(
    State(s): State<AppState>,
    parts: Parts,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    if !same_origin(&parts) {
        return Err(cross_site());
    }
    let ip = super::extract::client_ip(&parts);
    let Some(principal) = s.creds().authenticate(body.token.trim()) else {
        return Err(s
            .auth_limiter
            .refuse(ip, ApiError::unauthorized("invalid token")));
    };
    let id = s.logins.start(principal.clone());
    let mut r = axum::Json(me(&s.creds(), &principal)).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&id, ABSOLUTE.as_secs(), is_https(&parts.headers)),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// Ends the dashboard session of the cookie sent (if any) and clears the cookie.
#[utoipa::path(post, path = "/v1/dashboard/logout", tag = "dashboard", operation_id = "dashboard_logout",
    security(()),
    responses((status = 204, description = "logged out")))]
pub async fn logout(State(s): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    // No origin check: the SameSite=Strict cookie is not sent from another site, and
    // ending a session is harmless.
    if let Some(id) = session_cookie(&parts.headers) {
        s.logins.end(id);
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, cookie("", 0, is_https(&parts.headers)));
    Ok(r)
}

/// Who the caller is (token or session cookie) and what it may read and change.
#[utoipa::path(get, path = "/v1/dashboard/me", tag = "dashboard", operation_id = "dashboard_me",
    responses((status = 200, description = "the caller's role and grants", body = Me)))]
pub async fn whoami(State(s): State<AppState>, caller: Caller, _: ApiQuery<NoQuery>) -> Response {
    axum::Json(me(&s.creds(), &caller.principal)).into_response()
}

/// The last changes made through the dashboard, newest first (admin only).
#[utoipa::path(get, path = "/v1/admin/audit", tag = "dashboard", operation_id = "audit_log",
    responses((status = 200, description = "audit entries, newest first", body = [AuditEntry]),
        (status = 403, description = "not the admin credential", body = ErrorBody)))]
pub async fn audit_log(State(s): State<AppState>, _: Admin, _: ApiQuery<NoQuery>) -> Response {
    axum::Json(serde_json::json!({ "entries": s.audit.newest_first() })).into_response()
}

pub(crate) fn cross_site() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "cross_site",
        "cross-site request refused: a change made with the dashboard's cookie must come from the dashboard's own origin",
    )
}
