//! Path parameters of the API, one type per name, each with its bounds for the OpenAPI
//! document. Handlers extract the names they need (serde ignores the others); `{ns}` is
//! read and checked by the namespace extractors, so [`NsParam`] only documents it.
//!
//! Every name but the session id is a key relative to the namespace: 1..=1024 bytes, no
//! control characters (checked by the library, which answers `invalid_key`). Keys travel
//! percent-encoded; a key that is spelt like a route's own segment (`_mget`, `_claim`...)
//! is reached by encoding its first character (`%5Fmget`).

use serde::Deserialize;
use utoipa::IntoParams;

/// `{ns}`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct NsParam {
    /// Namespace: 1 to 64 of `a-z`, `0-9`, `_`, `-`.
    #[param(pattern = r"^[a-z0-9_-]{1,64}$", min_length = 1, max_length = 64)]
    pub ns: String,
}

/// `{key}` of the cache.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyParam {
    /// Key, percent-encoded, 1..=1024 bytes; `%5F` for a leading `_`.
    #[param(min_length = 1, max_length = 1024)]
    pub key: String,
}

/// `{key}` of a rate limit.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct LimitParam {
    /// What is limited, e.g. `attempts:{email}`, percent-encoded, 1..=1024 bytes.
    #[param(min_length = 1, max_length = 1024)]
    pub key: String,
}

/// `{name}` of a lock.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct LockParam {
    /// Lock name, percent-encoded, 1..=1024 bytes.
    #[param(min_length = 1, max_length = 1024)]
    pub name: String,
}

/// `{id}` of a session.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SessionParam {
    /// Session id as `create` returned it (a secret: never logged).
    pub id: String,
}

/// `{channel}` of the events.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ChannelParam {
    /// Channel name, percent-encoded, 1..=1024 bytes.
    #[param(min_length = 1, max_length = 1024)]
    pub channel: String,
}

/// `{queue}`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct QueueParam {
    /// Queue name, percent-encoded, 1..=1024 bytes.
    #[param(min_length = 1, max_length = 1024)]
    pub queue: String,
}

/// `{queue}` and `{id}` of a dead letter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DeadLetterParam {
    /// Queue name, percent-encoded, 1..=1024 bytes.
    #[param(min_length = 1, max_length = 1024)]
    pub queue: String,
    /// The message's id, as `_dead` lists it (`1700000000000-0`).
    #[param(min_length = 1, max_length = 64)]
    pub id: String,
}

/// `{member}` of a presence set.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberParam {
    /// Member name, percent-encoded, 1..=1024 bytes.
    #[param(min_length = 1, max_length = 1024)]
    pub member: String,
}

/// `{user}` whose sessions are listed or ended.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserParam {
    /// The user the sessions were created for, percent-encoded, 1..=1024 bytes.
    #[param(min_length = 1, max_length = 1024)]
    pub user: String,
}

/// `{handle}` of one of a user's sessions.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct HandleParam {
    /// The session's handle as listed (16 hex digits; never its id).
    #[param(min_length = 1, max_length = 64)]
    pub handle: String,
}
