//! `--follow`: keep copying the changes made after the snapshot, until Ctrl-C (the cutover).
//!
//! Before the snapshot starts, every source node gets a pub/sub connection subscribed to
//! its keyspace notifications (`__keyspace@DB__:<match>`), so no change made during the
//! snapshot is missed. An event only marks its key dirty; the key's current state is then
//! read from the source and written to the target (`RESTORE ... REPLACE` with its expiry
//! time, or `UNLINK` when the key is gone: deleted, expired, evicted, renamed away), so
//! the order and number of events do not matter and a burst on one key costs one copy.
//! Keyspace notifications must be on (`notify-keyspace-events` with `K` and every class);
//! they are switched on only with `--enable-notifications`.
//!
//! The source is authoritative in this phase: a change overwrites the target key.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;

use super::bytype;
use super::copy::Source;
use super::endpoint::Endpoint;
use super::value::{Expiry, bulk, now_ms, ttl_cmd};

/// What the follow phase did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FollowReport {
    /// Keyspace events received.
    pub events: u64,
    /// Keys written again after a change.
    pub updated: u64,
    /// Keys removed from the target because they left the source.
    pub deleted: u64,
    /// Keys that could not be copied (listed on stderr).
    pub failed: u64,
    /// The longest time from an event to its key on the target, ms.
    pub max_lag_ms: u64,
}

/// A dirty key: which source, which key.
type Event = (usize, Vec<u8>);

/// The subscriptions, started before the snapshot.
#[derive(Debug)]
pub(crate) struct Follower {
    rx: mpsc::UnboundedReceiver<Option<Event>>,
}

/// The event classes a copy needs: generic, string, list, set, hash, zset, expired,
/// evicted, stream (`A` is all of them).
const CLASSES: &str = "g$lshzxet";

fn covers(flags: &str) -> bool {
    flags.contains('K') && (flags.contains('A') || CLASSES.chars().all(|c| flags.contains(c)))
}

/// Checks (or, with `enable`, switches on) keyspace notifications on every source node
/// and subscribes to them.
pub(crate) async fn start(
    sources: &[Source],
    pattern: &str,
    enable: bool,
) -> anyhow::Result<Follower> {
    let (tx, rx) = mpsc::unbounded_channel();
    for (si, (spec, ep)) in sources.iter().enumerate() {
        for (n, (addr, conn)) in ep.scan_nodes().iter().enumerate() {
            let mut c = conn.clone();
            let cfg: Vec<String> = redis::cmd("CONFIG")
                .arg("GET")
                .arg("notify-keyspace-events")
                .query_async(&mut c)
                .await
                .with_context(|| format!("{} (node {addr}): CONFIG GET", ep.label))?;
            let flags = cfg.get(1).cloned().unwrap_or_default();
            if !covers(&flags) {
                if !enable {
                    bail!(
                        "keyspace notifications are off on {} (node {addr}: notify-keyspace-events \
                         is {flags:?}), so --follow cannot see changes after the snapshot. Pass \
                         --enable-notifications to set them (notify-keyspace-events {}KA; a \
                         small CPU cost on that Redis), or copy without --follow during a write \
                         pause (docs/migrate.md)",
                        ep.label,
                        flags
                    );
                }
                redis::cmd("CONFIG")
                    .arg("SET")
                    .arg("notify-keyspace-events")
                    .arg(format!("{flags}KA"))
                    .query_async::<()>(&mut c)
                    .await
                    .with_context(|| format!("{} (node {addr}): CONFIG SET", ep.label))?;
                eprintln!(
                    "{}: keyspace notifications switched on (notify-keyspace-events {flags}KA); \
                     set them back with CONFIG SET notify-keyspace-events {flags:?} after the cutover",
                    spec.namespace
                );
            }
            let info: String = redis::cmd("CLIENT")
                .arg("INFO")
                .query_async(&mut c)
                .await
                .with_context(|| format!("{} (node {addr}): CLIENT INFO", ep.label))?;
            let db = info
                .split_whitespace()
                .find_map(|f| f.strip_prefix("db="))
                .unwrap_or("0")
                .to_owned();
            let prefix = format!("__keyspace@{db}__:");
            let client = redis::Client::open(ep.node_url(n)?)
                .with_context(|| format!("{}: pub/sub client", ep.label))?;
            let mut ps = client
                .get_async_pubsub()
                .await
                .with_context(|| format!("{} (node {addr}): pub/sub connection", ep.label))?;
            ps.psubscribe(format!("{prefix}{pattern}"))
                .await
                .with_context(|| format!("{} (node {addr}): PSUBSCRIBE", ep.label))?;
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut stream = ps.into_on_message();
                while let Some(msg) = stream.next().await {
                    let channel: Vec<u8> = msg.get_channel().unwrap_or_default();
                    if let Some(key) = channel.strip_prefix(prefix.as_bytes())
                        && tx.send(Some((si, key.to_vec()))).is_err()
                    {
                        return;
                    }
                }
                // The subscription ended: the node went away.
                let _ = tx.send(None);
            });
        }
    }
    Ok(Follower { rx })
}

/// Applies the current state of `keys` of one source to the target.
async fn apply(
    (spec, src): &Source,
    target: &Endpoint,
    keys: &[Vec<u8>],
    r: &mut FollowReport,
) -> anyhow::Result<()> {
    let reads = keys
        .iter()
        .flat_map(|k| [ttl_cmd(src, k), redis::cmd("DUMP").arg(k).clone()])
        .collect();
    let replies = src.batch(reads).await?;
    let at = now_ms();
    let mut cmds = Vec::new();
    let mut what = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let tkey = spec.target_key(k);
        let expiry = Expiry::from_reply(src, &replies[2 * i], at);
        match (expiry, bulk(&replies[2 * i + 1])) {
            (Some(Expiry::Missing), _) | (_, None) => {
                cmds.push(redis::cmd("UNLINK").arg(&tkey).clone());
                what.push((k, false, Expiry::Missing));
            }
            (Some(Expiry::At(t)), _) if t <= at => {
                cmds.push(redis::cmd("UNLINK").arg(&tkey).clone());
                what.push((k, false, Expiry::Missing));
            }
            (Some(e), Some(payload)) => {
                let mut c = redis::cmd("RESTORE");
                c.arg(&tkey);
                match e {
                    Expiry::At(t) => c.arg(t).arg(payload).arg("ABSTTL"),
                    _ => c.arg(0).arg(payload),
                };
                c.arg("REPLACE");
                cmds.push(c);
                what.push((k, true, e));
            }
            (None, Some(_)) => r.failed += 1,
        }
    }
    let chunk = (target.max_bulk / 4).clamp(4 << 10, 1 << 20) as usize;
    let results = target.batch(cmds).await?;
    for ((k, write, e), res) in what.into_iter().zip(results) {
        match (write, res) {
            (true, Ok(_)) => r.updated += 1,
            (false, Ok(_)) => r.deleted += 1,
            (true, Err(err)) if bytype::restore_refused(&err) => {
                let tkey = spec.target_key(k);
                match bytype::copy(src, k, target, &tkey, e, true, chunk).await {
                    Ok(_) => r.updated += 1,
                    Err(err) => {
                        r.failed += 1;
                        eprintln!("follow: {}: {err:#}", String::from_utf8_lossy(&tkey));
                    }
                }
            }
            (_, Err(err)) => {
                r.failed += 1;
                eprintln!(
                    "follow: {}: {err}",
                    String::from_utf8_lossy(&spec.target_key(k))
                );
            }
        }
    }
    Ok(())
}

/// Copies changes until Ctrl-C, then the last ones; returns what it did.
pub(crate) async fn run(
    mut f: Follower,
    sources: &[Source],
    target: &Endpoint,
    batch: usize,
) -> anyhow::Result<FollowReport> {
    let mut r = FollowReport::default();
    // Per source: dirty key -> when its first unapplied event came.
    let mut dirty: Vec<HashMap<Vec<u8>, Instant>> = vec![HashMap::new(); sources.len()];
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut last_line = Instant::now();
    eprintln!(
        "follow: copying changes; press Ctrl-C to cut over (then the last changes and verify)"
    );
    let mut stopping = false;
    // Ends at Ctrl-C; every turn applies at most `batch` keys per source.
    loop {
        tokio::select! {
            _ = &mut ctrl_c, if !stopping => stopping = true,
            ev = f.rx.recv() => match ev {
                Some(Some((si, key))) => {
                    r.events += 1;
                    dirty[si].entry(key).or_insert_with(Instant::now);
                    continue;
                }
                Some(None) | None => bail!(
                    "follow: a source's notification connection closed; the target may miss \
                     changes from here: run the copy again (it is idempotent) and verify"
                ),
            },
            _ = tick.tick() => {}
        }
        if stopping {
            // Take what is queued, give late events a moment, and finish.
            tokio::time::sleep(Duration::from_millis(200)).await;
            while let Ok(Some((si, key))) = f.rx.try_recv() {
                r.events += 1;
                dirty[si].entry(key).or_insert_with(Instant::now);
            }
        }
        for (si, keys) in dirty.iter_mut().enumerate() {
            // Bounded by the dirty set, which only this loop drains.
            while !keys.is_empty() {
                let take: Vec<(Vec<u8>, Instant)> = keys
                    .iter()
                    .take(batch)
                    .map(|(k, t)| (k.clone(), *t))
                    .collect();
                for (k, _) in &take {
                    keys.remove(k);
                }
                let names: Vec<Vec<u8>> = take.iter().map(|(k, _)| k.clone()).collect();
                apply(&sources[si], target, &names, &mut r).await?;
                let lag = take
                    .iter()
                    .map(|(_, t)| t.elapsed().as_millis() as u64)
                    .max()
                    .unwrap_or(0);
                r.max_lag_ms = r.max_lag_ms.max(lag);
                if !stopping {
                    break;
                }
            }
        }
        if last_line.elapsed() >= Duration::from_secs(2) {
            last_line = Instant::now();
            let queued: usize = dirty.iter().map(HashMap::len).sum();
            eprintln!(
                "follow: {} events, {} updated, {} deleted, {queued} queued, max lag {} ms",
                r.events, r.updated, r.deleted, r.max_lag_ms
            );
        }
        if stopping && dirty.iter().all(HashMap::is_empty) {
            return Ok(r);
        }
    }
}
