//! Keys of other Redis types in the key browser. Services that speak RESP write hashes,
//! lists, sets, sorted sets and streams under their namespace; the library's store only
//! knows string values, so the browser asks Redis itself, on one connection of its own
//! (standalone Redis and Cluster; not Sentinel, and nothing on the memory store, which
//! holds only values). Each read is bounded to [`ROWS`] entries.

use redis::aio::ConnectionLike;
use serde_json::{Value, json};
use sharecache::{RedisKind, RedisUrl};
use tokio::sync::OnceCell;

use super::error::ApiError;

/// Entries shown of a hash, list, set, sorted set or stream.
pub const ROWS: usize = 200;

enum Conn {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

/// A lazily opened connection to the backend for typed reads.
#[derive(Default)]
pub struct RawRedis {
    url: Option<RedisUrl>,
    conn: OnceCell<Option<Conn>>,
}

impl std::fmt::Debug for RawRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawRedis").finish_non_exhaustive()
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "typed key read failed");
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the backend did not answer the typed read",
    )
}

impl RawRedis {
    /// For the backend at `url` (`None` on the memory store).
    pub fn new(url: Option<RedisUrl>) -> Self {
        Self {
            url,
            conn: OnceCell::new(),
        }
    }

    async fn conn(&self) -> Option<Conn> {
        self.conn
            .get_or_init(|| async {
                let url = self.url.as_ref()?;
                let seeds = url.seed_urls();
                let r = match url.kind() {
                    RedisKind::Standalone => {
                        let c = redis::Client::open(seeds.first()?.as_str()).ok()?;
                        c.get_multiplexed_async_connection().await.map(Conn::Single)
                    }
                    RedisKind::Cluster => {
                        let c = redis::cluster::ClusterClient::new(seeds).ok()?;
                        c.get_async_connection().await.map(Conn::Cluster)
                    }
                    _ => return None,
                };
                r.map_err(|e| tracing::warn!(error = %e, "cannot open the typed-read connection"))
                    .ok()
            })
            .await
            .as_ref()
            .map(|c| match c {
                Conn::Single(c) => Conn::Single(c.clone()),
                Conn::Cluster(c) => Conn::Cluster(c.clone()),
            })
    }

    /// The Redis type of `stored`, or `None` when typed reads are not available here.
    pub async fn kind(&self, stored: &str) -> Result<Option<String>, ApiError> {
        let Some(mut c) = self.conn().await else {
            return Ok(None);
        };
        let t: String = query(&mut c, redis::cmd("TYPE").arg(stored)).await?;
        Ok(Some(t))
    }

    /// A bounded view of a non-string key: columns, rows, length, TTL, size.
    pub async fn view(&self, stored: &str, kind: &str) -> Result<Value, ApiError> {
        let Some(mut c) = self.conn().await else {
            return Err(ApiError::not_found("no such key"));
        };
        let n = ROWS as isize;
        let text = |v: &redis::Value| match v {
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            redis::Value::SimpleString(s) => s.clone(),
            redis::Value::Int(i) => i.to_string(),
            redis::Value::Double(d) => d.to_string(),
            other => format!("{other:?}"),
        };
        let (columns, rows, len): (Vec<&str>, Vec<Vec<String>>, u64) = match kind {
            "hash" => {
                let (_, items): (u64, Vec<(String, String)>) = query(
                    &mut c,
                    redis::cmd("HSCAN")
                        .arg(stored)
                        .arg(0)
                        .arg("COUNT")
                        .arg(ROWS),
                )
                .await?;
                let len: u64 = query(&mut c, redis::cmd("HLEN").arg(stored)).await?;
                let rows = items
                    .into_iter()
                    .take(ROWS)
                    .map(|(f, v)| vec![f, v])
                    .collect();
                (vec!["field", "value"], rows, len)
            }
            "list" => {
                let items: Vec<String> =
                    query(&mut c, redis::cmd("LRANGE").arg(stored).arg(0).arg(n - 1)).await?;
                let len: u64 = query(&mut c, redis::cmd("LLEN").arg(stored)).await?;
                let rows = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| vec![i.to_string(), v])
                    .collect();
                (vec!["index", "value"], rows, len)
            }
            "set" => {
                let (_, items): (u64, Vec<String>) = query(
                    &mut c,
                    redis::cmd("SSCAN")
                        .arg(stored)
                        .arg(0)
                        .arg("COUNT")
                        .arg(ROWS),
                )
                .await?;
                let len: u64 = query(&mut c, redis::cmd("SCARD").arg(stored)).await?;
                let rows = items.into_iter().take(ROWS).map(|m| vec![m]).collect();
                (vec!["member"], rows, len)
            }
            "zset" => {
                let items: Vec<(String, f64)> = query(
                    &mut c,
                    redis::cmd("ZRANGE")
                        .arg(stored)
                        .arg(0)
                        .arg(n - 1)
                        .arg("WITHSCORES"),
                )
                .await?;
                let len: u64 = query(&mut c, redis::cmd("ZCARD").arg(stored)).await?;
                let rows = items
                    .into_iter()
                    .map(|(m, s)| vec![m, s.to_string()])
                    .collect();
                (vec!["member", "score"], rows, len)
            }
            "stream" => {
                let v: redis::Value = query(
                    &mut c,
                    redis::cmd("XRANGE")
                        .arg(stored)
                        .arg("-")
                        .arg("+")
                        .arg("COUNT")
                        .arg(ROWS),
                )
                .await?;
                let mut rows = Vec::new();
                if let redis::Value::Array(entries) = v {
                    for e in entries {
                        if let redis::Value::Array(parts) = e
                            && let [id, redis::Value::Array(fields)] = parts.as_slice()
                        {
                            let fields: Vec<String> = fields
                                .chunks(2)
                                .map(|p| {
                                    format!(
                                        "{}={}",
                                        text(&p[0]),
                                        p.get(1).map(&text).unwrap_or_default()
                                    )
                                })
                                .collect();
                            rows.push(vec![text(id), fields.join(" ")]);
                        }
                    }
                }
                let len: u64 = query(&mut c, redis::cmd("XLEN").arg(stored)).await?;
                (vec!["id", "fields"], rows, len)
            }
            other => (vec!["type"], vec![vec![other.to_owned()]], 1),
        };
        let pttl: i64 = query(&mut c, redis::cmd("PTTL").arg(stored)).await?;
        let size: Option<u64> = query(&mut c, redis::cmd("MEMORY").arg("USAGE").arg(stored))
            .await
            .unwrap_or(None);
        Ok(json!({
            "kind": kind,
            "ttl_ms": (pttl >= 0).then_some(pttl),
            "size": size.unwrap_or(0),
            "columns": columns,
            "truncated": (rows.len() as u64) < len,
            "rows": rows,
            "length": len,
        }))
    }

    /// The slow log (the last `n` entries) and the connected clients of the backend
    /// (one node on a Cluster); `None` on the memory store and Sentinel.
    pub async fn server_view(&self, n: usize) -> Result<Option<Value>, ApiError> {
        let Some(mut c) = self.conn().await else {
            return Ok(None);
        };
        let slow: redis::Value = query(&mut c, redis::cmd("SLOWLOG").arg("GET").arg(n)).await?;
        let text = |v: &redis::Value| match v {
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            redis::Value::SimpleString(s) => s.clone(),
            redis::Value::Int(i) => i.to_string(),
            _ => String::new(),
        };
        let mut entries = Vec::new();
        if let redis::Value::Array(items) = slow {
            for e in items {
                let redis::Value::Array(f) = e else { continue };
                let int = |i: usize| match f.get(i) {
                    Some(redis::Value::Int(n)) => *n,
                    _ => 0,
                };
                let args = match f.get(3) {
                    Some(redis::Value::Array(a)) => {
                        a.iter().map(&text).collect::<Vec<_>>().join(" ")
                    }
                    _ => String::new(),
                };
                entries.push(json!({
                    "id": int(0),
                    "at_s": int(1),
                    "micros": int(2),
                    "command": args,
                    "client": f.get(4).map(&text).unwrap_or_default(),
                }));
            }
        }
        let clients: String = query(&mut c, redis::cmd("CLIENT").arg("LIST")).await?;
        let mut by_name: std::collections::BTreeMap<String, u64> = Default::default();
        for line in clients.lines() {
            let name = line
                .split(' ')
                .find_map(|f| f.strip_prefix("name="))
                .unwrap_or("");
            let user = line
                .split(' ')
                .find_map(|f| f.strip_prefix("user="))
                .unwrap_or("");
            let label = match (user, name) {
                (u, "") => format!("user {u}"),
                (u, n) => format!("user {u}, name {n}"),
            };
            *by_name.entry(label).or_default() += 1;
        }
        Ok(Some(json!({
            "slowlog": entries,
            "clients": clients.lines().count(),
            "clients_by_user": by_name,
        })))
    }
}

async fn query<T: redis::FromRedisValue>(c: &mut Conn, cmd: &redis::Cmd) -> Result<T, ApiError> {
    let v = match c {
        Conn::Single(c) => c.req_packed_command(cmd).await,
        Conn::Cluster(c) => c.req_packed_command(cmd).await,
    }
    .map_err(internal)?;
    redis::from_redis_value(v).map_err(internal)
}
