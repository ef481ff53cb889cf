//! The embedded store's work queues: the same delivery rules as the Redis Streams
//! consumer group the Redis backend uses (see [`crate::queue`]), in one process.
//!
//! **Guarantee**: a claimed message stays pending until acknowledged; once idle for the
//! visibility timeout it is redelivered with its delivery count incremented, or moved to
//! the dead letters after `max_deliveries`. A queue holds at most [`MEM_QUEUE_CAP`]
//! messages in all (ready, pending and dead): a push beyond it is refused, never dropped.

use bytes::Bytes;

use crate::error::{Error, ErrorKind, Result};
use crate::queue::{ClaimOptions, QueueMessage, QueueStats};

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

    pub(crate) fn stats(&self) -> QueueStats {
        QueueStats {
            ready: self.ready.len() as u64,
            pending: self.pending.len() as u64,
            dead: self.dead.len() as u64,
        }
    }

    /// Takes the dead letter of `id` out (among the first `MAX_DEAD_SCAN`, as on Redis);
    /// with `requeue`, its payload goes back as a new message.
    pub(crate) fn dead_take(
        &mut self,
        id: &str,
        requeue: bool,
        now_ms: u64,
    ) -> Result<Option<String>> {
        let Some(i) = self
            .dead
            .iter()
            .take(crate::queue::MAX_DEAD_SCAN)
            .position(|m| m.id == id)
        else {
            return Ok(None);
        };
        let m = self.dead.remove(i).expect("found above");
        if !requeue {
            return Ok(Some(m.id));
        }
        // Out of the cap's count already (it was dead), so the push cannot be refused.
        self.push(m.payload, now_ms).map(Some)
    }
}
