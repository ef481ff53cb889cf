//! Error policy of the HTTP API.
//!
//! Every error is `{"error":{"code":"...","message":"..."}}` with a fitting status. Codes
//! are stable (clients may match on them); messages are for people. Input errors say what
//! was wrong with the input. Internal errors (a Redis `ERR`, a bug) are logged with their
//! detail and answered with a generic message, so no backend detail, key of another
//! tenant or secret ever reaches a caller.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sharecache::ErrorKind;

/// The body of every error answer, for the OpenAPI document.
#[derive(Debug, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// `{"code":"...","message":"..."}`
#[derive(Debug, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`, `invalid_key`, `forbidden`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Seconds to wait, for 429 and 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<sharecache::Error> for ApiError {
    fn from(e: sharecache::Error) -> Self {
        let (status, code) = match e.kind() {
            ErrorKind::InvalidNamespace => (StatusCode::BAD_REQUEST, "invalid_namespace"),
            ErrorKind::InvalidKey => (StatusCode::BAD_REQUEST, "invalid_key"),
            ErrorKind::InvalidPattern => (StatusCode::BAD_REQUEST, "invalid_pattern"),
            ErrorKind::InvalidCursor => (StatusCode::BAD_REQUEST, "invalid_cursor"),
            ErrorKind::InvalidTtl => (StatusCode::BAD_REQUEST, "invalid_ttl"),
            ErrorKind::InvalidArgument => (StatusCode::BAD_REQUEST, "invalid_argument"),
            ErrorKind::TooManyKeys => (StatusCode::BAD_REQUEST, "too_many_keys"),
            ErrorKind::ValueTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "value_too_large"),
            ErrorKind::Encode => (StatusCode::BAD_REQUEST, "invalid_body"),
            ErrorKind::Unavailable => {
                tracing::warn!(error = %e, "backend unavailable");
                let mut err = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the cache backend is unavailable; retry shortly",
                );
                err.retry_after = Some(1);
                return err;
            }
            _ => {
                tracing::error!(error = %e, "backend error");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the server log",
                );
            }
        };
        ApiError::new(status, code, e.message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
