//! The Sentinel link: follows the master of a Sentinel-monitored group across
//! failovers (redis-rs does not, upstream issue #1438).
//!
//! **Guarantee**: from the first failover event any sentinel sends, the old master gets
//! no more commands from this process; a connection is only used once its node reports
//! `ROLE` master.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;

use super::super::url::{NodeAddr, RedisOptions, SentinelTopo};
use super::node::{connect_node, is_auth_error, is_auth_message, node_role, refused, unavailable};
use crate::error::{Error, ErrorKind, Result};

/// A master found through the sentinels.
pub(crate) struct Master {
    pub(crate) addr: NodeAddr,
    pub(super) conn: MultiplexedConnection,
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
    /// Sets up the link without connecting (the first command resolves the master).
    pub(super) fn new(topo: SentinelTopo, opts: RedisOptions) -> Self {
        Self {
            topo,
            opts,
            current: ArcSwapOption::empty(),
            resolving: tokio::sync::Mutex::new(()),
            switches: tokio::sync::watch::channel(0).0,
            watcher: AtomicBool::new(false),
            target: parking_lot::Mutex::new(None),
        }
    }

    /// A watch bumped at every change of master (and when a failover is announced).
    pub(super) fn switches(&self) -> tokio::sync::watch::Receiver<u64> {
        self.switches.subscribe()
    }

    fn sentinels(&self) -> (&[NodeAddr], &str) {
        (&self.topo.sentinels, &self.topo.master)
    }

    /// The current master, resolving it if there is none.
    pub(super) async fn master(self: &Arc<Self>) -> Result<Arc<Master>> {
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

    pub(super) fn drop_master(&self, m: &Arc<Master>, why: &str) {
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
}
