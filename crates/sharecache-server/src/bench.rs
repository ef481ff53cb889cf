//! `sharecache bench`: a load generator that drives the library API.
//!
//! Each of `--concurrency` tokio tasks runs one operation after another against the
//! namespace `--namespace` (default `bench`; refused if it already holds keys, unless
//! `--overwrite`), which is emptied at the end, until `--duration` has passed, recording every operation's latency
//! in its own histogram (nanosecond resolution); the histograms are merged at the end.
//! Values are strings of `--value-size` bytes; compression is off so the bytes on the
//! wire match what redis-benchmark `-d` sends. Against Redis the fallback is `Fail`, so a
//! dying server shows up as errors instead of memory-speed figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use serde::Serialize;
use sharecache::{Cache, Fallback, Namespace, Ttl};

/// Arguments of `sharecache bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Store to drive: `memory://` or `redis://HOST:PORT[/DB]`.
    #[arg(long, default_value = "memory://")]
    pub target: String,
    /// Operation mix.
    #[arg(long, value_enum, default_value_t = Op::Get)]
    pub op: Op,
    /// Concurrent callers (tokio tasks) in this process.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: u32,
    /// Seconds to run (fractions allowed).
    #[arg(long, default_value_t = 10.0, value_parser = parse_duration_secs)]
    pub duration: f64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=(8 << 20)))]
    pub value_size: u32,
    /// Distinct keys (pre-filled before a get or mixed run).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub keys: u32,
    /// Keys per `mget` (op `mget`).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch: u32,
    /// Worker threads of the runtime (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// The namespace the bench writes to and empties at the end.
    #[arg(long, default_value = "bench")]
    pub namespace: String,
    /// Run even if the namespace already holds keys (they are deleted at the end).
    #[arg(long)]
    pub overwrite: bool,
    /// Print the result as JSON on the last line.
    #[arg(long)]
    pub json: bool,
}

fn parse_duration_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.01..=86_400.0).contains(&v) {
        return Err("duration must be between 0.01 and 86400 seconds".into());
    }
    Ok(v)
}

/// Operation mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Op {
    /// Reads of pre-filled keys (all hits).
    Get,
    /// Writes.
    Set,
    /// 80% reads, 20% writes.
    Mixed,
    /// Rate-limit decisions (GCRA), one bucket per key, a limit no call reaches.
    Ratelimit,
    /// Lock acquire + release of a random key (both counted as one operation).
    Lock,
    /// `mget` of `--batch` pre-filled keys (one operation per batch).
    Mget,
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// Successful operations per second.
    pub ops_per_sec: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Operations that returned an error.
    pub errors: u64,
    /// Keys the bench deleted from its namespace at the end.
    pub removed_keys: u64,
}

/// Builds a runtime and runs the benchmark, printing the result.
pub fn run_blocking(args: BenchArgs) -> anyhow::Result<()> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = args.threads {
        rt.worker_threads(t.max(1));
    }
    let rt = rt.enable_all().build().context("start the tokio runtime")?;
    let r = rt.block_on(run(&args))?;
    if !args.json {
        println!(
            "{} {:?} c={} value={}B keys={}: {:.0} ops/s  p50 {:.1} us  p99 {:.1} us  errors {}",
            args.target,
            args.op,
            args.concurrency,
            args.value_size,
            args.keys,
            r.ops_per_sec,
            r.p50_us,
            r.p99_us,
            r.errors
        );
    } else {
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(())
}

/// Runs the benchmark described by `args`.
pub async fn run(args: &BenchArgs) -> anyhow::Result<BenchResult> {
    if args.op == Op::Mget && args.batch > args.keys {
        bail!(
            "--batch ({}) cannot exceed --keys ({})",
            args.batch,
            args.keys
        );
    }
    let cache = Cache::builder()
        .url(&args.target)
        .fallback(Fallback::Fail)
        .compress_threshold(usize::MAX)
        .build()
        .await
        .with_context(|| format!("connect to {}", args.target))?;
    let ns = cache.namespace(&args.namespace)?;
    if !args.overwrite && !ns.keys("*", None, 1).await?.keys.is_empty() {
        bail!(
            "namespace {:?} already holds keys; the bench writes there and deletes every key \
             of it at the end: pick another with --namespace, or pass --overwrite",
            args.namespace
        );
    }
    let value: Arc<str> = Arc::from("x".repeat(args.value_size as usize));
    let keys: Arc<Vec<String>> = Arc::new((0..args.keys).map(|i| format!("key:{i}")).collect());
    if matches!(args.op, Op::Get | Op::Mixed | Op::Mget) {
        prefill(&ns, &keys, &value).await?;
    }
    let duration = Duration::from_secs_f64(args.duration);
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(args.concurrency as usize);
    for t in 0..args.concurrency {
        let (ns, keys, value, op) = (ns.clone(), keys.clone(), value.clone(), args.op);
        let batch = args.batch as usize;
        tasks.push(tokio::spawn(async move {
            worker(t, ns, keys, value, op, batch, deadline).await
        }));
    }
    let mut hist = new_histogram();
    let mut errors = 0;
    for task in tasks {
        let (h, e) = task.await.context("a bench task panicked")?;
        hist.add(&h).context("merge histograms")?;
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let removed_keys = ns
        .clear()
        .await
        .with_context(|| format!("delete the bench's keys in namespace {:?}", args.namespace))?;
    if hist.is_empty() {
        bail!(
            "no operation succeeded in {elapsed:.1}s ({errors} errors): is the target reachable?"
        );
    }
    Ok(BenchResult {
        ops_per_sec: hist.len() as f64 / elapsed,
        p50_us: hist.value_at_quantile(0.50) as f64 / 1000.0,
        p99_us: hist.value_at_quantile(0.99) as f64 / 1000.0,
        errors,
        removed_keys,
    })
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

async fn prefill(ns: &Namespace, keys: &[String], value: &Arc<str>) -> anyhow::Result<()> {
    for chunk in keys.chunks(1000) {
        let items: Vec<(&str, &str)> = chunk.iter().map(|k| (k.as_str(), &**value)).collect();
        ns.mset(&items, Ttl::secs(3600))
            .await
            .context("pre-fill keys")?;
    }
    Ok(())
}

async fn worker(
    task: u32,
    ns: Namespace,
    keys: Arc<Vec<String>>,
    value: Arc<str>,
    op: Op,
    batch: usize,
    deadline: Instant,
) -> (Histogram<u64>, u64) {
    let mut hist = new_histogram();
    let mut errors = 0;
    // A cheap xorshift per task: key choice must not cost more than the operation.
    let mut rng =
        0x9E37_79B9_7F4A_7C15u64 ^ (u64::from(task) + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut n = 0u64;
    loop {
        // Checking the clock every 64 operations keeps its cost out of the figures.
        if n.is_multiple_of(64) && Instant::now() >= deadline {
            break;
        }
        n += 1;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let key = &keys[(rng % keys.len() as u64) as usize];
        let write = match op {
            Op::Get | Op::Ratelimit | Op::Lock | Op::Mget => false,
            Op::Set => true,
            Op::Mixed => rng % 10 < 2,
        };
        let started = Instant::now();
        let ok = if op == Op::Lock {
            match ns
                .locks()
                .acquire_lease(key, Duration::from_secs(10), Duration::ZERO)
                .await
            {
                Ok(Some(l)) => ns.locks().release(key, &l.token).await.unwrap_or(false),
                // Another task holds this key right now: not an error, but not an
                // acquisition either; try another key.
                Ok(None) => continue,
                Err(_) => false,
            }
        } else if op == Op::Mget {
            // A window of consecutive names: their hashes spread over the slots.
            let start = (rng % (keys.len() - batch + 1) as u64) as usize;
            ns.mget::<serde::de::IgnoredAny>(&keys[start..start + batch])
                .await
                .is_ok()
        } else if op == Op::Ratelimit {
            let limit = sharecache::ratelimit::Limit::per(1_000_000_000, Duration::from_secs(1));
            ns.rate_limits()
                .check(key, limit)
                .await
                .is_ok_and(|d| d.allowed)
        } else if write {
            ns.set(key, &*value, Ttl::secs(3600)).await.is_ok()
        } else {
            ns.get::<serde::de::IgnoredAny>(key).await.is_ok()
        };
        if ok {
            let _ = hist.record(started.elapsed().as_nanos().max(1) as u64);
        } else {
            errors += 1;
        }
    }
    (hist, errors)
}
