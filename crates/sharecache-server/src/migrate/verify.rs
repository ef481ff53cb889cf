//! `sharecache migrate verify`, also run at the end of every copy: both directions.
//!
//! 1. Every source key (SCAN, `--match`) on the target under its namespace: missing, of
//!    another type, of another value (DUMP payloads equal, or else the content read by
//!    type, see `value`), or with a TTL further than `--ttl-tolerance-ms` from the
//!    source's (or a TTL on one side only). A source key that expires meanwhile is no
//!    difference.
//! 2. Every target key under `[prefix/]NS:` (matching `--match`) on its source: one that is
//!    not there is extra, unless it expires on the target within the tolerance (its
//!    source key just expired first).

use std::collections::HashSet;

use redis::Cmd;

use super::copy::{Source, scan_page};
use super::endpoint::Endpoint;
use super::value::{Expiry, bulk, now_ms, same_value, status, ttl_cmd};
use super::{CommonArgs, Differences, SourceReport};

fn reads(ep: &Endpoint, keys: &[Vec<u8>]) -> Vec<Cmd> {
    keys.iter()
        .flat_map(|k| {
            [
                redis::cmd("TYPE").arg(k).clone(),
                ttl_cmd(ep, k),
                redis::cmd("DUMP").arg(k).clone(),
            ]
        })
        .collect()
}

/// Compares every source with the target; the reports count the source keys checked.
///
/// `skipped` holds target keys that the copy left as they were (`--on-conflict skip`,
/// already counted and listed as conflicts): their values are not compared again.
pub(crate) async fn verify(
    sources: &[Source],
    target: &Endpoint,
    c: &CommonArgs,
    skipped: &HashSet<String>,
) -> anyhow::Result<(Vec<SourceReport>, Differences)> {
    let mut d = Differences::default();
    let mut reports = Vec::new();
    let n = c.examples;
    for (spec, src) in sources {
        let mut r = SourceReport {
            namespace: spec.namespace.clone(),
            ..SourceReport::default()
        };
        // Source -> target.
        for node in 0..src.scan_nodes().len() {
            let mut cursor = 0;
            // SCAN ends when it returns cursor 0.
            loop {
                let (next, keys) = scan_page(src, node, cursor, &c.pattern, c.batch).await?;
                r.scanned += keys.len() as u64;
                let tkeys: Vec<Vec<u8>> = keys.iter().map(|k| spec.target_key(k)).collect();
                let s = src.batch(reads(src, &keys)).await?;
                let s_at = now_ms();
                let t = target.batch(reads(target, &tkeys)).await?;
                let t_at = now_ms();
                for (i, (k, tk)) in keys.iter().zip(&tkeys).enumerate() {
                    let (sty, tty) = (status(&s[3 * i]), status(&t[3 * i]));
                    let st = Expiry::from_reply(src, &s[3 * i + 1], s_at);
                    let tt = Expiry::from_reply(target, &t[3 * i + 1], t_at);
                    let gone = sty.as_deref() == Some("none")
                        || matches!(st, Some(Expiry::Missing))
                        || matches!(st, Some(Expiry::At(at)) if at <= s_at + c.ttl_tolerance_ms as i64);
                    if gone || skipped.contains(String::from_utf8_lossy(tk).as_ref()) {
                        continue;
                    }
                    if tty.as_deref() == Some("none") || tt == Some(Expiry::Missing) {
                        Differences::add(&mut d.missing, tk, n);
                        continue;
                    }
                    if sty != tty {
                        Differences::add(&mut d.type_, tk, n);
                        continue;
                    }
                    if !same_value(src, k, bulk(&s[3 * i + 2]), target, tk, bulk(&t[3 * i + 2]))
                        .await?
                    {
                        Differences::add(&mut d.value, tk, n);
                    }
                    if !st
                        .zip(tt)
                        .is_some_and(|(a, b)| a.close_to(b, c.ttl_tolerance_ms))
                    {
                        Differences::add(&mut d.ttl, tk, n);
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        // Target -> source. The head holds only [a-z0-9_-:], literal in a glob.
        let pattern = format!("{}{}", spec.head, c.pattern);
        for node in 0..target.scan_nodes().len() {
            let mut cursor = 0;
            loop {
                let (next, tkeys) = scan_page(target, node, cursor, &pattern, c.batch).await?;
                let keys: Vec<Vec<u8>> = tkeys
                    .iter()
                    .map(|k| k[spec.head.len()..].to_vec())
                    .collect();
                let exists = src
                    .batch(
                        keys.iter()
                            .map(|k| redis::cmd("EXISTS").arg(k).clone())
                            .collect(),
                    )
                    .await?;
                let absent: Vec<&Vec<u8>> = tkeys
                    .iter()
                    .zip(&exists)
                    .filter(|(_, e)| matches!(e, Ok(redis::Value::Int(0))))
                    .map(|(k, _)| k)
                    .collect();
                if !absent.is_empty() {
                    let ttls = target
                        .batch(absent.iter().map(|k| ttl_cmd(target, k)).collect())
                        .await?;
                    let at = now_ms();
                    for (k, t) in absent.iter().zip(&ttls) {
                        match Expiry::from_reply(target, t, at) {
                            Some(Expiry::Missing) => {}
                            Some(Expiry::At(e)) if e <= at + c.ttl_tolerance_ms as i64 => {}
                            _ => Differences::add(&mut d.extra, k, n),
                        }
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        reports.push(r);
    }
    d.sum();
    Ok((reports, d))
}
