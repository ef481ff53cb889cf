//! The store's time source: the system clocks, or a manual clock that tests move by hand.
//!
//! Two readings, because two kinds of time are needed:
//!
//! * [`Clock::now_ms`]: monotonic milliseconds, for deadlines (entry TTLs, L1 expiry).
//!   On Linux it is `CLOCK_MONOTONIC_COARSE` (a vDSO read of the last tick, ~5 ns,
//!   1-4 ms resolution) instead of `Instant::now()` (~27 ns here): every get reads the
//!   clock to check the deadline, and a TTL a few milliseconds early is fine for a cache
//!   (Redis' own expiry is no more precise).
//! * [`Clock::wall_ms`]: milliseconds since the Unix epoch, like Redis `TIME`, for state
//!   that is stored as a point in time and may be replayed into Redis after an outage
//!   (rate-limit state, presence expiries, stream and queue ids).
//!
//! **Guarantee**: every time-dependent path of the memory store reads one `Clock`, so a
//! manual clock moves all of them together (both readings advance by the same amount).

#[cfg(test)]
use std::sync::Arc;
#[cfg(test)]
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Where a manual clock's wall reading starts (2023-11-14T22:13:20Z): a plausible epoch
/// time, so the arithmetic is the same as with the system clock.
#[cfg(test)]
const MANUAL_EPOCH_MS: u64 = 1_700_000_000_000;

/// Time source: the system's clocks, or a manual one for tests.
#[derive(Debug, Clone)]
pub(crate) enum Clock {
    /// The system clocks; the value is the monotonic origin.
    System(u64),
    /// Milliseconds advanced by hand.
    #[cfg(test)]
    Manual(Arc<AtomicU64>),
}

impl Clock {
    pub(crate) fn system() -> Self {
        Clock::System(coarse_now_ms())
    }

    /// A manual clock at 0 and the handle that moves it.
    #[cfg(test)]
    pub(crate) fn manual() -> (Self, Arc<AtomicU64>) {
        let t = Arc::new(AtomicU64::new(0));
        (Clock::Manual(t.clone()), t)
    }

    /// Milliseconds since the clock's origin, never 0 (0 means "no deadline").
    #[inline]
    pub(crate) fn now_ms(&self) -> u64 {
        match self {
            Clock::System(origin) => coarse_now_ms().saturating_sub(*origin) + 1,
            #[cfg(test)]
            Clock::Manual(ms) => ms.load(Ordering::Relaxed) + 1,
        }
    }

    /// Milliseconds since the Unix epoch.
    pub(crate) fn wall_ms(&self) -> u64 {
        match self {
            Clock::System(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            #[cfg(test)]
            Clock::Manual(ms) => MANUAL_EPOCH_MS + ms.load(Ordering::Relaxed),
        }
    }
}

/// Monotonic milliseconds from an arbitrary origin.
#[cfg(target_os = "linux")]
#[inline]
fn coarse_now_ms() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    match clock_gettime(ClockId::CLOCK_MONOTONIC_COARSE) {
        Ok(t) => t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000,
        Err(_) => fallback_now_ms(),
    }
}

#[cfg(not(target_os = "linux"))]
#[inline]
fn coarse_now_ms() -> u64 {
    fallback_now_ms()
}

#[cfg_attr(target_os = "linux", allow(dead_code))]
fn fallback_now_ms() -> u64 {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64
}
