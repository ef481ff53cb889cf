//! sharecache: one shared, namespaced cache for a fleet of services, over Redis.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> sharecache::Result<()> {
//! use sharecache::{Cache, Ttl};
//!
//! let cache = Cache::builder().memory().build().await?;   // or .redis("redis://127.0.0.1:6379")
//! let users = cache.namespace("user")?;                   // keys are stored as "user:<key>"
//! users.set("profile:42", &serde_json::json!({"name": "Ada"}), Ttl::secs(1800)).await?;
//! let p: Option<serde_json::Value> = users.get("profile:42").await?;
//! assert_eq!(p.unwrap()["name"], "Ada");
//! users.delete_pattern("profile:*").await?;               // confined to "user:"
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! * [`key`]: namespace and key validation, key building, glob patterns confined to a
//!   namespace.
//! * [`codec`]: value encoding (JSON or MessagePack), LZ4 compression, the format header.
//! * `store`: [`Store`], one public type over a private backend trait; `store/memory.rs`
//!   (bounded in-memory store) and `store/redis.rs` (Redis standalone).
//! * `fallback`: degrade to memory while Redis is down, reconcile on recovery
//!   ([`Fallback`]).
//! * `tier`: the in-process L1 tier over Redis ([`LocalTier`]), kept coherent by Redis
//!   client tracking (RESP3 BCAST invalidations).
//! * `load`: single-flight for [`Namespace::remember`] ([`RememberError`]).
//! * `cache`: [`Cache`], [`CacheBuilder`] and [`Namespace`], the typed API.
//! * [`ratelimit`]: GCRA rate limits ([`Namespace::rate_limit`]).
//! * [`lock`]: locks with fencing tokens ([`Namespace::lock`]).
//! * [`session`]: encrypted sessions with idle and absolute timeouts.
//! * [`events`]: namespaced publish/subscribe ([`Namespace::subscribe`]).
//! * presence: heartbeats in sorted sets ([`Namespace::presence_beat`]).
//! * [`queue`]: at-least-once work queues on Redis Streams ([`Namespace::queue_claim`]).
//! * `error`: [`Error`] with an [`ErrorKind`] and predicates.
//!
//! # Guarantees
//!
//! * A caller's key or pattern never reaches outside its namespace.
//! * A stored value that does not decode (another format, version or type) is a counted
//!   miss, never a panic.
//! * With [`Fallback::Memory`], calls keep answering while Redis is down, and after
//!   recovery no caller reads a value older than one written during the outage.

#![warn(missing_docs)]

mod cache;
pub mod codec;
mod error;
pub mod events;
pub mod key;
mod load;
pub mod lock;
pub mod queue;
pub mod ratelimit;
pub mod session;
mod store;
mod tier;

pub use cache::{
    Cache, CacheBuilder, DEFAULT_MAX_BATCH, KeyPage, MAX_TTL, Namespace, NamespaceStats,
    RememberOptions, TierStats, Ttl, Usage,
};
pub use codec::{Codec, Format};
pub use error::{Error, ErrorKind, Result};
pub use key::NamespaceName;
pub use load::RememberError;
pub use store::{BackendState, Fallback, MemoryLimits, Store, StoreStats};
pub use tier::LocalTier;
