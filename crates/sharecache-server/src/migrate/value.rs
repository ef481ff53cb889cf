//! TTLs as read from a server, and the comparison of one key's value on two servers,
//! shared by the copy (is a target key that exists the same as the source's?) and verify.

use redis::{Cmd, Value};
use sha2::{Digest, Sha256};

use super::endpoint::{Endpoint, Reply};

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The command that reads `key`'s expiry: `PEXPIRETIME` (absolute, Redis 7.0+) or `PTTL`.
pub(crate) fn ttl_cmd(ep: &Endpoint, key: &[u8]) -> Cmd {
    let name = if ep.has_pexpiretime {
        "PEXPIRETIME"
    } else {
        "PTTL"
    };
    redis::cmd(name).arg(key).clone()
}

/// A key's expiry as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// The key does not exist (anymore).
    Missing,
    /// No TTL.
    Never,
    /// Expires at this Unix time, ms. From `PTTL`, `now + PTTL` at the time of the reply.
    At(i64),
}

impl Expiry {
    /// Reads the reply of [`ttl_cmd`]; `read_at` is when the reply came (for `PTTL`).
    pub(crate) fn from_reply(ep: &Endpoint, r: &Reply, read_at: i64) -> Option<Self> {
        let Ok(Value::Int(n)) = r else { return None };
        Some(match *n {
            -2 => Self::Missing,
            -1 => Self::Never,
            n if ep.has_pexpiretime => Self::At(n),
            n => Self::At(read_at + n),
        })
    }

    /// Within `tolerance` ms of `other` (both without TTL, or both with one close enough).
    pub(crate) fn close_to(self, other: Self, tolerance: u64) -> bool {
        match (self, other) {
            (Self::Never, Self::Never) | (Self::Missing, Self::Missing) => true,
            (Self::At(a), Self::At(b)) => a.abs_diff(b) <= tolerance,
            _ => false,
        }
    }
}

/// Bytes of a bulk reply (DUMP, GET).
pub(crate) fn bulk(r: &Reply) -> Option<&[u8]> {
    match r {
        Ok(Value::BulkString(b)) => Some(b),
        _ => None,
    }
}

/// A status or bulk reply as text (TYPE).
pub(crate) fn status(r: &Reply) -> Option<String> {
    match r {
        Ok(Value::SimpleString(s)) => Some(s.clone()),
        Ok(Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        Ok(Value::Okay) => Some("OK".into()),
        _ => None,
    }
}

/// Appends a deterministic encoding of `v` (a type tag, then length-prefixed parts).
fn encode(v: &Value, out: &mut Vec<u8>) {
    let mut part = |tag: u8, b: &[u8]| {
        out.push(tag);
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        out.extend_from_slice(b);
    };
    match v {
        Value::Nil => part(b'n', b""),
        Value::Int(i) => part(b'i', &i.to_le_bytes()),
        Value::BulkString(b) => part(b'b', b),
        Value::SimpleString(s) => part(b'b', s.as_bytes()),
        Value::Okay => part(b'b', b"OK"),
        Value::Double(d) => part(b'd', d.to_string().as_bytes()),
        Value::Boolean(x) => part(b't', &[u8::from(*x)]),
        Value::VerbatimString { text, .. } => part(b'b', text.as_bytes()),
        Value::BigNumber(n) => part(b'd', n),
        Value::Array(items) | Value::Set(items) => {
            part(b'a', &(items.len() as u64).to_le_bytes());
            for i in items {
                encode(i, out);
            }
        }
        Value::Map(pairs) => {
            part(b'm', &(pairs.len() as u64).to_le_bytes());
            for (k, v) in pairs {
                encode(k, out);
                encode(v, out);
            }
        }
        other => part(b'?', format!("{other:?}").as_bytes()),
    }
}

/// Sorts the items of an array reply (set members), or its pairs (hash fields).
fn sorted(v: Value, pairs: bool) -> Vec<Vec<u8>> {
    let Value::Array(items) = v else {
        let mut out = Vec::new();
        encode(&v, &mut out);
        return vec![out];
    };
    let mut out: Vec<Vec<u8>> = if pairs {
        items
            .chunks(2)
            .map(|c| {
                let mut b = Vec::new();
                for x in c {
                    encode(x, &mut b);
                }
                b
            })
            .collect()
    } else {
        items
            .iter()
            .map(|x| {
                let mut b = Vec::new();
                encode(x, &mut b);
                b
            })
            .collect()
    };
    out.sort();
    out
}

/// The type and a digest of the value of `key`, independent of the server's encoding
/// (listpack or hashtable, RDB version): the content, read by type. Streams include
/// their consumer groups (name, last delivered id, pending count). `None` when the key
/// does not exist.
pub(crate) async fn logical_digest(
    ep: &Endpoint,
    key: &[u8],
) -> anyhow::Result<Option<(String, [u8; 32])>> {
    let r = ep.batch(vec![redis::cmd("TYPE").arg(key).clone()]).await?;
    let Some(ty) = status(&r[0]) else {
        anyhow::bail!("{}: TYPE of a key failed: {:?}", ep.label, r[0]);
    };
    let cmds: Vec<Cmd> = match ty.as_str() {
        "none" => return Ok(None),
        "string" => vec![redis::cmd("GET").arg(key).clone()],
        "list" => vec![redis::cmd("LRANGE").arg(key).arg(0).arg(-1).clone()],
        "hash" => vec![redis::cmd("HGETALL").arg(key).clone()],
        "set" => vec![redis::cmd("SMEMBERS").arg(key).clone()],
        "zset" => vec![
            redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .clone(),
        ],
        "stream" => vec![
            redis::cmd("XRANGE").arg(key).arg("-").arg("+").clone(),
            redis::cmd("XINFO").arg("GROUPS").arg(key).clone(),
        ],
        other => anyhow::bail!("{}: cannot compare a value of type {other}", ep.label),
    };
    let replies = ep.batch(cmds).await?;
    let mut h = Sha256::new();
    h.update(ty.as_bytes());
    for (i, r) in replies.into_iter().enumerate() {
        let v = r.map_err(|e| anyhow::anyhow!("{}: reading a {ty}: {e}", ep.label))?;
        let parts = match (ty.as_str(), i) {
            ("hash", _) => sorted(v, true),
            ("set", _) => sorted(v, false),
            ("stream", 1) => stream_groups(v),
            _ => {
                let mut b = Vec::new();
                encode(&v, &mut b);
                vec![b]
            }
        };
        for p in parts {
            h.update(&p);
        }
    }
    Ok(Some((ty, h.finalize().into())))
}

/// The stable fields of `XINFO GROUPS` (idle times of consumers are left out).
fn stream_groups(v: Value) -> Vec<Vec<u8>> {
    let Value::Array(groups) = v else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for g in groups {
        let fields: Vec<(Value, Value)> = match g {
            Value::Array(f) => f
                .chunks(2)
                .filter_map(|c| Some((c.first()?.clone(), c.get(1)?.clone())))
                .collect(),
            Value::Map(m) => m,
            _ => continue,
        };
        let mut b = Vec::new();
        for (k, v) in fields {
            let name = status(&Ok(k.clone())).unwrap_or_default();
            if matches!(
                name.as_str(),
                "name" | "pending" | "last-delivered-id" | "entries-read"
            ) {
                encode(&k, &mut b);
                encode(&v, &mut b);
            }
        }
        out.push(b);
    }
    out.sort();
    out
}

/// Whether `skey` on `src` and `tkey` on `dst` hold the same value: equal DUMP payloads,
/// or else equal content read by type.
pub(crate) async fn same_value(
    src: &Endpoint,
    skey: &[u8],
    src_dump: Option<&[u8]>,
    dst: &Endpoint,
    tkey: &[u8],
    dst_dump: Option<&[u8]>,
) -> anyhow::Result<bool> {
    if let (Some(a), Some(b)) = (src_dump, dst_dump)
        && a == b
    {
        return Ok(true);
    }
    let (a, b) = (
        logical_digest(src, skey).await?,
        logical_digest(dst, tkey).await?,
    );
    Ok(a.is_some() && a == b)
}
