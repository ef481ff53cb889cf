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
