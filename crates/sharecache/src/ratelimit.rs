//! Rate limits: GCRA (the generic cell rate algorithm), one atomic step per decision.
//!
//! A limit of `limit` requests per `period` allows a burst of `limit`, then one request
//! every `period / limit`. The state is one number per key, the *theoretical arrival
//! time* (TAT, milliseconds since the Unix epoch), stored with a TTL that ends when the
//! bucket would be full again: a key left behind by a crash mid-request expires by itself.
//!
//! On Redis the step is one Lua script (`store/redis/lua/gcra.lua`,
//! `sliding_window.lua`) using the server's clock (`TIME`), so every instance agrees and
//! the decision is exact under any concurrency; redis-rs retries a `NOSCRIPT` (after a
//! restart or `SCRIPT FLUSH`) by sending the script again. On the memory store the same
//! arithmetic (`gcra`, `sliding_window`) runs under the store's compare-and-set lock with
//! the store's clock (injectable, so tests drive it).
//!
//! While Redis is down a Redis-backed limiter fails closed with `Unavailable` (HTTP 503),
//! whatever the fallback: one process's memory knows nothing of the budget spent before
//! the outage or by other instances, so deciding from it would hand out a fresh budget.

use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// Largest `limit` accepted.
pub const MAX_LIMIT: u64 = 1_000_000_000;
/// Longest `period` accepted: one year.
pub const MAX_PERIOD: Duration = Duration::from_secs(365 * 24 * 3600);

/// How calls are counted against a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Algorithm {
    /// GCRA: a burst of `limit`, then one call per `period / limit` (smooth).
    #[default]
    Gcra,
    /// Sliding window counter: about `limit` calls in any window of `period` (the
    /// previous fixed window's count, weighted by how much of it still overlaps, plus
    /// the current one's). Allows the whole limit at once, then refills as the window
    /// slides.
    SlidingWindow,
}

/// A limit: `limit` requests per `period`; each call costs `cost` (0 peeks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Requests allowed per period (and burst size).
    pub limit: u64,
    /// The period.
    pub period: Duration,
    /// Cost of this call (default 1; 0 reads the state without spending).
    pub cost: u64,
    /// How calls are counted (default GCRA).
    pub algorithm: Algorithm,
}

impl Limit {
    /// `limit` requests per `period`, cost 1, GCRA.
    pub fn per(limit: u64, period: Duration) -> Self {
        Self {
            limit,
            period,
            cost: 1,
            algorithm: Algorithm::Gcra,
        }
    }

    /// The same limit counted with another algorithm.
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The same limit with another cost.
    pub fn cost(mut self, cost: u64) -> Self {
        self.cost = cost;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::new(ErrorKind::InvalidArgument, m));
        if !(1..=MAX_LIMIT).contains(&self.limit) {
            return bad(format!("limit must be between 1 and {MAX_LIMIT}"));
        }
        if self.period < Duration::from_millis(1) || self.period > MAX_PERIOD {
            return bad(format!(
                "period must be between 1 ms and {} s",
                MAX_PERIOD.as_secs()
            ));
        }
        if self.cost > self.limit {
            return bad(format!(
                "cost {} is over the limit {}: it could never be allowed",
                self.cost, self.limit
            ));
        }
        Ok(())
    }
}

/// The outcome of one rate-limit call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// Whether the call is allowed (and was counted).
    pub allowed: bool,
    /// Calls of cost 1 still allowed right now.
    pub remaining: u64,
    /// When refused: how long until this call would be allowed.
    #[serde(serialize_with = "as_ms")]
    pub retry_after: Duration,
    /// How long until the limit is fully available again.
    #[serde(serialize_with = "as_ms")]
    pub reset_after: Duration,
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// One GCRA step. `tat` is the stored theoretical arrival time (ms), `now` the clock
/// (ms). Returns the decision and, when allowed with a cost, the TAT to store with its
/// TTL (ms). All arithmetic is in integer milliseconds, exactly as the Lua script does.
pub(crate) fn gcra(tat: Option<u64>, now: u64, limit: &Limit) -> (Decision, Option<(u64, u64)>) {
    let period = limit.period.as_millis().max(1) as u64;
    // Emission interval: at least 1 ms so the arithmetic stays exact.
    let interval = (period / limit.limit).max(1);
    let capacity = interval * limit.limit; // the period, rounded down to whole intervals
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat + interval * limit.cost;
    let allow_at = new_tat.saturating_sub(capacity);
    if now < allow_at {
        let used = tat - now;
        return (
            Decision {
                allowed: false,
                remaining: capacity.saturating_sub(used) / interval,
                retry_after: Duration::from_millis(allow_at - now),
                reset_after: Duration::from_millis(used),
            },
            None,
        );
    }
    let used = new_tat - now;
    let decision = Decision {
        allowed: true,
        remaining: capacity.saturating_sub(used) / interval,
        retry_after: Duration::ZERO,
        reset_after: Duration::from_millis(used),
    };
    let store = (limit.cost > 0).then_some((new_tat, used.max(1)));
    (decision, store)
}

/// Sliding-window state: (window index, previous window's count, current count).
pub type WindowState = (u64, u64, u64);

/// One sliding-window step. `state` is `(window index, previous count, current count)`,
/// `now` the clock (ms). Returns the decision and the state to store with its TTL (ms).
pub(crate) fn sliding_window(
    state: Option<WindowState>,
    now: u64,
    limit: &Limit,
) -> (Decision, Option<(WindowState, u64)>) {
    let period = limit.period.as_millis().max(1) as u64;
    let w = now / period;
    let elapsed = now - w * period;
    let (prev, cur) = match state {
        Some((sw, _, c)) if sw + 1 == w => (c, 0),
        Some((sw, p, c)) if sw == w => (p, c),
        _ => (0, 0),
    };
    // Integer arithmetic in "call-milliseconds" to stay exact: weighted * period.
    let weighted = prev * (period - elapsed) + cur * period;
    let budget = limit.limit * period;
    let reset = Duration::from_millis(period - elapsed);
    if weighted + limit.cost * period > budget {
        return (
            Decision {
                allowed: false,
                remaining: budget.saturating_sub(weighted) / period,
                retry_after: reset,
                reset_after: reset,
            },
            None,
        );
    }
    let cur = cur + limit.cost;
    let used = prev * (period - elapsed) + cur * period;
    let decision = Decision {
        allowed: true,
        remaining: budget.saturating_sub(used) / period,
        retry_after: Duration::ZERO,
        reset_after: reset,
    };
    let store = (limit.cost > 0).then_some(((w, prev, cur), 2 * period));
    (decision, store)
}

/// The rate limits of one namespace, got from
/// [`Namespace::rate_limits`](crate::Namespace::rate_limits). Cheap to clone.
///
/// ```
/// # async fn demo() -> sharecache::Result<()> {
/// use sharecache::ratelimit::Limit;
/// use std::time::Duration;
/// let auth = sharecache::Cache::builder().memory().build().await?.namespace("auth")?;
/// // Five login attempts per email per 15 minutes.
/// let limit = Limit::per(5, Duration::from_secs(900));
/// let d = auth.rate_limits().check("attempts:ada@example.com", limit).await?;
/// assert!(d.allowed && d.remaining == 4);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RateLimits {
    ns: crate::Namespace,
}

impl crate::Namespace {
    /// The rate limits of this namespace (see [`crate::ratelimit`]).
    pub fn rate_limits(&self) -> RateLimits {
        RateLimits { ns: self.clone() }
    }
}

impl RateLimits {
    /// One decision for `key`: allowed or not, what remains, and when to retry. Exact
    /// across instances on Redis (one atomic script on the server's clock). While Redis
    /// is down it fails with `Unavailable` (see the module docs); it never refuses a call
    /// it did not count. Each algorithm keeps its own state for a key: switching a key's
    /// algorithm starts a full budget under the new one.
    pub async fn check(&self, key: &str, limit: Limit) -> Result<Decision> {
        limit.validate()?;
        let kind = match limit.algorithm {
            Algorithm::Gcra => crate::key::Aux::RateLimit,
            Algorithm::SlidingWindow => crate::key::Aux::RateWindow,
        };
        let stored = self.ns.space.aux(kind, key)?;
        self.ns.coord().rate_limit(&stored, &limit).await
    }

    /// Forgets what `key` has spent (after a successful login, say): its next call
    /// starts a full budget. Returns whether there was anything to forget.
    pub async fn reset(&self, key: &str) -> Result<bool> {
        let stored = [
            self.ns.space.aux(crate::key::Aux::RateLimit, key)?,
            self.ns.space.aux(crate::key::Aux::RateWindow, key)?,
        ];
        Ok(self.ns.kv().del(&stored).await? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reference model in the other classic form: a leaky bucket with a level (work
    /// queued, in ms) that drains one unit per ms; a call adds `interval` and is refused
    /// if it would overflow `capacity`. GCRA's TAT form must decide exactly the same.
    struct Reference {
        interval: u64,
        capacity: u64,
        level: u64,
        last: u64,
    }

    impl Reference {
        fn allow(&mut self, now: u64) -> bool {
            let drained = self.level.saturating_sub(now - self.last);
            if drained + self.interval > self.capacity {
                return false;
            }
            self.level = drained + self.interval;
            self.last = now;
            true
        }
    }

    #[test]
    fn gcra_matches_the_reference_model_on_a_virtual_clock() {
        for (limit, period) in [(5u64, 1000u64), (1, 100), (100, 60_000), (7, 7), (3, 10)] {
            let l = Limit::per(limit, Duration::from_millis(period));
            let mut tat = None;
            let interval = (period / limit).max(1);
            let mut now = 1_700_000_000_000u64;
            let mut reference = Reference {
                interval,
                capacity: interval * limit,
                level: 0,
                last: now,
            };
            let mut x = 12345u64;
            for _ in 0..5000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                now += x % (period / limit + 2);
                let (d, store) = gcra(tat, now, &l);
                assert_eq!(
                    d.allowed,
                    reference.allow(now),
                    "limit {limit}/{period} at {now}"
                );
                if let Some((t, ttl)) = store {
                    assert_eq!(
                        ttl,
                        t - now,
                        "the state expires when the bucket is full again"
                    );
                    tat = Some(t);
                }
                assert!(d.remaining <= limit);
                if !d.allowed {
                    assert!(d.retry_after > Duration::ZERO);
                }
            }
        }
    }

    #[test]
    fn a_burst_of_limit_then_one_per_interval() {
        let l = Limit::per(5, Duration::from_secs(1));
        let mut tat = None;
        let t0 = 1_000_000u64;
        for i in 0..5 {
            let (d, s) = gcra(tat, t0, &l);
            assert!(d.allowed, "call {i}");
            assert_eq!(d.remaining, 4 - i);
            tat = s.map(|(t, _)| t);
        }
        let (d, _) = gcra(tat, t0, &l);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_millis(200));
        assert_eq!(d.reset_after, Duration::from_secs(1));
        let (d, _) = gcra(tat, t0 + 199, &l);
        assert!(!d.allowed);
        let (d, _) = gcra(tat, t0 + 200, &l);
        assert!(d.allowed);
        // Cost 0 peeks without spending.
        let (d, s) = gcra(tat, t0 + 200, &l.cost(0));
        assert!(d.allowed && s.is_none());
    }

    #[test]
    fn sliding_window_stays_within_its_bounds() {
        // Exhaustive check on a virtual clock: every call that is allowed keeps the count
        // of allowed calls in the trailing `period` (weighted as the algorithm defines it)
        // within the limit, and in any exact window of `period` at most 2 * limit pass
        // (the documented bound of the weighted approximation).
        for (limit, period) in [(5u64, 1000u64), (1, 100), (10, 60_000)] {
            let l = Limit::per(limit, Duration::from_millis(period))
                .algorithm(Algorithm::SlidingWindow);
            let mut state = None;
            let mut allowed = Vec::new();
            let mut now = 1_700_000_000_000u64;
            let mut x = 987654321u64;
            for _ in 0..5000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                now += x % (period / limit.max(1) + 3);
                let (d, s) = sliding_window(state, now, &l);
                if let Some((st, ttl)) = s {
                    assert_eq!(ttl, 2 * period);
                    state = Some(st);
                }
                if d.allowed {
                    allowed.push(now);
                }
                let in_window = allowed.iter().filter(|&&t| t + period > now).count() as u64;
                assert!(
                    in_window <= 2 * limit,
                    "{in_window} calls in one window of {period} ms with limit {limit}"
                );
            }
            // Steady state: about `limit` per period.
            let span = (allowed.last().unwrap() - allowed.first().unwrap()) as f64 / period as f64;
            let rate = allowed.len() as f64 / span.max(1.0);
            assert!(
                rate <= limit as f64 * 1.2 + 1.0,
                "rate {rate} per period for limit {limit}"
            );
        }
        // A fresh window allows exactly `limit` at once.
        let l = Limit::per(3, Duration::from_secs(1)).algorithm(Algorithm::SlidingWindow);
        let (mut state, t0) = (None, 5_000_000u64);
        for i in 0..3 {
            let (d, s) = sliding_window(state, t0, &l);
            assert!(d.allowed, "call {i}");
            state = s.map(|(st, _)| st);
        }
        assert!(!sliding_window(state, t0, &l).0.allowed);
    }

    #[test]
    fn limits_are_validated() {
        assert!(Limit::per(0, Duration::from_secs(1)).validate().is_err());
        assert!(Limit::per(5, Duration::ZERO).validate().is_err());
        assert!(
            Limit::per(5, Duration::from_secs(1))
                .cost(6)
                .validate()
                .is_err()
        );
        assert!(
            Limit::per(MAX_LIMIT + 1, Duration::from_secs(1))
                .validate()
                .is_err()
        );
        assert!(
            Limit::per(5, MAX_PERIOD + Duration::from_secs(1))
                .validate()
                .is_err()
        );
        assert!(Limit::per(5, Duration::from_secs(1)).validate().is_ok());
    }
}
