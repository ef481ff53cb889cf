//! Prometheus metrics of the service (prometheus-client, text exposition format).
//!
//! Label values are bounded: `namespace` is only set after authentication and grant
//! checks (otherwise `-`), and `operation` is the matched route's OpenAPI operationId
//! (`-` for no route), so unauthenticated traffic cannot create new series. Namespaces
//! a credential is granted always get their own series; of the others (an admin may
//! touch any name) the first [`MAX_OTHER_NAMESPACES`] do, and the rest are counted under
//! `namespace="_other"`, so `/metrics` stays small however many names are used.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    namespace: String,
    operation: Arc<str>,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    operation: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NsLabels {
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// The service's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Namespaces with their own series (see the module's note on bounds).
    labelled: parking_lot::RwLock<std::collections::HashSet<String>>,
    /// How many of `labelled` are not granted to any credential.
    others: std::sync::atomic::AtomicUsize,
    /// Every request's latency in power-of-two microsecond buckets, read by the
    /// dashboard's sampler for p50/p99 (the Prometheus histograms' buckets are not
    /// readable from outside their crate). One relaxed add per request.
    pub latency_all: LatencyBuckets,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<OpLabels, Histogram>,
    hits: Family<NsLabels, Counter>,
    misses: Family<NsLabels, Counter>,
    server_errors: Family<CodeLabels, Counter>,
    auth_failures: Counter,
    backend_state: Family<StateLabels, Gauge>,
    backend_latency: Gauge<f64, std::sync::atomic::AtomicU64>,
    backend_up: Gauge,
    fallback_in_use: Gauge,
    backend_keys: Gauge,
    backend_memory: Gauge,
    evictions: Counter,
    memory_store_bytes: Gauge,
    memory_store_budget: Gauge,
    sse_subscribers: Gauge,
    sse_dropped: Counter,
    sse_subscribers_dropped: Counter,
    l1: Option<L1Metrics>,
    /// The last eviction totals read from Redis and from the memory store, to turn
    /// them into increments of one counter.
    evictions_seen: parking_lot::Mutex<[u64; 2]>,
}

/// The in-process tier's figures (registered only when the cache has one, so a service
/// without L1 reports no link to be down).
#[derive(Debug, Default)]
struct L1Metrics {
    hits: Counter,
    misses: Counter,
    invalidations: Counter,
    flushes: Counter,
    evictions: Counter,
    entries: Gauge,
    bytes: Gauge,
    link_up: Gauge,
}

/// The codes a 5xx answer can carry (`http::error::describe`, readiness): their series
/// exist from the start at 0, so the alerts on each have data before the first error.
const SERVER_ERROR_CODES: [&str; 10] = [
    "backend_full",
    "backend_read_only",
    "backend_loading",
    "backend_busy",
    "backend_cannot_persist",
    "backend_permission",
    "unavailable",
    "fallback",
    "fallback_full",
    "internal",
];

const STATES: [&str; 4] = ["memory", "connected", "degraded", "recovering"];

impl Default for Metrics {
    fn default() -> Self {
        Self::new(false)
    }
}

/// Raises a counter to a running total read elsewhere (never lowers it).
fn follow(counter: &Counter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

impl Metrics {
    /// Registers every metric; the L1 tier's only `with_tier`.
    pub fn new(with_tier: bool) -> Self {
        let mut registry = Registry::with_prefix("sharecache");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by namespace, operation and status",
            requests.clone(),
        );
        let latency = Family::<OpLabels, Histogram>::new_with_constructor(|| {
            // 50 us .. ~3.3 s, doubling.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.00005, 2.0, 17,
            ))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by operation",
            latency.clone(),
        );
        let hits = Family::<NsLabels, Counter>::default();
        registry.register("cache_hits", "Reads that found a value", hits.clone());
        let misses = Family::<NsLabels, Counter>::default();
        registry.register("cache_misses", "Reads that found nothing", misses.clone());
        let server_errors = Family::<CodeLabels, Counter>::default();
        registry.register(
            "http_server_errors",
            "5xx answers by error code (backend_full, backend_read_only, unavailable, internal...)",
            server_errors.clone(),
        );
        for code in SERVER_ERROR_CODES {
            let _ = server_errors.get_or_create(&CodeLabels { code });
        }
        let auth_failures = Counter::default();
        registry.register(
            "auth_failures",
            "Requests refused for a missing, unknown or expired credential",
            auth_failures.clone(),
        );
        let backend_state = Family::<StateLabels, Gauge>::default();
        registry.register(
            "backend_state",
            "1 for the state the backend is in",
            backend_state.clone(),
        );
        let backend_latency = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "backend_ping_seconds",
            "Round trip of the last backend ping (NaN when it failed)",
            backend_latency.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let backend_up = gauge(
            &mut registry,
            "backend_up",
            "1 when the last backend ping answered (always 1 for the memory backend)",
        );
        let fallback_in_use = gauge(
            &mut registry,
            "fallback_in_use",
            "1 while Redis is unreachable and requests are answered from this process's memory \
             (or fail fast with fallback = \"fail\"), until the outage's writes are replayed",
        );
        let backend_keys = gauge(
            &mut registry,
            "backend_keys",
            "Keys the backend holds (Redis DBSIZE summed over nodes)",
        );
        let backend_memory = gauge(
            &mut registry,
            "backend_memory_bytes",
            "Memory the backend uses (Redis used_memory summed over nodes)",
        );
        let evictions = counter(
            &mut registry,
            "backend_evictions",
            "Keys the backend evicted for space (Redis evicted_keys, or the memory store's), \
             coordination state such as locks, rate limits and sessions included",
        );
        let memory_store_bytes = gauge(
            &mut registry,
            "memory_store_bytes",
            "Bytes held by this process's memory store: the embedded backend, or the fallback \
             during an outage",
        );
        let memory_store_budget = gauge(
            &mut registry,
            "memory_store_budget_bytes",
            "Byte budget of the memory store ([backend] memory_max_bytes); 0 without one",
        );
        let sse_subscribers = gauge(
            &mut registry,
            "sse_subscribers",
            "Open Server-Sent Events subscriptions",
        );
        let sse_dropped = counter(
            &mut registry,
            "sse_events_dropped",
            "Events discarded unread when a subscriber that fell too far behind was dropped",
        );
        let sse_subscribers_dropped = counter(
            &mut registry,
            "sse_subscribers_dropped",
            "Subscribers dropped for falling more than [server] sse_buffer_bytes (or 10000 \
             events) behind",
        );
        let l1 = with_tier.then(|| {
            let l1 = L1Metrics::default();
            let sub = registry.sub_registry_with_prefix("l1");
            for (name, help, c) in [
                ("hits", "Reads answered by the in-process tier", &l1.hits),
                (
                    "misses",
                    "Reads the in-process tier could not answer",
                    &l1.misses,
                ),
                (
                    "invalidations",
                    "Keys invalidated in the in-process tier",
                    &l1.invalidations,
                ),
                (
                    "flushes",
                    "Whole-tier flushes (database flush, lost link, pattern delete)",
                    &l1.flushes,
                ),
                (
                    "evictions",
                    "Entries pushed out of the in-process tier for space",
                    &l1.evictions,
                ),
            ] {
                sub.register(name, help, c.clone());
            }
            for (name, help, g) in [
                ("entries", "Entries the in-process tier holds", &l1.entries),
                ("bytes", "Bytes the in-process tier holds", &l1.bytes),
                (
                    "link_up",
                    "1 while the invalidation link to Redis is up (L1 serves only then)",
                    &l1.link_up,
                ),
            ] {
                sub.register(name, help, g.clone());
            }
            l1
        });
        Self {
            labelled: parking_lot::RwLock::new(std::collections::HashSet::new()),
            others: std::sync::atomic::AtomicUsize::new(0),
            latency_all: LatencyBuckets::default(),
            registry,
            requests,
            latency,
            hits,
            misses,
            server_errors,
            auth_failures,
            backend_state,
            backend_latency,
            backend_up,
            fallback_in_use,
            backend_keys,
            backend_memory,
            evictions,
            memory_store_bytes,
            memory_store_budget,
            sse_subscribers,
            sse_dropped,
            sse_subscribers_dropped,
            l1,
            evictions_seen: parking_lot::Mutex::new([0; 2]),
        }
    }

    /// Sets the memory store's byte budget (`[backend] memory_max_bytes`, or 0 when
    /// there is no memory store).
    pub fn set_memory_budget(&self, bytes: u64) {
        self.memory_store_budget
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// The counter of failed authentications (the limiter that sees them adds to it).
    pub fn auth_failures(&self) -> Counter {
        self.auth_failures.clone()
    }

    /// Counts one open SSE subscription until the returned guard drops.
    pub fn sse_subscriber(&self) -> SseSubscriber {
        self.sse_subscribers.inc();
        SseSubscriber {
            open: self.sse_subscribers.clone(),
            dropped: self.sse_dropped.clone(),
            subscribers_dropped: self.sse_subscribers_dropped.clone(),
            reported: 0,
        }
    }

    /// Gives these namespaces (the granted ones) their own series whatever else is used.
    pub fn label_namespaces<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        self.labelled
            .write()
            .extend(names.into_iter().map(str::to_owned));
    }

    /// The `namespace` label for `ns`: itself, or `_other` past the bound.
    fn ns_label(&self, ns: &str) -> String {
        if ns == "-" || self.labelled.read().contains(ns) {
            return ns.to_owned();
        }
        let mut labelled = self.labelled.write();
        if labelled.contains(ns) {
            return ns.to_owned();
        }
        use std::sync::atomic::Ordering::Relaxed;
        if self.others.load(Relaxed) >= MAX_OTHER_NAMESPACES {
            return "_other".to_owned();
        }
        self.others.fetch_add(1, Relaxed);
        labelled.insert(ns.to_owned());
        ns.to_owned()
    }

    /// Records one request.
    pub fn request(&self, namespace: &str, operation: Arc<str>, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                namespace: self.ns_label(namespace),
                operation: operation.clone(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&OpLabels { operation })
            .observe(took.as_secs_f64());
        self.latency_all.record(took);
    }

    /// Counts a 5xx answer by its error code (a fixed set: bounded labels).
    pub fn server_error(&self, code: &'static str) {
        self.server_errors.get_or_create(&CodeLabels { code }).inc();
    }

    /// Records read outcomes of a namespace.
    pub fn reads(&self, namespace: &str, hits: u64, misses: u64) {
        let l = NsLabels {
            namespace: self.ns_label(namespace),
        };
        if hits > 0 {
            self.hits.get_or_create(&l).inc_by(hits);
        }
        if misses > 0 {
            self.misses.get_or_create(&l).inc_by(misses);
        }
    }

    /// Renders the text exposition, after setting the backend gauges. `store` is the
    /// store's figures when they could be read (`None` keeps the last ones).
    pub fn render(
        &self,
        state: sharecache::BackendState,
        ping: Option<Duration>,
        tier: Option<sharecache::TierStats>,
        store: Option<&sharecache::StoreStats>,
    ) -> String {
        use sharecache::BackendState as S;
        if let (Some(t), Some(m)) = (tier, &self.l1) {
            follow(&m.hits, t.hits);
            follow(&m.misses, t.misses);
            follow(&m.invalidations, t.invalidations);
            follow(&m.flushes, t.flushes);
            follow(&m.evictions, t.evictions);
            m.entries.set(t.entries as i64);
            m.bytes.set(t.bytes as i64);
            m.link_up.set(i64::from(t.link_up));
        }
        if let Some(st) = store {
            let in_memory = st.state != S::Connected;
            // Redis's figures while connected; the memory store's otherwise.
            if matches!(st.state, S::Connected | S::Memory) {
                self.backend_keys.set(st.keys as i64);
                self.backend_memory.set(st.bytes as i64);
            }
            self.memory_store_bytes
                .set(if in_memory { st.bytes as i64 } else { 0 });
            let mut seen = self.evictions_seen.lock();
            let last = &mut seen[usize::from(in_memory)];
            // A total below the last one is a restarted Redis: all of it is new.
            let new = if st.evictions >= *last {
                st.evictions - *last
            } else {
                st.evictions
            };
            *last = st.evictions;
            self.evictions.inc_by(new);
        }
        let current = state.to_string();
        for s in STATES {
            self.backend_state
                .get_or_create(&StateLabels { state: s })
                .set(i64::from(s == current));
        }
        self.backend_up.set(i64::from(ping.is_some()));
        self.fallback_in_use
            .set(i64::from(matches!(state, S::Degraded | S::Recovering)));
        self.backend_latency
            .set(ping.map_or(f64::NAN, |d| d.as_secs_f64()));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Namespaces granted to no credential that still get their own series.
pub const MAX_OTHER_NAMESPACES: usize = 256;

/// One open SSE subscription ([`Metrics::sse_subscriber`]): counted until dropped.
#[derive(Debug)]
pub struct SseSubscriber {
    open: Gauge,
    dropped: Counter,
    subscribers_dropped: Counter,
    reported: u64,
}

impl SseSubscriber {
    /// Reports the subscription's running total of skipped events.
    pub fn skipped(&mut self, total: u64) {
        if total > self.reported {
            self.dropped.inc_by(total - self.reported);
            self.reported = total;
        }
    }

    /// Counts the subscription as dropped for falling behind.
    pub fn dropped_subscriber(&self) {
        self.subscribers_dropped.inc();
    }
}

impl Drop for SseSubscriber {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// Buckets: `i` counts latencies in `[2^(i-1), 2^i)` µs (bucket 0: under 1 µs).
pub const LATENCY_BUCKETS: usize = 40;

/// Request latencies in power-of-two microsecond buckets.
#[derive(Debug)]
pub struct LatencyBuckets([std::sync::atomic::AtomicU64; LATENCY_BUCKETS]);

impl Default for LatencyBuckets {
    fn default() -> Self {
        Self(std::array::from_fn(|_| {
            std::sync::atomic::AtomicU64::new(0)
        }))
    }
}

impl LatencyBuckets {
    /// Counts one latency.
    pub fn record(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let i = ((64 - us.leading_zeros()) as usize).min(LATENCY_BUCKETS - 1);
        self.0[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> [u64; LATENCY_BUCKETS] {
        std::array::from_fn(|i| self.0[i].load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The `q` quantile (0..=1) of the latencies counted between two snapshots, in
    /// milliseconds: the upper bound of the bucket it falls in (so within a factor of 2).
    pub fn quantile_ms(
        before: &[u64; LATENCY_BUCKETS],
        after: &[u64; LATENCY_BUCKETS],
        q: f64,
    ) -> Option<f64> {
        let d: Vec<u64> = after
            .iter()
            .zip(before)
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        let total: u64 = d.iter().sum();
        if total == 0 {
            return None;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in d.iter().enumerate() {
            seen += n;
            if seen >= want {
                return Some((1u64 << i) as f64 / 1000.0);
            }
        }
        None
    }
}

#[cfg(test)]
mod latency_tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets_of_the_interval() {
        let b = LatencyBuckets::default();
        b.record(Duration::from_micros(5000));
        let before = b.snapshot();
        for _ in 0..98 {
            b.record(Duration::from_micros(100)); // bucket [64, 128) µs
        }
        b.record(Duration::from_millis(3)); // [2048, 4096) µs
        b.record(Duration::from_millis(3));
        let after = b.snapshot();
        assert_eq!(
            LatencyBuckets::quantile_ms(&before, &after, 0.5),
            Some(0.128)
        );
        assert_eq!(
            LatencyBuckets::quantile_ms(&before, &after, 0.99),
            Some(4.096)
        );
        assert_eq!(LatencyBuckets::quantile_ms(&after, &after, 0.5), None);
    }
}
