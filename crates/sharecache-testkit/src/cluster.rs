//! A 6-node Redis Cluster (3 masters, 3 replicas) on free ports, killed on drop.
//!
//! ```no_run
//! use sharecache_testkit::RedisCluster;
//!
//! let cluster = RedisCluster::start();
//! let url = cluster.url(); // redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
//! let master = cluster.master_for_slot(RedisCluster::slot_of("user:1"));
//! master.cmd(&["SET", "user:1", "x"]);
//! let replica = cluster.replica_of(master);
//! cluster.failover(replica); // manual failover: `replica` is now the slots' master
//!
//! // Automatic failover: a SIGSTOPped master is replaced by its replica in ~3-5 s.
//! let master = cluster.master_for_slot(0);
//! let replica = cluster.replica_of(master);
//! master.pause();
//! cluster
//!     .wait_until_master(replica, std::time::Duration::from_secs(20))
//!     .unwrap();
//! master.resume(); // it rejoins as a replica of `replica`
//! cluster.wait_healthy(std::time::Duration::from_secs(20)).unwrap();
//! ```
//!
//! The cluster is built by hand (`CLUSTER SET-CONFIG-EPOCH`, `MEET`, `ADDSLOTSRANGE`,
//! `REPLICATE`), so the pairs are deterministic: [`nodes`](RedisCluster::nodes)`()[i]` is
//! the initial master of the `i`-th third of the slots (`0-5460`, `5461-10922`,
//! `10923-16383`) and `nodes()[i + 3]` its replica.
//!
//! Every node runs with:
//!
//! * `--cluster-enabled yes --cluster-config-file <its dir>/nodes.conf`, so a
//!   [`restart`](RedisServer::restart)ed node rejoins with its identity;
//! * `--cluster-port <a second free port>`: the default bus port, `port + 10000`, does not
//!   exist for ephemeral ports above 55535;
//! * `--cluster-node-timeout 2000`;
//! * `--cluster-replica-validity-factor 0`: a replica always tries to replace a failed
//!   master, however long ago it last heard from it (with the default factor, a replica
//!   whose master has been silent for more than `10 * node-timeout + 10 s` never does);
//! * `--cluster-allow-replica-migration no`: replicas stay with their master;
//! * `--repl-diskless-sync-delay 0`: Redis 7 otherwise waits 5 s before every full sync;
//! * `--repl-ping-replica-period 1`: Redis 7.0 leaves a replica out of `CLUSTER SLOTS`
//!   until its replication offset is not 0, and a fresh master's offset only moves with
//!   its first write or replica PING (every 10 s by default);
//! * with a password, `--requirepass` and `--masterauth`, so replicas can sync.
//!
//! [`ClusterConfig::extra_args`] come last and override any of these.

use std::time::{Duration, Instant};

use crate::{Kind, PROBE, RedisConfig, RedisServer, RespReply, free_port, info_field, poll};

/// The initial masters' slot ranges, as `redis-cli --cluster create` assigns them.
const SLOT_RANGES: [(u16, u16); 3] = [(0, 5460), (5461, 10922), (10923, 16383)];
/// Redis Cluster's number of hash slots.
const SLOTS: u16 = 16384;
/// How long [`RedisCluster::start`] waits for a healthy cluster.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`RedisCluster::failover`] waits.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(20);
/// A manual failover that has not happened after this long is requested again (Redis
/// abandons one after 5 s).
const FAILOVER_RETRY: Duration = Duration::from_secs(7);

/// Options for a [`RedisCluster`].
#[derive(Debug, Clone, Default)]
pub struct ClusterConfig {
    /// Require this password on every node (`--requirepass`, and `--masterauth` so that
    /// replicas can sync); the testkit's own commands use it.
    pub password: Option<String>,
    /// Extra `redis-server` arguments for every node, after (and so overriding) the
    /// testkit's own, e.g. `["--maxmemory", "10mb"]`.
    pub extra_args: Vec<String>,
}

/// A running 6-node Redis Cluster: 3 masters with one replica each. Every node is a
/// [`RedisServer`], killed (and its directory removed) on drop, also when a test panics.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// `ids[i]` is the cluster node id of `nodes[i]` (stable across restarts).
    ids: Vec<String>,
    password: Option<String>,
}

/// One `CLUSTER SLOTS` entry, with nodes identified by port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SlotRange {
    start: u16,
    end: u16,
    master: u16,
    /// Sorted: nodes list replicas in discovery order.
    replicas: Vec<u16>,
}

impl std::fmt::Display for SlotRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}-{} master {} replicas {:?}",
            self.start, self.end, self.master, self.replicas
        )
    }
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
struct NodeLine {
    port: u16,
    flags: Vec<String>,
    /// The master's id for a replica, `-` for a master.
    master: String,
    config_epoch: u64,
    /// Served slot ranges (importing/migrating markers are left out).
    slots: Vec<(u16, u16)>,
}

impl NodeLine {
    fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
    }
}

impl RedisCluster {
    /// Starts a cluster without a password and waits until it is fully formed: every
    /// node reports `cluster_state:ok`, all nodes return the same `CLUSTER SLOTS`, and
    /// every replica reports `master_link_status:up`.
    ///
    /// # Panics
    /// If `redis-server` is missing, or the cluster is not ready within 30 s (with what is
    /// not ready and the end of every node's log).
    pub fn start() -> Self {
        Self::start_with(ClusterConfig::default())
    }

    /// Starts a cluster with options; see [`start`](Self::start).
    pub fn start_with(config: ClusterConfig) -> Self {
        let mut common: Vec<String> = [
            "--cluster-node-timeout",
            "2000",
            "--cluster-replica-validity-factor",
            "0",
            "--cluster-allow-replica-migration",
            "no",
            "--repl-diskless-sync-delay",
            "0",
            "--repl-ping-replica-period",
            "1",
        ]
        .map(String::from)
        .to_vec();
        if let Some(p) = &config.password {
            common.extend(["--masterauth".to_owned(), p.clone()]);
        }
        let mut nodes = Vec::with_capacity(6);
        let mut bus_ports = Vec::with_capacity(6);
        for _ in 0..6 {
            let bus = free_port();
            let mut extra_args = vec!["--cluster-port".to_owned(), bus.to_string()];
            extra_args.extend(common.iter().cloned());
            extra_args.extend(config.extra_args.iter().cloned());
            let node_config = RedisConfig {
                persistent: false,
                password: config.password.clone(),
                extra_args,
            };
            nodes.push(RedisServer::launch(node_config, Kind::ClusterNode, None));
            bus_ports.push(bus);
        }
        let ids = nodes
            .iter()
            .map(|n| match n.cmd(&["CLUSTER", "MYID"]) {
                RespReply::Value(id) => id,
                other => panic!("CLUSTER MYID on port {}: {other:?}", n.port()),
            })
            .collect();
        // From here on, a panic drops `cluster` and so kills every node.
        let cluster = Self {
            nodes,
            ids,
            password: config.password,
        };
        cluster.build(&bus_ports);
        if let Err(e) = poll(START_TIMEOUT, || cluster.check(true)) {
            panic!(
                "the Redis Cluster did not become ready within {START_TIMEOUT:?}: {e}\n{}",
                cluster.logs()
            );
        }
        cluster
    }

    /// Joins the fresh nodes into the cluster: distinct config epochs (so that no epoch
    /// collision has to be resolved), MEET, slots for the first three, REPLICATE for the
    /// last three.
    fn build(&self, bus_ports: &[u16]) {
        let expect_ok = |node: &RedisServer, args: &[&str]| match node.cmd(args) {
            RespReply::Value(v) if v == "OK" => {}
            other => panic!("{args:?} on port {}: {other:?}", node.port()),
        };
        for (i, node) in self.nodes.iter().enumerate() {
            expect_ok(node, &["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()]);
        }
        for (node, bus) in self.nodes.iter().zip(bus_ports).skip(1) {
            let (port, bus) = (node.port().to_string(), bus.to_string());
            expect_ok(
                &self.nodes[0],
                &["CLUSTER", "MEET", "127.0.0.1", &port, &bus],
            );
        }
        for (node, (a, b)) in self.nodes.iter().zip(SLOT_RANGES) {
            let (a, b) = (a.to_string(), b.to_string());
            expect_ok(node, &["CLUSTER", "ADDSLOTSRANGE", &a, &b]);
        }
        for i in 0..3 {
            let replica = &self.nodes[i + 3];
            // The replica must first have learnt the master's id through gossip.
            let joined = poll(START_TIMEOUT, || {
                match replica.cmd(&["CLUSTER", "REPLICATE", &self.ids[i]]) {
                    RespReply::Value(v) if v == "OK" => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            });
            if let Err(e) = joined {
                panic!(
                    "CLUSTER REPLICATE {} on port {}: {e}\n{}",
                    self.ids[i],
                    replica.port(),
                    self.logs()
                );
            }
        }
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`: the three initial masters
    /// as seeds (they stay cluster members after failovers, as replicas). With a password:
    /// `redis+cluster://:PASS@...`, the password percent-encoded.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self.nodes[..3]
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let userinfo = match &self.password {
            Some(p) => format!(":{}@", crate::percent_encode(p)),
            None => String::new(),
        };
        format!("redis+cluster://{userinfo}{}", seeds.join(","))
    }

    /// All six nodes: `[..3]` are the initial masters, `[i + 3]` the initial replica of
    /// `[i]`. Roles change with failovers; see [`masters`](Self::masters).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The nodes that answer and report `ROLE` master right now (a paused or killed node
    /// is in neither [`masters`](Self::masters) nor [`replicas`](Self::replicas)).
    pub fn masters(&self) -> Vec<&RedisServer> {
        self.with_role("master")
    }

    /// The nodes that answer and report `ROLE` slave right now.
    pub fn replicas(&self) -> Vec<&RedisServer> {
        self.with_role("slave")
    }

    fn with_role(&self, role: &str) -> Vec<&RedisServer> {
        self.nodes
            .iter()
            .filter(|n| n.role().as_deref() == Some(role))
            .collect()
    }

    /// The cluster node id of `node` (one of [`nodes`](Self::nodes)).
    pub fn node_id(&self, node: &RedisServer) -> &str {
        &self.ids[self.index_of(node)]
    }

    fn index_of(&self, node: &RedisServer) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port() == node.port())
            .unwrap_or_else(|| panic!("port {} is not a node of this cluster", node.port()))
    }

    /// The hash slot of `key`, as `CLUSTER KEYSLOT` computes it: CRC16-XMODEM modulo
    /// 16384 of the key, or of its hash tag, the part between the first `{` and the next
    /// `}` when that part is not empty (`{user1000}.following` hashes `user1000`).
    pub fn slot_of(key: impl AsRef<[u8]>) -> u16 {
        let key = key.as_ref();
        let tag = key.iter().position(|&b| b == b'{').and_then(|open| {
            let rest = &key[open + 1..];
            match rest.iter().position(|&b| b == b'}') {
                Some(len) if len > 0 => Some(&rest[..len]),
                _ => None,
            }
        });
        crc16_xmodem(tag.unwrap_or(key)) % SLOTS
    }

    /// The node serving `slot` now: among the masters that claim it in the `CLUSTER NODES`
    /// view of any answering node, the one with the highest config epoch (a failover
    /// always raises it), so a replaced master that has not yet learnt it is ignored.
    ///
    /// Right after a master is paused or killed, and until its replica takes over, this is
    /// still that master. Call [`wait_healthy`](Self::wait_healthy) first for a master that
    /// answers.
    ///
    /// # Panics
    /// If no answering node knows a master for `slot`.
    pub fn master_for_slot(&self, slot: u16) -> &RedisServer {
        assert!(slot < SLOTS, "slot {slot} is out of range 0..16384");
        let best = self
            .nodes
            .iter()
            .filter_map(|n| cluster_nodes(n).ok())
            .flatten()
            .filter(|l| l.has_flag("master") && l.serves(slot))
            .max_by_key(|l| l.config_epoch);
        match best.and_then(|l| self.nodes.iter().find(|n| n.port() == l.port)) {
            Some(node) => node,
            None => panic!("no node serves slot {slot}\n{}", self.describe()),
        }
    }

    /// The replica of `master`: the answering node whose `ROLE` names `master` as its
    /// master, else (for a paused or killed replica) the node that `CLUSTER NODES` lists as
    /// `master`'s replica.
    ///
    /// # Panics
    /// If `master` is not a node of this cluster, or has no replica.
    pub fn replica_of(&self, master: &RedisServer) -> &RedisServer {
        let master_id = self.node_id(master);
        let by_role = self.nodes.iter().find(|n| {
            matches!(n.probe(&["ROLE"], PROBE), Ok(RespReply::Array(r))
                if r.first() == Some(&RespReply::Value("slave".into()))
                    && r.get(2) == Some(&RespReply::Value(master.port().to_string())))
        });
        let by_view = || {
            let port = self
                .nodes
                .iter()
                .filter_map(|n| cluster_nodes(n).ok())
                .flatten()
                .find(|l| l.has_flag("slave") && !l.has_flag("fail") && l.master == master_id)?
                .port;
            self.nodes.iter().find(|n| n.port() == port)
        };
        match by_role.or_else(by_view) {
            Some(node) => node,
            None => panic!(
                "node {} (port {}) has no replica\n{}",
                master_id,
                master.port(),
                self.describe()
            ),
        }
    }

    /// Waits until every answering node reports `cluster_state:ok`, all of them return the
    /// same `CLUSTER SLOTS`, and every answering replica reports `master_link_status:up`.
    /// Paused and killed nodes are skipped.
    ///
    /// # Errors
    /// What is not ready at the deadline.
    pub fn wait_healthy(&self, timeout: Duration) -> Result<(), String> {
        poll(timeout, || self.check(false))
    }

    /// Checks health; `full` also requires all six nodes to answer, in the initial
    /// topology (three masters with one replica each).
    fn check(&self, full: bool) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut maps: Vec<(u16, Vec<SlotRange>)> = Vec::new();
        for node in &self.nodes {
            let port = node.port();
            let info = match node.probe(&["CLUSTER", "INFO"], PROBE) {
                Ok(RespReply::Value(info)) => info,
                Ok(other) => {
                    problems.push(format!("{port}: CLUSTER INFO replied {other:?}"));
                    continue;
                }
                Err(e) => {
                    if full {
                        problems.push(format!("{port}: does not answer ({e})"));
                    }
                    continue;
                }
            };
            let state = info_field(&info, "cluster_state").unwrap_or("?");
            if state != "ok" {
                problems.push(format!("{port}: cluster_state:{state}"));
            }
            match node.probe(&["INFO", "replication"], PROBE) {
                Ok(RespReply::Value(repl)) => {
                    let role = info_field(&repl, "role").unwrap_or("?");
                    if role == "slave" {
                        let link = info_field(&repl, "master_link_status").unwrap_or("?");
                        if link != "up" {
                            problems.push(format!("{port}: master_link_status:{link}"));
                        }
                    }
                }
                other => problems.push(format!("{port}: INFO replication replied {other:?}")),
            }
            match node.probe(&["CLUSTER", "SLOTS"], PROBE).map(parse_slots) {
                Ok(Ok(map)) => maps.push((port, map)),
                Ok(Err(e)) => problems.push(format!("{port}: CLUSTER SLOTS: {e}")),
                Err(e) => problems.push(format!("{port}: CLUSTER SLOTS: {e}")),
            }
        }
        match maps.first() {
            None if problems.is_empty() => problems.push("no node answers".to_owned()),
            None => {}
            Some((first_port, first)) => {
                if let Some((port, map)) = maps.iter().find(|(_, m)| m != first) {
                    problems.push(format!(
                        "nodes disagree on CLUSTER SLOTS: {first_port} says [{}], {port} says [{}]",
                        join(first),
                        join(map)
                    ));
                } else if full && (first.len() != 3 || first.iter().any(|r| r.replicas.len() != 1))
                {
                    problems.push(format!(
                        "CLUSTER SLOTS is not 3 masters with a replica each yet: [{}]",
                        join(first)
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Sends `CLUSTER FAILOVER` to `replica` (a manual failover: its master stops writes,
    /// the replica catches up and takes over with no data loss) and waits until `replica`
    /// reports `ROLE` master and the cluster is healthy again (its old master replicating
    /// from it). Requests the failover again if it has not happened after 7 s.
    ///
    /// # Panics
    /// If `replica` is not a replica of this cluster, refuses the failover, or the cluster
    /// is not healthy with `replica` as master within 20 s.
    pub fn failover(&self, replica: &RedisServer) {
        self.index_of(replica);
        let role = replica.role();
        assert!(
            role.as_deref() == Some("slave"),
            "failover needs a replica, but port {} reports role {role:?}",
            replica.port()
        );
        let mut requested: Option<Instant> = None;
        let done = poll(FAILOVER_TIMEOUT, || {
            let role = replica.role();
            if role.as_deref() == Some("master") {
                return self
                    .check(false)
                    .map_err(|e| format!("not healthy yet: {e}"));
            }
            if requested.is_none_or(|at| at.elapsed() > FAILOVER_RETRY) {
                match replica.cmd(&["CLUSTER", "FAILOVER"]) {
                    RespReply::Value(v) if v == "OK" => requested = Some(Instant::now()),
                    other => panic!(
                        "CLUSTER FAILOVER on port {}: {other:?}\n{}",
                        replica.port(),
                        self.describe()
                    ),
                }
            }
            Err(format!("port {} reports role {role:?}", replica.port()))
        });
        if let Err(e) = done {
            panic!(
                "manual failover to port {} did not complete within {FAILOVER_TIMEOUT:?}: {e}\n{}",
                replica.port(),
                self.describe()
            );
        }
    }

    /// Waits until `node` reports `ROLE` master and `cluster_state:ok`: after its master
    /// was paused or killed, the automatic failover has promoted it. With the 2 s node
    /// timeout this takes about 3-5 s (2 s until the master is suspected, the other
    /// masters' agreement that it failed, a 0.5-1 s random delay, then the election).
    ///
    /// # Errors
    /// `node`'s role and cluster state at the deadline.
    pub fn wait_until_master(&self, node: &RedisServer, timeout: Duration) -> Result<(), String> {
        self.index_of(node);
        poll(timeout, || {
            let role = node.role();
            let state = match node.probe(&["CLUSTER", "INFO"], PROBE) {
                Ok(RespReply::Value(info)) => info_field(&info, "cluster_state").map(String::from),
                _ => None,
            };
            if role.as_deref() == Some("master") && state.as_deref() == Some("ok") {
                Ok(())
            } else {
                Err(format!(
                    "port {} reports role {role:?}, cluster_state {state:?}",
                    node.port()
                ))
            }
        })
    }

    /// `CLUSTER NODES` of the first answering node, for failure messages.
    fn describe(&self) -> String {
        self.nodes
            .iter()
            .find_map(|n| match n.probe(&["CLUSTER", "NODES"], PROBE) {
                Ok(RespReply::Value(v)) => Some(format!("CLUSTER NODES on {}:\n{v}", n.port())),
                _ => None,
            })
            .unwrap_or_else(|| "no node answers CLUSTER NODES".to_owned())
    }

    /// The end of every node's log, for failure messages.
    fn logs(&self) -> String {
        let mut out = self.describe();
        for n in &self.nodes {
            out.push_str(&format!(
                "\n--- log of port {}:\n{}",
                n.port(),
                n.log_tail(15)
            ));
        }
        out
    }
}

/// CRC16-XMODEM (polynomial 0x1021, initial value 0), Redis Cluster's key hash.
fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn join(map: &[SlotRange]) -> String {
    map.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses `CLUSTER SLOTS` into ranges sorted by first slot.
fn parse_slots(reply: RespReply) -> Result<Vec<SlotRange>, String> {
    let RespReply::Array(entries) = reply else {
        return Err(format!("unexpected reply {reply:?}"));
    };
    let num = |r: Option<&RespReply>| match r {
        Some(RespReply::Value(v)) => v.parse::<u16>().map_err(|e| format!("{v:?}: {e}")),
        other => Err(format!("expected a number, got {other:?}")),
    };
    let node_port = |r: &RespReply| match r {
        RespReply::Array(fields) => num(fields.get(1)),
        other => Err(format!("expected a node, got {other:?}")),
    };
    let mut map = Vec::new();
    for entry in entries {
        let RespReply::Array(fields) = entry else {
            return Err(format!("unexpected entry {entry:?}"));
        };
        let master = node_port(fields.get(2).ok_or("entry without a master")?)?;
        let mut replicas = fields[3..]
            .iter()
            .map(node_port)
            .collect::<Result<Vec<_>, _>>()?;
        replicas.sort_unstable();
        map.push(SlotRange {
            start: num(fields.first())?,
            end: num(fields.get(1))?,
            master,
            replicas,
        });
    }
    map.sort_by_key(|r| r.start);
    Ok(map)
}

/// `CLUSTER NODES` of `node`, parsed.
fn cluster_nodes(node: &RedisServer) -> Result<Vec<NodeLine>, String> {
    let text = match node.probe(&["CLUSTER", "NODES"], PROBE) {
        Ok(RespReply::Value(text)) => text,
        other => return Err(format!("CLUSTER NODES on {}: {other:?}", node.port())),
    };
    Ok(text.lines().filter_map(parse_node_line).collect())
}

/// `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...`
fn parse_node_line(line: &str) -> Option<NodeLine> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 8 {
        return None;
    }
    let addr = f[1].split(['@', ',']).next()?;
    let port = addr.rsplit_once(':')?.1.parse().ok()?;
    let slots = f[8..]
        .iter()
        .filter(|s| !s.starts_with('['))
        .filter_map(|s| match s.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => s.parse().ok().map(|a| (a, a)),
        })
        .collect();
    Some(NodeLine {
        port,
        flags: f[2].split(',').map(String::from).collect(),
        master: f[3].to_owned(),
        config_epoch: f[6].parse().ok()?,
        slots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_of_matches_cluster_keyslot() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.0.
        for (key, slot) in [
            ("foo", 12182),
            ("bar", 5061),
            ("x", 16287),
            ("123456789", 12739),
            ("", 0),
            ("{user1000}.following", 3443),
            ("user1000", 3443),
            ("a{}b", 13694),
            ("{}{x}", 3257),
        ] {
            assert_eq!(RedisCluster::slot_of(key), slot, "slot of {key:?}");
        }
        assert_eq!(
            RedisCluster::slot_of("{user1000}.followers"),
            RedisCluster::slot_of("{user1000}.following")
        );
        assert_eq!(
            RedisCluster::slot_of("x{tag}y{z}"),
            RedisCluster::slot_of("tag")
        );
        assert_eq!(RedisCluster::slot_of(b"foo".as_slice()), 12182);
    }

    #[test]
    fn parses_cluster_nodes_lines() {
        let line = "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host \
                    slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected";
        let l = parse_node_line(line).unwrap();
        assert_eq!((l.port, l.config_epoch), (30004, 4));
        assert!(l.has_flag("slave") && l.slots.is_empty());
        assert_eq!(l.master, "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca");
        let line = "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca :30001@31001 myself,master - 0 0 1 \
                    connected 0-5460 5470 [5461->-07c37dfeb235213a872192d90877d0cd55635b91]";
        let l = parse_node_line(line).unwrap();
        assert!(l.has_flag("myself") && l.master == "-");
        assert_eq!(l.slots, vec![(0, 5460), (5470, 5470)]);
        assert!(l.serves(5470) && !l.serves(5461));
    }
}
