//! The Redis Cluster link: one redis-rs cluster connection, a slot map with direct
//! routes (one multiplexed connection per master), and a watcher that re-reads
//! `CLUSTER SLOTS` every 500 ms and rebuilds what changed.
//!
//! **Guarantee**: a master that stops answering is replaced within a watcher tick of the
//! cluster promoting its replica (redis-rs alone would keep retrying the stopped node),
//! and a direct route is only used while the slot map it was built from is current.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};

use super::super::url::{ClusterTopo, NodeAddr, RedisOptions, key_slot};
use super::node::{connect_node, is_auth_error, is_auth_message, node_role, refused, unavailable};
use crate::error::{Error, ErrorKind, Result};

/// One cluster shard as `CLUSTER SLOTS` reports it: its master and the lowest slot it
/// serves (a stable name for the shard across a failover).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shard {
    pub(crate) first_slot: u16,
    pub(crate) master: NodeAddr,
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
    /// Sets up the link without connecting (the first command connects).
    pub(super) fn new(topo: ClusterTopo, opts: RedisOptions) -> Self {
        Self {
            seen: parking_lot::Mutex::new(ClusterView {
                ranges: Vec::new(),
                nodes: topo.seeds.clone(),
            }),
            topo,
            opts,
            conn: ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(()),
            watcher: AtomicBool::new(false),
            routes: ArcSwapOption::empty(),
            recheck: tokio::sync::Notify::new(),
        }
    }

    /// Wakes the watcher for a check now rather than at its next tick.
    pub(super) fn recheck(&self) {
        self.recheck.notify_one();
    }

    pub(super) async fn conn(self: &Arc<Self>) -> Result<ClusterConnection> {
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
    pub(super) fn route(&self, key: &[u8]) -> Option<MultiplexedConnection> {
        let routes = self.routes.load();
        let r = routes.as_ref()?;
        let node = r.slot_node[usize::from(key_slot(key))];
        (node != NO_NODE).then(|| r.nodes[usize::from(node)].clone())
    }

    /// Keys grouped by node, then by slot, if every key has a direct route.
    pub(super) fn by_node(
        &self,
        keys: &[&str],
    ) -> Option<Vec<(MultiplexedConnection, Vec<Vec<usize>>)>> {
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
    pub(super) fn routes_stale(&self) {
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
        let view = match self.fetch_on((*conn).clone()).await {
            Ok(view) => view,
            Err(first) => {
                // The connection itself may be what is stuck: after a shard's master and
                // replica both restarted, its node connections can stay dead while the
                // nodes answer again. Ask through a fresh connection, and keep it if it
                // answers (the masters did not change, so nothing else would rebuild it).
                let nodes = self.seen.lock().nodes.clone();
                let Ok(fresh) = self.connect(&nodes).await else {
                    return Err(first);
                };
                let view = self.fetch_on(fresh.clone()).await?;
                self.conn.store(Some(Arc::new(fresh)));
                self.routes.store(None);
                tracing::warn!(error = %first, "cluster connection rebuilt: the old one stopped answering");
                view
            }
        };
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

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::*;

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
