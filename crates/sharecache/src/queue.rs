//! Work queues: at-least-once delivery with a visibility timeout and a dead-letter queue,
//! on Redis Streams with a consumer group (`store/redis/lua/queue_claim.lua`,
//! `queue_ack.lua`), or in memory on the embedded store (`store/memory/queue.rs`).
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

/// Most dead letters [`Queue::requeue_dead`] and [`Queue::drop_dead`] look through for
/// the one asked.
pub const MAX_DEAD_SCAN: usize = 10_000;

/// How many messages a queue holds ([`Queue::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct QueueStats {
    /// Pushed and not yet delivered.
    pub ready: u64,
    /// Delivered and not yet acknowledged (redelivered after the visibility timeout).
    pub pending: u64,
    /// Dead-lettered: delivered `max_deliveries` times without an acknowledgement.
    pub dead: u64,
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

/// A message id as claims give it: `1700000000000-0`.
fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "message ids look like 1700000000000-0",
        ));
    }
    Ok(())
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

/// Most queues one page of [`Namespace::queues`](crate::Namespace::queues) lists.
pub const MAX_QUEUES_PAGE: usize = 100;

impl crate::Namespace {
    /// The names of this namespace's work queues, at most `count` per page (clamped to
    /// 1..=[`MAX_QUEUES_PAGE`]); pass the cursor back for more. On Redis and Cluster a
    /// queue is its stream, listed by SCAN in bounded steps (never `KEYS`), so a page
    /// costs the same at a million keys; a queue stays listed once pushed to, emptied
    /// or not. The embedded memory store keeps its queues beside its key map, where
    /// this listing does not reach: there it lists none (open a queue by name).
    pub async fn queues(&self, cursor: Option<&str>, count: usize) -> Result<crate::KeyPage> {
        self.aux_names(
            crate::key::Aux::Queue,
            cursor,
            count.clamp(1, MAX_QUEUES_PAGE),
        )
        .await
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
        for id in ids {
            check_id(id)?;
        }
        self.ns.coord().queue_ack(&self.key, ids).await
    }

    /// How many messages are ready, pending and dead, in one atomic step.
    pub async fn stats(&self) -> Result<QueueStats> {
        self.ns.coord().queue_stats(&self.key, &self.dead).await
    }

    /// Puts the dead letter of message `id` (as [`dead_letters`](Self::dead_letters)
    /// shows it) back on the queue as a new message, delivered afresh; returns the new
    /// id, or `None` if there is no such dead letter among the first
    /// [`MAX_DEAD_SCAN`]. Atomic: of racing callers, one requeues it.
    pub async fn requeue_dead(&self, id: &str) -> Result<Option<String>> {
        check_id(id)?;
        self.ns
            .coord()
            .queue_dead_take(&self.key, &self.dead, id, true)
            .await
    }

    /// Drops the dead letter of message `id` for good; whether there was one (among the
    /// first [`MAX_DEAD_SCAN`]).
    pub async fn drop_dead(&self, id: &str) -> Result<bool> {
        check_id(id)?;
        Ok(self
            .ns
            .coord()
            .queue_dead_take(&self.key, &self.dead, id, false)
            .await?
            .is_some())
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
