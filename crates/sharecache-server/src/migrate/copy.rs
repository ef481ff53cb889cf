//! The copy, the conflict pre-check that `--on-conflict fail` runs before writing, and the
//! dry run.
//!
//! A batch is one SCAN page: the source answers `PEXPIRETIME` (or `PTTL`) and `DUMP` for
//! every key in one pipeline, the target gets `RESTORE key ABSTTL-time payload` for every
//! key still alive in one more (per slot on a Cluster, see `endpoint`). `RESTORE` without
//! `REPLACE` is the existence check: a `BUSYKEY` reply, and only that, makes a key a
//! candidate conflict, compared with the source (same value and TTL: `unchanged`), so a
//! key is never overwritten by a race between a check and a write.
//!
//! The read of a page (`read_batch`) and the write with its conflict policy
//! (`write_batch`, generic over an [`Origin`]) are also `sharecache export`'s and
//! `sharecache import`'s (`crate::backup`): one path for both.

use std::sync::Arc;
use std::time::Instant;

use anyhow::bail;
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::{Cmd, RedisError};

use super::bytype;
use super::checkpoint::{Job, NodeCursor, SourceState};
use super::endpoint::{Endpoint, Reply};
use super::follow;
use super::progress::{Progress, SourceProgress};
use super::value::{Expiry, bulk, now_ms, same_value, status, ttl_cmd};
use super::{
    CommonArgs, CopyArgs, FailedKey, OnConflict, Report, SourceReport, SourceSpec, open_all, verify,
};

/// A source, parsed and connected.
pub(crate) type Source = (SourceSpec, Endpoint);

/// One SCAN page of `node`: the next cursor and the keys.
pub(crate) async fn scan_page(
    ep: &Endpoint,
    node: usize,
    cursor: u64,
    pattern: &str,
    count: u32,
) -> anyhow::Result<(u64, Vec<Vec<u8>>)> {
    let (addr, conn) = &ep.scan_nodes()[node];
    let mut conn = conn.clone();
    redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(count)
        .query_async(&mut conn)
        .await
        .map_err(|e| anyhow::anyhow!("lost the connection to {} (node {addr}): {e}", ep.label))
}

/// How a target key that exists compares with its source key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    /// Same value, TTL within the tolerance.
    Same,
    /// Another value or TTL: a conflict.
    Differs,
    /// The source key is gone (expired): nothing to copy.
    SourceGone,
    /// The target key is gone since (it expired or was deleted): no conflict after all.
    TargetGone,
}

/// Compares each target key that exists with its source key.
pub(crate) async fn compare_existing(
    src: &Endpoint,
    spec: &SourceSpec,
    target: &Endpoint,
    keys: &[Vec<u8>],
    tolerance: u64,
) -> anyhow::Result<Vec<Existing>> {
    let tkeys: Vec<Vec<u8>> = keys.iter().map(|k| spec.target_key(k)).collect();
    let read = |ep: &Endpoint, ks: &[Vec<u8>]| -> Vec<Cmd> {
        ks.iter()
            .flat_map(|k| [redis::cmd("DUMP").arg(k).clone(), ttl_cmd(ep, k)])
            .collect()
    };
    let s = src.batch(read(src, keys)).await?;
    let s_at = now_ms();
    let t = target.batch(read(target, &tkeys)).await?;
    let t_at = now_ms();
    let mut out = Vec::with_capacity(keys.len());
    for (i, (k, tk)) in keys.iter().zip(&tkeys).enumerate() {
        let (sd, st) = (
            bulk(&s[2 * i]),
            Expiry::from_reply(src, &s[2 * i + 1], s_at),
        );
        let (td, tt) = (
            bulk(&t[2 * i]),
            Expiry::from_reply(target, &t[2 * i + 1], t_at),
        );
        // A source expiry that passed before the target was read: gone on both sides.
        let gone = sd.is_none()
            || matches!(st, Some(Expiry::Missing))
            || matches!(st, Some(Expiry::At(at)) if at <= t_at);
        out.push(if gone {
            Existing::SourceGone
        } else if td.is_none() || tt == Some(Expiry::Missing) {
            Existing::TargetGone
        } else if st.zip(tt).is_some_and(|(a, b)| a.close_to(b, tolerance))
            && same_value(src, k, sd, target, tk, td).await?
        {
            Existing::Same
        } else {
            Existing::Differs
        });
    }
    Ok(out)
}

/// Why a run stopped before the end (the report is printed first).
type Stop = anyhow::Error;

fn key_text(k: &[u8]) -> String {
    String::from_utf8_lossy(k).into_owned()
}

fn reason(e: &RedisError) -> String {
    e.to_string()
}

fn is_oom(e: &RedisError) -> bool {
    e.code() == Some("OOM") || e.to_string().contains("OOM ")
}

fn is_busy(e: &RedisError) -> bool {
    e.code() == Some("BUSYKEY") || e.to_string().contains("BUSYKEY")
}

/// `RESTORE` of one key with the expiry read from the source.
fn restore(tkey: &[u8], payload: &[u8], expiry: Expiry, replace: bool) -> Cmd {
    let mut c = redis::cmd("RESTORE");
    c.arg(tkey);
    match expiry {
        Expiry::At(at) => c.arg(at).arg(payload).arg("ABSTTL"),
        _ => c.arg(0).arg(payload),
    };
    if replace {
        c.arg("REPLACE");
    }
    c
}

/// One key to write: its name where it comes from, its name on the target, its DUMP
/// payload and the expiry read with it.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// The key on the origin (a source key; for an import, the key as exported).
    pub(crate) key: Vec<u8>,
    /// The key to write on the target.
    pub(crate) tkey: Vec<u8>,
    /// The DUMP payload.
    pub(crate) payload: Vec<u8>,
    /// When it expires (never [`Expiry::Missing`]).
    pub(crate) expiry: Expiry,
}

/// Where a batch's keys come from (a source Redis for migrate, an export file for import):
/// what the shared RESTORE path, [`write_batch`], cannot decide from the payloads alone.
pub(crate) trait Origin {
    /// How each target key that exists (a `BUSYKEY` reply) compares with its item.
    async fn compare(
        &self,
        target: &Endpoint,
        items: &[&Item],
        tolerance: u64,
    ) -> anyhow::Result<Vec<Existing>>;

    /// Copies `item` by type (RESTORE cannot carry it), or `None` when this origin has
    /// no value to read by type; the run then stops with [`Origin::by_type_missing`].
    async fn by_type(
        &self,
        item: &Item,
        target: &Endpoint,
        replace: bool,
        chunk: usize,
    ) -> Option<anyhow::Result<bytype::Outcome>>;

    /// What to tell the user when a key must go by type and [`Origin::by_type`] cannot.
    fn by_type_missing(&self, target: &Endpoint, tkey: &[u8], why: &str) -> anyhow::Error;
}

/// A source Redis: existing keys are compared with it, and a key RESTORE cannot carry is
/// read from it by type.
struct SourceOrigin<'a> {
    src: &'a Endpoint,
    spec: &'a SourceSpec,
}

impl Origin for SourceOrigin<'_> {
    async fn compare(
        &self,
        target: &Endpoint,
        items: &[&Item],
        tolerance: u64,
    ) -> anyhow::Result<Vec<Existing>> {
        let keys: Vec<Vec<u8>> = items.iter().map(|i| i.key.clone()).collect();
        compare_existing(self.src, self.spec, target, &keys, tolerance).await
    }

    async fn by_type(
        &self,
        item: &Item,
        target: &Endpoint,
        replace: bool,
        chunk: usize,
    ) -> Option<anyhow::Result<bytype::Outcome>> {
        Some(
            bytype::copy(
                self.src,
                &item.key,
                target,
                &item.tkey,
                item.expiry,
                replace,
                chunk,
            )
            .await,
        )
    }

    fn by_type_missing(&self, target: &Endpoint, tkey: &[u8], why: &str) -> anyhow::Error {
        anyhow::anyhow!("{}: {} ({why})", target.label, key_text(tkey))
    }
}

/// Reads `keys` from `src` in one pipeline (`PEXPIRETIME` or `PTTL`, and `DUMP`, per key):
/// the items still alive, named on the target by `tkey`. A key gone meanwhile (or whose
/// expiry passed) counts as `skipped_expired`, one the source refuses as `failed`; the
/// caller counts `scanned`.
pub(crate) async fn read_batch(
    src: &Endpoint,
    keys: Vec<Vec<u8>>,
    tkey: impl Fn(&[u8]) -> Vec<u8>,
    delta: &mut SourceReport,
) -> anyhow::Result<Vec<Item>> {
    let reads: Vec<Cmd> = keys
        .iter()
        .flat_map(|k| [ttl_cmd(src, k), redis::cmd("DUMP").arg(k).clone()])
        .collect();
    let replies = src.batch(reads).await?;
    let read_at = now_ms();
    let mut live = Vec::with_capacity(keys.len());
    for (i, k) in keys.into_iter().enumerate() {
        let (ttl, dump) = (&replies[2 * i], &replies[2 * i + 1]);
        if let Err(e) = ttl.as_ref().and(dump.as_ref()) {
            delta.failed += 1;
            delta.failed_keys.push(FailedKey {
                key: key_text(&tkey(&k)),
                reason: format!("the source refused to read it: {e}"),
            });
            continue;
        }
        match (Expiry::from_reply(src, ttl, read_at), bulk(dump)) {
            (Some(Expiry::Missing), _) | (_, None) => delta.skipped_expired += 1,
            (Some(Expiry::At(at)), _) if at <= now_ms() => delta.skipped_expired += 1,
            (Some(e), Some(payload)) => live.push(Item {
                tkey: tkey(&k),
                key: k,
                payload: payload.to_vec(),
                expiry: e,
            }),
            (None, Some(_)) => {
                delta.failed += 1;
                delta.failed_keys.push(FailedKey {
                    key: key_text(&tkey(&k)),
                    reason: format!("unexpected TTL reply {ttl:?}"),
                });
            }
        }
    }
    Ok(live)
}

/// Copies one SCAN page; counts go to `delta`. `Err` stops the run (target out of
/// memory, a conflict under `fail`, every key of the batch refused, a side lost).
async fn copy_batch(
    src: &Endpoint,
    spec: &SourceSpec,
    target: &Endpoint,
    keys: Vec<Vec<u8>>,
    args: &CopyArgs,
    delta: &mut SourceReport,
) -> Result<(), Stop> {
    delta.scanned += keys.len() as u64;
    let live = read_batch(src, keys, |k| spec.target_key(k), delta).await?;
    let origin = SourceOrigin { src, spec };
    let policy = (args.on_conflict, args.common.ttl_tolerance_ms);
    write_batch(&origin, target, live, policy, delta).await
}

/// The one RESTORE path of migrate and import: writes `live` to `target` with
/// `RESTORE key ABSTTL-time payload` in one pipeline (per slot on a Cluster), counts into
/// `delta` (`copied`, `bytes`, `skipped_expired`, `unchanged`, `conflicts`, `failed`), and
/// applies `(on_conflict, ttl tolerance)` to the keys that exist: `RESTORE` without
/// `REPLACE` is the existence check, so a key is never overwritten by a race between a
/// check and a write. `Err` stops the run.
pub(crate) async fn write_batch<O: Origin>(
    origin: &O,
    target: &Endpoint,
    live: Vec<Item>,
    (on_conflict, tolerance): (OnConflict, u64),
    delta: &mut SourceReport,
) -> Result<(), Stop> {
    if live.is_empty() {
        return Ok(());
    }
    // A payload the target cannot take in one request goes the per-type way, chunked.
    let limit = target.max_bulk.saturating_sub(64 << 10) as usize;
    let chunk = (target.max_bulk / 4).clamp(4 << 10, 1 << 20) as usize;
    let mut by_type: Vec<Option<String>> = live
        .iter()
        .map(|it| {
            (it.payload.len() > limit).then(|| {
                format!(
                    "a DUMP payload of {} bytes, above its proto-max-bulk-len",
                    it.payload.len()
                )
            })
        })
        .collect();
    let direct: Vec<usize> = (0..live.len()).filter(|&i| by_type[i].is_none()).collect();
    let cmds = direct
        .iter()
        .map(|&i| restore(&live[i].tkey, &live[i].payload, live[i].expiry, false))
        .collect();
    let replies = target.batch(cmds).await?;
    let mut busy = Vec::new();
    let mut refused: Option<String> = None;
    let mut errors = 0usize;
    // RESTORE answers OK without creating the key when its ABSTTL has passed: such a key
    // expired during the copy, and is counted so, not as copied.
    let replied_at = now_ms();
    for (&i, r) in direct.iter().zip(&replies) {
        let it = &live[i];
        match r {
            Ok(_) if matches!(it.expiry, Expiry::At(at) if at <= replied_at) => {
                delta.skipped_expired += 1
            }
            Ok(_) => {
                delta.copied += 1;
                delta.bytes += it.payload.len() as u64;
            }
            Err(e) if is_busy(e) => busy.push(i),
            Err(e) if is_oom(e) => {
                bail!(
                    "{} is out of memory ({}); stopped at its first OOM reply (keys written \
                     before it stay). Raise its maxmemory or free memory, then run again (with \
                     --resume if you gave --checkpoint)",
                    target.label,
                    reason(e)
                );
            }
            Err(e) if bytype::restore_refused(e) => {
                by_type[i] = Some(format!("RESTORE refused: {}", reason(e)))
            }
            Err(e) => {
                errors += 1;
                refused.get_or_insert_with(|| reason(e));
                delta.failed += 1;
                delta.failed_keys.push(FailedKey {
                    key: key_text(&it.tkey),
                    reason: reason(e),
                });
            }
        }
    }
    if errors == live.len() && errors > 1 {
        bail!(
            "{} refused every key of a batch ({}); stopped instead of failing key after key",
            target.label,
            refused.unwrap_or_default()
        );
    }
    for i in 0..live.len() {
        let Some(why) = &by_type[i] else { continue };
        let it = &live[i];
        let Some(outcome) = origin.by_type(it, target, false, chunk).await else {
            return Err(origin.by_type_missing(target, &it.tkey, why));
        };
        match outcome {
            Ok(bytype::Outcome::Copied(b)) => {
                delta.copied += 1;
                delta.bytes += b;
            }
            Ok(bytype::Outcome::Exists) => busy.push(i),
            Ok(bytype::Outcome::Gone) => delta.skipped_expired += 1,
            Err(err) if err.to_string().contains("OOM") => {
                bail!("{} is out of memory ({err:#})", target.label)
            }
            Err(err) => {
                delta.failed += 1;
                delta.failed_keys.push(FailedKey {
                    key: key_text(&it.tkey),
                    reason: format!("per-type copy: {err:#}"),
                });
            }
        }
    }
    if busy.is_empty() {
        return Ok(());
    }
    let busy_items: Vec<&Item> = busy.iter().map(|&i| &live[i]).collect();
    let verdicts = origin.compare(target, &busy_items, tolerance).await?;
    // (index, with REPLACE): replaced conflicts, and keys to try again without REPLACE.
    let mut again: Vec<(usize, bool)> = Vec::new();
    for (&i, v) in busy.iter().zip(verdicts) {
        let tkey = key_text(&live[i].tkey);
        match v {
            Existing::Same => delta.unchanged += 1,
            Existing::SourceGone => delta.skipped_expired += 1,
            Existing::TargetGone => again.push((i, false)),
            Existing::Differs => {
                delta.conflicts += 1;
                delta.conflict_keys.push(tkey.clone());
                match on_conflict {
                    OnConflict::Fail => bail!(
                        "{tkey} exists on {} with another value (BUSYKEY): stopped, as \
                         --on-conflict fail asks; choose skip or replace to go on",
                        target.label
                    ),
                    OnConflict::Skip => {}
                    OnConflict::Replace => again.push((i, true)),
                }
            }
        }
    }
    let (typed, restored): (Vec<_>, Vec<_>) =
        again.iter().partition(|&&(i, _)| by_type[i].is_some());
    // A key that exists again on a second try without REPLACE is a conflict left alone.
    let still_busy = |delta: &mut SourceReport, tkey: &[u8]| {
        delta.conflicts += 1;
        delta.conflict_keys.push(key_text(tkey));
    };
    for (i, replace) in typed {
        let it = &live[i];
        let why = by_type[i].as_deref().unwrap_or_default();
        let Some(outcome) = origin.by_type(it, target, replace, chunk).await else {
            return Err(origin.by_type_missing(target, &it.tkey, why));
        };
        match outcome {
            Ok(bytype::Outcome::Copied(b)) => {
                delta.copied += 1;
                delta.bytes += b;
            }
            Ok(bytype::Outcome::Exists) => still_busy(delta, &it.tkey),
            Ok(bytype::Outcome::Gone) => delta.skipped_expired += 1,
            Err(err) => {
                delta.failed += 1;
                delta.failed_keys.push(FailedKey {
                    key: key_text(&it.tkey),
                    reason: format!("per-type copy: {err:#}"),
                });
            }
        }
    }
    if restored.is_empty() {
        return Ok(());
    }
    let cmds = restored
        .iter()
        .map(|&(i, replace)| restore(&live[i].tkey, &live[i].payload, live[i].expiry, replace))
        .collect();
    let replies: Vec<Reply> = target.batch(cmds).await?;
    let replied_at = now_ms();
    for (&(i, _), r) in restored.iter().zip(replies) {
        let it = &live[i];
        match r {
            Ok(_) if matches!(it.expiry, Expiry::At(at) if at <= replied_at) => {
                delta.skipped_expired += 1
            }
            Ok(_) => {
                delta.copied += 1;
                delta.bytes += it.payload.len() as u64;
            }
            Err(e) if is_busy(&e) => still_busy(delta, &it.tkey),
            Err(e) if is_oom(&e) => bail!("{} is out of memory ({})", target.label, reason(&e)),
            Err(e) => {
                delta.failed += 1;
                delta.failed_keys.push(FailedKey {
                    key: key_text(&it.tkey),
                    reason: reason(&e),
                });
            }
        }
    }
    Ok(())
}

fn merge(into: &mut SourceReport, d: SourceReport) {
    into.scanned += d.scanned;
    into.copied += d.copied;
    into.skipped_expired += d.skipped_expired;
    into.conflicts += d.conflicts;
    into.failed += d.failed;
    into.bytes += d.bytes;
    into.unchanged += d.unchanged;
    into.conflict_keys.extend(d.conflict_keys);
    into.failed_keys.extend(d.failed_keys);
    for (t, n) in d.types {
        *into.types.entry(t).or_default() += n;
    }
    if let Some(n) = d.no_ttl {
        *into.no_ttl.get_or_insert(0) += n;
    }
}

/// The job's state shared by the source tasks; each saves the checkpoint after a batch.
struct Shared {
    job: Mutex<Job>,
    checkpoint: Option<std::path::PathBuf>,
}

impl Shared {
    fn advance(
        &self,
        source: usize,
        node: usize,
        cursor: u64,
        delta: SourceReport,
    ) -> anyhow::Result<u64> {
        let mut job = self.job.lock();
        let s = &mut job.sources[source];
        merge(&mut s.report, delta);
        s.nodes[node].cursor = cursor;
        s.nodes[node].done = cursor == 0;
        let scanned = s.report.scanned;
        if let Some(p) = &self.checkpoint {
            job.save(p)?;
        }
        Ok(scanned)
    }
}

/// Pages of one source node copied at once: enough to hide the round trips of a page's
/// read and write behind the others'.
const IN_FLIGHT: usize = 4;

/// Copies one source, node by node, from the checkpoint's cursors.
async fn copy_source(
    index: usize,
    (spec, src): &Source,
    target: &Endpoint,
    args: &CopyArgs,
    shared: &Shared,
    progress: &SourceProgress,
) -> Result<(), (Stop, SourceReport)> {
    let nodes: Vec<NodeCursor> = shared.job.lock().sources[index].nodes.clone();
    let mut bytes = 0;
    let (pattern, count) = (args.common.pattern.as_str(), args.common.batch);
    for (n, node) in nodes.iter().enumerate() {
        if node.done {
            continue;
        }
        // SCAN pages, read ahead while earlier pages are copied; the stream ends after
        // the page with cursor 0, or after an error.
        let pages = futures_util::stream::unfold(Some(node.cursor), move |cursor| async move {
            let cursor = cursor?;
            match scan_page(src, n, cursor, pattern, count).await {
                Ok((next, keys)) => Some((Ok((next, keys)), (next != 0).then_some(next))),
                Err(e) => Some((Err(e), None)),
            }
        });
        // Up to IN_FLIGHT pages are copied at once; `buffered` yields them in SCAN order,
        // so the checkpoint's cursor only moves past pages that are done.
        let copied = pages
            .map(|page| async move {
                let mut delta = SourceReport::default();
                match page {
                    Err(e) => (0, Err(e), delta),
                    Ok((next, keys)) => {
                        let r = copy_batch(src, spec, target, keys, args, &mut delta).await;
                        (next, r, delta)
                    }
                }
            })
            .buffered(IN_FLIGHT);
        let mut copied = std::pin::pin!(copied);
        while let Some((next, r, delta)) = copied.next().await {
            if let Err(e) = r {
                return Err((e, delta));
            }
            bytes += delta.bytes;
            let scanned = shared
                .advance(index, n, next, delta)
                .map_err(|e| (e, SourceReport::default()))?;
            progress.update(scanned, bytes);
        }
    }
    let done = shared.job.lock().sources[index].report.scanned;
    progress.finish(done);
    Ok(())
}

/// `sharecache migrate`: the copy (or dry run), then verify.
pub(crate) async fn run(args: CopyArgs, start: Instant) -> anyhow::Result<()> {
    let c = &args.common;
    if args.dry_run && args.checkpoint.is_some() {
        bail!("--dry-run writes nothing, not even a checkpoint: drop --checkpoint");
    }
    let (sources, target) = open_all(c).await?;
    if args.dry_run {
        return dry_run(&sources, &target, c, start).await;
    }
    let mut run_ids = Vec::new();
    for (_, ep) in &sources {
        run_ids.push(ep.run_ids().await?);
    }
    let fresh = Job {
        version: 1,
        target: target.label.clone(),
        pattern: c.pattern.clone(),
        key_prefix: c.key_prefix.clone(),
        sources: sources
            .iter()
            .zip(&run_ids)
            .map(|((spec, ep), ids)| SourceState {
                url: spec.url.display(),
                nodes: ep
                    .scan_nodes()
                    .iter()
                    .zip(ids)
                    .map(|((a, _), id)| NodeCursor {
                        node: a.clone(),
                        cursor: 0,
                        done: false,
                        run_id: id.clone(),
                    })
                    .collect(),
                report: SourceReport {
                    namespace: spec.namespace.clone(),
                    ..SourceReport::default()
                },
            })
            .collect(),
    };
    let job = match (&args.checkpoint, args.resume) {
        (Some(p), true) => Job::load(p, &fresh)?,
        (Some(p), false) if p.exists() => bail!(
            "the checkpoint {} exists: pass --resume to finish that job, or remove the file to \
             start over",
            p.display()
        ),
        _ => fresh,
    };
    if args.on_conflict == OnConflict::Fail {
        let pre = precheck(&sources, &target, c).await?;
        if pre.iter().any(|r| r.conflicts > 0) {
            let n: u64 = pre.iter().map(|r| r.conflicts).sum();
            let report = Report {
                mode: "copy",
                totals: Report::totals(&pre),
                sources: pre,
                differences: None,
                follow: None,
                estimate_secs: None,
                elapsed_secs: start.elapsed().as_secs_f64(),
            };
            report.print(c.json)?;
            bail!(
                "{n} keys exist on the target with other values; nothing was written. Choose \
                 --on-conflict skip or replace, or remove them"
            );
        }
    }
    // Subscribed before the snapshot starts, so no change made during it is missed.
    let follower = if args.follow {
        Some(follow::start(&sources, &c.pattern, args.enable_notifications).await?)
    } else {
        None
    };
    let shared = Arc::new(Shared {
        job: Mutex::new(job),
        checkpoint: args.checkpoint.clone(),
    });
    let progress = Progress::new();
    let mut totals = Vec::new();
    for (_, ep) in &sources {
        totals.push(ep.dbsize().await);
    }
    let bars: Vec<SourceProgress> = {
        let job = shared.job.lock();
        sources
            .iter()
            .enumerate()
            .map(|(i, (spec, _))| {
                progress.source(
                    &spec.namespace,
                    "copied",
                    totals[i],
                    job.sources[i].report.scanned,
                )
            })
            .collect()
    };
    let results = futures_util::future::join_all(
        sources
            .iter()
            .enumerate()
            .map(|(i, s)| copy_source(i, s, &target, &args, &shared, &bars[i])),
    )
    .await;
    let mut reports: Vec<SourceReport> = shared
        .job
        .lock()
        .sources
        .iter()
        .map(|s| s.report.clone())
        .collect();
    let mut stop = None;
    for (i, r) in results.into_iter().enumerate() {
        if let Err((e, partial)) = r {
            merge(&mut reports[i], partial);
            stop.get_or_insert(e);
        }
    }
    let mut followed = None;
    if let (None, Some(f)) = (&stop, follower) {
        match follow::run(f, &sources, &target, c.batch as usize).await {
            Ok(r) => followed = Some(r),
            Err(e) => stop = Some(e),
        }
    }
    let differences = if stop.is_none() && !args.no_verify {
        let skipped: std::collections::HashSet<String> = if args.on_conflict == OnConflict::Skip {
            reports
                .iter()
                .flat_map(|r| r.conflict_keys.iter().cloned())
                .collect()
        } else {
            Default::default()
        };
        Some(verify::verify(&sources, &target, c, &skipped).await?.1)
    } else {
        None
    };
    let report = Report {
        mode: "copy",
        totals: Report::totals(&reports),
        sources: reports,
        differences: differences.clone(),
        follow: followed,
        estimate_secs: None,
        elapsed_secs: start.elapsed().as_secs_f64(),
    };
    report.print(c.json)?;
    if let Some(e) = stop {
        let hint = if args.checkpoint.is_some() {
            " (the checkpoint holds where each source stopped: run again with --resume)"
        } else {
            ""
        };
        return Err(e.context(format!("the copy stopped{hint}")));
    }
    if report.totals.failed > 0 {
        bail!("{} keys failed (listed above)", report.totals.failed);
    }
    if let Some(d) = differences
        && d.total > 0
    {
        bail!("verify found {} differences after the copy", d.total);
    }
    Ok(())
}

/// `--on-conflict fail`: every source key whose target key exists with another value,
/// before anything is written.
async fn precheck(
    sources: &[Source],
    target: &Endpoint,
    c: &CommonArgs,
) -> anyhow::Result<Vec<SourceReport>> {
    let mut out = Vec::new();
    for (spec, src) in sources {
        out.push(scan_existing(spec, src, target, c, false).await?);
    }
    Ok(out)
}

/// One key in this many gets a `MEMORY USAGE` in the dry run.
const SAMPLE: usize = 16;

/// Walks the source, counts `scanned`, and sorts every key that exists on the target into
/// `unchanged`, `conflicts` (listed) or `skipped_expired`. With `dry`, also counts keys
/// per type and without a TTL, and bytes (MEMORY USAGE of one key in [`SAMPLE`], scaled).
async fn scan_existing(
    spec: &SourceSpec,
    src: &Endpoint,
    target: &Endpoint,
    c: &CommonArgs,
    dry: bool,
) -> anyhow::Result<SourceReport> {
    let mut r = SourceReport {
        namespace: spec.namespace.clone(),
        no_ttl: dry.then_some(0),
        ..SourceReport::default()
    };
    let (mut sampled, mut sampled_bytes) = (0u64, 0u64);
    for n in 0..src.scan_nodes().len() {
        let mut cursor = 0;
        // SCAN ends when it returns cursor 0.
        loop {
            let (next, keys) = scan_page(src, n, cursor, &c.pattern, c.batch).await?;
            r.scanned += keys.len() as u64;
            if dry {
                let mut cmds = Vec::new();
                for (i, k) in keys.iter().enumerate() {
                    cmds.push(redis::cmd("TYPE").arg(k).clone());
                    cmds.push(ttl_cmd(src, k));
                    if i % SAMPLE == 0 {
                        cmds.push(redis::cmd("MEMORY").arg("USAGE").arg(k).clone());
                    }
                }
                let replies = src.batch(cmds).await?;
                let at = now_ms();
                let mut it = replies.iter();
                for i in 0..keys.len() {
                    let ty = it.next().and_then(status).unwrap_or_else(|| "?".into());
                    let ttl = it.next().and_then(|t| Expiry::from_reply(src, t, at));
                    let mem = if i % SAMPLE == 0 { it.next() } else { None };
                    if ty == "none" {
                        continue;
                    }
                    *r.types.entry(ty).or_default() += 1;
                    if ttl == Some(Expiry::Never) {
                        *r.no_ttl.get_or_insert(0) += 1;
                    }
                    if let Some(Ok(redis::Value::Int(b))) = mem {
                        sampled += 1;
                        sampled_bytes += u64::try_from(*b).unwrap_or(0);
                    }
                }
            }
            let exists = target
                .batch(
                    keys.iter()
                        .map(|k| redis::cmd("EXISTS").arg(spec.target_key(k)).clone())
                        .collect(),
                )
                .await?;
            let existing: Vec<Vec<u8>> = keys
                .iter()
                .zip(&exists)
                .filter(|(_, e)| matches!(e, Ok(redis::Value::Int(1))))
                .map(|(k, _)| k.clone())
                .collect();
            if !existing.is_empty() {
                let v = compare_existing(src, spec, target, &existing, c.ttl_tolerance_ms).await?;
                for (k, v) in existing.iter().zip(v) {
                    match v {
                        Existing::Same => r.unchanged += 1,
                        Existing::SourceGone => r.skipped_expired += 1,
                        Existing::TargetGone => {}
                        Existing::Differs => {
                            r.conflicts += 1;
                            r.conflict_keys.push(key_text(&spec.target_key(k)));
                        }
                    }
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    r.bytes = (sampled_bytes * r.scanned)
        .checked_div(sampled)
        .unwrap_or(0);
    Ok(r)
}

/// `--dry-run`: counts per type, keys without a TTL, bytes (sampled), conflicts; writes
/// nothing.
async fn dry_run(
    sources: &[Source],
    target: &Endpoint,
    c: &CommonArgs,
    start: Instant,
) -> anyhow::Result<()> {
    let mut reports = Vec::new();
    for (spec, src) in sources {
        reports.push(scan_existing(spec, src, target, c, true).await?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let report = Report {
        mode: "dry-run",
        totals: Report::totals(&reports),
        sources: reports,
        differences: None,
        follow: None,
        // A copy makes about twice the dry run's round trips (a read and a write per
        // batch) and moves the values too: a rough lower bound, said as such.
        estimate_secs: Some(elapsed * 2.0),
        elapsed_secs: elapsed,
    };
    report.print(c.json)?;
    Ok(())
}
