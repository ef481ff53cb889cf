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

/// What a backend failure answers: status, stable code, and a message that names the fix.
/// The Redis error code (`OOM`, `READONLY`...) picks the answer, so a caller and an
/// operator learn what happened without reading the server log. Logs nothing (readiness
/// probes call it often); the conversion from `sharecache::Error` logs.
pub fn describe(e: &sharecache::Error) -> ApiError {
    let unavailable = |code: &'static str, message: &str, retry: u64| {
        let mut err = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message);
        err.retry_after = Some(retry);
        err
    };
    match (e.kind(), e.backend_code()) {
        (ErrorKind::BackendFull, _) => ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "backend_full",
            "the cache backend is out of memory (Redis maxmemory reached and its \
             maxmemory-policy may not evict): nothing was written; free memory, raise \
             maxmemory or choose an evicting policy such as volatile-lru",
        ),
        (_, Some("READONLY")) => unavailable(
            "backend_read_only",
            "the Redis node refuses writes: it is a read-only replica; point the URL at the \
             master, or use a redis+sentinel:// or redis+cluster:// URL that follows failovers",
            1,
        ),
        (_, Some("LOADING")) => unavailable(
            "backend_loading",
            "Redis is loading its dataset into memory; retry in a few seconds",
            2,
        ),
        (_, Some("BUSY")) => unavailable(
            "backend_busy",
            "Redis is busy running a long script or function; it answers again when that \
             ends (SCRIPT KILL or FUNCTION KILL stops it)",
            1,
        ),
        (_, Some("MISCONF")) => unavailable(
            "backend_cannot_persist",
            "Redis refuses writes because its last RDB snapshot failed \
             (stop-writes-on-bgsave-error): fix the disk or the persistence settings",
            5,
        ),
        (_, Some("NOPERM")) => unavailable(
            "backend_permission",
            "the Redis user sharecache connects as lacks a permission this operation needs: \
             grant it +@all -@dangerous on its key prefix (see docs/provision.md), or use \
             another user",
            5,
        ),
        // The library's message names the namespace and the settings to raise.
        (ErrorKind::FallbackFull, _) => unavailable("fallback_full", e.message(), 1),
        (ErrorKind::Unavailable, _) => unavailable(
            "unavailable",
            "the cache backend is unavailable; retry shortly",
            1,
        ),
        _ => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        ),
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
            // The library's message names the Redis type the key holds.
            ErrorKind::WrongType => (StatusCode::CONFLICT, "wrong_type"),
            ErrorKind::NotJson => (StatusCode::UNPROCESSABLE_ENTITY, "not_json"),
            _ => {
                let err = describe(&e);
                if err.status == StatusCode::INTERNAL_SERVER_ERROR {
                    tracing::error!(error = %e, "backend error");
                } else {
                    tracing::warn!(error = %e, code = err.code, "backend refused");
                }
                return err;
            }
        };
        ApiError::new(status, code, e.message())
    }
}

/// The code of an error answer, left on the response for the accounting layer: 5xx
/// answers are counted by it in `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (self.status, axum::Json(body)).into_response();
        resp.extensions_mut().insert(ErrorCode(self.code));
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
