//! One request to Redis: routed, timed out, and its failure reported to the link.
//!
//! `Exec` is what the command layer runs everything through. It owns the command timeout
//! (a stalled server, SIGSTOP or a long script, costs a caller at most `command_timeout`)
//! and the routing decision: on a cluster a keyed request goes straight to its slot's
//! master over a direct connection when the route is known, and through the redis-rs
//! cluster connection (which follows `MOVED`/`ASK`) otherwise. Elsewhere nothing is
//! parsed for routing. Callers above never ask which topology they run on.
//!
//! **Guarantee**: a redirect met on a direct route is not an execution: the request is
//! retried once through the cluster connection and the routes are re-checked.

use std::sync::Arc;
use std::time::Duration;

use super::link::{Conn, Link};
use super::url::RedisOptions;
use crate::error::{Error, ErrorKind, Result};

/// Runs requests on one link under the command timeout.
pub(crate) struct Exec {
    pub(super) link: Arc<Link>,
    pub(super) opts: RedisOptions,
    /// The URL without its password, for logs and errors.
    pub(super) display: String,
}

impl Exec {
    /// Runs one request under the command timeout and tells the link about failures
    /// (a Sentinel link drops a connection that failed, so the next request asks the
    /// sentinels again).
    async fn exec<T, F, Fut>(&self, key: Option<&[u8]>, f: F) -> Result<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let started = tokio::time::Instant::now();
        // Cluster: straight to the slot's master over its own connection when the route
        // is known. A redirect (the slot moved) is not an execution: retry through the
        // redis-rs cluster connection, which follows it, and re-check the topology.
        if let Some(conn) = key.and_then(|k| self.link.route(k)) {
            let r = tokio::time::timeout(self.opts.command_timeout, f(conn.clone())).await;
            if let Some(out) = self.settle_direct(&conn, r) {
                return out;
            }
        }
        let conn = match tokio::time::timeout(self.opts.command_timeout, self.link.conn()).await {
            Ok(c) => c?,
            Err(_) => return Err(self.timeout_error()),
        };
        let left = self.opts.command_timeout.saturating_sub(started.elapsed());
        let r =
            match tokio::time::timeout(left.max(Duration::from_millis(1)), f(conn.clone())).await {
                Ok(r) => r.map_err(Error::from_redis),
                Err(_) => Err(self.timeout_error()),
            };
        if let Err(e) = &r {
            self.link.failed(&conn, e);
        }
        r
    }

    /// The outcome of a request sent over a direct cluster route: `None` when a redirect
    /// kept it from running (the routes are dropped; the caller retries through the
    /// cluster connection); a failure also tells the link.
    pub(super) fn settle_direct<T>(
        &self,
        conn: &Conn,
        r: std::result::Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Option<Result<T>> {
        let e = match r {
            Ok(Ok(v)) => return Some(Ok(v)),
            Ok(Err(e)) if is_redirect(&e) => {
                self.link.routes_stale();
                return None;
            }
            Ok(Err(e)) => Error::from_redis(e),
            Err(_) => self.timeout_error(),
        };
        self.link.failed(conn, &e);
        Some(Err(e))
    }

    /// The key a request is routed by: only a cluster routes, so nothing is parsed
    /// otherwise.
    fn routing<'a>(&self, key: impl FnOnce() -> Option<&'a [u8]>) -> Option<&'a [u8]> {
        if self.link.is_cluster() { key() } else { None }
    }

    /// Runs one command.
    pub(crate) async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        self.exec(self.routing(|| route_key(cmd)), |mut c| async move {
            cmd.query_async::<T>(&mut c).await
        })
        .await
    }

    /// Runs one pipeline, routed by its first keyed command (its keys share one slot).
    pub(crate) async fn run_pipe<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T> {
        let key = self.routing(|| pipe.cmd_iter().find_map(route_key));
        self.exec(
            key,
            |mut c| async move { pipe.query_async::<T>(&mut c).await },
        )
        .await
    }

    /// Runs a script invocation routed by `key`. redis-rs sends EVALSHA and, on NOSCRIPT
    /// (a restart, SCRIPT FLUSH), the script itself.
    pub(crate) async fn run_script<T: redis::FromRedisValue>(
        &self,
        key: &str,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        self.exec(Some(key.as_bytes()), |mut c| async move {
            inv.invoke_async::<T>(&mut c).await
        })
        .await
    }

    /// The error for a request that did not finish within `command_timeout`.
    pub(crate) fn timeout_error(&self) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            format!(
                "redis at {} did not answer within {:?} (command_timeout)",
                self.display, self.opts.command_timeout
            ),
        )
    }
}

/// Whether a cluster redirect (or a transient cluster state) kept a command from running.
fn is_redirect(e: &redis::RedisError) -> bool {
    use redis::ServerErrorKind as S;
    matches!(
        e.kind(),
        redis::ErrorKind::Server(S::Moved | S::Ask | S::TryAgain | S::ClusterDown)
    ) || e.code().is_some_and(|c| {
        matches!(
            c,
            "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN" | "EXECABORT"
        )
    })
}

/// The key a command is routed by on a cluster (`None`: no single key; the cluster
/// connection decides).
fn route_key(cmd: &redis::Cmd) -> Option<&[u8]> {
    let mut args = cmd.args_iter().map(|a| match a {
        redis::Arg::Simple(b) => Some(b),
        _ => None,
    });
    let name = args.next()??;
    let first = args.next()??;
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    if is("MEMORY") {
        return args.next()?;
    }
    if is("MGET") || is("UNLINK") || is("DEL") || is("EXISTS") {
        // Several keys may span slots: only a single key routes directly.
        return args.next().is_none().then_some(first);
    }
    if [
        "PING", "INFO", "DBSIZE", "SCAN", "MULTI", "EXEC", "CLUSTER", "ROLE",
    ]
    .iter()
    .any(|n| is(n))
    {
        return None;
    }
    Some(first)
}
