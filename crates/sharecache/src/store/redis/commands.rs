//! The store's operations as Redis commands: [`Kv`] (key-value) and [`Coord`]
//! (coordination) for [`RedisStore`].
//!
//! This layer says *what* to send (commands, pipelines, scripts from [`scripts`]) and how
//! to read the replies; [`Exec`](super::exec::Exec) and its fan-out decide where each
//! request goes, so nothing here depends on the topology.
//!
//! **Guarantees**: compare-and-set steps (lock and fence, extend, compare-and-delete,
//! rate limits, presence, queue claim and ack) are one script each, atomic on the
//! server; batch writes are `MULTI`/`EXEC` per chunk, so a reader never sees half of one
//! chunk with TTLs missing.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use super::RedisStore;
use super::fanout::MULTI_BATCH;
use super::scripts;
use crate::error::{Error, ErrorKind, Result};
use crate::queue::{ClaimOptions, QueueMessage, QueueStats};
use crate::ratelimit::{Algorithm, Decision, Limit};
use crate::store::{BackendState, Coord, Kv, ScanPage, StoreStats};

impl RedisStore {
    /// Writes the items at `idx` (keys of one slot group) in `MULTI`/`EXEC` chunks.
    async fn mset_group(
        &self,
        items: &[(String, Bytes)],
        idx: &[usize],
        ttl: Option<Duration>,
    ) -> Result<()> {
        for chunk in idx.chunks(MULTI_BATCH) {
            // MULTI/EXEC so a reader never sees half of one chunk with TTLs missing.
            let mut pipe = redis::pipe();
            pipe.atomic();
            match ttl {
                None => {
                    let mut c = redis::cmd("MSET");
                    for &i in chunk {
                        c.arg(&items[i].0).arg(&items[i].1[..]);
                    }
                    pipe.add_command(c).ignore();
                }
                Some(t) => {
                    for &i in chunk {
                        pipe.add_command(set_cmd(&items[i].0, &items[i].1, Some(t)))
                            .ignore();
                    }
                }
            }
            self.exec.run_pipe::<()>(&pipe).await?;
        }
        Ok(())
    }
}

/// Stream entries: id and fields.
type StreamRows = Vec<(String, Vec<(String, Vec<u8>)>)>;

impl RedisStore {
    /// Up to `count` entries of the stream at `key` from `start` (`-`, or `(id` exclusive).
    async fn xrange(&self, key: &str, start: &str, count: usize) -> Result<StreamRows> {
        self.exec
            .run(
                redis::cmd("XRANGE")
                    .arg(key)
                    .arg(start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(count),
            )
            .await
    }
}

/// `XADD key [MAXLEN ~ cap] * data payload`.
fn xadd(key: &str, cap: Option<usize>, payload: &[u8]) -> redis::Cmd {
    let mut c = redis::cmd("XADD");
    c.arg(key);
    if let Some(cap) = cap {
        c.arg("MAXLEN").arg("~").arg(cap);
    }
    c.arg("*").arg("data").arg(payload);
    c
}

/// A field of a stream entry (empty when absent).
fn field(fields: &[(String, Vec<u8>)], name: &str) -> Vec<u8> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn set_cmd(key: &str, value: &[u8], ttl: Option<Duration>) -> redis::Cmd {
    let mut c = redis::cmd("SET");
    c.arg(key).arg(value);
    if let Some(t) = ttl {
        c.arg("PX").arg(t.as_millis().max(1) as u64);
    }
    c
}

/// A numeric field of an `INFO` reply (0 when absent).
fn info_field(info: &str, name: &str) -> u64 {
    info_text(info, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A field of an `INFO` reply as text.
fn info_text<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

impl RedisStore {
    /// A `WRONGTYPE` answer for `key`, saying which Redis type the key holds (one more
    /// round trip, on this error path only).
    async fn name_type(&self, key: &str, e: crate::Error) -> crate::Error {
        if e.kind() != ErrorKind::WrongType {
            return e;
        }
        match self.exec.run::<String>(redis::cmd("TYPE").arg(key)).await {
            Ok(t) => e.with_message(format!(
                "the key holds a Redis {t}, not a string: read it with a client for that type, \
                 or delete it"
            )),
            Err(_) => e,
        }
    }
}

#[async_trait]
impl Kv for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let v: Option<Vec<u8>> = match self.exec.run(redis::cmd("GET").arg(key)).await {
            Ok(v) => v,
            Err(e) => return Err(self.name_type(key, e).await),
        };
        Ok(v.map(Bytes::from))
    }

    async fn get_del(&self, key: &str) -> Result<Option<Bytes>> {
        let v: Option<Vec<u8>> = match self.exec.run(redis::cmd("GETDEL").arg(key)).await {
            Ok(v) => v,
            Err(e) => return Err(self.name_type(key, e).await),
        };
        Ok(v.map(Bytes::from))
    }

    async fn get_with_ttl(&self, key: &str) -> Result<(Option<Bytes>, Option<Duration>)> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
        let (v, pttl): (Option<Vec<u8>>, i64) = match self.exec.run_pipe(&pipe).await {
            Ok(v) => v,
            Err(e) => return Err(self.name_type(key, e).await),
        };
        // PTTL: -1 no expiry, -2 no key.
        let ttl = (pttl >= 0).then(|| Duration::from_millis(pttl as u64));
        Ok((v.map(Bytes::from), ttl))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.exec.run::<()>(&set_cmd(key, &value, ttl)).await
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let mut out = vec![None; keys.len()];
        for (idx, vals) in self
            .exec
            .multi_key::<Vec<Option<Vec<u8>>>>(keys, "MGET")
            .await?
        {
            for (i, v) in idx.into_iter().zip(vals) {
                out[i] = v.map(Bytes::from);
            }
        }
        Ok(out)
    }

    async fn mset(&self, items: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()> {
        // One atomic group per slot (one on a single server), all groups at once.
        let groups = self.exec.slot_groups(items.iter().map(|(k, _)| k.as_str()));
        let runs = groups
            .into_iter()
            .map(|idx| async move { self.mset_group(items, &idx, ttl).await });
        for r in futures_util::future::join_all(runs).await {
            r?;
        }
        Ok(())
    }

    async fn get_or_init(&self, keys: &[String], inits: &[Bytes]) -> Result<Vec<Bytes>> {
        let olds: Vec<Option<Vec<u8>>> = self
            .exec
            .per_key(keys, |pipe, i| {
                pipe.cmd("SET")
                    .arg(&keys[i])
                    .arg(&inits[i][..])
                    .arg("NX")
                    .arg("GET");
            })
            .await?;
        Ok(olds
            .into_iter()
            .zip(inits)
            .map(|(old, init)| old.map_or_else(|| init.clone(), Bytes::from))
            .collect())
    }

    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        let mut cmd = set_cmd(key, &value, ttl);
        cmd.arg("NX");
        let r: Option<String> = self.exec.run(&cmd).await?;
        Ok(r.is_some())
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        let mut inv = scripts::INCR.key(key);
        inv.arg(by)
            .arg(ttl.map_or(0, |t| t.as_millis().max(1) as u64));
        self.exec.run_script::<i64>(key, &inv).await
    }

    async fn set_if_eq(
        &self,
        key: &str,
        expected: Bytes,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let mut inv = scripts::SET_IF_EQ.key(key);
        inv.arg(&expected[..])
            .arg(&value[..])
            .arg(ttl.map_or(0, |t| t.as_millis().max(1) as u64));
        Ok(self.exec.run_script::<i64>(key, &inv).await? == 1)
    }

    async fn del_if_eq(&self, key: &str, value: Bytes) -> Result<bool> {
        let mut inv = scripts::DEL_IF_EQ.key(key);
        inv.arg(&value[..]);
        Ok(self.exec.run_script::<i64>(key, &inv).await? == 1)
    }

    async fn del(&self, keys: &[String]) -> Result<u64> {
        let counts = self.exec.multi_key::<u64>(keys, "UNLINK").await?;
        Ok(counts.into_iter().map(|(_, n)| n).sum())
    }

    async fn pttl(&self, key: &str) -> Result<Option<Option<Duration>>> {
        // -2: no key; -1: no expiry.
        let ms: i64 = self.exec.run(redis::cmd("PTTL").arg(key)).await?;
        Ok(match ms {
            -2 => None,
            ms if ms < 0 => Some(None),
            ms => Some(Some(Duration::from_millis(ms as u64))),
        })
    }

    async fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool> {
        match ttl {
            Some(t) => {
                let ms = t.as_millis().max(1) as u64;
                Ok(self
                    .exec
                    .run::<u64>(redis::cmd("PEXPIRE").arg(key).arg(ms))
                    .await?
                    == 1)
            }
            None => {
                // PERSIST answers 0 for a key without expiry too: ask whether it exists.
                let mut pipe = redis::pipe();
                pipe.cmd("PERSIST").arg(key).ignore().cmd("EXISTS").arg(key);
                let (exists,): (u64,) = self.exec.run_pipe(&pipe).await?;
                Ok(exists == 1)
            }
        }
    }

    async fn scan(&self, pattern: &str, cursor: Option<&str>, count: usize) -> Result<ScanPage> {
        let (keys, cursor) = self.exec.scan_page(pattern, cursor, count).await?;
        Ok(ScanPage { keys, cursor })
    }

    async fn delete_matching(&self, pattern: &str) -> Result<u64> {
        self.exec.delete_matching(pattern).await
    }

    async fn sizes(&self, keys: &[String]) -> Result<Vec<u64>> {
        let sizes: Vec<Option<u64>> = self
            .exec
            .per_key(keys, |pipe, i| {
                pipe.cmd("MEMORY")
                    .arg("USAGE")
                    .arg(&keys[i])
                    .arg("SAMPLES")
                    .arg(0);
            })
            .await?;
        Ok(sizes.into_iter().map(|s| s.unwrap_or(0)).collect())
    }

    async fn ping(&self) -> Result<Duration> {
        let start = Instant::now();
        let pong: String = self.exec.run(&redis::cmd("PING")).await?;
        if pong != "PONG" {
            return Err(Error::new(
                ErrorKind::Backend,
                format!("unexpected PING reply {pong:?}"),
            ));
        }
        Ok(start.elapsed())
    }

    async fn stats(&self) -> Result<StoreStats> {
        let mut total = StoreStats {
            keys: 0,
            bytes: 0,
            evictions: 0,
            state: BackendState::Connected,
            evicting_policy: None,
        };
        for node in self.exec.nodes().await? {
            let keys: u64 = self.exec.on_node(&redis::cmd("DBSIZE"), node).await?;
            let memory: String = self
                .exec
                .on_node(redis::cmd("INFO").arg("memory"), node)
                .await?;
            let stats: String = self
                .exec
                .on_node(redis::cmd("INFO").arg("stats"), node)
                .await?;
            total.keys += keys;
            total.bytes += info_field(&memory, "used_memory");
            total.evictions += info_field(&stats, "evicted_keys");
            if total.evicting_policy.is_none() {
                total.evicting_policy = info_text(&memory, "maxmemory_policy")
                    .filter(|p| p.starts_with("allkeys-"))
                    .map(str::to_owned);
            }
        }
        Ok(total)
    }

    fn state(&self) -> BackendState {
        BackendState::Connected
    }
}

#[async_trait]
impl Coord for RedisStore {
    async fn rate_limit(&self, key: &str, limit: &Limit) -> Result<Decision> {
        let script = match limit.algorithm {
            Algorithm::SlidingWindow => &*scripts::SLIDING_WINDOW,
            _ => &*scripts::GCRA,
        };
        let mut inv = script.key(key);
        inv.arg(limit.limit)
            .arg(limit.period.as_millis().max(1) as u64)
            .arg(limit.cost);
        let (allowed, remaining, retry, reset) = self
            .exec
            .run_script::<(u64, u64, u64, u64)>(key, &inv)
            .await?;
        Ok(Decision {
            allowed: allowed == 1,
            remaining,
            retry_after: Duration::from_millis(retry),
            reset_after: Duration::from_millis(reset),
        })
    }

    async fn lock_acquire(
        &self,
        key: &str,
        fence_key: &str,
        token: Bytes,
        ttl: Duration,
    ) -> Result<Option<u64>> {
        let mut inv = scripts::LOCK_ACQUIRE.key(key);
        inv.key(fence_key)
            .arg(&token[..])
            .arg(ttl.as_millis().max(1) as u64);
        self.exec.run_script::<Option<u64>>(key, &inv).await
    }

    async fn lock_extend(&self, key: &str, token: Bytes, ttl: Duration) -> Result<bool> {
        let mut inv = scripts::LOCK_EXTEND.key(key);
        inv.arg(&token[..]).arg(ttl.as_millis().max(1) as u64);
        Ok(self.exec.run_script::<i64>(key, &inv).await? == 1)
    }

    async fn lock_release(&self, key: &str, token: Bytes) -> Result<bool> {
        self.del_if_eq(key, token).await
    }

    async fn index_add(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SADD")
            .arg(key)
            .arg(member)
            .ignore()
            // NX then GT: set a TTL if there is none, and only ever lengthen it.
            .cmd("PEXPIRE")
            .arg(key)
            .arg(ttl.as_millis().max(1) as u64)
            .arg("NX")
            .ignore()
            .cmd("PEXPIRE")
            .arg(key)
            .arg(ttl.as_millis().max(1) as u64)
            .arg("GT")
            .ignore();
        self.exec.run_pipe::<()>(&pipe).await
    }

    async fn index_members(&self, key: &str) -> Result<Vec<String>> {
        self.exec.run(redis::cmd("SMEMBERS").arg(key)).await
    }

    async fn index_remove(&self, key: &str, members: &[String]) -> Result<()> {
        if members.is_empty() {
            return Ok(());
        }
        self.exec
            .run::<()>(redis::cmd("SREM").arg(key).arg(members))
            .await
    }

    async fn stream_add(&self, key: &str, payload: Bytes, max_len: usize) -> Result<String> {
        self.exec.run(&xadd(key, Some(max_len), &payload)).await
    }

    async fn stream_range(
        &self,
        key: &str,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<(String, Bytes)>> {
        let start = after.map_or_else(|| "-".to_owned(), |a| format!("({a}"));
        let rows = self.xrange(key, &start, count).await?;
        Ok(rows
            .into_iter()
            .map(|(id, fields)| (id, Bytes::from(field(&fields, "data"))))
            .collect())
    }

    async fn queue_push(&self, key: &str, payload: Bytes) -> Result<String> {
        self.exec.run(&xadd(key, None, &payload)).await
    }

    async fn queue_claim(
        &self,
        key: &str,
        dlq: &str,
        consumer: &str,
        count: usize,
        opts: &ClaimOptions,
    ) -> Result<Vec<QueueMessage>> {
        let mut inv = scripts::QUEUE_CLAIM.key(key);
        inv.key(dlq)
            .arg(consumer)
            .arg(count)
            .arg(opts.visibility.as_millis().max(1) as u64)
            .arg(opts.max_deliveries);
        let rows = self
            .exec
            .run_script::<Vec<(String, Vec<u8>, u64)>>(key, &inv)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, payload, deliveries)| QueueMessage {
                id,
                payload: Bytes::from(payload),
                deliveries,
            })
            .collect())
    }

    async fn queue_ack(&self, key: &str, ids: &[String]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut inv = scripts::QUEUE_ACK.key(key);
        for id in ids {
            inv.arg(id);
        }
        self.exec.run_script::<u64>(key, &inv).await
    }

    async fn queue_dead(&self, _key: &str, dlq: &str, count: usize) -> Result<Vec<QueueMessage>> {
        let rows = self.xrange(dlq, "-", count).await?;
        Ok(rows
            .into_iter()
            .map(|(_, fields)| QueueMessage {
                id: String::from_utf8_lossy(&field(&fields, "id")).into_owned(),
                payload: Bytes::from(field(&fields, "data")),
                deliveries: String::from_utf8_lossy(&field(&fields, "deliveries"))
                    .parse()
                    .unwrap_or(0),
            })
            .collect())
    }

    async fn queue_stats(&self, key: &str, dlq: &str) -> Result<QueueStats> {
        let mut inv = scripts::QUEUE_STATS.key(key);
        inv.key(dlq);
        let (ready, pending, dead) = self.exec.run_script::<(u64, u64, u64)>(key, &inv).await?;
        Ok(QueueStats {
            ready,
            pending,
            dead,
        })
    }

    async fn queue_dead_take(
        &self,
        key: &str,
        dlq: &str,
        id: &str,
        requeue: bool,
    ) -> Result<Option<String>> {
        let mut inv = scripts::QUEUE_DEAD_TAKE.key(key);
        inv.key(dlq)
            .arg(id)
            .arg(u8::from(requeue))
            .arg(crate::queue::MAX_DEAD_SCAN);
        self.exec.run_script::<Option<String>>(key, &inv).await
    }

    async fn publish(&self, channel: &str, payload: Bytes) -> Result<u64> {
        self.exec
            .run(redis::cmd("PUBLISH").arg(channel).arg(&payload[..]))
            .await
    }

    async fn presence_beat(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        let mut inv = scripts::PRESENCE_BEAT.key(key);
        inv.arg(member).arg(ttl.as_millis().max(1) as u64);
        self.exec.run_script::<i64>(key, &inv).await.map(|_| ())
    }

    async fn presence_leave(&self, key: &str, member: &str) -> Result<bool> {
        let mut inv = scripts::PRESENCE_LEAVE.key(key);
        inv.arg(member);
        Ok(self.exec.run_script::<i64>(key, &inv).await? == 1)
    }

    async fn presence_list(&self, key: &str) -> Result<Vec<(String, Duration)>> {
        let inv = scripts::PRESENCE_LIST.key(key);
        let flat: Vec<String> = self.exec.run_script(key, &inv).await?;
        Ok(flat
            .chunks(2)
            .filter_map(|c| {
                Some((
                    c[0].clone(),
                    Duration::from_millis(c.get(1)?.parse::<f64>().ok()? as u64),
                ))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields() {
        let info = "# Memory\r\nused_memory:1024\r\nused_memory_human:1K\r\n";
        assert_eq!(info_field(info, "used_memory"), 1024);
        assert_eq!(info_field(info, "missing"), 0);
    }
}
