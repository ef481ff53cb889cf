//! The per-type copy of one key, for when `RESTORE` cannot carry it: the target refuses
//! `RESTORE` (an ACL user without it, another RDB version) or the DUMP payload is above the
//! target's `proto-max-bulk-len`. The value is read by type in chunks (GETRANGE, HSCAN,
//! LRANGE, SSCAN, ZSCAN, XRANGE) and written in chunks of at most `chunk` bytes into a
//! temporary key of the same slot, which gets the source's expiry time and is then renamed
//! onto the target key: `RENAMENX` (a key that appeared meanwhile is reported as existing,
//! never overwritten) or `RENAME` for `--on-conflict replace`.
//!
//! Streams get their entries, their consumer groups (last delivered id, entries read) and
//! their pending entries (`XCLAIM ... FORCE` per consumer, so counts and owners match;
//! idle times and delivery counts start again).

use anyhow::{Context, bail};
use redis::cluster_routing::{Route, SlotAddr};
use redis::{Cmd, RedisError, Value};

use super::endpoint::Endpoint;
use super::value::{Expiry, status};

/// What became of a key copied by type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Written; the bytes read from the source.
    Copied(u64),
    /// The target key exists (only without `replace`); nothing was written.
    Exists,
    /// The source key expired or was deleted meanwhile; nothing was written.
    Gone,
}

/// Whether a RESTORE error means "copy it another way" rather than "this key failed".
pub(crate) fn restore_refused(e: &RedisError) -> bool {
    let m = e.to_string();
    e.code() == Some("NOPERM")
        || m.contains("NOPERM")
        || m.contains("payload version or checksum")
        || m.contains("Bad data format")
        || (m.contains("unknown command") && m.to_lowercase().contains("restore"))
}

/// The slot of `k`, as a route to its master (redis-rs keeps the number private).
fn slot(k: &[u8]) -> Route {
    Route::with_key(k, SlotAddr::Master)
}

/// A temporary key in the slot of `tkey`, or `None` when no simple name keeps the slot
/// (keys with odd braces): the value is then written to `tkey` directly.
pub(crate) fn temp_key(tkey: &[u8]) -> Option<Vec<u8>> {
    const SUFFIX: &[u8] = b":#sharecache-migrate-tmp";
    let candidates = [
        [tkey, SUFFIX].concat(),
        [b"{".as_slice(), tkey, b"}", SUFFIX].concat(),
    ];
    candidates.into_iter().find(|c| slot(c) == slot(tkey))
}

fn bulk_items(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        _ => Vec::new(),
    }
}

fn bytes_of(v: &Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b.clone(),
        Value::SimpleString(s) => s.as_bytes().to_vec(),
        Value::Int(i) => i.to_string().into_bytes(),
        Value::Double(d) => d.to_string().into_bytes(),
        _ => Vec::new(),
    }
}

async fn one(ep: &Endpoint, cmd: Cmd) -> anyhow::Result<Value> {
    let r = ep.batch(vec![cmd]).await?;
    r.into_iter()
        .next()
        .context("no reply")?
        .map_err(|e| anyhow::anyhow!("{}: {e}", ep.label))
}

/// Writes `cmds` (each checked) on the target.
async fn write(target: &Endpoint, cmds: Vec<Cmd>) -> anyhow::Result<()> {
    for r in target.batch(cmds).await? {
        r.map_err(|e| anyhow::anyhow!("{}: {e}", target.label))?;
    }
    Ok(())
}

/// Sends `items` (already encoded as arguments) to `dst` with `base` in front, as many
/// commands as keep each under `chunk` bytes.
async fn write_chunked(
    target: &Endpoint,
    base: &Cmd,
    items: &[Vec<u8>],
    per_item: usize,
    chunk: usize,
) -> anyhow::Result<()> {
    let mut cmd = base.clone();
    let (mut size, mut n) = (0usize, 0usize);
    for group in items.chunks(per_item) {
        let len: usize = group.iter().map(Vec::len).sum();
        if n > 0 && size + len > chunk {
            write(target, vec![std::mem::replace(&mut cmd, base.clone())]).await?;
            (size, n) = (0, 0);
        }
        for i in group {
            cmd.arg(i.as_slice());
        }
        size += len;
        n += 1;
    }
    if n > 0 {
        write(target, vec![cmd]).await?;
    }
    Ok(())
}

/// Reads a collection with `SCAN`-like `cmd` (HSCAN, SSCAN, ZSCAN): every element.
async fn scan_all(src: &Endpoint, cmd: &str, key: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut cursor = 0u64;
    // The *SCAN commands end when they return cursor 0.
    loop {
        let v = one(
            src,
            redis::cmd(cmd)
                .arg(key)
                .arg(cursor)
                .arg("COUNT")
                .arg(1000)
                .clone(),
        )
        .await?;
        let mut parts = bulk_items(v).into_iter();
        let next: u64 = parts
            .next()
            .map(|c| String::from_utf8_lossy(&bytes_of(&c)).parse().unwrap_or(0))
            .unwrap_or(0);
        out.extend(
            parts
                .next()
                .map(bulk_items)
                .unwrap_or_default()
                .iter()
                .map(bytes_of),
        );
        if next == 0 {
            return Ok(out);
        }
        cursor = next;
    }
}

/// Copies `skey` of `src` to `tkey` of `target` by type, with `expiry` (read with the
/// source's DUMP attempt).
pub(crate) async fn copy(
    src: &Endpoint,
    skey: &[u8],
    target: &Endpoint,
    tkey: &[u8],
    expiry: Expiry,
    replace: bool,
    chunk: usize,
) -> anyhow::Result<Outcome> {
    let ty = status(&Ok(one(src, redis::cmd("TYPE").arg(skey).clone()).await?)).unwrap_or_default();
    let tmp = temp_key(tkey);
    let dst: &[u8] = tmp.as_deref().unwrap_or(tkey);
    if tmp.is_none() {
        let exists = one(target, redis::cmd("EXISTS").arg(tkey).clone()).await?;
        if exists == Value::Int(1) && !replace {
            return Ok(Outcome::Exists);
        }
    }
    write(target, vec![redis::cmd("DEL").arg(dst).clone()]).await?;
    let mut bytes = 0u64;
    match ty.as_str() {
        "none" => return Ok(Outcome::Gone),
        "string" => {
            let len = match one(src, redis::cmd("STRLEN").arg(skey).clone()).await? {
                Value::Int(n) => n.max(0) as usize,
                _ => 0,
            };
            // SETRANGE of an empty string creates nothing: SET "" first.
            write(target, vec![redis::cmd("SET").arg(dst).arg("").clone()]).await?;
            let mut off = 0;
            while off < len {
                let end = (off + chunk).min(len) - 1;
                let part = bytes_of(
                    &one(
                        src,
                        redis::cmd("GETRANGE").arg(skey).arg(off).arg(end).clone(),
                    )
                    .await?,
                );
                if part.is_empty() {
                    break;
                }
                bytes += part.len() as u64;
                write(
                    target,
                    vec![
                        redis::cmd("SETRANGE")
                            .arg(dst)
                            .arg(off)
                            .arg(part.as_slice())
                            .clone(),
                    ],
                )
                .await?;
                off = end + 1;
            }
        }
        "hash" => {
            let items = scan_all(src, "HSCAN", skey).await?;
            bytes = items.iter().map(|i| i.len() as u64).sum();
            write_chunked(target, redis::cmd("HSET").arg(dst), &items, 2, chunk).await?;
        }
        "set" => {
            let items = scan_all(src, "SSCAN", skey).await?;
            bytes = items.iter().map(|i| i.len() as u64).sum();
            write_chunked(target, redis::cmd("SADD").arg(dst), &items, 1, chunk).await?;
        }
        "zset" => {
            // ZSCAN gives member, score; ZADD takes score, member.
            let items = scan_all(src, "ZSCAN", skey).await?;
            let swapped: Vec<Vec<u8>> = items
                .chunks(2)
                .flat_map(|p| [p.get(1).cloned().unwrap_or_default(), p[0].clone()])
                .collect();
            bytes = items.iter().map(|i| i.len() as u64).sum();
            write_chunked(target, redis::cmd("ZADD").arg(dst), &swapped, 2, chunk).await?;
        }
        "list" => {
            let mut start = 0i64;
            // Ends at the first short page.
            loop {
                let page: Vec<Vec<u8>> = bulk_items(
                    one(
                        src,
                        redis::cmd("LRANGE")
                            .arg(skey)
                            .arg(start)
                            .arg(start + 999)
                            .clone(),
                    )
                    .await?,
                )
                .iter()
                .map(bytes_of)
                .collect();
                bytes += page.iter().map(|i| i.len() as u64).sum::<u64>();
                if !page.is_empty() {
                    write_chunked(target, redis::cmd("RPUSH").arg(dst), &page, 1, chunk).await?;
                }
                if page.len() < 1000 {
                    break;
                }
                start += 1000;
            }
        }
        "stream" => bytes = copy_stream(src, skey, target, dst).await?,
        other => bail!("cannot copy a value of type {other} by type"),
    }
    if let Expiry::At(at) = expiry {
        write(
            target,
            vec![redis::cmd("PEXPIREAT").arg(dst).arg(at).clone()],
        )
        .await?;
    }
    let Some(tmp) = tmp else {
        return Ok(Outcome::Copied(bytes));
    };
    let rename = if replace { "RENAME" } else { "RENAMENX" };
    match target
        .batch(vec![redis::cmd(rename).arg(&tmp).arg(tkey).clone()])
        .await?
        .remove(0)
    {
        Ok(Value::Int(0)) => {
            write(target, vec![redis::cmd("DEL").arg(&tmp).clone()]).await?;
            Ok(Outcome::Exists)
        }
        Ok(_) => Ok(Outcome::Copied(bytes)),
        // The temporary key expired before the rename: the source's had too.
        Err(e) if e.to_string().contains("no such key") => Ok(Outcome::Gone),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", target.label)),
    }
}

/// Entries, groups and pending entries of a stream; returns the bytes read.
async fn copy_stream(
    src: &Endpoint,
    skey: &[u8],
    target: &Endpoint,
    dst: &[u8],
) -> anyhow::Result<u64> {
    let mut bytes = 0u64;
    let mut from = b"-".to_vec();
    // Pages of 500 entries; ends at the first short page.
    loop {
        let page = bulk_items(
            one(
                src,
                redis::cmd("XRANGE")
                    .arg(skey)
                    .arg(from.as_slice())
                    .arg("+")
                    .arg("COUNT")
                    .arg(500)
                    .clone(),
            )
            .await?,
        );
        let n = page.len();
        let mut cmds = Vec::new();
        let mut last = None;
        for entry in page {
            let mut parts = bulk_items(entry).into_iter();
            let id = parts.next().map(|v| bytes_of(&v)).unwrap_or_default();
            let fields: Vec<Vec<u8>> = parts
                .next()
                .map(bulk_items)
                .unwrap_or_default()
                .iter()
                .map(bytes_of)
                .collect();
            bytes += fields.iter().map(|f| f.len() as u64).sum::<u64>();
            let mut c = redis::cmd("XADD");
            c.arg(dst).arg(id.as_slice());
            for f in &fields {
                c.arg(f.as_slice());
            }
            cmds.push(c);
            last = Some(id);
        }
        write(target, cmds).await?;
        match last {
            Some(id) if n == 500 => from = [b"(".as_slice(), &id].concat(),
            _ => break,
        }
    }
    // An empty stream (all entries deleted) still exists with its groups: XGROUP CREATE
    // MKSTREAM below makes it.
    let groups = bulk_items(one(src, redis::cmd("XINFO").arg("GROUPS").arg(skey).clone()).await?);
    for g in groups {
        let fields: Vec<(String, Value)> = match g {
            Value::Array(f) => f
                .chunks(2)
                .map(|c| {
                    (
                        String::from_utf8_lossy(&bytes_of(&c[0])).into_owned(),
                        c.get(1).cloned().unwrap_or(Value::Nil),
                    )
                })
                .collect(),
            Value::Map(m) => m
                .into_iter()
                .map(|(k, v)| (String::from_utf8_lossy(&bytes_of(&k)).into_owned(), v))
                .collect(),
            _ => continue,
        };
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let name = get("name").map(|v| bytes_of(&v)).unwrap_or_default();
        let last_id = get("last-delivered-id")
            .map(|v| bytes_of(&v))
            .unwrap_or_default();
        let mut create = redis::cmd("XGROUP");
        create
            .arg("CREATE")
            .arg(dst)
            .arg(name.as_slice())
            .arg(last_id.as_slice())
            .arg("MKSTREAM");
        if let Some(Value::Int(read)) = get("entries-read") {
            create.arg("ENTRIESREAD").arg(read);
        }
        write(target, vec![create]).await?;
        // Pending entries: (id, consumer, idle, deliveries), claimed for the same consumer.
        let pending = bulk_items(
            one(
                src,
                redis::cmd("XPENDING")
                    .arg(skey)
                    .arg(name.as_slice())
                    .arg("-")
                    .arg("+")
                    .arg(100_000)
                    .clone(),
            )
            .await?,
        );
        let mut claims = Vec::new();
        for p in pending {
            let p = bulk_items(p);
            let (Some(id), Some(consumer)) = (p.first(), p.get(1)) else {
                continue;
            };
            let mut c = redis::cmd("XCLAIM");
            c.arg(dst)
                .arg(name.as_slice())
                .arg(bytes_of(consumer))
                .arg(0)
                .arg(bytes_of(id))
                .arg("FORCE")
                .arg("JUSTID");
            if let Some(Value::Int(n)) = p.get(3) {
                c.arg("RETRYCOUNT").arg(*n);
            }
            claims.push(c);
        }
        write(target, claims).await?;
    }
    Ok(bytes)
}
