//! A Redis Sentinel deployment on free ports, killed on drop: one master, one replica and
//! three sentinels monitoring them with quorum 2.
//!
//! ```no_run
//! use std::time::Duration;
//! use sharecache_testkit::RedisSentinels;
//!
//! let s = RedisSentinels::start("mymaster");
//! let url = s.url(); // redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/mymaster
//! s.master().cmd(&["SET", "k", "v"]);
//! s.wait_in_sync(Duration::from_secs(10)).unwrap();
//! let new_master = s.failover(); // SENTINEL FAILOVER: the replica becomes master
//!
//! // Automatic failover: the sentinels replace a SIGSTOPped master.
//! let old = s.master();
//! old.pause();
//! s.wait_master_change(old.port(), Duration::from_secs(20));
//! old.resume(); // the sentinels turn it into a replica (after `failover-timeout`)
//! s.wait_in_sync(Duration::from_secs(20)).unwrap();
//! ```
//!
//! The data nodes run with `--repl-diskless-sync-delay 0` (Redis 7 otherwise waits 5 s
//! before every full sync) and, with a password, `--requirepass` and `--masterauth` (so
//! either can replicate from the other). Each has a config file, `<dir>/redis.conf`, which
//! the sentinels' `CONFIG REWRITE` updates on every role change, so a
//! [`restart`](RedisServer::restart)ed data node keeps its latest role.
//!
//! Each sentinel is `redis-server <dir>/sentinel.conf --sentinel` with:
//!
//! ```text
//! sentinel monitor NAME 127.0.0.1 MASTER_PORT 2
//! sentinel down-after-milliseconds NAME 1000
//! sentinel failover-timeout NAME 5000
//! sentinel parallel-syncs NAME 1
//! sentinel auth-pass NAME PASSWORD        # with SentinelConfig::password
//! requirepass SENTINEL_PASSWORD           # with SentinelConfig::sentinel_password
//! ```
//!
//! Sentinels that share a `requirepass` use it to talk to one another too.
//!
//! Sentinel behaviour worth knowing in tests:
//!
//! * After a failover, a former master that answers (resumed, or never stopped as with
//!   [`failover`](RedisSentinels::failover)) keeps reporting itself as master, and
//!   accepting writes that it later discards, until the sentinels turn it into a replica:
//!   they look at a replica's role in its `INFO` only every 10 s, and act once it has
//!   claimed to be master for `failover-timeout` (5 s), so this takes about 10 s.
//!   [`wait_in_sync`](RedisSentinels::wait_in_sync) waits for it.
//! * A sentinel whose timer stalls for more than 2 s (e.g. one
//!   [`pause`d](RedisServer::pause) that long) enters TILT mode: it keeps monitoring but
//!   acts on nothing until 30 s have passed without a stall. It even answers `OK` to
//!   `SENTINEL FAILOVER` and then does nothing, so [`failover`](RedisSentinels::failover)
//!   skips sentinels in TILT mode. Pause data nodes, not sentinels, to test failovers.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{Kind, PROBE, RedisConfig, RedisServer, RespReply, info_field, percent_encode, poll};

/// `sentinel down-after-milliseconds`.
const DOWN_AFTER_MS: u64 = 1000;
/// `sentinel failover-timeout`.
const FAILOVER_TIMEOUT_MS: u64 = 5000;
/// How long [`RedisSentinels::start`] waits for a ready deployment.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`RedisSentinels::failover`] waits for the new master.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(20);

/// Options for [`RedisSentinels`].
#[derive(Debug, Clone)]
pub struct SentinelConfig {
    /// The name the sentinels monitor the master under (`mymaster` by default).
    pub master_name: String,
    /// Require this password on the data nodes (`--requirepass`, `--masterauth`); the
    /// sentinels get it as `sentinel auth-pass`.
    pub password: Option<String>,
    /// Require this password on the sentinels themselves (`requirepass` in sentinel mode).
    pub sentinel_password: Option<String>,
    /// Extra `redis-server` arguments for the two data nodes, after the testkit's own.
    pub extra_args: Vec<String>,
}

impl Default for SentinelConfig {
    fn default() -> Self {
        Self {
            master_name: "mymaster".to_owned(),
            password: None,
            sentinel_password: None,
            extra_args: Vec::new(),
        }
    }
}

/// A running master + replica monitored by three sentinels, every process a
/// [`RedisServer`] killed (and its directory removed) on drop, also when a test panics.
#[derive(Debug)]
pub struct RedisSentinels {
    // Dropped first, so that no sentinel reacts to the data nodes going away.
    sentinels: Vec<RedisServer>,
    servers: Vec<RedisServer>,
    config: SentinelConfig,
}

impl RedisSentinels {
    /// Starts a master, its replica and three sentinels that monitor the master as
    /// `master_name`, and waits until the replica's link is up and every sentinel names
    /// the master, knows the replica and the two other sentinels, and reports a quorum
    /// that can authorize a failover (`SENTINEL CKQUORUM`).
    ///
    /// # Panics
    /// If `redis-server` is missing, or the deployment is not ready within 30 s (with what
    /// is not ready and the end of every process's log).
    pub fn start(master_name: &str) -> Self {
        Self::start_with(SentinelConfig {
            master_name: master_name.to_owned(),
            ..SentinelConfig::default()
        })
    }

    /// Starts a deployment with options; see [`start`](Self::start).
    pub fn start_with(config: SentinelConfig) -> Self {
        let name = &config.master_name;
        assert!(
            !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == '"'),
            "invalid master name {name:?}"
        );
        let mut data_args: Vec<String> = vec!["--repl-diskless-sync-delay".into(), "0".into()];
        if let Some(p) = &config.password {
            data_args.extend(["--masterauth".to_owned(), p.clone()]);
        }
        data_args.extend(config.extra_args.iter().cloned());
        let data_config = RedisConfig {
            persistent: false,
            password: config.password.clone(),
            extra_args: data_args,
        };
        let master = RedisServer::launch(data_config.clone(), Kind::Standalone, Some(""));
        let replicaof = format!("replicaof 127.0.0.1 {}\n", master.port());
        let replica = RedisServer::launch(data_config, Kind::Standalone, Some(&replicaof));
        // From here on, a panic drops `s` and so kills every process.
        let mut s = Self {
            sentinels: Vec::new(),
            servers: vec![master, replica],
            config,
        };
        // Sentinels discover replicas from the master's INFO, refreshed every 10 s: start
        // them once the replica is attached, so they see it at once.
        if let Err(e) = poll(START_TIMEOUT, || s.check_link(&s.servers[0], &s.servers[1])) {
            panic!(
                "the replica did not sync within {START_TIMEOUT:?}: {e}\n{}",
                s.logs()
            );
        }
        let conf = s.sentinel_conf();
        for _ in 0..3 {
            let sentinel_config = RedisConfig {
                persistent: false,
                password: s.config.sentinel_password.clone(),
                extra_args: Vec::new(),
            };
            s.sentinels.push(RedisServer::launch(
                sentinel_config,
                Kind::Sentinel,
                Some(&conf),
            ));
        }
        if let Err(e) = poll(START_TIMEOUT, || s.check_ready()) {
            panic!(
                "the sentinels were not ready within {START_TIMEOUT:?}: {e}\n{}",
                s.logs()
            );
        }
        s
    }

    fn sentinel_conf(&self) -> String {
        let name = &self.config.master_name;
        let mut conf = format!(
            "sentinel monitor {name} 127.0.0.1 {} 2\n\
             sentinel down-after-milliseconds {name} {DOWN_AFTER_MS}\n\
             sentinel failover-timeout {name} {FAILOVER_TIMEOUT_MS}\n\
             sentinel parallel-syncs {name} 1\n",
            self.servers[0].port()
        );
        if let Some(p) = &self.config.password {
            conf.push_str(&format!("sentinel auth-pass {name} {}\n", conf_quote(p)));
        }
        conf
    }

    /// `redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/NAME`, the URL form
    /// sharecache accepts: the userinfo holds the **data nodes'** credentials
    /// (`redis+sentinel://:PASS@...`), the query the sentinels' own
    /// (`?sentinel_password=SPASS`; sharecache also reads `sentinel_username`). Passwords
    /// are percent-encoded.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        let userinfo = match &self.config.password {
            Some(p) => format!(":{}@", percent_encode(p)),
            None => String::new(),
        };
        let query = match &self.config.sentinel_password {
            Some(p) => format!("?sentinel_password={}", percent_encode(p)),
            None => String::new(),
        };
        format!(
            "redis+sentinel://{userinfo}{}/{}{query}",
            hosts.join(","),
            self.config.master_name
        )
    }

    /// The name the sentinels monitor the master under.
    pub fn master_name(&self) -> &str {
        &self.config.master_name
    }

    /// The two data nodes, `[0]` the initial master and `[1]` the initial replica. Roles
    /// change with failovers; see [`master`](Self::master).
    pub fn servers(&self) -> &[RedisServer] {
        &self.servers
    }

    /// The three sentinels (their [`cmd`](RedisServer::cmd) uses the sentinel password).
    pub fn sentinels(&self) -> &[RedisServer] {
        &self.sentinels
    }

    /// The data node that the answering sentinels name as master now
    /// (`SENTINEL get-master-addr-by-name`; the majority if they disagree mid-failover).
    ///
    /// # Panics
    /// If no sentinel answers, or they name a node that is not one of [`servers`](Self::servers).
    pub fn master(&self) -> &RedisServer {
        match self.named_master() {
            Ok(port) => self.server(port),
            Err(e) => panic!("{e}"),
        }
    }

    /// The data node that is not [`master`](Self::master).
    pub fn replica(&self) -> &RedisServer {
        let master = self.master().port();
        self.servers
            .iter()
            .find(|s| s.port() != master)
            .expect("two data nodes")
    }

    fn server(&self, port: u16) -> &RedisServer {
        self.servers
            .iter()
            .find(|s| s.port() == port)
            .unwrap_or_else(|| panic!("the sentinels name port {port}, not one of the data nodes"))
    }

    /// Each answering sentinel's master port.
    fn votes(&self) -> Vec<(u16, u16)> {
        let name = self.config.master_name.as_str();
        self.sentinels
            .iter()
            .filter_map(
                |s| match s.probe(&["SENTINEL", "get-master-addr-by-name", name], PROBE) {
                    Ok(RespReply::Array(a)) => match a.get(1) {
                        Some(RespReply::Value(p)) => Some((s.port(), p.parse().ok()?)),
                        _ => None,
                    },
                    _ => None,
                },
            )
            .collect()
    }

    fn named_master(&self) -> Result<u16, String> {
        let votes = self.votes();
        let mut count: BTreeMap<u16, usize> = BTreeMap::new();
        for &(_, port) in &votes {
            *count.entry(port).or_default() += 1;
        }
        count
            .into_iter()
            .max_by_key(|&(_, n)| n)
            .map(|(port, _)| port)
            .ok_or_else(|| "no sentinel answers SENTINEL get-master-addr-by-name".to_owned())
    }

    /// Waits until the data node that is not the sentinels' master replicates from it
    /// with its link up and has everything the master had when last asked (its
    /// `slave_repl_offset` reached the master's `master_repl_offset`). Useful before
    /// injecting a fault, and after a failover (see the module docs).
    ///
    /// # Errors
    /// What is not in sync at the deadline.
    pub fn wait_in_sync(&self, timeout: Duration) -> Result<(), String> {
        poll(timeout, || {
            let port = self.named_master()?;
            let master = self
                .servers
                .iter()
                .find(|s| s.port() == port)
                .ok_or_else(|| format!("the sentinels name port {port}, not a data node"))?;
            let replica = self
                .servers
                .iter()
                .find(|s| s.port() != port)
                .expect("two data nodes");
            self.check_link(master, replica)
        })
    }

    /// `replica` replicates from `master`, link up, offset caught up.
    fn check_link(&self, master: &RedisServer, replica: &RedisServer) -> Result<(), String> {
        let info = |node: &RedisServer| match node.probe(&["INFO", "replication"], PROBE) {
            Ok(RespReply::Value(v)) => Ok(v),
            other => Err(format!("INFO replication on {}: {other:?}", node.port())),
        };
        let m = info(master)?;
        let m_role = info_field(&m, "role").unwrap_or("?");
        if m_role != "master" {
            return Err(format!("{} reports role {m_role}", master.port()));
        }
        let m_offset: u64 = info_field(&m, "master_repl_offset")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let r = info(replica)?;
        let (role, master_port, link) = (
            info_field(&r, "role").unwrap_or("?"),
            info_field(&r, "master_port").unwrap_or("?"),
            info_field(&r, "master_link_status").unwrap_or("?"),
        );
        if role != "slave" || master_port != master.port().to_string() || link != "up" {
            return Err(format!(
                "{} reports role:{role} master_port:{master_port} master_link_status:{link} \
                 (master is {})",
                replica.port(),
                master.port()
            ));
        }
        let r_offset: u64 = info_field(&r, "slave_repl_offset")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if r_offset < m_offset {
            return Err(format!(
                "{} is at offset {r_offset}, master {} at {m_offset}",
                replica.port(),
                master.port()
            ));
        }
        Ok(())
    }

    /// Every sentinel answers, names the initial master, sees the replica and two other
    /// sentinels, and has a quorum.
    fn check_ready(&self) -> Result<(), String> {
        let name = self.config.master_name.as_str();
        let (master, replica) = (self.servers[0].port(), self.servers[1].port());
        self.check_link(&self.servers[0], &self.servers[1])?;
        for s in &self.sentinels {
            let port = s.port();
            let ask = |args: &[&str]| {
                s.probe(args, PROBE)
                    .map_err(|e| format!("sentinel {port}: {args:?}: {e}"))
            };
            let named = ask(&["SENTINEL", "get-master-addr-by-name", name])?;
            let expected = RespReply::Array(vec![
                RespReply::Value("127.0.0.1".into()),
                RespReply::Value(master.to_string()),
            ]);
            if named != expected {
                return Err(format!("sentinel {port} names {named:?} as master"));
            }
            let m = fields(&ask(&["SENTINEL", "master", name])?);
            let get = |k: &str| m.get(k).map(String::as_str).unwrap_or("?");
            if get("flags") != "master" || get("num-other-sentinels") != "2" {
                return Err(format!(
                    "sentinel {port}: master flags {}, num-other-sentinels {}",
                    get("flags"),
                    get("num-other-sentinels")
                ));
            }
            let replicas = match ask(&["SENTINEL", "replicas", name])? {
                RespReply::Array(r) => r.iter().map(fields).collect::<Vec<_>>(),
                other => return Err(format!("sentinel {port}: SENTINEL replicas: {other:?}")),
            };
            let known = replicas.iter().any(|r| {
                r.get("port") == Some(&replica.to_string())
                    && r.get("flags").map(String::as_str) == Some("slave")
                    && r.get("master-link-status").map(String::as_str) == Some("ok")
            });
            if !known {
                return Err(format!(
                    "sentinel {port} does not see replica {replica} as healthy: {replicas:?}"
                ));
            }
            match ask(&["SENTINEL", "ckquorum", name])? {
                RespReply::Value(v) if v.starts_with("OK") => {}
                other => return Err(format!("sentinel {port}: SENTINEL CKQUORUM: {other:?}")),
            }
        }
        Ok(())
    }

    /// `SENTINEL FAILOVER NAME` on the first sentinel that is not in TILT mode and accepts
    /// it (a forced failover: no agreement needed, the master may be healthy), then
    /// [`wait_master_change`](Self::wait_master_change). Returns the new master's port.
    ///
    /// The old master becomes a replica only about 10 s later (see the module docs); call
    /// [`wait_in_sync`](Self::wait_in_sync) to wait for it.
    ///
    /// # Panics
    /// If no sentinel accepts the failover, or it does not complete within 20 s in three
    /// attempts (a sentinel that enters TILT mode abandons a failover: it is asked again
    /// once TILT ends).
    pub fn failover(&self) -> u16 {
        let old = self.master().port();
        // A sentinel whose event loop stalls (a slow disk under a loaded machine) enters
        // TILT mode in the middle of a failover and abandons it: ask again once no
        // sentinel is in TILT, up to three times.
        let mut last = String::new();
        for _ in 0..3 {
            self.ask_failover();
            match self.try_wait_master_change(old, FAILOVER_TIMEOUT) {
                Ok(port) => return port,
                Err(e) => last = e,
            }
            if self.master().port() != old {
                return self.wait_master_change(old, FAILOVER_TIMEOUT);
            }
            let _ = poll(Duration::from_secs(40), || {
                let tilted = self.sentinels.iter().any(|s| {
                    !matches!(s.probe(&["INFO", "sentinel"], PROBE),
                        Ok(RespReply::Value(info)) if info_field(&info, "sentinel_tilt") == Some("0"))
                });
                if tilted {
                    Err("a sentinel is in TILT mode".to_owned())
                } else {
                    Ok(())
                }
            });
        }
        panic!(
            "the sentinels did not move the master off port {old} in three attempts: {last}\n{}",
            self.logs()
        )
    }

    /// `SENTINEL FAILOVER` on the first sentinel not in TILT mode that accepts it.
    fn ask_failover(&self) {
        let name = self.config.master_name.as_str();
        let accepted = poll(FAILOVER_TIMEOUT, || {
            let mut replies = Vec::new();
            for s in &self.sentinels {
                // A sentinel in TILT mode accepts the command but does nothing for 30 s.
                match s.probe(&["INFO", "sentinel"], PROBE) {
                    Ok(RespReply::Value(info))
                        if info_field(&info, "sentinel_tilt") == Some("0") => {}
                    other => {
                        replies.push(format!(
                            "{}: in TILT mode or not answering ({other:?})",
                            s.port()
                        ));
                        continue;
                    }
                }
                match s.probe(&["SENTINEL", "failover", name], PROBE) {
                    Ok(RespReply::Value(v)) if v == "OK" => return Ok(()),
                    other => replies.push(format!("{}: {other:?}", s.port())),
                }
            }
            Err(replies.join(", "))
        });
        if let Err(e) = accepted {
            panic!(
                "no sentinel accepted SENTINEL FAILOVER {name}: {e}\n{}",
                self.logs()
            );
        }
    }

    /// Waits until every answering sentinel names the same master other than `old_port`
    /// and that node reports `ROLE` master; returns its port. After a master is paused or
    /// killed this takes about 2-4 s (1 s `down-after-milliseconds`, agreement, leader
    /// election, promotion).
    ///
    /// # Panics
    /// If that does not happen within `timeout` (with the sentinels' answers and logs).
    pub fn wait_master_change(&self, old_port: u16, timeout: Duration) -> u16 {
        self.try_wait_master_change(old_port, timeout)
            .unwrap_or_else(|e| {
                panic!(
                    "the sentinels did not move the master off port {old_port} within \
                     {timeout:?}: {e}\n{}",
                    self.logs()
                )
            })
    }

    /// [`wait_master_change`](Self::wait_master_change) that says why instead of
    /// panicking.
    fn try_wait_master_change(&self, old_port: u16, timeout: Duration) -> Result<u16, String> {
        poll(timeout, || {
            let votes = self.votes();
            let Some(&(_, port)) = votes.first() else {
                return Err("no sentinel answers".to_owned());
            };
            if port == old_port || votes.iter().any(|&(_, p)| p != port) {
                return Err(format!("sentinels (port, master): {votes:?}"));
            }
            let node = self
                .servers
                .iter()
                .find(|s| s.port() == port)
                .ok_or_else(|| format!("the sentinels name port {port}, not a data node"))?;
            match node.role() {
                Some(r) if r == "master" => Ok(port),
                other => Err(format!("sentinels name {port}, whose ROLE is {other:?}")),
            }
        })
    }

    /// The end of every process's log, for failure messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        for (what, nodes) in [("data node", &self.servers), ("sentinel", &self.sentinels)] {
            for n in nodes.iter() {
                out.push_str(&format!(
                    "\n--- log of {what} {}:\n{}",
                    n.port(),
                    n.log_tail(20)
                ));
            }
        }
        out
    }
}

/// A flat `[key, value, key, value, ...]` reply (`SENTINEL master`, one entry of
/// `SENTINEL replicas`) as a map; anything else as an empty map.
fn fields(reply: &RespReply) -> BTreeMap<String, String> {
    let RespReply::Array(items) = reply else {
        return BTreeMap::new();
    };
    items
        .chunks(2)
        .filter_map(|kv| match kv {
            [RespReply::Value(k), RespReply::Value(v)] => Some((k.clone(), v.clone())),
            _ => None,
        })
        .collect()
}

/// A double-quoted string for a Redis config file (backslash escapes, as `sdssplitargs`
/// reads them).
fn conf_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_fields() {
        assert_eq!(conf_quote(r#"a"b\c d"#), r#""a\"b\\c d""#);
        assert_eq!(conf_quote("é"), r#""\xc3\xa9""#);
        let reply = RespReply::Array(
            ["name", "m", "flags", "master"]
                .map(|v| RespReply::Value(v.into()))
                .to_vec(),
        );
        let f = fields(&reply);
        assert_eq!(f.get("flags").map(String::as_str), Some("master"));
        assert_eq!(f.len(), 2);
    }
}
