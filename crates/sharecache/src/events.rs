//! Events: publish/subscribe per namespace, on Redis pub/sub (or in-process on the
//! memory store).
//!
//! **Delivery is at most once.** A subscriber receives the events published while it is
//! subscribed and connected; events published while its link is down, or faster than it
//! reads (beyond a buffer of 1024), are lost (the subscription reports how many it
//! skipped). For work that must not be lost, use queues.
//!
//! One process keeps **one** pub/sub connection to Redis (opened at its first
//! subscription) whatever its number of subscribers (an SSE endpoint with a thousand clients holds one Redis subscription
//! per channel), and resubscribes every channel after a reconnect. Channels live at
//! `[prefix/]#ev:ns:channel`: a tenant can only hear the channels of namespaces it may
//! read.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::broadcast;

/// Events buffered per channel for a slow subscriber before it skips.
const BUFFER: usize = 1024;

/// Local fan-out of channels, plus the shared Redis subscription when there is one.
pub(crate) struct Hub {
    channels: Mutex<HashMap<String, broadcast::Sender<Bytes>>>,
    sink: Mutex<Option<redis::aio::PubSubSink>>,
    /// Whether the link task runs: started at the first subscription, so a cache that
    /// never subscribes holds no pub/sub connection.
    started: std::sync::atomic::AtomicBool,
    /// True while the link is up (every channel known at connect time subscribed).
    up: tokio::sync::watch::Sender<bool>,
    link: Option<Arc<crate::store::redis::link::Link>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("channels", &self.channels.lock().len())
            .finish_non_exhaustive()
    }
}

impl Hub {
    pub(crate) fn new(link: Option<Arc<crate::store::redis::link::Link>>) -> Arc<Self> {
        Arc::new(Self {
            channels: Mutex::new(HashMap::new()),
            sink: Mutex::new(None),
            started: std::sync::atomic::AtomicBool::new(false),
            up: tokio::sync::watch::channel(false).0,
            link,
        })
    }

    /// Starts the link task once; waits (bounded) until it is up.
    async fn link(self: &Arc<Self>) {
        if self.link.is_none() {
            return;
        }
        if !self.started.swap(true, std::sync::atomic::Ordering::AcqRel) {
            tokio::spawn(run(Arc::downgrade(self)));
        }
        let mut up = self.up.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(2), up.wait_for(|u| *u)).await;
    }

    pub(crate) fn is_redis(&self) -> bool {
        self.link.is_some()
    }

    /// Delivers to this process's subscribers of `channel`; returns how many.
    pub(crate) fn deliver_local(&self, channel: &str, payload: Bytes) -> u64 {
        match self.channels.lock().get(channel) {
            Some(tx) => tx.send(payload).map_or(0, |n| n as u64),
            None => 0,
        }
    }

    pub(crate) async fn subscribe(self: &Arc<Self>, channel: &str) -> Subscription {
        let (rx, new) = {
            let mut map = self.channels.lock();
            match map.get(channel) {
                Some(tx) => (tx.subscribe(), false),
                None => {
                    let (tx, rx) = broadcast::channel(BUFFER);
                    map.insert(channel.to_owned(), tx);
                    (rx, true)
                }
            }
        };
        if new {
            self.link().await;
            // Subscribe (again: harmless if the link's own subscribe-all already did)
            // and wait for the server's confirmation, so an event published after this
            // call returns is heard. If it fails the link is down, and the reconnect loop
            // subscribes every channel.
            let sink = self.sink.lock().clone();
            if let Some(mut sink) = sink {
                let _ = sink.subscribe(channel).await;
            }
        }
        Subscription {
            rx,
            channel: channel.to_owned(),
            hub: Arc::downgrade(self),
            skipped: 0,
        }
    }

    fn release(&self, channel: &str) {
        let mut map = self.channels.lock();
        if map.get(channel).is_some_and(|tx| tx.receiver_count() == 0) {
            map.remove(channel);
            if let Some(mut sink) = self.sink.lock().clone() {
                let ch = channel.to_owned();
                tokio::spawn(async move {
                    let _ = sink.unsubscribe(ch).await;
                });
            }
        }
    }
}

/// Keeps the shared pub/sub connection: connect, subscribe every channel, forward
/// messages; on loss, reconnect with backoff and subscribe again.
async fn run(hub: Weak<Hub>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(h) = hub.upgrade() else { return };
        let link = h.link.clone().expect("run only for Redis hubs");
        drop(h);
        let mut switches = link.switches();
        let conn = async {
            let url = link.pubsub_url().await?;
            let client = redis::Client::open(url.as_str()).map_err(crate::Error::from_redis)?;
            client
                .get_async_pubsub()
                .await
                .map_err(crate::Error::from_redis)
        };
        match tokio::time::timeout(Duration::from_secs(2), conn)
            .await
            .unwrap_or_else(|_| {
                Err(crate::Error::new(
                    crate::ErrorKind::Unavailable,
                    "timed out",
                ))
            }) {
            Ok(pubsub) => {
                backoff = Duration::from_millis(50);
                let (mut sink, mut stream) = pubsub.split();
                {
                    let Some(h) = hub.upgrade() else { return };
                    let channels: Vec<String> = h.channels.lock().keys().cloned().collect();
                    if !channels.is_empty() && sink.subscribe(&channels).await.is_err() {
                        continue;
                    }
                    *h.sink.lock() = Some(sink);
                    h.up.send_replace(true);
                }
                // A stopped node (SIGSTOP, a partition) closes nothing: ping it every
                // second, and resubscribe elsewhere when it does not answer.
                let mut alive = tokio::time::interval(Duration::from_secs(1));
                alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    let msg = tokio::select! {
                        m = stream.next() => m,
                        // Sentinel: the master changed; subscribe on the new one.
                        () = crate::store::redis::link::switched(&mut switches) => None,
                        _ = alive.tick() => {
                            let Some(h) = hub.upgrade() else { return };
                            let sink = h.sink.lock().clone();
                            drop(h);
                            let Some(mut sink) = sink else { break };
                            match tokio::time::timeout(
                                Duration::from_secs(1),
                                sink.ping::<redis::Value>(),
                            )
                            .await
                            {
                                Ok(Ok(_)) => continue,
                                _ => None,
                            }
                        }
                    };
                    let Some(msg) = msg else { break };
                    let Some(h) = hub.upgrade() else { return };
                    h.deliver_local(
                        msg.get_channel_name(),
                        Bytes::copy_from_slice(msg.get_payload_bytes()),
                    );
                }
                if let Some(h) = hub.upgrade() {
                    *h.sink.lock() = None;
                    h.up.send_replace(false);
                }
                link.recheck();
                tracing::warn!("event subscription link lost: resubscribing");
            }
            Err(e) => tracing::debug!(error = %e, "event subscription: cannot connect"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// A subscription to one channel. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Bytes>,
    channel: String,
    hub: Weak<Hub>,
    skipped: u64,
}

impl Subscription {
    /// The next event (JSON text); `None` if the cache is gone.
    pub async fn recv(&mut self) -> Option<Bytes> {
        loop {
            match self.rx.recv().await {
                Ok(b) => return Some(b),
                Err(broadcast::error::RecvError::Lagged(n)) => self.skipped += n,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next event decoded as `T`; events that do not decode are skipped.
    pub async fn recv_json<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        loop {
            let b = self.recv().await?;
            if let Ok(v) = serde_json::from_slice(&b) {
                return Some(v);
            }
            self.skipped += 1;
        }
    }

    /// The subscription as a `Stream` of events decoded as `T` (events that do not
    /// decode are skipped).
    pub fn into_stream<T: serde::de::DeserializeOwned>(
        self,
    ) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::unfold(self, |mut sub| async move {
            let v = sub.recv_json::<T>().await?;
            Some((v, sub))
        })
    }

    /// Events this subscription missed because it read too slowly.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(h) = self.hub.upgrade() {
            // Our receiver still counts until this struct is gone: release after it.
            let (hub, ch) = (h, std::mem::take(&mut self.channel));
            let rx = std::mem::replace(&mut self.rx, broadcast::channel(1).1);
            drop(rx);
            hub.release(&ch);
        }
    }
}

/// Events kept per durable channel (the oldest are trimmed).
const DURABLE_KEEP: usize = 10_000;

/// One channel of a namespace, got from
/// [`Namespace::channel`](crate::Namespace::channel). Cheap to clone.
///
/// ```
/// # async fn demo() -> sharecache::Result<()> {
/// let chat = sharecache::Cache::builder().memory().build().await?.namespace("chat")?;
/// let room = chat.channel("room:1")?;
/// let mut sub = room.subscribe().await?;
/// assert_eq!(room.publish(&serde_json::json!({"text": "hi"})).await?, 1);
/// let got: serde_json::Value = sub.recv_json().await.unwrap();
/// assert_eq!(got["text"], "hi");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Channel {
    ns: crate::Namespace,
    key: String,
    log: String,
}

impl crate::Namespace {
    /// Channel `name` of this namespace (named like a key; see [`crate::events`]).
    pub fn channel(&self, name: &str) -> crate::Result<Channel> {
        use crate::key::Aux;
        Ok(Channel {
            key: self.space.aux(Aux::Channel, name)?,
            log: self.space.aux(Aux::EventLog, name)?,
            ns: self.clone(),
        })
    }
}

impl Channel {
    /// Publishes `event` (as JSON; a [`RawJson`](crate::RawJson) goes as it is); returns
    /// how many receivers got it (on Redis: subscribed processes; in memory:
    /// subscriptions). At most once. While Redis is down, only this process's
    /// subscribers receive it.
    pub async fn publish<T: serde::Serialize + ?Sized>(&self, event: &T) -> crate::Result<u64> {
        let json = crate::RawJson::to_raw(event)?.into_bytes();
        self.ns.check_payload(&json, "event")?;
        self.send(json).await
    }

    /// Publishes durably: the event is also kept (the last 10 000 per channel) in a
    /// stream, so a subscriber that was away can replay what it missed with
    /// [`since`](Self::since). Returns the event's id and the receivers. Fails with
    /// `Unavailable` while Redis is down (nothing durable can be promised then).
    pub async fn publish_durable<T: serde::Serialize + ?Sized>(
        &self,
        event: &T,
    ) -> crate::Result<(String, u64)> {
        let json = crate::RawJson::to_raw(event)?.into_bytes();
        self.ns.check_payload(&json, "event")?;
        let id = self
            .ns
            .coord()
            .stream_add(&self.log, json.clone(), DURABLE_KEEP)
            .await?;
        Ok((id, self.send(json).await?))
    }

    async fn send(&self, json: Bytes) -> crate::Result<u64> {
        let hub = &self.ns.inner.hub;
        if !hub.is_redis() {
            return Ok(hub.deliver_local(&self.key, json));
        }
        match self.ns.coord().publish(&self.key, json.clone()).await {
            Ok(n) => Ok(n),
            Err(e) if e.is_unavailable() => Ok(hub.deliver_local(&self.key, json)),
            Err(e) => Err(e),
        }
    }

    /// Durable events after `after` (an id from [`publish_durable`](Self::publish_durable)
    /// or a previous call; `None`: the oldest kept), at most `count` (1..=1000), oldest
    /// first, each with its id.
    pub async fn since(
        &self,
        after: Option<&str>,
        count: usize,
    ) -> crate::Result<Vec<(String, crate::RawJson)>> {
        if let Some(a) = after {
            match crate::store::memory::parse_stream_id(a) {
                None => {
                    return Err(crate::Error::new(
                        crate::ErrorKind::InvalidArgument,
                        "event ids look like 1700000000000-0",
                    ));
                }
                // Nothing can follow the largest id (and Redis refuses an exclusive
                // range that starts there).
                Some(id) if id == (u64::MAX, u64::MAX) => return Ok(Vec::new()),
                Some(_) => {}
            }
        }
        let events = self
            .ns
            .coord()
            .stream_range(&self.log, after, count.clamp(1, 1000))
            .await?;
        Ok(events
            .into_iter()
            .map(|(id, json)| (id, crate::RawJson::trusted(json)))
            .collect())
    }

    /// Subscribes. Dropping the subscription unsubscribes; it is resubscribed by itself
    /// after a reconnect.
    pub async fn subscribe(&self) -> crate::Result<Subscription> {
        Ok(self.ns.inner.hub.subscribe(&self.key).await)
    }
}
