//! `Ttl`: how long a value lives, and the bounds every write checks.

use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// Longest TTL accepted: ten years.
pub const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long a value lives.
///
/// ```
/// use sharecache::Ttl;
/// let t = Ttl::secs(300);
/// assert_eq!(t.duration(), Some(std::time::Duration::from_secs(300)));
/// assert_eq!(Ttl::NEVER.duration(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ttl(Option<Duration>);

impl Ttl {
    /// No expiry: the value lives until deleted or evicted.
    pub const NEVER: Ttl = Ttl(None);

    /// Expires after `s` seconds.
    pub const fn secs(s: u64) -> Self {
        Ttl(Some(Duration::from_secs(s)))
    }

    /// Expires after `ms` milliseconds.
    pub const fn millis(ms: u64) -> Self {
        Ttl(Some(Duration::from_millis(ms)))
    }

    /// The duration, or `None` for no expiry.
    pub const fn duration(self) -> Option<Duration> {
        self.0
    }

    /// Checks the TTL is within 1 ms..=[`MAX_TTL`]; `Ok(None)` for [`Ttl::NEVER`]. Every
    /// write checks it; callers that take a TTL from outside (the HTTP service) call it
    /// to answer with the same error.
    pub fn validate(self) -> Result<Option<Duration>> {
        match self.0 {
            Some(d) if d < Duration::from_millis(1) => Err(Error::new(
                ErrorKind::InvalidTtl,
                "invalid TTL: must be at least 1 ms (use Ttl::NEVER for no expiry)",
            )),
            Some(d) if d > MAX_TTL => Err(Error::new(
                ErrorKind::InvalidTtl,
                format!(
                    "invalid TTL: {}s is over the maximum of {}s",
                    d.as_secs(),
                    MAX_TTL.as_secs()
                ),
            )),
            other => Ok(other),
        }
    }
}

impl From<Duration> for Ttl {
    fn from(d: Duration) -> Self {
        Ttl(Some(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_bounds() {
        assert!(Ttl::millis(0).validate().is_err());
        assert!(Ttl::millis(1).validate().is_ok());
        assert!(
            Ttl::from(MAX_TTL + Duration::from_secs(1))
                .validate()
                .is_err()
        );
        assert_eq!(Ttl::NEVER.validate().unwrap(), None);
    }
}
