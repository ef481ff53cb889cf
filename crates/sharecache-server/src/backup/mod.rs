//! `sharecache export` and `sharecache import`: one namespace to a file and back
//! (docs/backup.md).
//!
//! * **Export** SCANs every key under the namespace's head (`[prefix/]ns:`, from
//!   `migrate::key_head`, the function migrate maps keys with) and then its primitives'
//!   state under each `[prefix/]#kind:ns:` ([`Place`]: locks, fences, sessions and their
//!   user indexes, queues and dead letters, event logs, rate limits, tags) on each master, reads each
//!   page with migrate's read path (`read_batch`: `PEXPIRETIME` and `DUMP` in one
//!   pipeline) and streams the records into `format::Writer`: memory holds one SCAN page
//!   and one frame, whatever the namespace's size. The file is written to `FILE.tmp`,
//!   synced and renamed, so `FILE` is a whole export or absent.
//! * **Import** reads the whole file through `format::Reader` first (every frame's
//!   checksum, the trailer's count and checksum, the version) and refuses a truncated,
//!   changed or newer file before it connects to the target. Then, under `--on-conflict
//!   fail`, one pass lists every key that exists with another value and stops if any does;
//!   then the records go through migrate's one RESTORE path (`write_batch`: `RESTORE
//!   ... ABSTTL`, `BUSYKEY` as the existence check, the conflict policy), with
//!   `FileOrigin` comparing an existing key with the file's payload; then every key
//!   written is read back and compared (value and TTL).
//!
//! **Guarantees**: a key is restored with the expiry time it had at export, or not at all
//! (a deadline that has passed: `skipped_expired`); a target key is never overwritten
//! without `--on-conflict replace`; nothing is written from a file that fails its checks.

pub(crate) mod format;

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use serde::Serialize;
use sharecache::{NamespaceName, RedisUrl};

use crate::migrate::copy::{Existing, Item, Origin, read_batch, scan_page, write_batch};
use crate::migrate::endpoint::Endpoint;
use crate::migrate::progress::Progress;
use crate::migrate::value::{Expiry, bulk, logical_digest, now_ms, ttl_cmd};
use crate::migrate::{
    Differences, FailedKey, OnConflict, SourceReport, bytype, key_head, key_prefix_arg, runtime,
};
use format::{Header, Reader, Record, Writer};

/// Arguments of `sharecache export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The namespace to export: every key under `[PREFIX:]NS:`.
    #[arg(value_name = "NS")]
    pub namespace: String,
    /// The file to write (never overwritten; written as FILE.tmp, then renamed).
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    /// The Redis to read (any URL form: redis://, rediss://, redis+cluster://,
    /// redis+sentinel://).
    #[arg(long, value_name = "URL", env = "REDIS_URL", hide_env_values = true)]
    pub from: Option<String>,
    /// The key prefix the services are configured with: keys are `P/NS:k`.
    #[arg(long, value_name = "P", env = "REDIS_KEY_PREFIX")]
    pub key_prefix: Option<String>,
    /// Keys per SCAN page and per pipelined read.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch: u32,
    /// Print one JSON report as the last line.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `sharecache import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// A file written by `sharecache export`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The Redis to write (any URL form).
    #[arg(long, value_name = "URL", env = "REDIS_URL", hide_env_values = true)]
    pub to: Option<String>,
    /// Restore under this namespace instead of the one exported.
    #[arg(long = "as", value_name = "NS")]
    pub as_namespace: Option<String>,
    /// The key prefix of the target's services: keys are `P/NS:k`.
    #[arg(long, value_name = "P", env = "REDIS_KEY_PREFIX")]
    pub key_prefix: Option<String>,
    /// What to do with a key that already exists on the target with another value.
    #[arg(long, value_enum, default_value_t = OnConflict::Fail)]
    pub on_conflict: OnConflict,
    /// A TTL on the target may differ from the file's deadline by this much.
    #[arg(long, default_value_t = 1000)]
    pub ttl_tolerance_ms: u64,
    /// Example keys listed per kind of difference.
    #[arg(long, default_value_t = 10)]
    pub examples: usize,
    /// Records per pipelined RESTORE batch.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch: u32,
    /// Print one JSON report as the last line.
    #[arg(long)]
    pub json: bool,
}

/// The JSON report (`--json`, last line).
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    /// `export` or `import`.
    pub mode: &'static str,
    /// The file written or read.
    pub file: String,
    /// The namespace exported, or the one imported into.
    pub namespace: String,
    /// Import: the namespace the file was exported from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_namespace: Option<String>,
    /// Export: keys SCAN returned; import: records read from the file.
    pub scanned: u64,
    /// Export: records written to the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<u64>,
    /// Import: keys restored (RESTORE answered OK).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored: Option<u64>,
    /// Keys that expired before they could be read (export) or restored (import).
    pub skipped_expired: u64,
    /// Import: target keys that existed with another value.
    pub conflicts: u64,
    /// Keys the source refused to read (export) or the target refused (import).
    pub failed: u64,
    /// DUMP payload bytes exported or restored.
    pub bytes: u64,
    /// Import: keys already on the target with the same value and TTL.
    pub unchanged: u64,
    /// Import: the conflicting target keys.
    pub conflict_keys: Vec<String>,
    /// The failed keys and why.
    pub failed_keys: Vec<FailedKey>,
    /// The file's size.
    pub file_bytes: u64,
    /// Import: keys read back and compared after the restore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<u64>,
    /// Import: what the read-back found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differences: Option<Differences>,
    /// Wall time, seconds.
    pub elapsed_secs: f64,
}

impl BackupReport {
    fn new(mode: &'static str, file: &Path, namespace: &str, r: &SourceReport) -> Self {
        Self {
            mode,
            file: file.display().to_string(),
            namespace: namespace.to_owned(),
            from_namespace: None,
            scanned: r.scanned,
            written: None,
            restored: None,
            skipped_expired: r.skipped_expired,
            conflicts: r.conflicts,
            failed: r.failed,
            bytes: r.bytes,
            unchanged: r.unchanged,
            conflict_keys: r.conflict_keys.clone(),
            failed_keys: r.failed_keys.clone(),
            file_bytes: 0,
            verified: None,
            differences: None,
            elapsed_secs: 0.0,
        }
    }

    fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        let done = match (self.written, self.restored) {
            (Some(n), _) => format!("written {n}"),
            (_, Some(n)) => format!("restored {n}, unchanged {}", self.unchanged),
            _ => String::new(),
        };
        println!(
            "{} {}: scanned {}, {done}, skipped (expired) {}, conflicts {}, failed {}, {} bytes \
             ({} bytes in {})",
            self.mode,
            self.namespace,
            self.scanned,
            self.skipped_expired,
            self.conflicts,
            self.failed,
            self.bytes,
            self.file_bytes,
            self.file
        );
        for k in &self.conflict_keys {
            println!("  conflict: {k}");
        }
        for f in &self.failed_keys {
            println!("  failed: {} ({})", f.key, f.reason);
        }
        if let (Some(n), Some(d)) = (self.verified, &self.differences) {
            if d.total == 0 {
                println!("verify: {n} keys read back, no differences");
            } else {
                println!("verify: {n} keys read back, {} differences", d.total);
                d.print_kinds();
            }
        }
        println!("done in {:.2} s", self.elapsed_secs);
        Ok(())
    }
}

/// Runs `sharecache export` on a runtime of its own.
pub fn export_blocking(args: ExportArgs) -> anyhow::Result<()> {
    runtime()?.block_on(export(args))
}

/// Runs `sharecache import` on a runtime of its own.
pub fn import_blocking(args: ImportArgs) -> anyhow::Result<()> {
    runtime()?.block_on(import(args))
}

fn namespace_arg(what: &str, ns: &str) -> anyhow::Result<NamespaceName> {
    NamespaceName::new(ns).map_err(|e| anyhow!("{what} {ns}: {}", e.message()))
}

fn url_arg(flag: &str, url: Option<&str>, role: &str) -> anyhow::Result<RedisUrl> {
    let url = url
        .with_context(|| format!("give the Redis to {role} with {flag} URL (or set REDIS_URL)"))?;
    RedisUrl::parse(url).map_err(|e| anyhow!("{flag}: {e}"))
}

/// `redis_version` of the first node (recorded in the file's header).
async fn redis_version(ep: &Endpoint) -> String {
    let Some((_, c)) = ep.scan_nodes().first() else {
        return String::new();
    };
    let mut c = c.clone();
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut c)
        .await
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// `sharecache export NS --to FILE`.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let ns = namespace_arg("namespace", &args.namespace)?;
    let prefix = key_prefix_arg(args.key_prefix.as_deref())?;
    let place = Place::new(prefix.as_ref(), &ns);
    let url = url_arg("--from", args.from.as_deref(), "export from")?;
    if args.to.exists() {
        bail!(
            "{} exists: export never overwrites a file; remove it or give another --to",
            args.to.display()
        );
    }
    let src = Endpoint::open(&url, "source").await?;
    let mut tmp = args.to.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut r = SourceReport {
        namespace: ns.to_string(),
        ..SourceReport::default()
    };
    let written = export_to(&src, &place, &ns, &tmp, &args, &mut r).await;
    let file_bytes = match written {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, &args.to)
        .with_context(|| format!("rename {} to {}", tmp.display(), args.to.display()))?;
    // The rename is durable once the directory is synced.
    if let Some(dir) = args.to.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
    let mut report = BackupReport::new("export", &args.to, &r.namespace, &r);
    report.written = Some(r.copied);
    report.file_bytes = file_bytes;
    report.elapsed_secs = start.elapsed().as_secs_f64();
    report.print(args.json)?;
    if r.copied == 0 && r.failed == 0 {
        // Legal (an empty namespace), but most often a misspelt name or a missing prefix.
        eprintln!(
            "warning: nothing of namespace {} was found under {}* on {}: the file holds no \
             keys; check the namespace and --key-prefix (REDIS_KEY_PREFIX)",
            r.namespace, place.keys, src.label
        );
    }
    if r.failed > 0 {
        bail!(
            "{} keys could not be read (listed above); the file holds the others",
            r.failed
        );
    }
    Ok(())
}

/// Streams the namespace into `tmp`; returns the file's size.
async fn export_to(
    src: &Endpoint,
    place: &Place,
    ns: &NamespaceName,
    tmp: &Path,
    args: &ExportArgs,
    r: &mut SourceReport,
) -> anyhow::Result<u64> {
    let file = File::create(tmp).with_context(|| format!("create {}", tmp.display()))?;
    let header = Header {
        version: format::VERSION,
        created_ms: now_ms(),
        namespace: ns.to_string(),
        head: place.keys.clone(),
        redis_version: redis_version(src).await,
    };
    let mut w = Writer::new(BufWriter::with_capacity(1 << 20, file), &header)?;
    let bar = Progress::new().source_of(ns.as_str(), "exported", src.dbsize().await, 0, "DBSIZE");
    // The keys, then each kind of internal state. The heads hold only [a-z0-9_-:/#],
    // literal in a glob.
    for pattern in place.heads().map(|h| format!("{h}*")) {
        for node in 0..src.scan_nodes().len() {
            let mut cursor = 0;
            // SCAN ends when it returns cursor 0.
            loop {
                let (next, keys) = scan_page(src, node, cursor, &pattern, args.batch).await?;
                r.scanned += keys.len() as u64;
                for it in read_batch(src, keys, |k| k.to_vec(), r).await? {
                    // SCAN MATCH returned it, so it starts with one of the heads.
                    let Some(suffix) = place.record_key(&it.key) else {
                        continue;
                    };
                    let suffix = suffix.as_slice();
                    let at = match it.expiry {
                        Expiry::At(at) => Some(at),
                        _ => None,
                    };
                    w.push(suffix, at, &it.payload)
                        .with_context(|| format!("write {}", tmp.display()))?;
                    r.copied += 1;
                    r.bytes += it.payload.len() as u64;
                }
                bar.update(r.scanned, r.bytes);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
    }
    bar.finish(r.scanned);
    let (out, summary) = w
        .finish()
        .with_context(|| format!("write {}", tmp.display()))?;
    let file = out
        .into_inner()
        .map_err(|e| anyhow!("write {}: {}", tmp.display(), e.error()))?;
    file.sync_all()
        .with_context(|| format!("sync {}", tmp.display()))?;
    Ok(summary.bytes)
}

fn open_reader(path: &Path) -> anyhow::Result<Reader<BufReader<File>>> {
    let f = File::open(path).with_context(|| format!("open {}", path.display()))?;
    Reader::open(BufReader::with_capacity(1 << 20, f))
}

/// Reads the whole file once: every frame against its checksum, the trailer against the
/// file. Returns the header and the number of records.
fn check_file(path: &Path) -> anyhow::Result<(Header, u64)> {
    let mut r = open_reader(path)?;
    let mut records = 0;
    while let Some(frame) = r.next_frame()? {
        records += frame.len() as u64;
    }
    Ok((r.header().clone(), records))
}

/// The records of a file in batches of at most `size`, one frame in memory at a time.
struct Batches {
    reader: Reader<BufReader<File>>,
    pending: std::collections::VecDeque<Record>,
    size: usize,
}

impl Batches {
    fn open(path: &Path, size: u32) -> anyhow::Result<Self> {
        Ok(Self {
            reader: open_reader(path)?,
            pending: Default::default(),
            size: size as usize,
        })
    }

    fn next(&mut self) -> anyhow::Result<Option<Vec<Record>>> {
        while self.pending.len() < self.size {
            match self.reader.next_frame()? {
                Some(f) => self.pending.extend(f),
                None => break,
            }
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        let n = self.size.min(self.pending.len());
        Ok(Some(self.pending.drain(..n).collect()))
    }
}

/// Marks a record of the namespace's internal state in the file: a control byte, which
/// no caller key holds (keys must be printable), then `kind:name`.
const INTERNAL: u8 = 0x01;

/// Where a namespace's records live: its keys under `[prefix/]ns:`, and the state its
/// primitives keep (locks, fences, sessions, queues, event logs, rate limits, tags) under
/// `[prefix/]#kind:ns:`. A record holds the key relative to those heads, so an import can
/// place it under another namespace or prefix.
struct Place {
    /// `[prefix/]ns:`.
    keys: String,
    /// `(kind, [prefix/]#kind:ns:)` for every kind of internal state.
    internal: Vec<(&'static str, String)>,
}

impl Place {
    fn new(prefix: Option<&NamespaceName>, ns: &NamespaceName) -> Self {
        let p = prefix.map(NamespaceName::as_str);
        Self {
            keys: key_head(prefix, ns),
            internal: sharecache::key::internal_heads(p, ns.as_str()),
        }
    }

    /// The literal heads to SCAN: the keys', then each kind of internal state's.
    fn heads(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.keys.as_str()).chain(self.internal.iter().map(|(_, h)| h.as_str()))
    }

    /// A stored key as a record's key, if it belongs to the namespace.
    fn record_key(&self, key: &[u8]) -> Option<Vec<u8>> {
        if let Some(rest) = key.strip_prefix(self.keys.as_bytes()) {
            return Some(rest.to_vec());
        }
        self.internal.iter().find_map(|(kind, head)| {
            let rest = key.strip_prefix(head.as_bytes())?;
            Some([&[INTERNAL], kind.as_bytes(), b":", rest].concat())
        })
    }

    /// The stored key of a record's key here.
    fn stored_key(&self, record: &[u8]) -> Vec<u8> {
        let internal = record.strip_prefix(&[INTERNAL]).and_then(|rest| {
            let colon = rest.iter().position(|&b| b == b':')?;
            let (kind, name) = (&rest[..colon], &rest[colon + 1..]);
            let (_, head) = self.internal.iter().find(|(k, _)| k.as_bytes() == kind)?;
            Some([head.as_bytes(), name].concat())
        });
        internal.unwrap_or_else(|| [self.keys.as_bytes(), record].concat())
    }
}

fn item(place: &Place, rec: Record) -> Item {
    let tkey = place.stored_key(&rec.suffix);
    Item {
        key: rec.suffix,
        tkey,
        payload: rec.payload,
        expiry: rec.expires_at.map_or(Expiry::Never, Expiry::At),
    }
}

/// A temporary copy of an export payload lives at most this long (it is removed at once;
/// the TTL only covers a crash in between).
const TEMP_TTL_MS: u64 = 60_000;

/// Whether `tkey` on `target` (its DUMP `dump`) holds the value of `payload`: equal DUMP
/// bytes, or else the same content read by type ([`logical_digest`], as migrate compares)
/// from a copy of the payload restored into a temporary key of the same slot.
async fn same_as_payload(
    target: &Endpoint,
    tkey: &[u8],
    dump: Option<&[u8]>,
    payload: &[u8],
) -> anyhow::Result<bool> {
    if dump == Some(payload) {
        return Ok(true);
    }
    let Some(tmp) = bytype::temp_key(tkey) else {
        return Ok(false);
    };
    let restored = target
        .batch(vec![
            redis::cmd("RESTORE")
                .arg(&tmp)
                .arg(TEMP_TTL_MS)
                .arg(payload)
                .arg("REPLACE")
                .clone(),
        ])
        .await?;
    if restored[0].is_err() {
        return Ok(false);
    }
    let digests = async {
        let a = logical_digest(target, &tmp).await?;
        let b = logical_digest(target, tkey).await?;
        anyhow::Ok(a.is_some() && a == b)
    }
    .await;
    target
        .batch(vec![redis::cmd("UNLINK").arg(&tmp).clone()])
        .await?;
    digests
}

/// An export file as the origin of [`write_batch`]: an existing key is compared with the
/// file's payload; a key RESTORE cannot carry cannot be copied by type (the file holds no
/// value but the DUMP payload).
struct FileOrigin {
    /// The source's version, from the header, for the message when RESTORE is refused.
    redis_version: String,
}

impl Origin for FileOrigin {
    async fn compare(
        &self,
        target: &Endpoint,
        items: &[&Item],
        tolerance: u64,
    ) -> anyhow::Result<Vec<Existing>> {
        let cmds = items
            .iter()
            .flat_map(|it| {
                [
                    redis::cmd("DUMP").arg(&it.tkey).clone(),
                    ttl_cmd(target, &it.tkey),
                ]
            })
            .collect();
        let t = target.batch(cmds).await?;
        let t_at = now_ms();
        let mut out = Vec::with_capacity(items.len());
        for (i, it) in items.iter().enumerate() {
            let (td, tt) = (
                bulk(&t[2 * i]),
                Expiry::from_reply(target, &t[2 * i + 1], t_at),
            );
            out.push(if matches!(it.expiry, Expiry::At(at) if at <= t_at) {
                Existing::SourceGone
            } else if td.is_none() || tt == Some(Expiry::Missing) {
                Existing::TargetGone
            } else if tt.is_some_and(|t| t.close_to(it.expiry, tolerance))
                && same_as_payload(target, &it.tkey, td, &it.payload).await?
            {
                Existing::Same
            } else {
                Existing::Differs
            });
        }
        Ok(out)
    }

    async fn by_type(
        &self,
        _item: &Item,
        _target: &Endpoint,
        _replace: bool,
        _chunk: usize,
    ) -> Option<anyhow::Result<bytype::Outcome>> {
        None
    }

    fn by_type_missing(&self, target: &Endpoint, tkey: &[u8], why: &str) -> anyhow::Error {
        let from = if self.redis_version.is_empty() {
            String::new()
        } else {
            format!(" (the file was exported from Redis {})", self.redis_version)
        };
        anyhow!(
            "{} cannot take {} through RESTORE ({why}). An export file holds DUMP payloads \
             only, so it has no value to copy by type the way migrate does: import into a \
             Redis of the same or a newer version{from}, as a user allowed RESTORE, or use \
             `sharecache migrate` from a Redis that holds the data",
            target.label,
            String::from_utf8_lossy(tkey)
        )
    }
}

/// The keys of a batch to write: records whose deadline has passed are counted as
/// `skipped_expired` instead.
fn live_items(place: &Place, recs: Vec<Record>, r: &mut SourceReport) -> Vec<Item> {
    let now = now_ms();
    let mut live = Vec::with_capacity(recs.len());
    for rec in recs {
        if rec.expires_at.is_some_and(|at| at <= now) {
            r.skipped_expired += 1;
        } else {
            live.push(item(place, rec));
        }
    }
    live
}

/// `--on-conflict fail`: every record whose key exists on the target with another value,
/// before anything is written.
async fn precheck(
    path: &Path,
    place: &Place,
    target: &Endpoint,
    origin: &FileOrigin,
    args: &ImportArgs,
) -> anyhow::Result<SourceReport> {
    let mut r = SourceReport::default();
    let mut batches = Batches::open(path, args.batch)?;
    while let Some(recs) = batches.next()? {
        r.scanned += recs.len() as u64;
        let live = live_items(place, recs, &mut r);
        let exists = target
            .batch(
                live.iter()
                    .map(|it| redis::cmd("EXISTS").arg(&it.tkey).clone())
                    .collect(),
            )
            .await?;
        let existing: Vec<&Item> = live
            .iter()
            .zip(&exists)
            .filter(|(_, e)| matches!(e, Ok(redis::Value::Int(1))))
            .map(|(it, _)| it)
            .collect();
        if existing.is_empty() {
            continue;
        }
        let verdicts = origin
            .compare(target, &existing, args.ttl_tolerance_ms)
            .await?;
        for (it, v) in existing.iter().zip(verdicts) {
            match v {
                Existing::Same => r.unchanged += 1,
                Existing::Differs => {
                    r.conflicts += 1;
                    r.conflict_keys
                        .push(String::from_utf8_lossy(&it.tkey).into_owned());
                }
                Existing::SourceGone | Existing::TargetGone => {}
            }
        }
    }
    Ok(r)
}

/// Reads every key the import wrote back from the target: missing, another value (DUMP
/// bytes, or else the content by type) or a TTL beyond the tolerance. Keys left alone
/// (`skip`), failed, or whose deadline is within the tolerance are not compared.
async fn verify(
    path: &Path,
    place: &Place,
    target: &Endpoint,
    args: &ImportArgs,
    r: &SourceReport,
) -> anyhow::Result<(u64, Differences)> {
    let left: HashSet<&str> = r
        .failed_keys
        .iter()
        .map(|f| f.key.as_str())
        .chain(
            (args.on_conflict == OnConflict::Skip)
                .then_some(&r.conflict_keys)
                .into_iter()
                .flatten()
                .map(String::as_str),
        )
        .collect();
    let (mut d, mut checked) = (Differences::default(), 0);
    let tol = args.ttl_tolerance_ms;
    let mut batches = Batches::open(path, args.batch)?;
    while let Some(recs) = batches.next()? {
        let soon = now_ms() + tol as i64;
        let items: Vec<Item> = recs
            .into_iter()
            .filter(|rec| rec.expires_at.is_none_or(|at| at > soon))
            .map(|rec| item(place, rec))
            .filter(|it| !left.contains(String::from_utf8_lossy(&it.tkey).as_ref()))
            .collect();
        let cmds = items
            .iter()
            .flat_map(|it| {
                [
                    ttl_cmd(target, &it.tkey),
                    redis::cmd("DUMP").arg(&it.tkey).clone(),
                ]
            })
            .collect();
        let t = target.batch(cmds).await?;
        let at = now_ms();
        for (i, it) in items.iter().enumerate() {
            checked += 1;
            let (tt, td) = (
                Expiry::from_reply(target, &t[2 * i], at),
                bulk(&t[2 * i + 1]),
            );
            if td.is_none() || tt == Some(Expiry::Missing) {
                Differences::add(&mut d.missing, &it.tkey, args.examples);
                continue;
            }
            if !same_as_payload(target, &it.tkey, td, &it.payload).await? {
                Differences::add(&mut d.value, &it.tkey, args.examples);
            }
            if !tt.is_some_and(|t| t.close_to(it.expiry, tol)) {
                Differences::add(&mut d.ttl, &it.tkey, args.examples);
            }
        }
    }
    d.sum();
    Ok((checked, d))
}

/// `sharecache import FILE`.
pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let path = args.file.as_path();
    // The whole file is checked before the target is even asked.
    let (header, records) = check_file(path).with_context(|| {
        format!(
            "{}: refused, nothing was written to the target",
            path.display()
        )
    })?;
    let ns = namespace_arg(
        if args.as_namespace.is_some() {
            "--as"
        } else {
            "the file's namespace"
        },
        args.as_namespace.as_deref().unwrap_or(&header.namespace),
    )?;
    let prefix = key_prefix_arg(args.key_prefix.as_deref())?;
    let place = Place::new(prefix.as_ref(), &ns);
    let url = url_arg("--to", args.to.as_deref(), "import into")?;
    let target = Endpoint::open(&url, "target").await?;
    let origin = FileOrigin {
        redis_version: header.redis_version.clone(),
    };
    let file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let finish = |r: &SourceReport| {
        let mut rep = BackupReport::new("import", path, ns.as_str(), r);
        rep.from_namespace = Some(header.namespace.clone());
        rep.restored = Some(r.copied);
        rep.file_bytes = file_bytes;
        rep.elapsed_secs = start.elapsed().as_secs_f64();
        rep
    };
    if args.on_conflict == OnConflict::Fail {
        let pre = precheck(path, &place, &target, &origin, &args).await?;
        if pre.conflicts > 0 {
            let mut rep = finish(&pre);
            rep.restored = Some(0);
            rep.unchanged = 0;
            rep.print(args.json)?;
            bail!(
                "{} keys exist on {} with other values; nothing was written. Choose \
                 --on-conflict skip or replace, or remove them",
                pre.conflicts,
                target.label
            );
        }
    }
    let mut r = SourceReport {
        namespace: ns.to_string(),
        ..SourceReport::default()
    };
    let bar = Progress::new().source_of(ns.as_str(), "imported", records, 0, "the file");
    let policy = (args.on_conflict, args.ttl_tolerance_ms);
    let mut batches = Batches::open(path, args.batch)?;
    let mut stop = None;
    while let Some(recs) = batches.next()? {
        r.scanned += recs.len() as u64;
        let live = live_items(&place, recs, &mut r);
        if let Err(e) = write_batch(&origin, &target, live, policy, &mut r).await {
            stop = Some(e);
            break;
        }
        bar.update(r.scanned, r.bytes);
    }
    bar.finish(r.scanned);
    let mut rep = finish(&r);
    if let Some(e) = stop {
        rep.print(args.json)?;
        return Err(e.context("the import stopped (the keys restored before stay)"));
    }
    let (checked, diff) = verify(path, &place, &target, &args, &r).await?;
    rep.verified = Some(checked);
    rep.differences = Some(diff.clone());
    rep.elapsed_secs = start.elapsed().as_secs_f64();
    rep.print(args.json)?;
    if r.failed > 0 {
        bail!("{} keys failed (listed above)", r.failed);
    }
    if diff.total > 0 {
        bail!("verify found {} differences after the import", diff.total);
    }
    Ok(())
}
