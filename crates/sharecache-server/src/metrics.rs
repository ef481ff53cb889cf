//! Prometheus metrics of the service (prometheus-client, text exposition format).
//!
//! Label values are bounded: `namespace` is only set after authentication and grant
//! checks (otherwise `-`), and `operation` is the matched route's OpenAPI operationId
//! (`-` for no route), so unauthenticated traffic cannot create new series.

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
    backend_state: Family<StateLabels, Gauge>,
    backend_latency: Gauge<f64, std::sync::atomic::AtomicU64>,
    l1: Family<L1Labels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct L1Labels {
    figure: &'static str,
}

const STATES: [&str; 4] = ["memory", "connected", "degraded", "recovering"];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
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
        let backend_state = Family::<StateLabels, Gauge>::default();
        registry.register(
            "backend_state",
            "1 for the state the backend is in",
            backend_state.clone(),
        );
        let backend_latency = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "backend_ping_seconds",
            "Round trip of the last backend ping",
            backend_latency.clone(),
        );
        let l1 = Family::<L1Labels, Gauge>::default();
        registry.register(
            "l1",
            "In-process tier: hits, misses, invalidations, flushes (running totals), entries, bytes, link_up",
            l1.clone(),
        );
        Self {
            latency_all: LatencyBuckets::default(),
            registry,
            requests,
            latency,
            hits,
            misses,
            server_errors,
            backend_state,
            backend_latency,
            l1,
        }
    }

    /// Records one request.
    pub fn request(&self, namespace: &str, operation: Arc<str>, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                namespace: namespace.to_owned(),
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
            namespace: namespace.to_owned(),
        };
        if hits > 0 {
            self.hits.get_or_create(&l).inc_by(hits);
        }
        if misses > 0 {
            self.misses.get_or_create(&l).inc_by(misses);
        }
    }

    /// Renders the text exposition, after setting the backend gauges.
    pub fn render(
        &self,
        state: sharecache::BackendState,
        ping: Option<Duration>,
        tier: Option<sharecache::TierStats>,
    ) -> String {
        if let Some(t) = tier {
            for (figure, v) in [
                ("hits", t.hits),
                ("misses", t.misses),
                ("invalidations", t.invalidations),
                ("flushes", t.flushes),
                ("entries", t.entries),
                ("evictions", t.evictions),
                ("bytes", t.bytes),
                ("link_up", u64::from(t.link_up)),
            ] {
                self.l1.get_or_create(&L1Labels { figure }).set(v as i64);
            }
        }
        let current = state.to_string();
        for s in STATES {
            self.backend_state
                .get_or_create(&StateLabels { state: s })
                .set(i64::from(s == current));
        }
        self.backend_latency
            .set(ping.map_or(f64::NAN, |d| d.as_secs_f64()));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
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
