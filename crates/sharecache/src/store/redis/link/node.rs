//! One node's connection and what the links ask every node: its role, and whether it
//! refused the credentials. The bottom of `link`: it imports nothing from its siblings.

use redis::aio::MultiplexedConnection;

use super::super::url::RedisOptions;
use crate::error::{Error, ErrorKind, Result};

pub(super) fn unavailable(what: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unavailable, what.to_string())
}

/// One multiplexed connection to one node (a sentinel-named master, a sentinel, a
/// cluster master for the direct routes), with the link's timeouts.
pub(super) async fn connect_node(
    url: &str,
    opts: RedisOptions,
) -> redis::RedisResult<MultiplexedConnection> {
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(opts.connect_timeout))
        .set_response_timeout(Some(opts.command_timeout));
    redis::Client::open(url)?
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
}

/// The configuration error for refused credentials (never with the password).
pub(super) fn refused(who: &str, detail: &str, fix: &str) -> Error {
    Error::new(
        ErrorKind::Config,
        format!("{who} refused the credentials ({detail}); check {fix}"),
    )
}

pub(super) fn is_auth_error(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::AuthenticationFailed
            | redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm)
    ) || e
        .code()
        .is_some_and(|c| matches!(c, "WRONGPASS" | "NOAUTH" | "NOPERM"))
}

pub(super) fn is_auth_message(m: &str) -> bool {
    ["WRONGPASS", "NOAUTH", "NOPERM", "uthentication"]
        .iter()
        .any(|w| m.contains(w))
}

/// The role a node reports (`master`, `slave`, `sentinel`).
pub(crate) async fn node_role<C: redis::aio::ConnectionLike>(c: &mut C) -> Result<String> {
    let v: redis::Value = redis::cmd("ROLE")
        .query_async(c)
        .await
        .map_err(Error::from_redis)?;
    match v {
        redis::Value::Array(parts) => match parts.into_iter().next() {
            Some(redis::Value::BulkString(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Some(redis::Value::SimpleString(s)) => Ok(s),
            _ => Err(Error::new(ErrorKind::Backend, "unexpected ROLE reply")),
        },
        _ => Err(Error::new(ErrorKind::Backend, "unexpected ROLE reply")),
    }
}
