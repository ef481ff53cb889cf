//! Presence: who is online in a set, by heartbeats. [`Presence`] is got from
//! [`Namespace::presence`](crate::Namespace::presence).
//!
//! Each member's heartbeat stores its expiry in a sorted set; members that stop beating
//! vanish when their TTL passes, with no sweeper involved (a read drops the expired).
//! The memory store keeps the same on its own clock.
//!
//! ```
//! # async fn demo() -> sharecache::Result<()> {
//! use std::time::Duration;
//! let chat = sharecache::Cache::builder().memory().build().await?.namespace("chat")?;
//! let room = chat.presence("room:1")?;
//! room.beat("ada", Duration::from_secs(60)).await?;
//! let online = room.list().await?;
//! assert_eq!(online[0].0, "ada");
//! assert!(room.leave("ada").await?);
//! # Ok(()) }
//! ```

use std::time::Duration;

use crate::Namespace;
use crate::error::{Error, ErrorKind, Result};
use crate::key::{Aux, validate_key};
use crate::ttl::MAX_TTL;

/// One presence set of a namespace. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Presence {
    ns: Namespace,
    key: String,
}

impl Namespace {
    /// The presence set `set` of this namespace (named like a key).
    pub fn presence(&self, set: &str) -> Result<Presence> {
        Ok(Presence {
            key: self.space.aux(Aux::Presence, set)?,
            ns: self.clone(),
        })
    }
}

/// Most presence sets one page of [`Namespace::presence_sets`] lists.
pub const MAX_SETS_PAGE: usize = 100;

impl Namespace {
    /// The names of this namespace's presence sets with a member alive (a set's key
    /// expires with its last member), at most `count` per page (clamped to
    /// 1..=[`MAX_SETS_PAGE`]); pass the cursor back for more. Listed by SCAN in bounded
    /// steps (never `KEYS`), so a page costs the same at a million keys. Open one with
    /// [`presence`](Self::presence) for its members.
    pub async fn presence_sets(
        &self,
        cursor: Option<&str>,
        count: usize,
    ) -> Result<crate::KeyPage> {
        self.aux_names(Aux::Presence, cursor, count.clamp(1, MAX_SETS_PAGE))
            .await
    }
}

impl Presence {
    /// Marks `member` alive for `ttl` (a heartbeat).
    pub async fn beat(&self, member: &str, ttl: Duration) -> Result<()> {
        validate_key(member)?;
        if ttl < Duration::from_millis(1) || ttl > MAX_TTL {
            return Err(Error::new(
                ErrorKind::InvalidTtl,
                "presence ttl must be between 1 ms and ten years",
            ));
        }
        self.ns.coord().presence_beat(&self.key, member, ttl).await
    }

    /// `member` leaves now; returns whether it was online.
    pub async fn leave(&self, member: &str) -> Result<bool> {
        validate_key(member)?;
        self.ns.coord().presence_leave(&self.key, member).await
    }

    /// Who is online, with the time each has left, soonest to expire first.
    pub async fn list(&self) -> Result<Vec<(String, Duration)>> {
        self.ns.coord().presence_list(&self.key).await
    }
}
