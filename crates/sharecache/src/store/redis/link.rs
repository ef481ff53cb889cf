//! The connection to Redis for each topology, shared by the store, the L1 tracking task
//! and the events hub. Below the command layer: it knows nodes, slots and masters, never
//! which command is sent.
//!
//! * **Standalone**: one redis-rs `ConnectionManager` (multiplexed, reconnects itself).
//! * **Cluster** (`ClusterLink`): one redis-rs `ClusterConnection` (it follows `MOVED`
//!   and `ASK` and splits `MGET`/`UNLINK` by slot), plus direct routes (slot -> one
//!   multiplexed connection per master) for keyed commands and per-node batches, and a
//!   watcher that re-reads `CLUSTER SLOTS` every 500 ms and rebuilds what changed.
//!   Opened at first use, so a cache can start while the cluster is down.
//! * **Sentinel** (`SentinelLink`): redis-rs does not follow a master switch on its own
//!   (upstream issue #1438), so this module does: it asks the sentinels for the master,
//!   connects, and checks `ROLE` says `master` before using the connection (every
//!   reconnect goes through the same path). It listens on every sentinel for the
//!   failover events (and polls once a second, for a missed message), and stops using
//!   the old master at the first of them; any connection error or `READONLY` reply drops
//!   the connection, so the next command asks the sentinels again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};

use super::url::{
    ClusterTopo, NodeAddr, RedisOptions, SentinelTopo, Topology, key_slot, redact_url,
};
use crate::error::{Error, ErrorKind, Result};

/// One connection handle, cheap to clone; what a command runs on.
#[derive(Clone)]
pub(crate) enum Conn {
    Manager(ConnectionManager),
    Cluster(ClusterConnection),
    /// A sentinel-resolved master; carries which resolution it came from, so an error
    /// drops exactly that connection.
    Sentinel(MultiplexedConnection, Arc<Master>),
    /// A cluster node's own connection, chosen by slot (the direct route).
    Node(MultiplexedConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Manager(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
            Self::Sentinel(c, _) => c.req_packed_command(cmd),
            Self::Node(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Sentinel(c, _) => c.req_packed_commands(pipeline, offset, count),
            Self::Node(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Manager(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
            Self::Sentinel(c, _) => c.get_db(),
            Self::Node(c) => c.get_db(),
        }
    }
}

/// A master found through the sentinels.
pub(crate) struct Master {
    pub(crate) addr: NodeAddr,
    conn: MultiplexedConnection,
}

/// One cluster shard as `CLUSTER SLOTS` reports it: its master and the lowest slot it
/// serves (a stable name for the shard across a failover).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shard {
    pub(crate) first_slot: u16,
    pub(crate) master: NodeAddr,
}

pub(crate) enum Link {
    Standalone {
        url: String,
        conn: ConnectionManager,
    },
    Cluster(Arc<ClusterLink>),
    Sentinel(Arc<SentinelLink>),
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Standalone { .. } => "Link::Standalone",
            Self::Cluster(_) => "Link::Cluster",
            Self::Sentinel(_) => "Link::Sentinel",
        })
    }
}

fn unavailable(what: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unavailable, what.to_string())
}

impl Link {
    /// Sets up the link without connecting (the first command connects).
    pub(crate) fn open(topo: &Topology, opts: RedisOptions) -> Result<Self> {
        let display = topo.display();
        let setup_err = |e: redis::RedisError| {
            Error::new(
                ErrorKind::Config,
                format!("cannot set up Redis client for {display}: {e}"),
            )
        };
        match topo {
            Topology::Standalone { url } => {
                let client = redis::Client::open(url.as_str()).map_err(|e| {
                    Error::new(
                        ErrorKind::Config,
                        format!("invalid Redis URL {display}: {e}"),
                    )
                })?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(opts.connect_timeout))
                    .set_response_timeout(Some(opts.command_timeout))
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_secs(2))
                    .set_number_of_retries(3);
                let conn =
                    ConnectionManager::new_lazy_with_config(client, config).map_err(setup_err)?;
                Ok(Self::Standalone {
                    url: url.clone(),
                    conn,
                })
            }
            Topology::Cluster(cluster) => Ok(Self::Cluster(Arc::new(ClusterLink {
                topo: cluster.clone(),
                opts,
                conn: ArcSwapOption::empty(),
                connecting: tokio::sync::Mutex::new(()),
                seen: parking_lot::Mutex::new(ClusterView {
                    ranges: Vec::new(),
                    nodes: cluster.seeds.clone(),
                }),
                watcher: AtomicBool::new(false),
                routes: ArcSwapOption::empty(),
                recheck: tokio::sync::Notify::new(),
            }))),
            Topology::Sentinel(sentinel) => Ok(Self::Sentinel(Arc::new(SentinelLink {
                topo: sentinel.clone(),
                opts,
                current: ArcSwapOption::empty(),
                resolving: tokio::sync::Mutex::new(()),
                switches: tokio::sync::watch::channel(0).0,
                watcher: AtomicBool::new(false),
                target: parking_lot::Mutex::new(None),
            }))),
        }
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// A handle to run one command or pipeline on.
    pub(crate) async fn conn(&self) -> Result<Conn> {
        match self {
            Self::Standalone { conn, .. } => Ok(Conn::Manager(conn.clone())),
            Self::Cluster(c) => Ok(Conn::Cluster(c.conn().await?)),
            Self::Sentinel(s) => s.conn().await,
        }
    }

    /// The direct connection to the master of `key`'s slot (cluster only; `None` when
    /// the route is unknown, and the redis-rs cluster connection is used instead).
    #[inline]
    pub(crate) fn route(&self, key: &[u8]) -> Option<Conn> {
        match self {
            Self::Cluster(c) => c.route(key).map(Conn::Node),
            _ => None,
        }
    }

    /// Keys grouped by node (direct connections), then by slot; `None` unless every key
    /// has a direct route.
    pub(crate) fn by_node(&self, keys: &[&str]) -> Option<Vec<(Conn, Vec<Vec<usize>>)>> {
        match self {
            Self::Cluster(c) => Some(
                c.by_node(keys)?
                    .into_iter()
                    .map(|(conn, slots)| (Conn::Node(conn), slots))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// A direct route answered with a redirect or failed: stop using direct routes until
    /// the topology was checked again.
    pub(crate) fn routes_stale(&self) {
        if let Self::Cluster(c) = self {
            c.routes_stale();
        }
    }

    /// Tells the link a command on `conn` failed with `e`, so a sentinel link stops using
    /// a connection that is broken or no longer on the master.
    pub(crate) fn failed(&self, conn: &Conn, e: &Error) {
        if matches!(conn, Conn::Node(_)) && e.is_unavailable() {
            self.routes_stale();
        }
        if let (Self::Sentinel(s), Conn::Sentinel(_, m)) = (self, conn)
            && e.is_unavailable()
        {
            s.drop_master(m, &e.to_string());
        }
    }

    /// Something looked wrong (a tracked node, the pub/sub node): check the cluster's
    /// topology now rather than at the watcher's next tick.
    pub(crate) fn recheck(&self) {
        if let Self::Cluster(c) = self {
            c.recheck.notify_one();
        }
    }

    /// URLs of every current master: what the L1 tracking task listens to.
    pub(crate) async fn master_urls(&self) -> Result<Vec<String>> {
        match self {
            Self::Standalone { url, .. } => Ok(vec![url.clone()]),
            Self::Cluster(cl) => {
                let topo = &cl.topo;
                let mut urls: Vec<String> = cl
                    .shards()
                    .await?
                    .iter()
                    .map(|s| topo.node_url(&s.master))
                    .collect();
                urls.sort();
                urls.dedup();
                Ok(urls)
            }
            Self::Sentinel(s) => {
                let m = s.master().await?;
                Ok(vec![s.topo.node_url(&m.addr)])
            }
        }
    }

    /// A watch that changes whenever the master set may have changed (a sentinel switch);
    /// `None` where the tracking task polls instead (standalone, cluster).
    pub(crate) fn switches(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        match self {
            Self::Sentinel(s) => Some(s.switches.subscribe()),
            _ => None,
        }
    }

    /// Whether the nodes behind the tracking connections should be checked with `ROLE`
    /// (a node demoted to replica no longer sees the writes).
    pub(crate) fn checks_role(&self) -> bool {
        !matches!(self, Self::Standalone { .. })
    }

    /// Where the events hub subscribes. Classic pub/sub in a cluster reaches every node,
    /// so any master will do; on Sentinel, the master.
    pub(crate) async fn pubsub_url(&self) -> Result<String> {
        self.master_urls()
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| unavailable("the cluster reported no master to subscribe on"))
    }

    /// One connection attempt: `Ok(Ok(()))` reachable, `Ok(Err)` unreachable right now,
    /// `Err` a configuration problem (refused credentials, unknown master name).
    pub(crate) async fn check(&self) -> Result<std::result::Result<(), Error>> {
        let attempt = async {
            let mut c = self.conn().await?;
            match redis::cmd("PING").query_async::<String>(&mut c).await {
                Ok(_) => Ok(()),
                Err(e) if is_auth_error(&e) => Err(refused(
                    &format!("redis at {}", self.display()),
                    e.code().unwrap_or("authentication failed"),
                    "the user and password in the URL",
                )),
                Err(e) => Err(Error::from_redis(e)),
            }
        };
        match attempt.await {
            Ok(()) => Ok(Ok(())),
            Err(e) if e.kind() == ErrorKind::Config => Err(e),
            Err(e) if e.is_unavailable() => Ok(Err(e)),
            Err(e) if is_auth_message(e.message()) => Err(refused(
                &format!("redis at {}", self.display()),
                e.message(),
                "the user and password in the URL",
            )),
            Err(e) => Err(Error::new(
                ErrorKind::Config,
                format!("redis at {} cannot be used: {e}", self.display()),
            )),
        }
    }

    pub(crate) fn display(&self) -> String {
        match self {
            Self::Standalone { url, .. } => redact_url(url),
            Self::Cluster(cl) => cl.topo.display(),
            Self::Sentinel(s) => s.topo.display(),
        }
    }
}

/// One multiplexed connection to one node (a sentinel-named master, a sentinel, a
/// cluster master for the direct routes), with the link's timeouts.
async fn connect_node(url: &str, opts: RedisOptions) -> redis::RedisResult<MultiplexedConnection> {
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(opts.connect_timeout))
        .set_response_timeout(Some(opts.command_timeout));
    redis::Client::open(url)?
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
}

/// The configuration error for refused credentials (never with the password).
fn refused(who: &str, detail: &str, fix: &str) -> Error {
    Error::new(
        ErrorKind::Config,
        format!("{who} refused the credentials ({detail}); check {fix}"),
    )
}

fn is_auth_error(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::AuthenticationFailed
            | redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm)
    ) || e
        .code()
        .is_some_and(|c| matches!(c, "WRONGPASS" | "NOAUTH" | "NOPERM"))
}

fn is_auth_message(m: &str) -> bool {
    ["WRONGPASS", "NOAUTH", "NOPERM", "uthentication"]
        .iter()
        .any(|w| m.contains(w))
}

fn node_addr(v: &redis::Value) -> Option<NodeAddr> {
    use redis::Value;
    let Value::Array(parts) = v else { return None };
    let host = match parts.first()? {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    let port = match parts.get(1)? {
        Value::Int(p) => u16::try_from(*p).ok()?,
        _ => return None,
    };
    Some(NodeAddr { host, port })
}

/// Slot ranges and every node (masters first) from a `CLUSTER SLOTS` reply.
fn parse_slots(v: redis::Value) -> Result<ClusterView> {
    use redis::Value;
    let bad = || Error::new(ErrorKind::Backend, "unexpected CLUSTER SLOTS reply");
    let Value::Array(rows) = v else {
        return Err(bad());
    };
    let mut ranges = Vec::new();
    let mut replicas: Vec<NodeAddr> = Vec::new();
    for r in rows {
        let Value::Array(parts) = r else {
            return Err(bad());
        };
        let start = match parts.first() {
            Some(Value::Int(i)) => u16::try_from(*i).map_err(|_| bad())?,
            _ => return Err(bad()),
        };
        let end = match parts.get(1) {
            Some(Value::Int(i)) => u16::try_from(*i).ok().filter(|e| *e < 16384 && *e >= start),
            _ => None,
        }
        .ok_or_else(bad)?;
        let master = parts.get(2).and_then(node_addr).ok_or_else(bad)?;
        ranges.push((start, end, master));
        for rep in parts.iter().skip(3).filter_map(node_addr) {
            if !replicas.contains(&rep) {
                replicas.push(rep);
            }
        }
    }
    ranges.sort_by_key(|r| r.0);
    let mut view = ClusterView {
        ranges,
        nodes: Vec::new(),
    };
    view.nodes = view.shards().into_iter().map(|s| s.master).collect();
    let extra: Vec<NodeAddr> = replicas
        .into_iter()
        .filter(|r| !view.nodes.contains(r))
        .collect();
    view.nodes.extend(extra);
    Ok(view)
}

/// What a cluster looked like at the last check.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClusterView {
    /// Every slot range and its master, by first slot.
    ranges: Vec<(u16, u16, NodeAddr)>,
    /// Every node, masters first: where to ask next time.
    nodes: Vec<NodeAddr>,
}

impl ClusterView {
    /// One entry per master, named by the lowest slot it serves, ordered by it.
    pub(crate) fn shards(&self) -> Vec<Shard> {
        let mut shards: Vec<Shard> = Vec::new();
        for (start, _, master) in &self.ranges {
            if !shards.iter().any(|s| s.master == *master) {
                // Ranges are sorted: the first one seen is the master's lowest slot.
                shards.push(Shard {
                    first_slot: *start,
                    master: master.clone(),
                });
            }
        }
        shards
    }
}

/// A Redis Cluster: one redis-rs cluster connection, rebuilt when the set of masters
/// changes.
///
/// redis-rs follows `MOVED`/`ASK` and refreshes its slot map on them, but a master that
/// stops answering (SIGSTOP, a network partition) only produces timeouts, which it
/// retries on the same node: after the replica is promoted the client would keep asking
/// the stopped node. So a watcher asks the cluster for its slots every 500 ms (the first
/// known node that answers within 300 ms), and when the masters differ from the ones the
/// connection was built on, it opens a new connection seeded with the live masters and
/// swaps it in.
pub(crate) struct ClusterLink {
    pub(crate) topo: ClusterTopo,
    opts: RedisOptions,
    conn: ArcSwapOption<ClusterConnection>,
    connecting: tokio::sync::Mutex<()>,
    seen: parking_lot::Mutex<ClusterView>,
    watcher: AtomicBool,
    /// The direct route: slot -> master connection. `None` while unknown or suspect;
    /// commands then go through the redis-rs cluster connection.
    routes: ArcSwapOption<Routes>,
    /// Wakes the watcher for an immediate check (a redirect, a failed node).
    recheck: tokio::sync::Notify,
}

/// Slot -> node, with one multiplexed connection per master.
pub(crate) struct Routes {
    slot_node: Vec<u16>,
    nodes: Vec<MultiplexedConnection>,
}

const NO_NODE: u16 = u16::MAX;

/// How long one node may take to answer `CLUSTER SLOTS` before the next is asked.
const SLOTS_PROBE: Duration = Duration::from_millis(300);
/// How often the cluster watcher checks the topology.
const CLUSTER_WATCH: Duration = Duration::from_millis(500);

impl ClusterLink {
    async fn conn(self: &Arc<Self>) -> Result<ClusterConnection> {
        if let Some(c) = self.conn.load_full() {
            return Ok((*c).clone());
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.conn.load_full() {
            return Ok((*c).clone());
        }
        let c = self.connect(&self.topo.seeds).await?;
        self.conn.store(Some(Arc::new(c.clone())));
        if !self.watcher.swap(true, Ordering::AcqRel) {
            tokio::spawn(watch_cluster(Arc::downgrade(self)));
        }
        // Direct routes right away, not at the first watcher tick.
        self.recheck.notify_one();
        Ok(c)
    }

    /// Runs `cmd` on one shard's master (by a slot it serves).
    pub(crate) async fn on_slot<T: redis::FromRedisValue>(
        self: &Arc<Self>,
        cmd: &redis::Cmd,
        slot: u16,
    ) -> Result<T> {
        let mut c = self.conn().await?;
        let v = c
            .route_command(
                cmd.clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                    slot,
                    SlotAddr::Master,
                ))),
            )
            .await
            .map_err(Error::from_redis)?;
        redis::from_redis_value(v).map_err(|e| Error::new(ErrorKind::Backend, e.to_string()))
    }

    /// The shards, ordered by first slot, as the topology watcher last saw them (it asks
    /// the first known node that answers, every 500 ms).
    pub(crate) async fn shards(self: &Arc<Self>) -> Result<Vec<Shard>> {
        Ok(self.view().await?.shards())
    }

    /// The direct connection for `key`'s slot, if the route is known.
    fn route(&self, key: &[u8]) -> Option<MultiplexedConnection> {
        let routes = self.routes.load();
        let r = routes.as_ref()?;
        let node = r.slot_node[usize::from(key_slot(key))];
        (node != NO_NODE).then(|| r.nodes[usize::from(node)].clone())
    }

    /// Keys grouped by node, then by slot, if every key has a direct route.
    fn by_node(&self, keys: &[&str]) -> Option<Vec<(MultiplexedConnection, Vec<Vec<usize>>)>> {
        let routes = self.routes.load();
        let r = routes.as_ref()?;
        let mut per_node: Vec<std::collections::HashMap<u16, Vec<usize>>> =
            vec![std::collections::HashMap::new(); r.nodes.len()];
        for (i, k) in keys.iter().enumerate() {
            let slot = key_slot(k.as_bytes());
            let node = r.slot_node[usize::from(slot)];
            if node == NO_NODE {
                return None;
            }
            per_node[usize::from(node)].entry(slot).or_default().push(i);
        }
        Some(
            per_node
                .into_iter()
                .enumerate()
                .filter(|(_, m)| !m.is_empty())
                .map(|(n, m)| (r.nodes[n].clone(), m.into_values().collect()))
                .collect(),
        )
    }

    /// Drops the direct routes (a redirect or a failed node) and asks for a check now.
    fn routes_stale(&self) {
        if self.routes.swap(None).is_some() {
            tracing::debug!("cluster: direct routes dropped; checking the topology");
        }
        self.recheck.notify_one();
    }

    /// Connects to every master of `view` and maps each slot to its connection. A master
    /// that does not connect leaves its slots to the redis-rs connection.
    async fn build_routes(&self, view: &ClusterView) -> Routes {
        let masters: Vec<NodeAddr> = view.shards().into_iter().map(|s| s.master).collect();
        let conns = futures_util::future::join_all(masters.iter().map(|m| {
            let url = self.topo.node_url(m);
            async move {
                let mut c =
                    tokio::time::timeout(self.opts.connect_timeout, connect_node(&url, self.opts))
                        .await
                        .ok()?
                        .ok()?;
                // Only a node that still calls itself master gets a route.
                let role = tokio::time::timeout(SLOTS_PROBE, node_role(&mut c))
                    .await
                    .ok()?
                    .ok()?;
                (role == "master").then_some(c)
            }
        }))
        .await;
        let mut slot_node = vec![NO_NODE; 16384];
        let mut nodes = Vec::new();
        let mut index = std::collections::HashMap::new();
        for (m, c) in masters.iter().zip(conns) {
            if let Some(c) = c {
                index.insert(m.clone(), nodes.len() as u16);
                nodes.push(c);
            }
        }
        for (start, end, m) in &view.ranges {
            if let Some(&n) = index.get(m) {
                for s in *start..=*end {
                    slot_node[usize::from(s)] = n;
                }
            }
        }
        Routes { slot_node, nodes }
    }

    async fn connect(&self, seeds: &[NodeAddr]) -> Result<ClusterConnection> {
        let display = self.topo.display();
        let nodes: Vec<String> = seeds.iter().map(|a| self.topo.node_url(a)).collect();
        let client = redis::cluster::ClusterClientBuilder::new(nodes)
            .connection_timeout(self.opts.connect_timeout)
            .response_timeout(self.opts.command_timeout)
            .retries(6)
            .min_retry_wait(20)
            .max_retry_wait(500)
            .build()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("cannot set up Redis client for {display}: {e}"),
                )
            })?;
        match tokio::time::timeout(
            self.opts.connect_timeout + self.opts.command_timeout,
            client.get_async_connection(),
        )
        .await
        {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) if is_auth_error(&e) || is_auth_message(&e.to_string()) => Err(refused(
                &format!("the cluster at {display}"),
                e.code().unwrap_or("authentication failed"),
                "the user and password in the URL",
            )),
            Ok(Err(e)) => Err(Error::from_redis(e)),
            Err(_) => Err(unavailable(format!(
                "no node of {display} answered within {:?}",
                self.opts.connect_timeout
            ))),
        }
    }

    /// The topology as the watcher last saw it (checked now if it has not looked yet).
    /// Listings, stats, L1 tracking and the events hub read it instead of each asking
    /// the cluster.
    async fn view(self: &Arc<Self>) -> Result<ClusterView> {
        self.conn().await?;
        if self.seen.lock().ranges.is_empty() {
            self.check_topology().await?;
        }
        let view = self.seen.lock().clone();
        if view.ranges.is_empty() {
            return Err(unavailable("the cluster reported no slots"));
        }
        Ok(view)
    }

    /// `CLUSTER SLOTS` from the first known node that answers.
    async fn fetch_on(&self, mut conn: ClusterConnection) -> Result<ClusterView> {
        let nodes = self.seen.lock().nodes.clone();
        let mut last = None;
        for n in &nodes {
            let ask = conn.route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: n.host.clone(),
                    port: n.port,
                }),
            );
            match tokio::time::timeout(SLOTS_PROBE, ask).await {
                Ok(Ok(v)) => {
                    let view = parse_slots(v)?;
                    if !view.ranges.is_empty() {
                        return Ok(view);
                    }
                }
                Ok(Err(e)) => last = Some(Error::from_redis(e)),
                Err(_) => {
                    last = Some(unavailable(format!(
                        "node {n} did not answer CLUSTER SLOTS"
                    )))
                }
            }
        }
        Err(last.unwrap_or_else(|| unavailable("no cluster node known")))
    }

    /// One topology check: rebuilds the connection if the masters changed.
    async fn check_topology(&self) -> Result<()> {
        let Some(conn) = self.conn.load_full() else {
            return Ok(());
        };
        let view = self.fetch_on((*conn).clone()).await?;
        let (changed, moved) = {
            let mut seen = self.seen.lock();
            let changed = !seen.ranges.is_empty() && seen.shards() != view.shards();
            let moved = seen.ranges != view.ranges;
            // Remember every node ever seen answering, so a later check can still find
            // one if the current masters stop.
            let mut nodes = view.nodes.clone();
            nodes.extend(
                seen.nodes
                    .iter()
                    .filter(|n| !view.nodes.contains(n))
                    .cloned(),
            );
            seen.nodes = nodes;
            seen.ranges = view.ranges.clone();
            (changed, moved)
        };
        if moved || changed {
            self.routes.store(None);
        }
        if changed {
            let masters: Vec<NodeAddr> = view.shards().into_iter().map(|s| s.master).collect();
            let fresh = self.connect(&masters).await?;
            self.conn.store(Some(Arc::new(fresh)));
            tracing::warn!(
                masters = %masters.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                "cluster masters changed (failover or resharding): reconnected with the new slot map"
            );
        }
        if self.routes.load().is_none() {
            let routes = self.build_routes(&view).await;
            // Only if nothing changed meanwhile.
            if self.seen.lock().ranges == view.ranges {
                self.routes.store(Some(Arc::new(routes)));
            }
        }
        Ok(())
    }
}

async fn watch_cluster(link: std::sync::Weak<ClusterLink>) {
    loop {
        let Some(l) = link.upgrade() else { return };
        let wake = async {
            tokio::select! {
                _ = tokio::time::sleep(CLUSTER_WATCH) => {}
                _ = l.recheck.notified() => {}
            }
        };
        wake.await;
        if let Err(e) = l.check_topology().await {
            tracing::debug!(error = %e, "cluster topology check failed");
        }
    }
}

/// Follows the master of a Sentinel-monitored group.
///
/// The sentinels' word on a failover arrives as events on their pub/sub channels; this
/// link listens on **every** sentinel, so the first one to speak is heard:
///
/// * `+selected-slave` / `+failover-state-send-slaveof-noone` (a replica was chosen and
///   is about to be promoted), `+promoted-slave` and `+switch-master`: from that moment
///   the old master is not used again, even though it still accepts writes until the
///   sentinels reconfigure it (seconds later). Until the sentinels agree on the new
///   master (or 15 s pass, if the failover is aborted), the announced node is the only
///   one a connection may be opened to, and only once its `ROLE` says `master`; in
///   between, calls are unavailable (and the fallback answers), rather than writing to a
///   node that is about to be demoted.
/// * A poll every second asks every sentinel (`SENTINEL MASTER`) and believes the
///   answer with the highest config epoch, for a missed message.
pub(crate) struct SentinelLink {
    pub(crate) topo: SentinelTopo,
    opts: RedisOptions,
    current: ArcSwapOption<Master>,
    /// One resolution at a time; the others wait for its result.
    resolving: tokio::sync::Mutex<()>,
    /// Bumped at every change of master (and when a failover is announced).
    switches: tokio::sync::watch::Sender<u64>,
    watcher: AtomicBool,
    /// The node a failover is promoting, and since when.
    target: parking_lot::Mutex<Option<(NodeAddr, std::time::Instant)>>,
}

/// How long an announced promotion is trusted without the sentinels' agreement.
const TARGET_HOLD: Duration = Duration::from_secs(15);
/// Sentinel events that name the new master: `+switch-master` ("name old-ip old-port
/// new-ip new-port"), and those naming the node being promoted ("slave ip:port ip port @
/// name ...").
const FAILOVER_EVENTS: [&str; 4] = [
    "+switch-master",
    "+selected-slave",
    "+failover-state-send-slaveof-noone",
    "+promoted-slave",
];

impl SentinelLink {
    fn sentinels(&self) -> (&[NodeAddr], &str) {
        (&self.topo.sentinels, &self.topo.master)
    }

    async fn conn(self: &Arc<Self>) -> Result<Conn> {
        let m = self.master().await?;
        Ok(Conn::Sentinel(m.conn.clone(), m))
    }

    /// The current master, resolving it if there is none.
    async fn master(self: &Arc<Self>) -> Result<Arc<Master>> {
        if let Some(m) = self.current.load_full() {
            return Ok(m);
        }
        if !self.watcher.swap(true, Ordering::AcqRel) {
            for i in 0..self.sentinels().0.len() {
                tokio::spawn(listen_sentinel(Arc::downgrade(self), i));
            }
            tokio::spawn(poll_sentinels(Arc::downgrade(self)));
        }
        self.resolve_once().await
    }

    /// Resolves the master unless another caller just did.
    async fn resolve_once(&self) -> Result<Arc<Master>> {
        let _one = self.resolving.lock().await;
        if let Some(m) = self.current.load_full() {
            return Ok(m);
        }
        let budget = self.opts.connect_timeout + self.opts.command_timeout;
        let m = match tokio::time::timeout(budget, self.resolve()).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(unavailable(format!(
                    "sentinels of {} gave no usable master within {budget:?}",
                    self.topo.display()
                )));
            }
        };
        // A failover announced while we were connecting wins over what we found.
        if self.pending().is_some_and(|t| t != m.addr) {
            return Err(unavailable("a failover started while connecting"));
        }
        self.install(m.clone());
        Ok(m)
    }

    fn install(&self, m: Arc<Master>) {
        let prev = self.current.swap(Some(m.clone()));
        if prev.as_ref().is_none_or(|p| p.addr != m.addr) {
            tracing::info!(master = %m.addr, backend = %self.topo.display(), "sentinel: using master");
            self.switches.send_modify(|n| *n += 1);
        }
    }

    fn drop_master(&self, m: &Arc<Master>, why: &str) {
        let prev = self
            .current
            .compare_and_swap(&Some(m.clone()), None::<Arc<Master>>);
        if prev.as_ref().is_some_and(|p| Arc::ptr_eq(p, m)) {
            tracing::warn!(master = %m.addr, reason = why, "sentinel: dropping master connection");
        }
    }

    /// The node an announced failover promotes, while the announcement holds.
    fn pending(&self) -> Option<NodeAddr> {
        let mut t = self.target.lock();
        match &*t {
            Some((a, at)) if at.elapsed() < TARGET_HOLD => Some(a.clone()),
            Some(_) => {
                *t = None;
                None
            }
            None => None,
        }
    }

    /// A sentinel announced that `addr` is being (or has been) promoted.
    fn promote(&self, addr: NodeAddr, why: &str) {
        let fresh = {
            let mut t = self.target.lock();
            let fresh = t.as_ref().is_none_or(|(a, _)| *a != addr);
            *t = Some((addr.clone(), std::time::Instant::now()));
            fresh
        };
        if let Some(m) = self.current.load_full()
            && m.addr != addr
        {
            self.drop_master(&m, why);
        }
        if fresh {
            tracing::info!(new_master = %addr, event = why, "sentinel: failover announced");
            // Listeners (the L1 tracking task) reconnect: the old node stops seeing writes.
            self.switches.send_modify(|n| *n += 1);
        }
    }

    /// Connects to the announced node, or to the master the sentinels name, and checks
    /// that it calls itself master.
    async fn resolve(&self) -> Result<Arc<Master>> {
        let addr = match self.pending() {
            Some(a) => a,
            None => self.ask().await?,
        };
        let mut conn = connect_node(&self.topo.node_url(&addr), self.opts)
            .await
            .map_err(Error::from_redis)?;
        let role = node_role(&mut conn).await?;
        if role != "master" {
            return Err(unavailable(format!(
                "{addr} is named master of {} but reports role {role:?} (failover in progress)",
                self.sentinels().1
            )));
        }
        Ok(Arc::new(Master { addr, conn }))
    }

    /// Asks every sentinel at once; believes the answer with the highest config epoch.
    async fn ask(&self) -> Result<NodeAddr> {
        let (sentinels, name) = self.sentinels();
        let answers =
            futures_util::future::join_all(sentinels.iter().map(|s| self.ask_one(s, name))).await;
        let mut best: Option<(u64, NodeAddr)> = None;
        let mut last = None;
        for a in answers {
            match a {
                Ok((epoch, addr)) => {
                    if best.as_ref().is_none_or(|(e, _)| epoch > *e) {
                        best = Some((epoch, addr));
                    }
                }
                Err(e) if e.kind() == ErrorKind::Config => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        match best {
            Some((_, addr)) => Ok(addr),
            None => Err(last.unwrap_or_else(|| unavailable("no sentinel given"))),
        }
    }

    /// One sentinel's view: (config epoch, master address).
    async fn ask_one(&self, s: &NodeAddr, name: &str) -> Result<(u64, NodeAddr)> {
        let url = self.topo.sentinel_url(s);
        let ask = async {
            let mut c = connect_node(&url, self.opts).await?;
            redis::cmd("SENTINEL")
                .arg("MASTER")
                .arg(name)
                .query_async::<std::collections::HashMap<String, String>>(&mut c)
                .await
        };
        let fields =
            match tokio::time::timeout(self.opts.connect_timeout + self.opts.command_timeout, ask)
                .await
            {
                Ok(Ok(f)) => f,
                Ok(Err(e)) if is_auth_error(&e) || is_auth_message(&e.to_string()) => {
                    return Err(refused(
                        &format!("sentinel {s}"),
                        e.code().unwrap_or("authentication failed"),
                        "sentinel_username/sentinel_password",
                    ));
                }
                Ok(Err(e)) if e.to_string().contains("No such master") => {
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!("sentinel {s} does not monitor a master named {name:?}"),
                    ));
                }
                Ok(Err(e)) => return Err(Error::from_redis(e)),
                Err(_) => return Err(unavailable(format!("sentinel {s} did not answer"))),
            };
        let port = fields.get("port").and_then(|p| p.parse::<u16>().ok());
        match (fields.get("ip"), port) {
            (Some(ip), Some(port)) => Ok((
                fields
                    .get("config-epoch")
                    .and_then(|e| e.parse().ok())
                    .unwrap_or(0),
                NodeAddr {
                    host: ip.clone(),
                    port,
                },
            )),
            _ => Err(Error::new(
                ErrorKind::Backend,
                format!("sentinel {s} gave no address for {name:?}"),
            )),
        }
    }
}

/// Resolves when `switches` (from [`Link::switches`]) reports a change of master; never,
/// without one.
pub(crate) async fn switched(switches: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    match switches {
        Some(w) => {
            let _ = w.changed().await;
        }
        None => std::future::pending().await,
    }
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

/// The node a sentinel event announces for master `name`, if it is about `name`.
fn announced(channel: &str, payload: &str, name: &str) -> Option<NodeAddr> {
    let t: Vec<&str> = payload.split(' ').collect();
    let (host, port) = if channel == "+switch-master" {
        // "<name> <old-ip> <old-port> <new-ip> <new-port>"
        (*t.first()? == name).then_some(())?;
        (t.get(3)?, t.get(4)?)
    } else {
        // "slave <ip:port> <ip> <port> @ <name> <master-ip> <master-port>"
        (*t.get(4)? == "@" && *t.get(5)? == name).then_some(())?;
        (t.get(2)?, t.get(3)?)
    };
    Some(NodeAddr {
        host: (*host).to_owned(),
        port: port.parse().ok()?,
    })
}

/// Listens to one sentinel's failover events, reconnecting while the link lives.
async fn listen_sentinel(link: std::sync::Weak<SentinelLink>, idx: usize) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(l) = link.upgrade() else { return };
        let (sentinels, name) = l.sentinels();
        let s = sentinels[idx].clone();
        let name = name.to_owned();
        let url = l.topo.sentinel_url(&s);
        drop(l);
        let r = async {
            let client = redis::Client::open(url.as_str())?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&FAILOVER_EVENTS[..]).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        if let Ok(Ok(pubsub)) = tokio::time::timeout(Duration::from_secs(2), r).await {
            backoff = Duration::from_millis(100);
            let mut stream = pubsub.into_on_message();
            let mut alive = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    msg = stream.next() => {
                        let Some(msg) = msg else { break };
                        let Some(l) = link.upgrade() else { return };
                        let payload = String::from_utf8_lossy(msg.get_payload_bytes()).into_owned();
                        if let Some(addr) = announced(msg.get_channel_name(), &payload, &name) {
                            l.promote(addr, msg.get_channel_name());
                        }
                    }
                    _ = alive.tick() => {
                        if link.strong_count() == 0 {
                            return;
                        }
                    }
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Once a second: ask the sentinels; end an announced promotion once they agree on it, and
/// follow a change of master that no event told us about.
async fn poll_sentinels(link: std::sync::Weak<SentinelLink>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(l) = link.upgrade() else { return };
        let Ok(best) = l.ask().await else { continue };
        let pending = l.pending();
        match pending {
            Some(t) if t == best => *l.target.lock() = None,
            Some(_) => {}
            None => {
                if l.current.load().as_ref().is_some_and(|m| m.addr != best) {
                    l.promote(best.clone(), "sentinels name a new master");
                    *l.target.lock() = None;
                    let _ = l.resolve_once().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    #[test]
    fn sentinel_events_name_the_new_master() {
        let a = announced(
            "+switch-master",
            "mymaster 127.0.0.1 6379 127.0.0.1 6380",
            "mymaster",
        )
        .unwrap();
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 6380));
        assert!(
            announced(
                "+switch-master",
                "other 127.0.0.1 6379 127.0.0.1 6380",
                "mymaster"
            )
            .is_none()
        );
        let p = announced(
            "+promoted-slave",
            "slave 127.0.0.1:6381 127.0.0.1 6381 @ mymaster 127.0.0.1 6379",
            "mymaster",
        )
        .unwrap();
        assert_eq!(p.port, 6381);
        assert!(announced("+selected-slave", "slave 1:2 1 2 @ other 1 3", "mymaster").is_none());
        assert!(announced("+selected-slave", "garbage", "mymaster").is_none());
        assert!(announced("+switch-master", "mymaster 1 2 3 notaport", "mymaster").is_none());
    }

    #[test]
    fn shards_from_cluster_slots() {
        let node = |p: i64| {
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(p),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let v = Value::Array(vec![
            Value::Array(vec![Value::Int(10923), Value::Int(16383), node(3), node(6)]),
            Value::Array(vec![Value::Int(0), Value::Int(5460), node(1), node(4)]),
            Value::Array(vec![Value::Int(5461), Value::Int(10922), node(2)]),
            Value::Array(vec![Value::Int(100), Value::Int(100), node(3)]),
        ]);
        let view = parse_slots(v).unwrap();
        assert_eq!(
            view.shards()
                .iter()
                .map(|s| (s.first_slot, s.master.port))
                .collect::<Vec<_>>(),
            vec![(0, 1), (100, 3), (5461, 2)]
        );
        assert_eq!(
            view.nodes.iter().map(|n| n.port).collect::<Vec<_>>(),
            vec![1, 3, 2, 6, 4]
        );
        assert!(parse_slots(Value::Int(1)).is_err());
    }
}
