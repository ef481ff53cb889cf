//! Redis backend: standalone, Cluster or Sentinel (see `link.rs` for the connections).
//!
//! One multiplexed connection per node is shared by every task: the commands of
//! concurrent callers are pipelined onto one socket, which is what lets many callers in
//! one process outrun one-request-per-connection clients. Every command also runs under
//! our own timeout, so a stalled server (SIGSTOP, a long script) costs a caller at most
//! `command_timeout`.
//!
//! Clear and pattern delete use `SCAN` + `UNLINK` in batches, never `KEYS` or `FLUSHDB`.
//!
//! **On a cluster** no multi-key command ever spans two slots (no `CROSSSLOT` reaches a
//! caller): `MGET`/`UNLINK` are split by slot by the cluster client; `mset` and the tag
//! reads group keys by slot themselves and run the groups concurrently (each group is
//! atomic, the batch as a whole is not); scripts touch keys of one hash tag only. `SCAN`
//! walks every master in turn, with a cursor that names the shard (`<first slot>-<node
//! cursor>`).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;

use super::link::{Conn, Link};
use super::topology::{Topology, key_slot};
use super::{Backend, BackendState, ScanPage, StoreStats};
use crate::error::{Error, ErrorKind, Result};

/// Keys per `SCAN` step and per `UNLINK` batch in clear and pattern delete.
const SCAN_BATCH: usize = 1000;
/// SCAN calls one cluster listing page may make before it returns what it has.
const MAX_SCAN_STEPS: usize = 16;
/// Keys per `MGET`/`MSET` command; bigger batches are split so no single command blocks the
/// server for long.
const MULTI_BATCH: usize = 1000;

/// Connection settings for a Redis backend.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RedisOptions {
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
}

pub(crate) struct RedisStore {
    link: Arc<Link>,
    opts: RedisOptions,
    /// The URL without its password, for logs and errors.
    display: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.display)
            .finish_non_exhaustive()
    }
}

/// Returns `url` with any password replaced by `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}")
            } else {
                format!("{scheme}://***@{host}")
            }
        }
        None => url.to_owned(),
    }
}

impl RedisStore {
    /// Creates the store without waiting for a connection: the first command (or the
    /// caller's ping) connects. A bad URL is an error here.
    pub(crate) fn open(url: &str, opts: RedisOptions) -> Result<Self> {
        let topo = Topology::parse(url)?;
        let link = Arc::new(Link::open(&topo, opts)?);
        Ok(Self {
            display: topo.display(),
            link,
            opts,
        })
    }

    /// The connection, shared with the L1 tracking task and the events hub.
    pub(crate) fn link(&self) -> Arc<Link> {
        self.link.clone()
    }

    /// One connection attempt, so that refused credentials, a wrong database index or an
    /// unknown sentinel master surface as a clear configuration error at start instead of
    /// as timeouts. `Ok(Err(_))` is "unreachable right now" (a fallback may take over).
    pub(crate) async fn check(&self) -> Result<std::result::Result<(), Error>> {
        match tokio::time::timeout(
            self.opts.connect_timeout + self.opts.command_timeout * 2,
            self.link.check(),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Ok(Err(self.timeout_error())),
        }
    }

    pub(crate) fn display_url(&self) -> &str {
        &self.display
    }

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
                Ok(r) => r.map_err(Error::from),
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
    fn settle_direct<T>(
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
            Ok(Err(e)) => Error::from(e),
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

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        self.exec(self.routing(|| route_key(cmd)), |mut c| async move {
            cmd.query_async::<T>(&mut c).await
        })
        .await
    }

    async fn run_pipe<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T> {
        let key = self.routing(|| pipe.cmd_iter().find_map(route_key));
        self.exec(
            key,
            |mut c| async move { pipe.query_async::<T>(&mut c).await },
        )
        .await
    }

    /// Runs a script invocation under the command timeout. redis-rs sends EVALSHA and,
    /// on NOSCRIPT (a restart, SCRIPT FLUSH), the script itself.
    async fn run_script<T: redis::FromRedisValue>(
        &self,
        key: &str,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        self.exec(Some(key.as_bytes()), |mut c| async move {
            inv.invoke_async::<T>(&mut c).await
        })
        .await
    }

    async fn mset_chunk(&self, items: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()> {
        for chunk in items.chunks(MULTI_BATCH) {
            // MULTI/EXEC so a reader never sees half of one chunk with TTLs missing.
            let mut pipe = redis::pipe();
            pipe.atomic();
            match ttl {
                None => {
                    let mut c = redis::cmd("MSET");
                    for (k, v) in chunk {
                        c.arg(k).arg(&v[..]);
                    }
                    pipe.add_command(c).ignore();
                }
                Some(t) => {
                    for (k, v) in chunk {
                        pipe.add_command(set_cmd(k, v, Some(t))).ignore();
                    }
                }
            }
            self.run_pipe::<()>(&pipe).await?;
        }
        Ok(())
    }

    /// Cluster: one `name key...` command per slot (`MGET`, `UNLINK`), sent as one
    /// pipeline per node over the direct connections, all nodes at once. Returns each
    /// slot's key indexes with its reply. `None` when a route is unknown or a node
    /// redirected (the slot moved): the caller then uses the cluster connection, which
    /// follows redirects. (A redirect met halfway through an `UNLINK` can make the
    /// returned count low: keys deleted before it are not found again.)
    async fn by_node<T: redis::FromRedisValue>(
        &self,
        keys: &[String],
        name: &str,
    ) -> Option<Result<Vec<(Vec<usize>, T)>>> {
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let groups = self.link.by_node(&refs)?;
        let runs = groups.into_iter().map(|(conn, slots)| {
            let mut pipe = redis::pipe();
            for idx in &slots {
                let c = pipe.cmd(name);
                for &i in idx {
                    c.arg(&keys[i]);
                }
            }
            async move {
                let mut c = conn.clone();
                let r = tokio::time::timeout(
                    self.opts.command_timeout,
                    pipe.query_async::<Vec<T>>(&mut c),
                )
                .await;
                (conn, slots, r)
            }
        });
        let mut out = Vec::new();
        for (conn, slots, r) in futures_util::future::join_all(runs).await {
            match self.settle_direct(&conn, r)? {
                Ok(vals) => out.extend(slots.into_iter().zip(vals)),
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(out))
    }

    /// Runs `f` for each of `n` keys at once (cluster: keys of different slots cannot
    /// share a pipeline), keeping their order.
    async fn per_key<T, F, Fut>(n: usize, f: F) -> Result<Vec<T>>
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        futures_util::future::join_all((0..n).map(f))
            .await
            .into_iter()
            .collect()
    }

    /// Runs `cmd` on the master of the shard serving `slot` (cluster only).
    async fn on_slot<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd, slot: u16) -> Result<T> {
        match tokio::time::timeout(self.opts.command_timeout, self.link.on_slot(cmd, slot)).await {
            Ok(r) => r,
            Err(_) => Err(self.timeout_error()),
        }
    }

    /// SCAN + UNLINK over one node (the shard of `slot` on a cluster).
    async fn delete_matching_on(&self, pattern: &str, slot: Option<u16>) -> Result<u64> {
        let mut cursor = 0u64;
        let mut deleted = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH);
            let (next, keys): (u64, Vec<String>) = match slot {
                Some(s) => self.on_slot(&scan, s).await?,
                None => self.run(&scan).await?,
            };
            if !keys.is_empty() {
                deleted += self.del(&keys).await?;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    /// One page of a listing that walks every master in turn.
    async fn scan_cluster(
        &self,
        pattern: &str,
        cursor: Option<&str>,
        count: usize,
    ) -> Result<ScanPage> {
        let (slot, mut node_cursor) = parse_cluster_cursor(cursor)?;
        let shards = self.link.shards().await?;
        let mut keys = Vec::new();
        // The shard the cursor names (or the next one, if the topology changed).
        let Some(mut idx) = shards.iter().position(|s| s.first_slot >= slot) else {
            return Ok(ScanPage { keys, cursor: None });
        };
        if shards[idx].first_slot != slot {
            node_cursor = 0;
        }
        // A page keeps scanning (bounded) until it has `count` keys, so sparse nodes do
        // not hand out runs of empty pages.
        let mut steps = 0;
        loop {
            steps += 1;
            let slot = shards[idx].first_slot;
            let (next, mut page): (u64, Vec<String>) = self
                .on_slot(
                    redis::cmd("SCAN")
                        .arg(node_cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(count.max(1)),
                    slot,
                )
                .await?;
            keys.append(&mut page);
            if next != 0 {
                if keys.len() < count && steps < MAX_SCAN_STEPS {
                    node_cursor = next;
                    continue;
                }
                return Ok(ScanPage {
                    keys,
                    cursor: Some(format!("{slot}-{next}")),
                });
            }
            idx += 1;
            node_cursor = 0;
            if idx == shards.len() {
                return Ok(ScanPage { keys, cursor: None });
            }
            if keys.len() >= count || steps >= MAX_SCAN_STEPS {
                return Ok(ScanPage {
                    keys,
                    cursor: Some(format!("{}-0", shards[idx].first_slot)),
                });
            }
        }
    }

    fn timeout_error(&self) -> Error {
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

fn set_cmd(key: &str, value: &[u8], ttl: Option<Duration>) -> redis::Cmd {
    let mut c = redis::cmd("SET");
    c.arg(key).arg(value);
    if let Some(t) = ttl {
        c.arg("PX").arg(t.as_millis().max(1) as u64);
    }
    c
}

/// Indexes of `keys` grouped by hash slot.
fn by_slot<'a>(keys: impl Iterator<Item = &'a str>) -> Vec<Vec<usize>> {
    let mut groups: std::collections::HashMap<u16, Vec<usize>> = std::collections::HashMap::new();
    for (i, k) in keys.enumerate() {
        groups.entry(key_slot(k.as_bytes())).or_default().push(i);
    }
    groups.into_values().collect()
}

fn bad_cursor() -> Error {
    Error::new(
        ErrorKind::InvalidCursor,
        "invalid cursor: pass back the cursor a listing returned",
    )
}

/// A cluster listing cursor: `<first slot of the shard>-<that node's SCAN cursor>`.
fn parse_cluster_cursor(cursor: Option<&str>) -> Result<(u16, u64)> {
    match cursor {
        None => Ok((0, 0)),
        Some(c) => {
            let (slot, node) = c.split_once('-').ok_or_else(bad_cursor)?;
            let slot = slot.parse::<u16>().ok().filter(|s| *s < 16384);
            match (slot, node.parse::<u64>()) {
                (Some(s), Ok(n)) => Ok((s, n)),
                _ => Err(bad_cursor()),
            }
        }
    }
}

fn parse_cursor(cursor: Option<&str>) -> Result<u64> {
    match cursor {
        None => Ok(0),
        Some(c) => c.parse::<u64>().map_err(|_| {
            Error::new(
                ErrorKind::InvalidCursor,
                "invalid cursor: pass back the cursor a listing returned",
            )
        }),
    }
}

fn info_field(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
        .unwrap_or(0)
}

#[async_trait]
impl Backend for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let v: Option<Vec<u8>> = self.run(redis::cmd("GET").arg(key)).await?;
        Ok(v.map(Bytes::from))
    }

    async fn get_with_ttl(&self, key: &str) -> Result<(Option<Bytes>, Option<Duration>)> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
        let (v, pttl): (Option<Vec<u8>>, i64) = self.run_pipe(&pipe).await?;
        // PTTL: -1 no expiry, -2 no key.
        let ttl = (pttl >= 0).then(|| Duration::from_millis(pttl as u64));
        Ok((v.map(Bytes::from), ttl))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.run::<()>(&set_cmd(key, &value, ttl)).await
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        if self.link.is_cluster()
            && let Some(r) = self.by_node::<Vec<Option<Vec<u8>>>>(keys, "MGET").await
        {
            let mut out = vec![None; keys.len()];
            for (idx, vals) in r? {
                for (i, v) in idx.into_iter().zip(vals) {
                    out[i] = v.map(Bytes::from);
                }
            }
            return Ok(out);
        }
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(MULTI_BATCH) {
            let vals: Vec<Option<Vec<u8>>> = self.run(redis::cmd("MGET").arg(chunk)).await?;
            out.extend(vals.into_iter().map(|v| v.map(Bytes::from)));
        }
        Ok(out)
    }

    async fn mset(&self, items: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()> {
        if self.link.is_cluster() {
            // One atomic group per slot, all groups at once.
            let groups = by_slot(items.iter().map(|(k, _)| k.as_str()));
            let runs = groups.into_iter().map(|idx| async move {
                let chunk: Vec<(String, Bytes)> = idx.iter().map(|&i| items[i].clone()).collect();
                self.mset_chunk(&chunk, ttl).await
            });
            for r in futures_util::future::join_all(runs).await {
                r?;
            }
            return Ok(());
        }
        self.mset_chunk(items, ttl).await
    }

    async fn set_nx(&self, key: &str, value: Bytes, ttl: Duration) -> Result<bool> {
        let r: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(key)
                    .arg(&value[..])
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl.as_millis().max(1) as u64),
            )
            .await?;
        Ok(r.is_some())
    }
    async fn del_if_eq(&self, key: &str, value: Bytes) -> Result<bool> {
        // Compare-and-delete in one step on the server.
        static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
            )
        });
        let mut inv = SCRIPT.key(key);
        inv.arg(&value[..]);
        Ok(self.run_script::<i64>(key, &inv).await? == 1)
    }

    async fn rate_limit(
        &self,
        key: &str,
        limit: &crate::ratelimit::Limit,
    ) -> Result<crate::ratelimit::Decision> {
        static GCRA: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(crate::ratelimit::GCRA_LUA));
        static SLIDING: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(crate::ratelimit::SLIDING_LUA));
        let script = match limit.algorithm {
            crate::ratelimit::Algorithm::SlidingWindow => &*SLIDING,
            _ => &*GCRA,
        };
        let mut inv = script.key(key);
        inv.arg(limit.limit)
            .arg(limit.period.as_millis().max(1) as u64)
            .arg(limit.cost);
        let (allowed, remaining, retry, reset) =
            self.run_script::<(u64, u64, u64, u64)>(key, &inv).await?;
        Ok(crate::ratelimit::Decision {
            allowed: allowed == 1,
            remaining,
            retry_after: Duration::from_millis(retry),
            reset_after: Duration::from_millis(reset),
        })
    }

    async fn lock_acquire(
        &self,
        key: &str,
        fence_key: &str,
        token: Bytes,
        ttl: Duration,
    ) -> Result<Option<u64>> {
        // Take the lock and draw the fence in one step, so fences follow acquisition order.
        static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then \
                   return redis.call('INCR', KEYS[2]) else return false end",
            )
        });
        let mut inv = SCRIPT.key(key);
        inv.key(fence_key)
            .arg(&token[..])
            .arg(ttl.as_millis().max(1) as u64);
        self.run_script::<Option<u64>>(key, &inv).await
    }

    async fn index_add(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SADD")
            .arg(key)
            .arg(member)
            .ignore()
            // NX then GT: set a TTL if there is none, and only ever lengthen it.
            .cmd("PEXPIRE")
            .arg(key)
            .arg(ttl.as_millis().max(1) as u64)
            .arg("NX")
            .ignore()
            .cmd("PEXPIRE")
            .arg(key)
            .arg(ttl.as_millis().max(1) as u64)
            .arg("GT")
            .ignore();
        self.run_pipe::<()>(&pipe).await
    }

    async fn index_members(&self, key: &str) -> Result<Vec<String>> {
        self.run(redis::cmd("SMEMBERS").arg(key)).await
    }

    async fn index_remove(&self, key: &str, members: &[String]) -> Result<()> {
        if members.is_empty() {
            return Ok(());
        }
        self.run::<()>(redis::cmd("SREM").arg(key).arg(members))
            .await
    }

    async fn stream_add(&self, key: &str, payload: Bytes, max_len: usize) -> Result<String> {
        self.run(
            redis::cmd("XADD")
                .arg(key)
                .arg("MAXLEN")
                .arg("~")
                .arg(max_len)
                .arg("*")
                .arg("data")
                .arg(&payload[..]),
        )
        .await
    }

    async fn stream_range(
        &self,
        key: &str,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<(String, Bytes)>> {
        let start = after.map_or_else(|| "-".to_owned(), |a| format!("({a}"));
        let rows: Vec<(String, Vec<(String, Vec<u8>)>)> = self
            .run(
                redis::cmd("XRANGE")
                    .arg(key)
                    .arg(start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(count),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, fields)| {
                let data = fields
                    .into_iter()
                    .find(|(k, _)| k == "data")
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                (id, Bytes::from(data))
            })
            .collect())
    }

    async fn queue_push(&self, key: &str, payload: Bytes) -> Result<String> {
        self.run(
            redis::cmd("XADD")
                .arg(key)
                .arg("*")
                .arg("data")
                .arg(&payload[..]),
        )
        .await
    }

    async fn queue_claim(
        &self,
        key: &str,
        dlq: &str,
        consumer: &str,
        count: usize,
        opts: &crate::queue::ClaimOptions,
    ) -> Result<Vec<crate::queue::QueueMessage>> {
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(crate::queue::CLAIM_LUA));
        let mut inv = SCRIPT.key(key);
        inv.key(dlq)
            .arg(consumer)
            .arg(count)
            .arg(opts.visibility.as_millis().max(1) as u64)
            .arg(opts.max_deliveries);
        let rows = self
            .run_script::<Vec<(String, Vec<u8>, u64)>>(key, &inv)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, payload, deliveries)| crate::queue::QueueMessage {
                id,
                payload: Bytes::from(payload),
                deliveries,
            })
            .collect())
    }

    async fn queue_ack(&self, key: &str, ids: &[String]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(crate::queue::ACK_LUA));
        let mut inv = SCRIPT.key(key);
        for id in ids {
            inv.arg(id);
        }
        self.run_script::<u64>(key, &inv).await
    }

    async fn queue_dead(
        &self,
        _key: &str,
        dlq: &str,
        count: usize,
    ) -> Result<Vec<crate::queue::QueueMessage>> {
        let rows: Vec<(String, Vec<(String, Vec<u8>)>)> = self
            .run(
                redis::cmd("XRANGE")
                    .arg(dlq)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(count),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(_, fields)| {
                let get = |name: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                crate::queue::QueueMessage {
                    id: String::from_utf8_lossy(&get("id")).into_owned(),
                    payload: Bytes::from(get("data")),
                    deliveries: String::from_utf8_lossy(&get("deliveries"))
                        .parse()
                        .unwrap_or(0),
                }
            })
            .collect())
    }

    async fn publish(&self, channel: &str, payload: Bytes) -> Result<u64> {
        self.run(redis::cmd("PUBLISH").arg(channel).arg(&payload[..]))
            .await
    }

    async fn presence_beat(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        // Scored by expiry (server clock); the set itself lives as long as its last member.
        static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                "local t = redis.call('TIME') \
                 local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
                 local ttl = tonumber(ARGV[2]) \
                 redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) \
                 redis.call('ZADD', KEYS[1], now + ttl, ARGV[1]) \
                 local last = redis.call('ZRANGE', KEYS[1], 0, 0, 'REV', 'WITHSCORES') \
                 redis.call('PEXPIRE', KEYS[1], math.max(tonumber(last[2]) - now, 1)) \
                 return 1",
            )
        });
        let mut inv = SCRIPT.key(key);
        inv.arg(member).arg(ttl.as_millis().max(1) as u64);
        self.run_script::<i64>(key, &inv).await.map(|_| ())
    }

    async fn presence_leave(&self, key: &str, member: &str) -> Result<bool> {
        static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                "local t = redis.call('TIME') \
                 local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
                 local exp = redis.call('ZSCORE', KEYS[1], ARGV[1]) \
                 redis.call('ZREM', KEYS[1], ARGV[1]) \
                 if exp and tonumber(exp) > now then return 1 else return 0 end",
            )
        });
        let mut inv = SCRIPT.key(key);
        inv.arg(member);
        Ok(self.run_script::<i64>(key, &inv).await? == 1)
    }

    async fn presence_list(&self, key: &str) -> Result<Vec<(String, Duration)>> {
        // Members whose expiry is past are never returned, whether or not they were removed
        // yet: no sweeper, no race with one.
        static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                "local t = redis.call('TIME') \
                 local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
                 local r = redis.call('ZRANGE', KEYS[1], '(' .. now, '+inf', 'BYSCORE', 'WITHSCORES') \
                 local out = {} \
                 for i = 1, #r, 2 do out[#out + 1] = r[i]; out[#out + 1] = tostring(tonumber(r[i + 1]) - now) end \
                 return out",
            )
        });
        let inv = SCRIPT.key(key);
        let flat: Vec<String> = self.run_script(key, &inv).await?;
        Ok(flat
            .chunks(2)
            .filter_map(|c| {
                Some((
                    c[0].clone(),
                    Duration::from_millis(c.get(1)?.parse::<f64>().ok()? as u64),
                ))
            })
            .collect())
    }

    async fn lock_extend(&self, key: &str, token: Bytes, ttl: Duration) -> Result<bool> {
        static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                   return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end",
            )
        });
        let mut inv = SCRIPT.key(key);
        inv.arg(&token[..]).arg(ttl.as_millis().max(1) as u64);
        Ok(self.run_script::<i64>(key, &inv).await? == 1)
    }

    async fn get_or_init(&self, keys: &[String], inits: &[Bytes]) -> Result<Vec<Bytes>> {
        if self.link.is_cluster() {
            return Self::per_key(keys.len(), |i| async move {
                let old: Option<Vec<u8>> = self
                    .run(
                        redis::cmd("SET")
                            .arg(&keys[i])
                            .arg(&inits[i][..])
                            .arg("NX")
                            .arg("GET"),
                    )
                    .await?;
                Ok(old.map_or_else(|| inits[i].clone(), Bytes::from))
            })
            .await;
        }
        let mut pipe = redis::pipe();
        for (k, init) in keys.iter().zip(inits) {
            pipe.cmd("SET").arg(k).arg(&init[..]).arg("NX").arg("GET");
        }
        let olds: Vec<Option<Vec<u8>>> = self.run_pipe(&pipe).await?;
        Ok(olds
            .into_iter()
            .zip(inits)
            .map(|(old, init)| old.map_or_else(|| init.clone(), Bytes::from))
            .collect())
    }

    async fn del(&self, keys: &[String]) -> Result<u64> {
        if self.link.is_cluster()
            && let Some(r) = self.by_node::<u64>(keys, "UNLINK").await
        {
            return Ok(r?.into_iter().map(|(_, n)| n).sum());
        }
        let mut n = 0;
        for chunk in keys.chunks(MULTI_BATCH) {
            n += self.run::<u64>(redis::cmd("UNLINK").arg(chunk)).await?;
        }
        Ok(n)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.run::<u64>(redis::cmd("EXISTS").arg(key)).await? == 1)
    }

    async fn scan(&self, pattern: &str, cursor: Option<&str>, count: usize) -> Result<ScanPage> {
        if self.link.is_cluster() {
            return self.scan_cluster(pattern, cursor, count).await;
        }
        let start = parse_cursor(cursor)?;
        let (next, keys): (u64, Vec<String>) = self
            .run(
                redis::cmd("SCAN")
                    .arg(start)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(count.max(1)),
            )
            .await?;
        Ok(ScanPage {
            keys,
            cursor: (next != 0).then(|| next.to_string()),
        })
    }

    async fn delete_matching(&self, pattern: &str) -> Result<u64> {
        if self.link.is_cluster() {
            let mut deleted = 0;
            for shard in self.link.shards().await? {
                deleted += self
                    .delete_matching_on(pattern, Some(shard.first_slot))
                    .await?;
            }
            return Ok(deleted);
        }
        self.delete_matching_on(pattern, None).await
    }

    async fn sizes(&self, keys: &[String]) -> Result<Vec<u64>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if self.link.is_cluster() {
            return Self::per_key(keys.len(), |i| async move {
                let s: Option<u64> = self
                    .run(
                        redis::cmd("MEMORY")
                            .arg("USAGE")
                            .arg(&keys[i])
                            .arg("SAMPLES")
                            .arg(0),
                    )
                    .await?;
                Ok(s.unwrap_or(0))
            })
            .await;
        }
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.cmd("MEMORY").arg("USAGE").arg(k).arg("SAMPLES").arg(0);
        }
        let sizes: Vec<Option<u64>> = self.run_pipe(&pipe).await?;
        Ok(sizes.into_iter().map(|s| s.unwrap_or(0)).collect())
    }

    async fn ping(&self) -> Result<Duration> {
        let start = Instant::now();
        let pong: String = self.run(&redis::cmd("PING")).await?;
        if pong != "PONG" {
            return Err(Error::new(
                ErrorKind::Backend,
                format!("unexpected PING reply {pong:?}"),
            ));
        }
        Ok(start.elapsed())
    }

    async fn stats(&self) -> Result<StoreStats> {
        if self.link.is_cluster() {
            let mut total = StoreStats {
                keys: 0,
                bytes: 0,
                evictions: 0,
                state: BackendState::Connected,
            };
            for shard in self.link.shards().await? {
                let keys: u64 = self
                    .on_slot(&redis::cmd("DBSIZE"), shard.first_slot)
                    .await?;
                let memory: String = self
                    .on_slot(redis::cmd("INFO").arg("memory"), shard.first_slot)
                    .await?;
                let stats: String = self
                    .on_slot(redis::cmd("INFO").arg("stats"), shard.first_slot)
                    .await?;
                total.keys += keys;
                total.bytes += info_field(&memory, "used_memory");
                total.evictions += info_field(&stats, "evicted_keys");
            }
            return Ok(total);
        }
        let mut pipe = redis::pipe();
        pipe.cmd("DBSIZE")
            .cmd("INFO")
            .arg("memory")
            .cmd("INFO")
            .arg("stats");
        let (keys, memory, stats): (u64, String, String) = self.run_pipe(&pipe).await?;
        Ok(StoreStats {
            keys,
            bytes: info_field(&memory, "used_memory"),
            evictions: info_field(&stats, "evicted_keys"),
            state: BackendState::Connected,
        })
    }

    fn state(&self) -> BackendState {
        BackendState::Connected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("redis://u:secret@h:6379/1"),
            "redis://u:***@h:6379/1"
        );
        assert_eq!(redact_url("redis://:secret@h:6379"), "redis://:***@h:6379");
        assert_eq!(redact_url("rediss://token@h"), "rediss://***@h");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(redact_url("redis://u:p@ss@h"), "redis://u:***@h");
    }

    #[test]
    fn bad_urls_and_cursors_are_clear_errors() {
        let opts = RedisOptions {
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
        };
        let e = RedisStore::open("http://localhost", opts).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(parse_cursor(Some("12x")).unwrap_err().kind() == ErrorKind::InvalidCursor);
        assert_eq!(parse_cursor(Some("42")).unwrap(), 42);
    }

    #[test]
    fn info_fields() {
        let info = "# Memory\r\nused_memory:1024\r\nused_memory_human:1K\r\n";
        assert_eq!(info_field(info, "used_memory"), 1024);
        assert_eq!(info_field(info, "missing"), 0);
    }
}
