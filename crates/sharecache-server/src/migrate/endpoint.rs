//! One side of a migration (a source or the target): its connections, batches of commands
//! and the nodes to SCAN. The bottom of `migrate`: it imports nothing from its siblings.
//!
//! * **Standalone** (and a Sentinel-named master): one multiplexed connection; a batch is
//!   one pipeline (`ignore_errors`, so each command keeps its own reply).
//! * **Cluster**: a redis-rs `ClusterConnection`, which routes each single-key command by
//!   its slot and follows `MOVED`/`ASK`; a batch is sent as concurrent single-key commands
//!   (the multiplexed node connections pipeline them on the wire), so no request ever
//!   holds keys of two slots and `CROSSSLOT` cannot happen. SCAN runs on each master
//!   through its own connection.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, RedisError, Value};
use sharecache::{RedisKind, RedisUrl};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Long enough for a pipeline of big DUMP payloads on a slow link.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// The reply of one command of a batch: a server error stays per command.
pub(crate) type Reply = Result<Value, RedisError>;

#[derive(Clone)]
enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// A connected source or target.
#[derive(Clone)]
pub(crate) struct Endpoint {
    /// `source auth (redis://127.0.0.1:6379)` or `target (...)`: no credentials.
    pub(crate) label: String,
    conn: Conn,
    /// The nodes that hold the keys: the server, or each cluster master (address, conn).
    scan_nodes: Vec<(String, MultiplexedConnection)>,
    /// The server has `PEXPIRETIME` (Redis 7.0+): TTLs are read as absolute times.
    pub(crate) has_pexpiretime: bool,
    /// The URL the side was opened with.
    url: RedisUrl,
    /// The server's `proto-max-bulk-len` (512 MB when it does not say): a bigger DUMP
    /// payload cannot be sent in one RESTORE.
    pub(crate) max_bulk: u64,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

fn is_auth_error(e: &RedisError) -> bool {
    matches!(e.kind(), redis::ErrorKind::AuthenticationFailed)
        || e.code()
            .is_some_and(|c| matches!(c, "WRONGPASS" | "NOAUTH" | "NOPERM"))
        || ["WRONGPASS", "NOAUTH", "invalid password", "uthentication"]
            .iter()
            .any(|w| e.to_string().contains(w))
}

/// Turns a connection error into what the user should do about it.
fn connect_error(label: &str, e: RedisError) -> anyhow::Error {
    if is_auth_error(&e) {
        anyhow!(
            "{label} refused the credentials ({}); check the user and password in the URL",
            e.code().unwrap_or("authentication failed")
        )
    } else if e.is_timeout() {
        anyhow!("{label} did not answer within {CONNECT_TIMEOUT:?}: is the address right?")
    } else if e.is_io_error() || e.is_connection_refusal() {
        anyhow!("cannot reach {label}: {e}")
    } else {
        anyhow!("{label}: {e}")
    }
}

async fn connect_node(label: &str, url: &str) -> anyhow::Result<MultiplexedConnection> {
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let client = redis::Client::open(url)
        .map_err(|e| anyhow!("{label}: the URL is not valid ({})", e.kind_name()))?;
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(|e| connect_error(label, e))?;
    // A server with `requirepass` accepts the connection without credentials and refuses
    // the first command: ask one now, so that shows up here and not mid-copy.
    redis::cmd("PING")
        .query_async::<()>(&mut conn)
        .await
        .map_err(|e| connect_error(label, e))?;
    Ok(conn)
}

trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for RedisError {
    /// The error without the URL it may quote.
    fn kind_name(&self) -> String {
        format!("{:?}", self.kind())
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

/// The masters of a cluster, from `CLUSTER SLOTS`: (host, port), each once.
fn masters_from_slots(v: &Value) -> Vec<(String, u16)> {
    let mut out: Vec<(String, u16)> = Vec::new();
    let Value::Array(rows) = v else { return out };
    for row in rows {
        let Value::Array(parts) = row else { continue };
        let Some(Value::Array(master)) = parts.get(2) else {
            continue;
        };
        let (Some(host), Some(Value::Int(port))) = (master.first().and_then(text), master.get(1))
        else {
            continue;
        };
        let Ok(port) = u16::try_from(*port) else {
            continue;
        };
        if !out.iter().any(|(h, p)| *h == host && *p == port) {
            out.push((host, port));
        }
    }
    out
}

impl Endpoint {
    /// Connects to `url`; `label` names the side in every message (`source auth`, `target`).
    pub(crate) async fn open(url: &RedisUrl, role: &str) -> anyhow::Result<Self> {
        let label = format!("{role} ({})", url.display());
        let (conn, scan_nodes) = match url.kind() {
            RedisKind::Cluster => open_cluster(url, &label).await?,
            RedisKind::Sentinel => {
                let node = open_sentinel_master(url, &label).await?;
                (Conn::Single(node.1.clone()), vec![node])
            }
            _ => {
                let node_url = url.seed_urls().remove(0);
                let mut c = connect_node(&label, &node_url).await?;
                let info: String = redis::cmd("INFO")
                    .arg("cluster")
                    .query_async(&mut c)
                    .await
                    .map_err(|e| connect_error(&label, e))?;
                if info.contains("cluster_enabled:1") {
                    bail!(
                        "{label} is a Redis Cluster node: use redis+cluster://HOST:PORT so that \
                         every key goes to the node of its slot"
                    );
                }
                (Conn::Single(c.clone()), vec![(url.display(), c)])
            }
        };
        let mut ep = Self {
            label,
            conn,
            scan_nodes,
            has_pexpiretime: false,
            max_bulk: 512 << 20,
            url: url.clone(),
        };
        // Probe on a key that cannot exist in a service's keyspace; any reply but an
        // unknown-command error means the command is there.
        let probe = ep
            .batch(vec![
                redis::cmd("PEXPIRETIME")
                    .arg("#sharecache:migrate:probe")
                    .clone(),
            ])
            .await?;
        ep.has_pexpiretime = probe[0].is_ok();
        if let Some((_, c)) = ep.scan_nodes.first() {
            let mut c = c.clone();
            let v: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
                .arg("GET")
                .arg("proto-max-bulk-len")
                .query_async(&mut c)
                .await;
            if let Some(n) = v.ok().and_then(|v| v.get(1)?.parse().ok()) {
                ep.max_bulk = n;
            }
        }
        Ok(ep)
    }

    /// The nodes to SCAN, by address.
    pub(crate) fn scan_nodes(&self) -> &[(String, MultiplexedConnection)] {
        &self.scan_nodes
    }

    /// The URL (with credentials) of scan node `i`, for a connection of its own (pub/sub).
    pub(crate) fn node_url(&self, i: usize) -> anyhow::Result<String> {
        match self.url.kind() {
            RedisKind::Cluster | RedisKind::Sentinel => {
                let addr = &self.scan_nodes[i].0;
                let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "6379"));
                node_url(&self.url, host, port.parse().unwrap_or(6379), &self.label)
            }
            _ => Ok(self.url.seed_urls().remove(0)),
        }
    }

    /// Each scan node's `run_id` (new at every server start): a SCAN cursor is only valid
    /// in the process that gave it, since the hash seed changes at a restart.
    pub(crate) async fn run_ids(&self) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for (addr, c) in &self.scan_nodes {
            let mut c = c.clone();
            let info: String = redis::cmd("INFO")
                .arg("server")
                .query_async(&mut c)
                .await
                .map_err(|e| anyhow!("{} (node {addr}): {e}", self.label))?;
            let id = info
                .lines()
                .find_map(|l| l.strip_prefix("run_id:"))
                .unwrap_or_default()
                .trim()
                .to_owned();
            out.push(id);
        }
        Ok(out)
    }

    /// Keys on all scan nodes (`DBSIZE` summed): the base of the progress estimate.
    pub(crate) async fn dbsize(&self) -> u64 {
        let mut total = 0;
        for (_, c) in &self.scan_nodes {
            let mut c = c.clone();
            total += redis::cmd("DBSIZE")
                .query_async::<u64>(&mut c)
                .await
                .unwrap_or(0);
        }
        total
    }

    /// Runs `cmds` (each a single-key or keyless command) and returns one reply per
    /// command. `Err` only when the side cannot be reached at all, which stops the run.
    pub(crate) async fn batch(&self, cmds: Vec<Cmd>) -> anyhow::Result<Vec<Reply>> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        match &self.conn {
            Conn::Single(c) => {
                let mut pipe = redis::pipe();
                pipe.ignore_errors();
                let n = cmds.len();
                for c in cmds {
                    pipe.add_command(c);
                }
                let mut c = c.clone();
                let values: Vec<Value> =
                    pipe.query_async(&mut c).await.map_err(|e| self.lost(e))?;
                if values.len() != n {
                    bail!("{}: {} replies to {n} commands", self.label, values.len());
                }
                Ok(values
                    .into_iter()
                    .map(|v| match v {
                        Value::ServerError(e) => Err(e.into()),
                        v => Ok(v),
                    })
                    .collect())
            }
            Conn::Cluster(c) => {
                let replies = futures_util::future::join_all(cmds.iter().map(|cmd| {
                    let mut c = c.clone();
                    // A server error comes back as a value here, not as `Err`.
                    async move {
                        match c.req_packed_command(cmd).await {
                            Ok(Value::ServerError(e)) => Err(e.into()),
                            other => other,
                        }
                    }
                }))
                .await;
                if let Some(e) = replies.iter().find_map(|r| {
                    r.as_ref()
                        .err()
                        .filter(|e| e.is_io_error() || e.is_connection_dropped() || e.is_timeout())
                }) {
                    return Err(self.lost(e.clone()));
                }
                Ok(replies)
            }
        }
    }

    fn lost(&self, e: RedisError) -> anyhow::Error {
        if is_auth_error(&e) {
            connect_error(&self.label, e)
        } else {
            anyhow!("lost the connection to {}: {e}", self.label)
        }
    }
}

/// The URL of a node found at run time, with the data nodes' credentials.
fn node_url(url: &RedisUrl, host: &str, port: u16, label: &str) -> anyhow::Result<String> {
    url.node_url(host, port)
        .ok_or_else(|| anyhow!("{label}: cannot build a URL for node {host}:{port}"))
}

async fn open_cluster(
    url: &RedisUrl,
    label: &str,
) -> anyhow::Result<(Conn, Vec<(String, MultiplexedConnection)>)> {
    let seeds = url.seed_urls();
    let mut last = None;
    let mut slots = None;
    for seed in &seeds {
        match connect_node(label, seed).await {
            Ok(mut c) => match redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async::<Value>(&mut c)
                .await
            {
                Ok(v) => {
                    slots = Some(v);
                    break;
                }
                Err(e) => last = Some(connect_error(label, e)),
            },
            Err(e) => last = Some(e),
        }
    }
    let slots = match (slots, last) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(e),
        (None, None) => bail!("{label}: the URL names no node"),
    };
    let masters = masters_from_slots(&slots);
    if masters.is_empty() {
        bail!("{label}: CLUSTER SLOTS lists no master; is the cluster formed?");
    }
    let mut nodes = Vec::new();
    for (host, port) in masters {
        let addr = format!("{host}:{port}");
        let c = connect_node(
            &format!("{label} node {addr}"),
            &node_url(url, &host, port, label)?,
        )
        .await?;
        nodes.push((addr, c));
    }
    let client = redis::cluster::ClusterClientBuilder::new(seeds)
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        .retries(6)
        .build()
        .map_err(|e| anyhow!("{label}: {}", e.kind_name()))?;
    let conn = tokio::time::timeout(CONNECT_TIMEOUT * 2, client.get_async_connection())
        .await
        .map_err(|_| anyhow!("{label}: no node answered within {:?}", CONNECT_TIMEOUT * 2))?
        .map_err(|e| connect_error(label, e))?;
    Ok((Conn::Cluster(conn), nodes))
}

async fn open_sentinel_master(
    url: &RedisUrl,
    label: &str,
) -> anyhow::Result<(String, MultiplexedConnection)> {
    let sentinels = url.seed_urls();
    let master = url
        .master_name()
        .context("a sentinel URL without a master name")?;
    let mut last = None;
    for s in &sentinels {
        let mut c = match connect_node(&format!("{label} sentinel"), s).await {
            Ok(c) => c,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let addr: Option<(String, u16)> = match redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(master)
            .query_async(&mut c)
            .await
        {
            Ok(a) => a,
            Err(e) => {
                last = Some(connect_error(label, e));
                continue;
            }
        };
        let Some((host, port)) = addr else {
            last = Some(anyhow!(
                "{label}: the sentinels do not know master {master:?}"
            ));
            continue;
        };
        let mut node = connect_node(label, &node_url(url, &host, port, label)?).await?;
        let role: Value = redis::cmd("ROLE")
            .query_async(&mut node)
            .await
            .map_err(|e| connect_error(label, e))?;
        let is_master = matches!(&role, Value::Array(p) if p.first().and_then(text).as_deref() == Some("master"));
        if !is_master {
            bail!("{label}: {host}:{port}, named master by the sentinels, is not a master (yet)");
        }
        return Ok((format!("{host}:{port}"), node));
    }
    Err(last.unwrap_or_else(|| anyhow!("{label}: the URL names no sentinel")))
}
