//! Events: publish/subscribe per namespace, on Redis pub/sub (or in-process on the
//! memory store).
//!
//! **Delivery is at most once.** A subscriber receives the events published while it is
//! subscribed and connected; events published while its link is down are lost. For work
//! that must not be lost, use queues.
//!
//! **A slow subscriber is dropped, never buffered without bound.** Each subscription has
//! its own queue of unread events, bounded by count and by bytes
//! ([`SubscriberBuffer`], default 10 000 events and 16 MiB). A publish that would take a
//! queue past either bound ends that subscription instead: its unread events are freed at
//! once, [`Subscription::recv`] returns `None` and [`Subscription::dropped`] says why. The
//! events themselves are shared (reference-counted) between the queues of one channel, so
//! a channel holds at most one subscriber's bound of event bytes, however many
//! subscribers it has.
//!
//! One process keeps **one** pub/sub connection to Redis (opened at its first
//! subscription) whatever its number of subscribers (an SSE endpoint with a thousand clients holds one Redis subscription
//! per channel), and resubscribes every channel after a reconnect. Channels live at
//! `[prefix/]#ev:ns:channel`: a tenant can only hear the channels of namespaces it may
//! read.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// How much one subscription may hold unread before it is dropped
/// ([`CacheBuilder::subscriber_buffer`](crate::CacheBuilder::subscriber_buffer)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberBuffer {
    /// Most unread events (default 10 000).
    pub max_events: usize,
    /// Most unread bytes of event payload (default 16 MiB). One event larger than this
    /// is still delivered to a subscriber that has read everything before it.
    pub max_bytes: usize,
}

impl Default for SubscriberBuffer {
    fn default() -> Self {
        Self {
            max_events: 10_000,
            max_bytes: 16 << 20,
        }
    }
}

/// Why a subscription ended: it fell this far behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Events it had not read when it was dropped (now discarded).
    pub unread_events: usize,
    /// Their payload bytes.
    pub unread_bytes: usize,
}

/// One subscription's unread events.
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Notify,
}

#[derive(Default)]
struct QueueState {
    events: VecDeque<Bytes>,
    bytes: usize,
    dropped: Option<Dropped>,
    /// The cache is gone: nothing more will come.
    closed: bool,
}

impl Queue {
    /// Queues `payload`, or drops the subscription if that would take it past `limit`.
    /// True if queued.
    fn push(&self, payload: &Bytes, limit: SubscriberBuffer) -> bool {
        let mut s = self.state.lock();
        if s.dropped.is_some() || s.closed {
            return false;
        }
        let over_bytes = !s.events.is_empty() && s.bytes + payload.len() > limit.max_bytes;
        if s.events.len() >= limit.max_events || over_bytes {
            s.dropped = Some(Dropped {
                unread_events: s.events.len(),
                unread_bytes: s.bytes,
            });
            s.events = VecDeque::new();
            s.bytes = 0;
        } else {
            s.bytes += payload.len();
            s.events.push_back(payload.clone());
        }
        let queued = s.dropped.is_none();
        drop(s);
        self.ready.notify_one();
        queued
    }

    fn close(&self) {
        self.state.lock().closed = true;
        self.ready.notify_one();
    }
}

/// Local fan-out of channels, plus the shared Redis subscription when there is one.
pub(crate) struct Hub {
    /// Each channel's subscriptions' queues.
    channels: Mutex<HashMap<String, Vec<Arc<Queue>>>>,
    buffer: SubscriberBuffer,
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
    pub(crate) fn new(
        link: Option<Arc<crate::store::redis::link::Link>>,
        buffer: SubscriberBuffer,
    ) -> Arc<Self> {
        Arc::new(Self {
            channels: Mutex::new(HashMap::new()),
            buffer,
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
    /// Each queue is pushed under the map's lock, so subscribing, unsubscribing and
    /// delivery never interleave within one channel.
    pub(crate) fn deliver_local(&self, channel: &str, payload: Bytes) -> u64 {
        match self.channels.lock().get(channel) {
            Some(queues) => queues
                .iter()
                .filter(|q| q.push(&payload, self.buffer))
                .count() as u64,
            None => 0,
        }
    }

    pub(crate) async fn subscribe(self: &Arc<Self>, channel: &str) -> Subscription {
        let queue = Arc::new(Queue::default());
        let new = {
            let mut map = self.channels.lock();
            let queues = map.entry(channel.to_owned()).or_default();
            queues.push(queue.clone());
            queues.len() == 1
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
            queue,
            channel: channel.to_owned(),
            hub: Arc::downgrade(self),
            skipped: 0,
        }
    }

    /// Removes one subscription's queue; the last one of a channel unsubscribes it.
    fn release(&self, channel: &str, queue: &Arc<Queue>) {
        let mut map = self.channels.lock();
        let Some(queues) = map.get_mut(channel) else {
            return;
        };
        queues.retain(|q| !Arc::ptr_eq(q, queue));
        if queues.is_empty() {
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

impl Drop for Hub {
    fn drop(&mut self) {
        for queues in self.channels.get_mut().values() {
            for q in queues {
                q.close();
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
pub struct Subscription {
    queue: Arc<Queue>,
    channel: String,
    hub: Weak<Hub>,
    skipped: u64,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.channel)
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The next event (JSON text); `None` once the subscription was dropped for reading
    /// too slowly ([`dropped`](Self::dropped) says so) or the cache is gone.
    pub async fn recv(&mut self) -> Option<Bytes> {
        loop {
            {
                let mut s = self.queue.state.lock();
                if let Some(b) = s.events.pop_front() {
                    s.bytes -= b.len();
                    return Some(b);
                }
                if s.dropped.is_some() || s.closed {
                    return None;
                }
            }
            // A push between the check and here leaves a permit: no wakeup is lost.
            self.queue.ready.notified().await;
        }
    }

    /// Why the subscription ended, if it was dropped for falling behind: the events it
    /// had not read were discarded.
    pub fn dropped(&self) -> Option<Dropped> {
        self.queue.state.lock().dropped
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

    /// Events this subscription missed: those [`recv_json`](Self::recv_json) skipped
    /// because they did not decode, and the unread ones discarded when it was dropped.
    pub fn skipped(&self) -> u64 {
        self.skipped + self.dropped().map_or(0, |d| d.unread_events as u64)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.release(&self.channel, &self.queue);
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
