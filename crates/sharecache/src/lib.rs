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
//! The key-value core:
//!
//! * `cache/`: [`Cache`] and [`Namespace`] (`mod.rs`: the key-value calls),
//!   [`CacheBuilder`] (`builder.rs`), the one read path through L1 with its hit and
//!   miss accounting (`read.rs`, [`Source`]), tags (`tags.rs`) and
//!   [`remember`](Namespace::remember) (`remember.rs`, with single-flight in `load.rs`).
//! * `inspect.rs`: operator tools on a namespace ([`Namespace::inspect`], rewriting a
//!   value or a TTL while keeping the other, bounded pattern counts) for the dashboard.
//! * `ttl.rs`: [`Ttl`] and its bounds. [`key`]: namespace, key and pattern validation,
//!   stored keys, and the internal key kinds of the primitives. [`codec`]: value
//!   formats (JSON, MessagePack, LZ4, the header, raw bytes), [`RawJson`],
//!   [`RawBytes`] and value [`Version`]s.
//! * `tier.rs`: the in-process L1 ([`LocalTier`]), kept coherent by Redis client
//!   tracking.
//! * `store/`: the storage behind a namespace: one [`Store`] type over the memory and
//!   Redis (standalone, Sentinel, Cluster) backends, and the memory fallback
//!   ([`Fallback`]) during an outage. [`RedisUrl`] parses a backend URL for tools that
//!   reach each node themselves (`sharecache provision` and `doctor`).
//! * `error.rs`: [`Error`], its [`ErrorKind`] and predicates. `random.rs`: the one CSPRNG
//!   behind every token.
//!
//! One module per primitive, holding its handle (got from a [`Namespace`]), its types,
//! its rules and its guarantees:
//!
//! | primitive | handle | module |
//! | --- | --- | --- |
//! | locks with fencing tokens | [`Namespace::locks`] | [`lock`] |
//! | encrypted sessions | [`Namespace::sessions`] | [`session`] |
//! | rate limits (GCRA, sliding window) | [`Namespace::rate_limits`] | [`ratelimit`] |
//! | presence | [`Namespace::presence`] | [`presence`] |
//! | publish/subscribe, durable events | [`Namespace::channel`] | [`events`] |
//! | work queues | [`Namespace::queue`] | [`queue`] |
//!
//! Imports run one way: primitives -> `cache` -> `store`, with `key`, `codec`, `ttl`
//! and `error` at the bottom.
//!
//! # Guarantees
//!
//! * A caller's key or pattern never reaches outside its namespace.
//! * A stored value that does not decode (another format, version or type) is a counted
//!   miss, never a panic.
//! * With [`Fallback::Memory`], cache calls keep answering while Redis is down, and after
//!   recovery no caller reads a value older than one written during the outage. What one
//!   process's memory cannot decide for every instance (locks, rate limits, queues,
//!   durable events, the per-user session index) fails with `Unavailable` instead.

#![warn(missing_docs)]

mod cache;
pub mod codec;
mod error;
pub mod events;
mod inspect;
pub mod key;
mod load;
pub mod lock;
pub mod presence;
pub mod queue;
mod random;
pub mod ratelimit;
pub mod session;
mod store;
mod tier;
mod ttl;

pub use cache::{
    Cache, CacheBuilder, DEFAULT_MAX_BATCH, Entry, KeyPage, LISTING_BUDGET, MAX_COUNTED_NAMESPACES,
    Namespace, NamespaceStats, RememberOptions, Source, TierStats, Usage, UsageByNamespace,
};
pub use codec::{Codec, Format, RawBytes, RawJson, Version};
pub use error::{Error, ErrorKind, Result};
pub use inspect::{Inspected, MatchCount};
pub use key::NamespaceName;
pub use load::RememberError;
#[doc(hidden)]
pub use store::Store;
pub use store::redis::url::{install_tls_provider, redact_url};
pub use store::{BackendState, Fallback, MemoryLimits, RedisKind, RedisUrl, StoreStats};
pub use tier::LocalTier;
pub use ttl::{MAX_TTL, Ttl};
