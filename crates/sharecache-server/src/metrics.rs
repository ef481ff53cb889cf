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
struct StateLabels {
    state: &'static str,
}

/// The service's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<OpLabels, Histogram>,
    hits: Family<NsLabels, Counter>,
    misses: Family<NsLabels, Counter>,
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
            registry,
            requests,
            latency,
            hits,
            misses,
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
