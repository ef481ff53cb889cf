//! Monitoring samples kept in the service, so a reopened dashboard shows the last hour.
//!
//! [`spawn_sampler`] takes one sample every [`INTERVAL`]: ops/s, hit ratio and L1 hit
//! ratio over the interval (from the library's counters, in total and per namespace),
//! and the store's keys, bytes, evictions and state. [`KEEP`] samples are kept (one hour)
//! and at most [`MAX_NAMESPACES`] namespaces get a series of their own. The task holds
//! only a weak reference to the state and ends when the service does.
//!
//! Latency p50/p99 come from power-of-two buckets ([`crate::metrics::LatencyBuckets`]),
//! so each is the upper bound of its bucket (within a factor of 2); `/metrics` has the
//! finer Prometheus histograms per operation.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde::Serialize;

use super::cache::NoQuery;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiQuery, Observer};
use super::{AppState, Inner};
use crate::metrics::{LATENCY_BUCKETS, LatencyBuckets};

/// Time between samples.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Samples kept: one hour.
pub const KEEP: usize = 360;
/// Namespaces with a series of their own.
pub const MAX_NAMESPACES: usize = 100;

/// One point in time.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Reads and writes per second over the interval, all namespaces.
    pub ops_per_sec: f64,
    /// Share of reads that hit, over the interval (`null` without reads).
    pub hit_ratio: Option<f64>,
    /// Share of reads answered by L1, over the interval.
    pub l1_hit_ratio: Option<f64>,
    /// Keys in the store.
    pub keys: u64,
    /// Bytes used by the store.
    pub bytes: u64,
    /// Evictions so far.
    pub evictions: u64,
    /// Request latency p50 over the interval, ms (bucket upper bound).
    pub p50_ms: Option<f64>,
    /// Request latency p99 over the interval, ms (bucket upper bound).
    pub p99_ms: Option<f64>,
    /// Backend state (`memory`, `connected`, `degraded`, `recovering`...).
    pub state: String,
    /// Per namespace: ops/s and hit ratio over the interval.
    #[schema(value_type = Object)]
    pub namespaces: BTreeMap<String, (f64, Option<f64>)>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    reads: u64,
    hits: u64,
    l1: u64,
    writes: u64,
}

/// The counters a sample is taken against: when, per namespace, latency buckets.
type Baseline = (
    std::time::Instant,
    HashMap<String, Counts>,
    [u64; LATENCY_BUCKETS],
);

/// The kept samples and the counters of the previous one.
#[derive(Debug, Default)]
pub struct Samples {
    ring: Mutex<VecDeque<Sample>>,
    last: Mutex<Option<Baseline>>,
}

impl Samples {
    /// Every kept sample, oldest first.
    pub fn all(&self) -> Vec<Sample> {
        self.ring.lock().iter().cloned().collect()
    }
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Takes one sample now (the first one only sets the baseline of the counters).
pub async fn sample(state: &Inner) {
    let names: BTreeSet<String> = state
        .cache
        .namespaces()
        .into_iter()
        .chain(state.creds().all_namespaces().iter().cloned())
        .take(MAX_NAMESPACES)
        .collect();
    let mut now_counts = HashMap::new();
    for name in &names {
        let Ok(ns) = state.namespace(name) else {
            continue;
        };
        let Ok(st) = ns.stats().await else {
            continue;
        };
        now_counts.insert(
            name.clone(),
            Counts {
                reads: st.hits + st.misses,
                hits: st.hits,
                l1: st.l1_hits,
                writes: st.sets + st.deletes,
            },
        );
    }
    let store = state.cache.stats().await.ok();
    let now = std::time::Instant::now();
    let buckets = state.metrics.latency_all.snapshot();
    let prev = state
        .samples
        .last
        .lock()
        .replace((now, now_counts.clone(), buckets));
    let Some((then, before, before_buckets)) = prev else {
        return;
    };
    let quantile = |q| LatencyBuckets::quantile_ms(&before_buckets, &buckets, q);
    let secs = now.duration_since(then).as_secs_f64().max(0.001);
    let mut total = Counts::default();
    let mut per_ns = BTreeMap::new();
    for (name, c) in &now_counts {
        let b = before.get(name).copied().unwrap_or_default();
        let d = Counts {
            reads: c.reads.saturating_sub(b.reads),
            hits: c.hits.saturating_sub(b.hits),
            l1: c.l1.saturating_sub(b.l1),
            writes: c.writes.saturating_sub(b.writes),
        };
        total.reads += d.reads;
        total.hits += d.hits;
        total.l1 += d.l1;
        total.writes += d.writes;
        per_ns.insert(
            name.clone(),
            ((d.reads + d.writes) as f64 / secs, ratio(d.hits, d.reads)),
        );
    }
    let s = Sample {
        at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        ops_per_sec: (total.reads + total.writes) as f64 / secs,
        hit_ratio: ratio(total.hits, total.reads),
        l1_hit_ratio: ratio(total.l1, total.reads),
        keys: store.as_ref().map_or(0, |s| s.keys),
        bytes: store.as_ref().map_or(0, |s| s.bytes),
        evictions: store.as_ref().map_or(0, |s| s.evictions),
        p50_ms: quantile(0.5),
        p99_ms: quantile(0.99),
        state: state.cache.state().to_string(),
        namespaces: per_ns,
    };
    let mut ring = state.samples.ring.lock();
    if ring.len() >= KEEP {
        ring.pop_front();
    }
    ring.push_back(s);
}

/// Samples every `every` until the state is dropped.
pub fn spawn_sampler(state: &AppState, every: Duration) {
    let weak: Weak<Inner> = Arc::downgrade(&state.0);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else { break };
            sample(&state).await;
        }
    });
}

/// The samples of the last hour (admin and viewers).
#[utoipa::path(get, path = "/v1/admin/monitor", tag = "ops", operation_id = "monitor",
    responses((status = 200, description = "samples, oldest first", body = [Sample]),
        (status = 403, description = "not the admin or a viewer", body = ErrorBody)))]
pub async fn monitor(
    State(s): State<AppState>,
    _: Observer,
    _: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(serde_json::json!({
        "interval_secs": INTERVAL.as_secs(),
        "samples": s.samples.all(),
    }))
    .into_response())
}

/// The backend's slow log (last 20 entries) and connected clients (admin and viewers;
/// on Redis standalone or one Cluster node). Slow-log entries show command arguments,
/// which can hold any tenant's keys: hence not for service tokens.
#[utoipa::path(get, path = "/v1/admin/redis", tag = "ops", operation_id = "redis_view",
    responses((status = 200, description = "slowlog, clients (null on the memory store)", body = serde_json::Value),
        (status = 403, description = "not the admin or a viewer", body = ErrorBody)))]
pub async fn redis_view(
    State(s): State<AppState>,
    _: Observer,
    _: ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    let v = s.raw.server_view(20).await?;
    Ok(axum::Json(v).into_response())
}
