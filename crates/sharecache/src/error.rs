//! The library's error type.
//!
//! One opaque [`Error`] with a `#[non_exhaustive]` [`ErrorKind`] and predicates
//! (`is_invalid_input`, `is_unavailable`, ...), so a caller decides to retry, fall back
//! or report without matching on message strings. Every message says what was wrong and,
//! where there is one, what to do about it.
//!
//! **Guarantee**: the public API names no redis-rs type. A failure that came from Redis
//! or the network keeps that error as its [`source()`](std::error::Error::source), so a
//! caller can log the whole chain; the conversion from redis-rs is crate-private.

use std::fmt;
use std::sync::Arc;

/// What went wrong, coarsely: enough to decide what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A namespace name was refused (must match `[a-z0-9_-]{1,64}`).
    InvalidNamespace,
    /// A key was refused (1..=1024 bytes of UTF-8, no control characters).
    InvalidKey,
    /// A glob pattern was refused.
    InvalidPattern,
    /// A listing cursor was refused (not one this store handed out).
    InvalidCursor,
    /// An argument was refused (a rate limit, a period, a cost...).
    InvalidArgument,
    /// A TTL was refused (zero, or larger than the store allows).
    InvalidTtl,
    /// A value is larger than the configured limit.
    ValueTooLarge,
    /// A batch holds more keys than allowed.
    TooManyKeys,
    /// A value could not be serialized.
    Encode,
    /// A stored value could not be decoded (another format or version, or corrupt).
    Decode,
    /// A stored value is not JSON: read as raw JSON, a plain value another client wrote
    /// (text, binary) that is no JSON document.
    NotJson,
    /// The backend is unreachable or timing out and no fallback is configured.
    Unavailable,
    /// The backend answered with an error (for example a Redis `ERR`, `NOPERM` or
    /// `MISCONF`); [`Error::backend_code`] says which.
    Backend,
    /// The backend refused a write because it is out of memory: Redis `OOM` (`maxmemory`
    /// reached with `noeviction`, or nothing left that the policy may evict). Free memory,
    /// raise `maxmemory` or pick an evicting policy; retrying at once will not help.
    BackendFull,
    /// Redis is unreachable and the memory fallback refused a write rather than evict
    /// another acknowledged one: the namespace's share of the fallback (or the whole
    /// fallback) is full. Nothing was written; the write succeeds again once Redis is back.
    FallbackFull,
    /// The key holds a value of another type (Redis `WRONGTYPE`: a hash, a list... where
    /// a string was expected).
    WrongType,
    /// The configuration (URL, limits, builder options) is invalid.
    Config,
}

/// The library's error: a kind, a message that says what to do, and the underlying
/// error (Redis, IO) where there is one.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// The Redis error reply's code (`OOM`, `WRONGTYPE`...), for a refusal.
    code: Option<Box<str>>,
    /// Shared so the error stays `Clone` (single-flight hands one error to every waiter).
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// Shorthand for `Result<T, sharecache::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            code: None,
            source: None,
        }
    }

    /// A Redis (or network) failure: `Unavailable` for connection-class errors, `Backend`
    /// for a refused command; the redis-rs error is kept as the source. Credentials never
    /// appear in redis-rs error texts, and URLs are not included either.
    pub(crate) fn from_redis(e: redis::RedisError) -> Self {
        // A pipeline's failure carries its commands' replies: the first one's code.
        let code: Option<Box<str>> = e.code().map(Box::from).or_else(|| {
            let replies = e.clone().into_server_errors()?;
            replies.first().map(|(_, r)| Box::from(r.code()))
        });
        let (kind, what) = if is_connection_class(&e) {
            (ErrorKind::Unavailable, "redis unavailable")
        } else {
            match code.as_deref() {
                Some("OOM") => (ErrorKind::BackendFull, "redis is out of memory"),
                Some("WRONGTYPE") => (ErrorKind::WrongType, "wrong type"),
                // Our counter script's answer to an INCRBY past i64.
                Some("OVERFLOW") => (ErrorKind::InvalidArgument, "refused"),
                _ => (ErrorKind::Backend, "redis error"),
            }
        };
        Self {
            kind,
            message: format!("{what}: {e}"),
            code,
            source: Some(Arc::new(e)),
        }
    }

    /// The same error (kind, source) with a message that says more.
    pub(crate) fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human-readable message (never contains a secret).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when the caller's input was refused: fix the input, retrying will not help.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::InvalidNamespace
                | ErrorKind::InvalidKey
                | ErrorKind::InvalidPattern
                | ErrorKind::InvalidCursor
                | ErrorKind::InvalidArgument
                | ErrorKind::InvalidTtl
                | ErrorKind::ValueTooLarge
                | ErrorKind::TooManyKeys
                | ErrorKind::Encode
        )
    }

    /// True when the backend is unreachable or timing out: retry later or degrade.
    pub fn is_unavailable(&self) -> bool {
        self.kind == ErrorKind::Unavailable
    }

    /// True when a stored value could not be decoded.
    pub fn is_decode(&self) -> bool {
        self.kind == ErrorKind::Decode
    }

    /// The error code Redis answered with, for a failure that came from Redis: `OOM`,
    /// `READONLY`, `LOADING`, `BUSY`, `MISCONF`, `NOPERM`, `WRONGTYPE`, `ERR`... (the
    /// first word of its error reply). `None` for errors that did not come from a Redis
    /// reply (network, input, decode).
    pub fn backend_code(&self) -> Option<&str> {
        self.code.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// True for errors that mean "the server cannot be reached right now", as opposed to
/// "the server refused this command".
pub(crate) fn is_connection_class(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading)
                | redis::ErrorKind::Server(redis::ServerErrorKind::TryAgain)
                | redis::ErrorKind::Server(redis::ServerErrorKind::MasterDown)
                | redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown)
                | redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
                | redis::ErrorKind::ClusterConnectionNotFound
        )
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_redis_failure_keeps_its_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::from_redis(redis::RedisError::from(io));
        assert!(e.is_unavailable());
        let source = e.source().expect("the redis error is the source");
        assert!(source.to_string().contains("refused"), "{source}");
        assert!(e.clone().source().is_some(), "clones keep it");

        let refused = Error::from_redis(redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError),
            "WRONGTYPE",
        )));
        assert_eq!(refused.kind(), ErrorKind::Backend);
        assert!(refused.source().is_some());
        assert_eq!(e.backend_code(), None, "a network error has no reply code");
        assert!(Error::new(ErrorKind::Config, "x").source().is_none());
    }

    /// The error redis-rs makes of an error reply with this text.
    fn reply(text: &str) -> Error {
        let wire = format!("-{text}\r\n");
        match redis::parse_redis_value(wire.as_bytes()) {
            Ok(redis::Value::ServerError(e)) => Error::from_redis(e.into()),
            other => panic!("not an error reply: {other:?}"),
        }
    }

    #[test]
    fn each_refusal_keeps_its_redis_code() {
        let full = reply("OOM command not allowed when used memory > 'maxmemory'.");
        assert_eq!(full.kind(), ErrorKind::BackendFull);
        assert_eq!(full.backend_code(), Some("OOM"));
        assert!(
            !full.is_unavailable(),
            "a full Redis is not an outage: no fallback"
        );
        let wrong = reply("WRONGTYPE Operation against a key holding the wrong kind of value");
        assert_eq!(wrong.kind(), ErrorKind::WrongType);
        for code in ["NOPERM", "MISCONF", "ERR"] {
            let e = reply(&format!("{code} something"));
            assert_eq!(e.kind(), ErrorKind::Backend, "{code}");
            assert_eq!(e.backend_code(), Some(code));
        }
        for code in ["READONLY", "LOADING"] {
            let e = reply(&format!("{code} something"));
            assert!(e.is_unavailable(), "{code} is an outage of this node");
            assert_eq!(e.backend_code(), Some(code));
        }
    }
}
