//! Test contexts: a cache on each backend, backed by real servers from the testkit.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use sharecache::{Cache, Fallback};
use sharecache_testkit::{RedisCluster, RedisServer};

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
