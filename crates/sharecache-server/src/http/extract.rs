//! Extractors: who is calling, which namespace they may touch, and path, query and body
//! extractors whose rejections use the API's error format.
//!
//! Permission lives here, not in handlers: a handler that takes [`ReadNs`] or [`WriteNs`]
//! only runs once the caller is authenticated (401/429 otherwise), the `{ns}` of the path
//! is a valid namespace (400) and the credential holds the grant (403). The check order is
//! fixed for every route: authentication, namespace, grant, then the rest of the path, the
//! query and the body, so a caller without the grant learns nothing from validation
//! errors.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use sharecache::key::validate_namespace;
use sharecache::{Namespace, RawJson};

use super::AppState;
use super::error::ApiError;
use super::login;
use crate::auth::Principal;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who it is.
    pub principal: Principal,
    /// Authenticated by a dashboard session cookie rather than a bearer token.
    pub via_session: bool,
}

pub(crate) fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = client_ip(parts);
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let Some(token) = token else {
            return from_session(parts, state, ip);
        };
        match state.creds().authenticate(token) {
            Some(principal) => Ok(Caller {
                principal,
                via_session: false,
            }),
            None => {
                tracing::info!(client = ?ip, "rejected an unknown token");
                Err(state
                    .auth_limiter
                    .refuse(ip, ApiError::unauthorized("invalid token")))
            }
        }
    }
}

/// A caller without a bearer token: a dashboard session cookie, which for a change must
/// come from this origin (see `login.rs`); the change is then marked for the audit log.
fn from_session(parts: &Parts, state: &AppState, ip: Option<IpAddr>) -> Result<Caller, ApiError> {
    let Some(id) = login::session_cookie(&parts.headers) else {
        return Err(state.auth_limiter.refuse(
            ip,
            ApiError::unauthorized("missing credentials: send Authorization: Bearer <token>"),
        ));
    };
    let Some(principal) = state.logins.check(id).filter(|p| state.creds().knows(p)) else {
        return Err(state.auth_limiter.refuse(
            ip,
            ApiError::unauthorized("the dashboard session has ended; log in again"),
        ));
    };
    let safe = matches!(parts.method, Method::GET | Method::HEAD);
    if !safe {
        if !login::same_origin(parts) {
            tracing::info!(client = ?ip, "refused a cross-site change made with a session cookie");
            return Err(login::cross_site());
        }
        if let Some(slot) = parts.extensions.get::<login::AuditSlot>() {
            slot.set(principal.name().to_owned(), parts);
        }
    }
    Ok(Caller {
        principal,
        via_session: true,
    })
}

impl Caller {
    /// Name for logs and metrics.
    pub fn name(&self) -> &str {
        self.principal.name()
    }
}

/// Where the accounting layer learns the namespace a request was authorized for: set by
/// the namespace extractors once the grant check passed, read after the handler ran, so
/// metrics never carry a namespace the caller was refused (label values stay bounded).
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthorizedNs(Arc<OnceLock<String>>);

impl AuthorizedNs {
    /// The namespace, if the request was authorized for one.
    pub(crate) fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// Authenticates the caller and checks its grant on the path's `{ns}`.
async fn authorize(
    parts: &mut Parts,
    state: &AppState,
    write: bool,
) -> Result<(Namespace, Caller), ApiError> {
    let caller = Caller::from_request_parts(parts, state).await?;
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|e| {
            ApiError::bad_request("invalid_path", format!("invalid path: {}", e.body_text()))
        })?;
    let ns = params
        .iter()
        .find_map(|(name, value)| (name == "ns").then_some(value))
        .ok_or_else(|| ApiError::not_found("no namespace in this route"))?;
    validate_namespace(ns)?;
    if !state.creds().may(&caller.principal, ns, write) {
        let what = if write { "write" } else { "read" };
        return Err(ApiError::forbidden(format!(
            "this credential may not {what} namespace {ns:?}"
        )));
    }
    let handle = state.namespace(ns)?;
    if let Some(slot) = parts.extensions.get::<AuthorizedNs>() {
        let _ = slot.0.set(ns.to_owned());
    }
    Ok((handle, caller))
}

/// Declares a namespace extractor: a tuple struct of the path's [`Namespace`], built by
/// [`authorize`] with the given access.
macro_rules! namespace_extractor {
    ($(#[$doc:meta])* $name:ident, write: $write:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name(pub Namespace);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
                authorize(parts, state, $write).await.map(|(ns, _)| $name(ns))
            }
        }
    };
}

/// The namespace of the path and who asked, for a caller granted read on it: for the
/// handlers that also need the credential (per-credential limits), without a second
/// authentication.
#[derive(Debug)]
pub struct ReadNsBy(pub Namespace, pub Caller);

impl FromRequestParts<AppState> for ReadNsBy {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authorize(parts, state, false)
            .await
            .map(|(ns, caller)| ReadNsBy(ns, caller))
    }
}

namespace_extractor!(
    /// The namespace of the path, for a caller granted read (or write) on it.
    ReadNs, write: false
);
namespace_extractor!(
    /// The namespace of the path, for a caller granted write on it.
    WriteNs, write: true
);

/// The admin credential.
#[derive(Debug)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.principal != Principal::Admin {
            return Err(ApiError::forbidden(
                "this endpoint needs the admin credential",
            ));
        }
        Ok(Admin)
    }
}

/// The admin or a viewer: whoever may see every namespace and the service's figures.
#[derive(Debug)]
pub struct Observer;

impl FromRequestParts<AppState> for Observer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if !matches!(caller.principal, Principal::Admin | Principal::Viewer(_)) {
            return Err(ApiError::forbidden(
                "this endpoint needs the admin credential or a viewer's",
            ));
        }
        Ok(Observer)
    }
}

/// Who may scrape `/metrics`: anyone with `metrics_public`, else the admin (the same
/// authentication, failed-authentication limit included, as every other route).
#[derive(Debug)]
pub struct MetricsReader;

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if !state.opts.metrics_public {
            Admin::from_request_parts(parts, state).await?;
        }
        Ok(MetricsReader)
    }
}

/// `Path` with API-format rejections.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::bad_request("invalid_path", format!("invalid path: {}", e.body_text()))
    }
}

/// `Query` with API-format rejections.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::bad_request(
            "invalid_query",
            format!("invalid query string: {}", e.body_text()),
        )
    }
}

/// `Json` with API-format rejections (413 for bodies over the limit).
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "request body is over the size limit",
    )
}

/// 408 when reading the body failed because it did not arrive within
/// `[server] body_timeout_ms` (the body-read timeout's error is in the source chain).
fn timed_out(e: &(dyn std::error::Error + 'static)) -> Option<ApiError> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return Some(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body did not arrive within [server] body_timeout_ms",
            ));
        }
        cur = err.source();
    }
    None
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return too_large();
        }
        if let Some(t) = timed_out(&e) {
            return t;
        }
        if e.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            return ApiError::new(e.status(), "unsupported_media_type", e.body_text());
        }
        // axum answers 422 for well-formed JSON of the wrong shape; the contract has one
        // status for every bad body.
        ApiError::bad_request("invalid_body", e.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else if let Some(t) = timed_out(&e) {
            t
        } else {
            ApiError::bad_request("invalid_body", e.body_text())
        }
    }
}

/// The body of a value's PUT: with `Content-Type: application/octet-stream`, bytes
/// stored as they are; otherwise one JSON document, as [`JsonDoc`] takes it.
#[derive(Debug)]
pub enum ValueBody {
    /// A JSON document.
    Json(RawJson),
    /// Bytes, stored as they are.
    Bytes(Bytes),
}

impl<S: Send + Sync> FromRequest<S> for ValueBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let octets = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/octet-stream"));
        if octets {
            return Ok(Self::Bytes(Bytes::from_request(req, state).await?));
        }
        JsonDoc::from_request(req, state)
            .await
            .map(|JsonDoc(v)| Self::Json(v))
    }
}

/// A body that must be one JSON document, kept as the bytes sent (stored and served as
/// they are): 413 over the size limit, 400 if it is empty, not UTF-8 or not JSON.
#[derive(Debug)]
pub struct JsonDoc(pub RawJson);

impl<S: Send + Sync> FromRequest<S> for JsonDoc {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let body = Bytes::from_request(req, state).await?;
        // The library checks it (UTF-8, one JSON document) and says what is wrong.
        RawJson::from_bytes(body).map(JsonDoc).map_err(|e| {
            ApiError::bad_request("invalid_body", format!("the body: {}", e.message()))
        })
    }
}
