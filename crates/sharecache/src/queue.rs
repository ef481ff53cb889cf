//! Work queues: at-least-once delivery with a visibility timeout and a dead-letter queue,
//! on Redis Streams with a consumer group (or in memory on the embedded store).
//!
//! * `push` appends a message (JSON).
//! * `claim` hands a consumer up to `count` messages: first those another consumer took
//!   but did not acknowledge within the visibility timeout (redelivered, their delivery
//!   count incremented), then new ones. A message delivered `max_deliveries` times and
//!   still not acknowledged moves to the dead-letter queue instead.
//! * `ack` removes messages for good.
//!
//! **Guarantee**: a message is never lost: until acknowledged it stays pending and is
//! redelivered after the visibility timeout (to any consumer), or dead-lettered. It may
//! be delivered more than once, so consumers must be idempotent. Queues have no memory
//! fallback: while Redis is down they fail with `Unavailable` rather than accept a
//! message Redis would never see.

use std::time::Duration;

use bytes::Bytes;

use crate::error::{Error, ErrorKind, Result};

/// Most messages one claim returns.
pub const MAX_CLAIM: usize = 1000;

/// A claimed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// Id to acknowledge it with.
    pub id: String,
    /// The JSON payload.
    pub payload: Bytes,
    /// How many times it was delivered, this time included.
    pub deliveries: u64,
}

/// How a claim treats unacknowledged messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimOptions {
    /// A message claimed but not acknowledged for this long is redelivered.
    pub visibility: Duration,
    /// Deliveries after which an unacknowledged message is dead-lettered.
    pub max_deliveries: u64,
}

impl Default for ClaimOptions {
    fn default() -> Self {
        Self {
            visibility: Duration::from_secs(30),
            max_deliveries: 5,
        }
    }
}

impl ClaimOptions {
    pub(crate) fn validate(&self, count: usize) -> Result<()> {
        let bad = |m: &str| Err(Error::new(ErrorKind::InvalidArgument, m.to_owned()));
        if !(1..=MAX_CLAIM).contains(&count) {
            return bad("count must be between 1 and 1000");
        }
        if self.visibility < Duration::from_millis(1)
            || self.visibility > Duration::from_secs(86_400)
        {
            return bad("visibility must be between 1 ms and one day");
        }
        if !(1..=1000).contains(&self.max_deliveries) {
            return bad("max_deliveries must be between 1 and 1000");
        }
        Ok(())
    }
}

/// Claim: reclaim or dead-letter idle pending messages, then read new ones.
/// KEYS: stream, dead-letter stream. ARGV: consumer, count, idle ms, max deliveries.
pub(crate) const CLAIM_LUA: &str = r#"
local key, dlq = KEYS[1], KEYS[2]
local group, consumer = 'sharecache', ARGV[1]
local count, idle, maxd = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('EXISTS', key) == 0 then return {} end
pcall(redis.call, 'XGROUP', 'CREATE', key, group, '0')
local out = {}
local pend = redis.call('XPENDING', key, group, 'IDLE', idle, '-', '+', count)
for _, p in ipairs(pend) do
  local id, deliveries = p[1], tonumber(p[4])
  local m = redis.call('XRANGE', key, id, id)
  if not m[1] then
    redis.call('XACK', key, group, id)
  elseif deliveries >= maxd then
    redis.call('XADD', dlq, '*', 'data', m[1][2][2], 'id', id, 'deliveries', tostring(deliveries))
    redis.call('XACK', key, group, id)
    redis.call('XDEL', key, id)
  else
    redis.call('XCLAIM', key, group, consumer, idle, id)
    out[#out + 1] = {id, m[1][2][2], deliveries + 1}
  end
end
local left = count - #out
if left > 0 then
  local r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', left, 'STREAMS', key, '>')
  if r then
    for _, m in ipairs(r[1][2]) do out[#out + 1] = {m[1], m[2][2], 1} end
  end
end
return out
"#;

/// Ack: XACK then XDEL. KEYS: stream. ARGV: ids. Returns how many were pending.
pub(crate) const ACK_LUA: &str = r#"
local ok, n = pcall(redis.call, 'XACK', KEYS[1], 'sharecache', unpack(ARGV))
redis.call('XDEL', KEYS[1], unpack(ARGV))
if ok then return n else return 0 end
"#;

/// The in-memory queue of the embedded store.
#[derive(Debug, Default)]
pub(crate) struct MemQueue {
    next: u64,
    ready: std::collections::VecDeque<(String, Bytes)>,
    /// id -> (payload, delivered at ms, deliveries)
    pending: std::collections::BTreeMap<String, (Bytes, u64, u64)>,
    dead: std::collections::VecDeque<QueueMessage>,
}

/// Most messages an in-memory queue holds (ready + pending + dead).
pub(crate) const MEM_QUEUE_CAP: usize = 1_000_000;

impl MemQueue {
    pub(crate) fn push(&mut self, payload: Bytes, now_ms: u64) -> Result<String> {
        if self.ready.len() + self.pending.len() + self.dead.len() >= MEM_QUEUE_CAP {
            return Err(Error::new(
                ErrorKind::ValueTooLarge,
                "queue is full (1 000 000 messages in memory)",
            ));
        }
        self.next += 1;
        let id = format!("{now_ms}-{}", self.next);
        self.ready.push_back((id.clone(), payload));
        Ok(id)
    }

    pub(crate) fn claim(
        &mut self,
        count: usize,
        opts: &ClaimOptions,
        now_ms: u64,
    ) -> Vec<QueueMessage> {
        let idle = opts.visibility.as_millis() as u64;
        let mut out = Vec::new();
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, (_, at, _))| now_ms.saturating_sub(*at) >= idle)
            .map(|(id, _)| id.clone())
            .take(count)
            .collect();
        for id in expired {
            let (payload, _, deliveries) = self.pending.remove(&id).expect("listed above");
            if deliveries >= opts.max_deliveries {
                self.dead.push_back(QueueMessage {
                    id,
                    payload,
                    deliveries,
                });
            } else {
                self.pending
                    .insert(id.clone(), (payload.clone(), now_ms, deliveries + 1));
                out.push(QueueMessage {
                    id,
                    payload,
                    deliveries: deliveries + 1,
                });
            }
        }
        while out.len() < count {
            let Some((id, payload)) = self.ready.pop_front() else {
                break;
            };
            self.pending
                .insert(id.clone(), (payload.clone(), now_ms, 1));
            out.push(QueueMessage {
                id,
                payload,
                deliveries: 1,
            });
        }
        out
    }

    pub(crate) fn ack(&mut self, ids: &[String]) -> u64 {
        ids.iter()
            .filter(|id| self.pending.remove(*id).is_some())
            .count() as u64
    }

    pub(crate) fn dead(&self, count: usize) -> Vec<QueueMessage> {
        self.dead.iter().take(count).cloned().collect()
    }
}

/// One work queue of a namespace, got from [`Namespace::queue`](crate::Namespace::queue).
/// Cheap to clone.
///
/// ```
/// # async fn demo() -> sharecache::Result<()> {
/// use std::time::Duration;
/// use sharecache::queue::ClaimOptions;
/// let jobs = sharecache::Cache::builder().memory().build().await?.namespace("jobs")?;
/// let email = jobs.queue("email")?;
/// email.push(&serde_json::json!({"to": "ada@example.com"})).await?;
/// let got = email.claim("worker-1", 10, Duration::ZERO, &ClaimOptions::default()).await?;
/// assert_eq!(got.len(), 1);
/// let ids: Vec<String> = got.into_iter().map(|m| m.id).collect();
/// assert_eq!(email.ack(&ids).await?, 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Queue {
    ns: crate::Namespace,
    key: String,
    dead: String,
}

impl crate::Namespace {
    /// The work queue `name` of this namespace (named like a key; see [`crate::queue`]).
    pub fn queue(&self, name: &str) -> Result<Queue> {
        use crate::key::Aux;
        Ok(Queue {
            key: self.space.aux(Aux::Queue, name)?,
            dead: self.space.aux(Aux::DeadLetters, name)?,
            ns: self.clone(),
        })
    }
}

impl Queue {
    /// Appends `message` (as JSON; a [`RawJson`](crate::RawJson) goes as it is); returns
    /// its id.
    pub async fn push<T: serde::Serialize + ?Sized>(&self, message: &T) -> Result<String> {
        let json = crate::RawJson::to_raw(message)?.into_bytes();
        self.ns.check_payload(&json, "message")?;
        self.ns.coord().queue_push(&self.key, json).await
    }

    /// Claims up to `count` messages for `consumer`, waiting up to `wait` for one to be
    /// available (polling; zero: look once). Redelivers messages left unacknowledged past
    /// `opts.visibility` and dead-letters those delivered `opts.max_deliveries` times.
    pub async fn claim(
        &self,
        consumer: &str,
        count: usize,
        wait: Duration,
        opts: &ClaimOptions,
    ) -> Result<Vec<QueueMessage>> {
        crate::key::validate_key(consumer)?;
        opts.validate(count)?;
        crate::lock::check_wait(wait)?;
        let got = crate::cache::poll_until(wait, Duration::from_millis(100), || async move {
            let got = self
                .ns
                .coord()
                .queue_claim(&self.key, &self.dead, consumer, count, opts)
                .await?;
            Ok((!got.is_empty()).then_some(got))
        })
        .await?;
        Ok(got.unwrap_or_default())
    }

    /// Acknowledges messages: they are done and will not be redelivered. Returns how
    /// many were pending.
    pub async fn ack(&self, ids: &[String]) -> Result<u64> {
        self.ns.check_batch(ids.len())?;
        if ids.iter().any(|id| {
            id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        }) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "message ids look like 1700000000000-0",
            ));
        }
        self.ns.coord().queue_ack(&self.key, ids).await
    }

    /// The first `count` dead-lettered messages (delivered too often without an
    /// acknowledgement).
    pub async fn dead_letters(&self, count: usize) -> Result<Vec<QueueMessage>> {
        let count = count.clamp(1, MAX_CLAIM);
        self.ns
            .coord()
            .queue_dead(&self.key, &self.dead, count)
            .await
    }
}
