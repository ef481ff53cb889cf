//! SSE fan-out: N subscribers on one channel, M events; reports the delivery latency
//! (publish to last subscriber) distribution and the events/s delivered.
//!
//!     cargo run --release -p sharecache-server --example sse_fanout -- 1000 20
//!     REDIS_URL=redis://127.0.0.1:6379 cargo run --release -p sharecache-server --example sse_fanout -- 1000 20

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sharecache_server::auth::{hash_token, new_token};
use sharecache_server::config::Config;
use sharecache_server::http::router;
use sharecache_server::serve::{app_state, open_cache};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (subscribers, events) = (
        args.first().copied().unwrap_or(1000),
        args.get(1).copied().unwrap_or(20),
    );
    let admin = new_token();
    let state_dir = tempfile::tempdir()?;
    let mut cfg = Config::parse("fanout", "")?;
    cfg.apply_env()?;
    cfg.server.state_dir = state_dir.path().to_owned();
    let cache = open_cache(&cfg).await?;
    let app = router(app_state(&cfg, cache, hash_token(&admin)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(subscribers + 8)
        .build()?;
    let url = format!("http://{addr}/v1/events/bench/fanout");
    // received[e] counts subscribers that got event e; done[e] is when the last did (ns since start).
    let received: Arc<Vec<AtomicU64>> = Arc::new((0..events).map(|_| AtomicU64::new(0)).collect());
    let done: Arc<Vec<AtomicU64>> = Arc::new((0..events).map(|_| AtomicU64::new(0)).collect());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..subscribers {
        let resp = client
            .get(&url)
            .bearer_auth(&admin)
            .header("accept", "text/event-stream")
            .send()
            .await?;
        let (received, done) = (received.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut body = resp.bytes_stream();
            let mut buf = String::new();
            let mut seen = 0;
            while seen < events {
                let Ok(Some(Ok(chunk))) =
                    tokio::time::timeout(Duration::from_secs(30), body.next()).await
                else {
                    return;
                };
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(i) = buf.find("\n\n") {
                    let frame: String = buf.drain(..i + 2).collect();
                    if let Some(d) = frame.lines().find_map(|l| l.strip_prefix("data:"))
                        && let Ok(e) = d.trim().parse::<usize>()
                    {
                        if e < events
                            && received[e].fetch_add(1, Ordering::SeqCst) + 1 == subscribers as u64
                        {
                            done[e].store(start.elapsed().as_nanos() as u64, Ordering::SeqCst);
                        }
                        seen += 1;
                    }
                }
            }
        }));
    }
    // Let every subscription go live before the first event.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut lat = Vec::new();
    let t0 = Instant::now();
    for e in 0..events {
        let sent = start.elapsed().as_nanos() as u64;
        client
            .post(&url)
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(e.to_string())
            .send()
            .await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while done[e].load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let d = done[e].load(Ordering::SeqCst);
        anyhow::ensure!(
            d > 0,
            "event {e} did not reach all {subscribers} subscribers ({} did)",
            received[e].load(Ordering::SeqCst)
        );
        lat.push(Duration::from_nanos(d - sent));
    }
    let elapsed = t0.elapsed();
    lat.sort();
    println!(
        "{subscribers} SSE subscribers, {events} events: publish-to-last-subscriber p50 {:?}, p99 {:?}, max {:?}; {:.0} deliveries/s",
        lat[lat.len() / 2],
        lat[(lat.len() * 99 / 100).min(lat.len() - 1)],
        lat[lat.len() - 1],
        (subscribers * events) as f64 / elapsed.as_secs_f64()
    );
    for t in tasks {
        t.abort();
    }
    Ok(())
}
