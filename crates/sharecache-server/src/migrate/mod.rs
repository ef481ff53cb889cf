//! `sharecache migrate` and `sharecache migrate verify`: each service's own Redis into the
//! shared one, key `k` of the source mapped to `NS:k` (after `--key-prefix`), with nothing
//! lost and nothing overwritten unless asked.
//!
//! Files by role: `endpoint` (connections, batches, the nodes to SCAN; standalone,
//! Sentinel and Cluster), `value` (TTL reads and the per-key value digest the conflict
//! check and verify share), `copy` (the copy, the conflict pre-check and the dry run),
//! `bytype` (the per-type, chunked copy of a key RESTORE cannot carry), `follow` (the
//! changes after the snapshot, from keyspace notifications, until Ctrl-C),
//! `verify` (both directions), `checkpoint` (the cursors, written atomically), `progress`
//! (a bar on a terminal, plain lines otherwise) and this module (arguments, the report).
//! `crate::backup` (export and import) reuses `endpoint`, `value`, `progress`, copy's
//! `read_batch`/`write_batch` and `key_head`.
//!
//! **Guarantees**: the sources are only read (SCAN, DUMP, TYPE, PTTL/PEXPIRETIME, reads of
//! values); a key is restored with the TTL read with it, to the millisecond, or not at
//! all (a key that expired meanwhile is counted as `skipped_expired`); a target key that
//! exists is never overwritten without `--on-conflict replace`, and one that already
//! holds the same value and TTL (a re-run, a resumed batch, a SCAN duplicate) counts as
//! `unchanged`, not as a conflict; nothing is counted as copied unless the target
//! answered OK to its RESTORE.

pub(crate) mod bytype;
mod checkpoint;
pub(crate) mod copy;
pub(crate) mod endpoint;
mod follow;
pub(crate) mod progress;
pub(crate) mod value;
mod verify;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use sharecache::{NamespaceName, RedisUrl};

use endpoint::Endpoint;

/// Arguments of `sharecache migrate` (the copy) and its `verify` subcommand.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MigrateArgs {
    /// `verify`: compare only, write nothing.
    #[command(subcommand)]
    pub command: Option<MigrateCommand>,
    /// The copy's arguments.
    #[command(flatten)]
    pub copy: CopyArgs,
}

/// Subcommands of `sharecache migrate`.
#[derive(Debug, Clone, Subcommand)]
pub enum MigrateCommand {
    /// Compare the sources with the target in both directions; exit non-zero on any difference.
    Verify(CommonArgs),
}

/// What the copy and verify share.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// `NS=URL`: a source Redis and the namespace its keys go to (repeat for each).
    #[arg(long = "source", value_name = "NS=URL")]
    pub sources: Vec<String>,
    /// The shared Redis (any URL form: redis://, rediss://, redis+cluster://, redis+sentinel://).
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
    /// Only the source keys that match this glob.
    #[arg(long = "match", value_name = "GLOB", default_value = "*")]
    pub pattern: String,
    /// The key prefix the services are configured with: `k` becomes `P/NS:k`.
    #[arg(long, value_name = "P", env = "REDIS_KEY_PREFIX")]
    pub key_prefix: Option<String>,
    /// A TTL on the target may differ from the source's by this much.
    #[arg(long, default_value_t = 1000)]
    pub ttl_tolerance_ms: u64,
    /// Example keys listed per kind of difference.
    #[arg(long, default_value_t = 10)]
    pub examples: usize,
    /// Keys per SCAN and per pipelined batch.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch: u32,
    /// Print one JSON report as the last line.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of the copy.
#[derive(Debug, Clone, Args)]
pub struct CopyArgs {
    /// Sources, target, match, output.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Count keys per type, TTLs, conflicts and bytes; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep copying changes after the snapshot (keyspace notifications) until Ctrl-C, then verify.
    #[arg(long, conflicts_with = "dry_run")]
    pub follow: bool,
    /// With --follow: switch keyspace notifications on where they are off (CONFIG SET).
    #[arg(long, requires = "follow")]
    pub enable_notifications: bool,
    /// What to do with a key that already exists on the target with another value.
    #[arg(long, value_enum, default_value_t = OnConflict::Fail)]
    pub on_conflict: OnConflict,
    /// Keep a cursor per source in FILE (written atomically after each batch).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Continue the job recorded in `--checkpoint`.
    #[arg(long, requires = "checkpoint")]
    pub resume: bool,
    /// Do not verify after the copy.
    #[arg(long)]
    pub no_verify: bool,
}

/// What to do with a target key that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    /// Check every key first; if any exists with another value, write nothing and list them.
    Fail,
    /// Leave the target's key, count and list it.
    Skip,
    /// Overwrite the target's key (RESTORE REPLACE), count and list it.
    Replace,
}

/// One source, parsed.
#[derive(Debug, Clone)]
pub(crate) struct SourceSpec {
    pub(crate) namespace: String,
    pub(crate) url: RedisUrl,
    /// `[prefix/]ns:`: what every target key of this source starts with.
    pub(crate) head: String,
}

impl SourceSpec {
    pub(crate) fn target_key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.head.len() + key.len());
        k.extend_from_slice(self.head.as_bytes());
        k.extend_from_slice(key);
        k
    }
}

/// Counts of one source. The first seven fields are the shape scripts read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SourceReport {
    /// The namespace the source goes to.
    pub namespace: String,
    /// Keys SCAN returned (a key SCAN returns twice counts twice; the second is `unchanged`).
    pub scanned: u64,
    /// Keys restored on the target (RESTORE answered OK).
    pub copied: u64,
    /// Keys gone from the source (expired or deleted) between SCAN and DUMP.
    pub skipped_expired: u64,
    /// Target keys that existed with another value (skipped, replaced, or stopping the run).
    pub conflicts: u64,
    /// Keys the target refused, each listed in `failed_keys` with its reason.
    pub failed: u64,
    /// DUMP payload bytes copied (the dry run: memory usage, sampled).
    pub bytes: u64,
    /// Keys already on the target with the same value and TTL: left as they are.
    pub unchanged: u64,
    /// Keys that existed on the target (listed; up to all of them).
    pub conflict_keys: Vec<String>,
    /// Keys that failed and why.
    pub failed_keys: Vec<FailedKey>,
    /// The dry run: keys per type.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub types: std::collections::BTreeMap<String, u64>,
    /// The dry run: keys without a TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_ttl: Option<u64>,
}

/// A key the target refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailedKey {
    /// The target key.
    pub key: String,
    /// The target's reply.
    pub reason: String,
}

/// The sum over sources.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// See [`SourceReport`].
    pub scanned: u64,
    /// See [`SourceReport`].
    pub copied: u64,
    /// See [`SourceReport`].
    pub skipped_expired: u64,
    /// See [`SourceReport`].
    pub conflicts: u64,
    /// See [`SourceReport`].
    pub failed: u64,
    /// See [`SourceReport`].
    pub bytes: u64,
    /// See [`SourceReport`].
    pub unchanged: u64,
}

/// Differences of one kind that verify found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DiffKind {
    /// How many.
    pub count: u64,
    /// Up to `--examples` target keys.
    pub examples: Vec<String>,
}

/// What verify found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Differences {
    /// Every kind together.
    pub total: u64,
    /// On a source, not on the target.
    pub missing: DiffKind,
    /// Under a namespace on the target, on no source.
    pub extra: DiffKind,
    /// Another type on the target.
    #[serde(rename = "type")]
    pub type_: DiffKind,
    /// Another value (digest) on the target.
    pub value: DiffKind,
    /// A TTL beyond the tolerance, or a TTL on one side only.
    pub ttl: DiffKind,
}

impl Differences {
    /// One line per kind that has differences, with its examples.
    pub(crate) fn print_kinds(&self) {
        for (name, k) in [
            ("missing on the target", &self.missing),
            ("extra on the target", &self.extra),
            ("other type", &self.type_),
            ("other value", &self.value),
            ("TTL beyond tolerance", &self.ttl),
        ] {
            if k.count > 0 {
                println!("  {name}: {} (e.g. {})", k.count, k.examples.join(", "));
            }
        }
    }

    pub(crate) fn add(kind: &mut DiffKind, key: &[u8], examples: usize) {
        kind.count += 1;
        if kind.examples.len() < examples {
            kind.examples
                .push(String::from_utf8_lossy(key).into_owned());
        }
    }

    pub(crate) fn sum(&mut self) {
        self.total = self.missing.count
            + self.extra.count
            + self.type_.count
            + self.value.count
            + self.ttl.count;
    }
}

/// The JSON report (`--json`, last line).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `copy`, `dry-run` or `verify`.
    pub mode: &'static str,
    /// Per source.
    pub sources: Vec<SourceReport>,
    /// Over all sources.
    pub totals: Totals,
    /// Verify's findings (after a copy unless `--no-verify`, and from `migrate verify`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differences: Option<Differences>,
    /// What `--follow` did after the snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow: Option<follow::FollowReport>,
    /// The dry run: a rough estimate of the copy's duration, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate_secs: Option<f64>,
    /// Wall time of this run, seconds.
    pub elapsed_secs: f64,
}

impl Report {
    fn totals(sources: &[SourceReport]) -> Totals {
        let mut t = Totals::default();
        for s in sources {
            t.scanned += s.scanned;
            t.copied += s.copied;
            t.skipped_expired += s.skipped_expired;
            t.conflicts += s.conflicts;
            t.failed += s.failed;
            t.bytes += s.bytes;
            t.unchanged += s.unchanged;
        }
        t
    }

    fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        for s in &self.sources {
            println!(
                "{}: scanned {}, copied {}, unchanged {}, skipped (expired) {}, conflicts {}, failed {}, {} bytes",
                s.namespace,
                s.scanned,
                s.copied,
                s.unchanged,
                s.skipped_expired,
                s.conflicts,
                s.failed,
                s.bytes
            );
            if !s.types.is_empty() {
                let types: Vec<String> = s.types.iter().map(|(t, n)| format!("{t} {n}")).collect();
                println!("  types: {}", types.join(", "));
            }
            if let Some(n) = s.no_ttl {
                println!("  keys without a TTL: {n}");
            }
            for k in &s.conflict_keys {
                println!("  conflict: {k}");
            }
            for f in &s.failed_keys {
                println!("  failed: {} ({})", f.key, f.reason);
            }
        }
        if let Some(f) = &self.follow {
            println!(
                "follow: {} events, {} keys updated, {} deleted, {} failed, max lag {} ms",
                f.events, f.updated, f.deleted, f.failed, f.max_lag_ms
            );
        }
        if let Some(e) = self.estimate_secs {
            println!(
                "estimated copy time: ~{e:.1} s (a rough estimate from the dry run's read rate)"
            );
        }
        if let Some(d) = &self.differences {
            if d.total == 0 {
                println!("verify: no differences");
            } else {
                println!("verify: {} differences", d.total);
                d.print_kinds();
            }
        }
        println!("done in {:.2} s", self.elapsed_secs);
        Ok(())
    }
}

/// Validates `--key-prefix` (a prefix obeys the namespace rules, so the head stays literal
/// in a glob).
pub(crate) fn key_prefix_arg(key_prefix: Option<&str>) -> anyhow::Result<Option<NamespaceName>> {
    key_prefix
        .map(|p| {
            NamespaceName::new(p).map_err(|e| anyhow::anyhow!("--key-prefix: {}", e.message()))
        })
        .transpose()
}

/// `[prefix/]ns:`: what every key of namespace `ns` starts with, as the services write them
/// (`REDIS_KEY_PREFIX=prefix`): the library's [`sharecache::key::namespace_head`], the one
/// place that spells it. Migrate maps `k` to `head + k`; export and import cut and add it.
pub(crate) fn key_head(prefix: Option<&NamespaceName>, ns: &NamespaceName) -> String {
    sharecache::key::namespace_head(prefix.map(NamespaceName::as_str), ns.as_str())
}

/// Parses `NS=URL` sources and checks the namespaces are distinct. Errors never echo a
/// password.
pub(crate) fn parse_sources(
    specs: &[String],
    key_prefix: Option<&str>,
) -> anyhow::Result<Vec<SourceSpec>> {
    if specs.is_empty() {
        bail!("give at least one --source NS=URL");
    }
    let prefix = key_prefix_arg(key_prefix)?;
    let mut out: Vec<SourceSpec> = Vec::new();
    for s in specs {
        let Some((ns, url)) = s.split_once('=') else {
            bail!(
                "--source {}: expected NS=URL, e.g. auth=redis://127.0.0.1:6379",
                redact_spec(s)
            );
        };
        let name = NamespaceName::new(ns)
            .map_err(|e| anyhow::anyhow!("--source {ns}=...: {}", e.message()))?;
        let url = RedisUrl::parse(url).map_err(|e| anyhow::anyhow!("--source {ns}: {e}"))?;
        if out.iter().any(|o| o.namespace == ns) {
            bail!("--source {ns}: the namespace is given twice");
        }
        let head = key_head(prefix.as_ref(), &name);
        out.push(SourceSpec {
            namespace: ns.to_owned(),
            url,
            head,
        });
    }
    Ok(out)
}

/// A `--source` argument shown in an error: everything after `@` kept, the rest hidden.
fn redact_spec(s: &str) -> String {
    match s.rsplit_once('@') {
        Some((_, host)) => format!("...@{host}"),
        None => s.to_owned(),
    }
}

/// The sources and the target, parsed and connected (the target first: a bad target
/// stops the run before any source is asked).
async fn open_all(c: &CommonArgs) -> anyhow::Result<(Vec<copy::Source>, Endpoint)> {
    let specs = parse_sources(&c.sources, c.key_prefix.as_deref())?;
    let to =
        c.to.as_deref()
            .context("give the shared Redis with --to URL")?;
    let url = RedisUrl::parse(to).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    let target = Endpoint::open(&url, "target").await?;
    // The same server under another name (localhost, an IP) is caught by its run_id.
    let target_ids = target.run_ids().await?;
    let mut sources = Vec::new();
    for spec in specs {
        let ep = Endpoint::open(&spec.url, &format!("source {}", spec.namespace)).await?;
        if spec.url.display() == url.display()
            || ep.run_ids().await?.iter().any(|id| target_ids.contains(id))
        {
            bail!(
                "--source {} is the target itself: the copy would write into its own source",
                spec.namespace
            );
        }
        sources.push((spec, ep));
    }
    Ok((sources, target))
}

/// Builds a runtime and runs the command.
pub fn run_blocking(args: MigrateArgs) -> anyhow::Result<()> {
    runtime()?.block_on(run(args))
}

/// The multi-threaded runtime a command runs on (migrate, export, import).
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")
}

/// Runs `migrate` or `migrate verify`, prints the report; an error when anything is left
/// undone or different (the report is printed first).
pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    match args.command {
        Some(MigrateCommand::Verify(common)) => {
            let (sources, target) = open_all(&common).await?;
            let (reports, diff) =
                verify::verify(&sources, &target, &common, &Default::default()).await?;
            let report = Report {
                mode: "verify",
                totals: Report::totals(&reports),
                sources: reports,
                differences: Some(diff.clone()),
                follow: None,
                estimate_secs: None,
                elapsed_secs: start.elapsed().as_secs_f64(),
            };
            report.print(common.json)?;
            if diff.total > 0 {
                bail!("verify found {} differences", diff.total);
            }
            Ok(())
        }
        None => copy::run(args.copy, start).await,
    }
}
