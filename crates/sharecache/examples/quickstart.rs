//! A tour of the cache API on the embedded memory store (or Redis with `REDIS_URL`).
//!
//!     cargo run --release -p sharecache --example quickstart
//!     REDIS_URL=redis://127.0.0.1:6379 cargo run --release -p sharecache --example quickstart

use serde::{Deserialize, Serialize};
use sharecache::{Cache, Ttl};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
}

#[tokio::main]
async fn main() -> sharecache::Result<()> {
    let cache = Cache::builder().with_env()?.build().await?;
    println!("backend: {}", cache.state());

    let users = cache.namespace("user")?;
    users
        .set(
            "profile:42",
            &Profile {
                id: 42,
                name: "Ada".into(),
            },
            Ttl::secs(1800),
        )
        .await?;
    let p: Option<Profile> = users.get("profile:42").await?;
    println!("get profile:42 -> {p:?}");

    users
        .mset(&[("profile:1", "one"), ("profile:2", "two")], Ttl::secs(60))
        .await?;
    let many: Vec<Option<String>> = users.mget(&["profile:1", "missing", "profile:2"]).await?;
    println!("mget -> {many:?}");

    let page = users.keys("profile:*", None, 100).await?;
    println!("keys profile:* -> {:?}", page.keys);

    println!(
        "delete_pattern profile:* -> {} deleted",
        users.delete_pattern("profile:*").await?
    );
    println!("stats -> {:?}", users.stats().await?);

    // Bad input is a typed error that says what to do.
    if let Err(e) = users.set("bad\nkey", &1, Ttl::secs(1)).await {
        println!("refused: {e} (kind {:?})", e.kind());
    }
    Ok(())
}
