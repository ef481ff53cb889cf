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
//!   (upstream issue #1438), so `sentinel` does: it asks the sentinels for the master,
//!   connects, and checks `ROLE` says `master` before using the connection (every
//!   reconnect goes through the same path). It listens on every sentinel for the
//!   failover events (and polls once a second, for a missed message), and stops using
//!   the old master at the first of them; any connection error or `READONLY` reply drops
//!   the connection, so the next command asks the sentinels again.
//!
//! Files by role: `cluster` (the cluster link: slot map, direct routes, watcher),
//! `sentinel` (the sentinel link: resolution, failover events, poll), `node` (one node's
//! connection, role and credential checks, shared by both). This module holds the
//! `Link` the layers above use and the `Conn` a command runs on.
//!
//! **Guarantee**: on Sentinel a connection is only used once its node reports `ROLE`
//! master, and one reported failed ([`Link::failed`]) is dropped; on Cluster a direct
//! route is only used while the slot map it was built from is current.

mod cluster;
mod node;
mod sentinel;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;

pub(crate) use cluster::ClusterLink;
pub(crate) use node::node_role;
use node::{is_auth_error, is_auth_message, refused, unavailable};
use sentinel::{Master, SentinelLink};

use super::url::{RedisOptions, Topology, redact_url};
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
            Topology::Cluster(cluster) => Ok(Self::Cluster(Arc::new(ClusterLink::new(
                cluster.clone(),
                opts,
            )))),
            Topology::Sentinel(sentinel) => Ok(Self::Sentinel(Arc::new(SentinelLink::new(
                sentinel.clone(),
                opts,
            )))),
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
            Self::Sentinel(s) => {
                let m = s.master().await?;
                Ok(Conn::Sentinel(m.conn.clone(), m))
            }
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
            c.recheck();
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
            Self::Sentinel(s) => Some(s.switches()),
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
