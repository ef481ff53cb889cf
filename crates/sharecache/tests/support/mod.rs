//! Test contexts: a cache on each backend, backed by real servers from the testkit.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use sharecache::{Cache, CacheBuilder, Fallback};
use sharecache_testkit::{RedisCluster, RedisServer};

/// Runs each `async fn name(case: Case<'_>)` on every backend: the embedded memory store,
/// a real redis-server, and a 6-node Redis Cluster (one cluster for all the names, each
/// case under its own key prefix, so none sees another's keys). An optional
/// `configure = f;` (an `fn(CacheBuilder) -> CacheBuilder`) adjusts every cache, e.g.
/// to give it session keys.
#[macro_export]
macro_rules! every_backend {
    (configure = $cfg:expr; $($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test] async fn $name() {
                let configure: fn(sharecache::CacheBuilder) -> sharecache::CacheBuilder = {
                    #[allow(unused_imports)]
                    use super::*;
                    $cfg
                };
                let cache = configure(sharecache::Cache::builder().memory()).build().await.expect("memory cache");
                super::$name($crate::support::Case::of(cache)).await;
            })*
        }
        mod redis {
            $(#[tokio::test] async fn $name() {
                let server = sharecache_testkit::RedisServer::start();
                #[allow(unused_imports)]
                use super::*;
                let case = $crate::support::Case::redis(&server, $cfg).await;
                super::$name(case).await;
            })*
        }
        mod cluster {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn every_case() {
                #[allow(unused_imports)]
                use super::*;
                let cluster = $crate::support::start_cluster().await;
                $( super::$name($crate::support::Case::cluster(&cluster, stringify!($name), $cfg).await).await; )*
            }
        }
    };
    ($($name:ident),* $(,)?) => {
        $crate::every_backend!(configure = |b| b; $($name),*);
    };
}

/// A builder on a Redis backend (failing fast, under `prefix`); `None` for memory.
fn redis_builder(backend: Backend<'_>, prefix: Option<&str>) -> Option<CacheBuilder> {
    let url = match backend {
        Backend::Memory => return None,
        Backend::Redis(s) => s.url(),
        Backend::Cluster(c) => c.url(),
    };
    let b = Cache::builder().redis(url).fallback(Fallback::Fail);
    Some(match prefix {
        Some(p) => b.key_prefix(p),
        None => b,
    })
}

/// Where a case of [`every_backend!`] runs.
#[derive(Debug, Clone, Copy)]
pub enum Backend<'a> {
    Memory,
    Redis(&'a RedisServer),
    Cluster(&'a RedisCluster),
}

/// One case of [`every_backend!`]: its cache, and the servers behind it for checks made
/// beside the library (raw writes, key inspection).
#[derive(Debug)]
pub struct Case<'a> {
    pub cache: Cache,
    pub backend: Backend<'a>,
    /// The key prefix of the case's caches (cluster cases share one cluster).
    pub prefix: Option<&'static str>,
    configure: fn(CacheBuilder) -> CacheBuilder,
}

impl<'a> Case<'a> {
    /// A case on `cache` alone: the memory store, or a cache built by hand whose backend
    /// the case does not inspect.
    pub fn of(cache: Cache) -> Self {
        Case {
            cache,
            backend: Backend::Memory,
            prefix: None,
            configure: |b| b,
        }
    }

    pub async fn redis(
        server: &'a RedisServer,
        configure: fn(CacheBuilder) -> CacheBuilder,
    ) -> Self {
        Self::on(Backend::Redis(server), None, configure).await
    }

    pub async fn cluster(
        cluster: &'a RedisCluster,
        prefix: &'static str,
        configure: fn(CacheBuilder) -> CacheBuilder,
    ) -> Self {
        Self::on(Backend::Cluster(cluster), Some(prefix), configure).await
    }

    async fn on(
        backend: Backend<'a>,
        prefix: Option<&'static str>,
        configure: fn(CacheBuilder) -> CacheBuilder,
    ) -> Self {
        let b = redis_builder(backend, prefix).expect("a Redis backend");
        Case {
            cache: configure(b).build().await.expect("cache"),
            backend,
            prefix,
            configure,
        }
    }

    /// The standalone Redis behind the case, if that is its backend.
    pub fn server(&self) -> Option<&'a RedisServer> {
        match self.backend {
            Backend::Redis(s) => Some(s),
            _ => None,
        }
    }

    /// Another cache on the same data (same Redis, same prefix), adjusted by `more`;
    /// `None` on the memory store, whose data lives in one cache.
    pub async fn another(&self, more: impl FnOnce(CacheBuilder) -> CacheBuilder) -> Option<Cache> {
        let b = redis_builder(self.backend, self.prefix)?;
        Some(
            more((self.configure)(b))
                .build()
                .await
                .expect("another cache"),
        )
    }

    /// Writes `value` at `key` (a stored key, without the case's prefix) straight into
    /// Redis, as another client would; `false` on the memory store.
    pub fn raw_set(&self, key: &str, value: &[u8]) -> bool {
        let full = sharecache::key::deployment_head(self.prefix) + key;
        let value = std::str::from_utf8(value).expect("UTF-8 test value");
        match self.backend {
            Backend::Memory => return false,
            Backend::Redis(s) => s.cmd(&["SET", &full, value]),
            Backend::Cluster(c) => c
                .master_for_slot(RedisCluster::slot_of(&full))
                .cmd(&["SET", &full, value]),
        };
        true
    }
}

impl Case<'_> {
    /// What Redis holds at `key` (a stored key, without the case's prefix), as text, as
    /// another client would read it; `None` if nothing, or on the memory store.
    pub fn raw_get(&self, key: &str) -> Option<String> {
        let full = sharecache::key::deployment_head(self.prefix) + key;
        let r = match self.backend {
            Backend::Memory => return None,
            Backend::Redis(s) => s.cmd(&["GET", &full]),
            Backend::Cluster(c) => c
                .master_for_slot(RedisCluster::slot_of(&full))
                .cmd(&["GET", &full]),
        };
        r.text().map(str::to_owned)
    }
}

/// A cache and whatever keeps its backend alive.
pub struct Ctx {
    pub cache: Cache,
    pub server: Option<RedisServer>,
    pub cluster: Option<RedisCluster>,
}

pub async fn memory() -> Ctx {
    Ctx {
        cache: Cache::builder()
            .memory()
            .build()
            .await
            .expect("memory cache"),
        server: None,
        cluster: None,
    }
}

pub async fn redis() -> Ctx {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .redis(server.url())
        .fallback(Fallback::Fail)
        .build()
        .await
        .expect("redis cache");
    Ctx {
        cache,
        server: Some(server),
        cluster: None,
    }
}

/// A fresh 6-node Redis Cluster (3 masters, 3 replicas), started off the async threads.
pub async fn start_cluster() -> RedisCluster {
    tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .expect("start cluster")
}

/// A cache on a fresh 6-node Redis Cluster.
pub async fn cluster() -> Ctx {
    let cluster = start_cluster().await;
    let cache = on_cluster(&cluster).await;
    Ctx {
        cache,
        server: None,
        cluster: Some(cluster),
    }
}

/// Another cache on `cluster`.
pub async fn on_cluster(cluster: &RedisCluster) -> Cache {
    Cache::builder()
        .redis(cluster.url())
        .fallback(Fallback::Fail)
        .build()
        .await
        .expect("cluster cache")
}

/// A cache with an L1 tier (tracking probed every 100 ms) on the Redis at `url`.
pub async fn tiered(url: String) -> Cache {
    Cache::builder()
        .redis(url)
        .fallback(Fallback::Fail)
        .command_timeout(Duration::from_millis(1000))
        .local_tier(
            sharecache::LocalTier::max_bytes(8 << 20).probe_interval(Duration::from_millis(100)),
        )
        .build()
        .await
        .expect("tiered cache")
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
