//! Extractors: the caller's credential, and path, query and JSON extractors whose
//! rejections use the API's error format.

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use sharecache::Namespace;
use sharecache::key::validate_namespace;

use super::AppState;
use super::error::ApiError;
use crate::auth::Principal;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who it is.
    pub principal: Principal,
}

fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = client_ip(parts);
        if state.auth_limiter.is_blocked(ip) {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many failed authentications from this address; wait a minute",
            );
            e.retry_after = Some(60);
            return Err(e);
        }
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
            state.auth_limiter.record_failure(ip);
            return Err(ApiError::unauthorized(
                "missing credentials: send Authorization: Bearer <token>",
            ));
        };
        match state.creds.authenticate(token) {
            Some(principal) => Ok(Caller { principal }),
            None => {
                state.auth_limiter.record_failure(ip);
                tracing::info!(client = ?ip, "rejected an unknown token");
                Err(ApiError::unauthorized("invalid token"))
            }
        }
    }
}

impl Caller {
    /// Whether this caller may read namespace `ns` (already validated).
    pub fn may_read(&self, state: &AppState, ns: &str) -> bool {
        match state.creds.grants(&self.principal) {
            None => true,
            Some(g) => g.can_read(ns),
        }
    }

    fn check(&self, state: &AppState, ns: &str, write: bool) -> Result<Namespace, ApiError> {
        validate_namespace(ns).map_err(ApiError::from)?;
        let allowed = match state.creds.grants(&self.principal) {
            None => true,
            Some(g) if write => g.can_write(ns),
            Some(g) => g.can_read(ns),
        };
        if !allowed {
            let what = if write { "write" } else { "read" };
            return Err(ApiError::forbidden(format!(
                "this credential may not {what} namespace {ns:?}"
            )));
        }
        Ok(state.namespace(ns)?)
    }

    /// The namespace handle if this caller may read it (403 otherwise).
    pub fn read(&self, state: &AppState, ns: &str) -> Result<Namespace, ApiError> {
        self.check(state, ns, false)
    }

    /// The namespace handle if this caller may write it (403 otherwise).
    pub fn write(&self, state: &AppState, ns: &str) -> Result<Namespace, ApiError> {
        self.check(state, ns, true)
    }

    /// Name for logs and metrics.
    pub fn name<'a>(&self, state: &'a AppState) -> &'a str {
        state.creds.name(&self.principal)
    }
}

/// `Path` with API-format rejections.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(p) => Ok(ApiPath(p.0)),
            Err(e) => Err(path_rejection(e)),
        }
    }
}

fn path_rejection(e: PathRejection) -> ApiError {
    ApiError::bad_request("invalid_path", format!("invalid path: {}", e.body_text()))
}

/// `Query` with API-format rejections.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(q) => Ok(ApiQuery(q.0)),
            Err(e) => Err(query_rejection(e)),
        }
    }
}

fn query_rejection(e: QueryRejection) -> ApiError {
    ApiError::bad_request(
        "invalid_query",
        format!("invalid query string: {}", e.body_text()),
    )
}

/// `Json` with API-format rejections (413 for bodies over the limit).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(j) => Ok(ApiJson(j.0)),
            Err(e) => Err(json_rejection(e)),
        }
    }
}

fn json_rejection(e: JsonRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is over the size limit",
        );
    }
    if e.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return ApiError::new(e.status(), "unsupported_media_type", e.body_text());
    }
    // axum answers 422 for well-formed JSON of the wrong shape; the contract has one
    // status for every bad body.
    ApiError::bad_request("invalid_body", e.body_text())
}
