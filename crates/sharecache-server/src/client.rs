//! `sharecache keys|get|set|del|ttl|stats|tail`: a small client of a running service.
//!
//! Every command speaks the HTTP API v1 with a bearer token (`--url`/`SHARECACHE_URL`,
//! `--token`/`SHARECACHE_TOKEN`), so it can do exactly what that token may. Output is
//! for a person on a terminal (tables, pretty JSON) and one JSON document per line with
//! `--json` (or whenever standard output is not a terminal for `get`, so pipes get the
//! value as stored). Errors print the service's error code and message. Plain `http://`
//! only: put a TLS-terminating proxy's local address in `--url` for a remote service.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::Value;

/// Where the service is and who is calling.
#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// Base URL of the service.
    #[arg(long, env = "SHARECACHE_URL", default_value = "http://127.0.0.1:7070")]
    pub url: String,
    /// Bearer token (an admin, viewer or service token).
    #[arg(long, env = "SHARECACHE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON (one document per line) instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// The client commands.
#[derive(Debug, Clone, Subcommand)]
pub enum ClientCommand {
    /// List keys of a namespace matching a glob pattern (default `*`).
    Keys {
        /// Namespace.
        ns: String,
        /// Glob pattern relative to the namespace.
        pattern: Option<String>,
        /// Stop after this many keys.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        limit: u64,
        #[command(flatten)]
        conn: Conn,
    },
    /// Print a key's value.
    Get {
        /// Namespace.
        ns: String,
        /// Key.
        key: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Store a JSON value.
    Set {
        /// Namespace.
        ns: String,
        /// Key.
        key: String,
        /// The value, a JSON document (`'"text"'`, `42`, `'{"a":1}'`).
        #[arg(value_name = "JSON")]
        value: String,
        /// Seconds to live; no expiry without it.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=315_360_000))]
        ttl: Option<u64>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a key.
    Del {
        /// Namespace.
        ns: String,
        /// Key.
        key: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Print the time a key has left.
    Ttl {
        /// Namespace.
        ns: String,
        /// Key.
        key: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Per-namespace figures (keys, memory, hit ratio, ops/s).
    Stats {
        #[command(flatten)]
        conn: Conn,
    },
    /// Print the events published on a channel as they come (Ctrl-C to stop).
    Tail {
        /// Namespace.
        ns: String,
        /// Channel.
        channel: String,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
        #[command(flatten)]
        conn: Conn,
    },
}

/// Percent-encodes every byte that is not unreserved, so any key fits in one segment.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn new(conn: &Conn, streaming: bool) -> anyhow::Result<Self> {
        let Some(token) = conn.token.clone().filter(|t| !t.is_empty()) else {
            bail!("no token: pass --token or set SHARECACHE_TOKEN");
        };
        let base = conn.url.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") {
            bail!("--url {base:?}: use an http:// URL (this client speaks plain HTTP)");
        }
        let mut b = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
        if !streaming {
            b = b.timeout(Duration::from_secs(30));
        }
        Ok(Self {
            http: b.build()?,
            base,
            token,
        })
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Sends; a non-2xx answer becomes an error with the service's code and message.
    async fn send(&self, rb: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        match self.send_opt(rb).await? {
            Some(r) => Ok(r),
            None => bail!("404 not_found: no such key"),
        }
    }

    /// As [`send`](Self::send), with a 404 as `None`.
    async fn send_opt(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> anyhow::Result<Option<reqwest::Response>> {
        let r = rb
            .send()
            .await
            .with_context(|| format!("cannot reach the service at {}", self.base))?;
        if r.status().is_success() {
            return Ok(Some(r));
        }
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let code = body["error"]["code"].as_str().unwrap_or("error");
        let msg = body["error"]["message"].as_str().unwrap_or("");
        bail!("{} {code}: {msg}", status.as_u16())
    }
}

/// `{prefix}/{ns}[/{key}]`; a key starting with `_` is sent as `%5F...` so that it is
/// never taken for a route's own segment (`_mget`...).
fn ns_path(prefix: &str, ns: &str, key: Option<&str>) -> String {
    match key {
        Some(k) => {
            let e = enc(k);
            let e = match e.strip_prefix('_') {
                Some(rest) => format!("%5F{rest}"),
                None => e,
            };
            format!("{prefix}/{}/{e}", enc(ns))
        }
        None => format!("{prefix}/{}", enc(ns)),
    }
}

fn fmt_bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut v, mut i) = (n as f64, 0);
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

fn fmt_ttl(ms: Option<u64>) -> String {
    match ms {
        None => "no expiry".to_owned(),
        Some(ms) => format!("{:.1} s", ms as f64 / 1000.0),
    }
}

/// Prints rows as columns padded to their widest cell (the first row is the header).
fn table(out: &mut impl Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}

/// Runs a client command to completion.
pub fn run_blocking(cmd: ClientCommand) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(cmd))
}

/// Runs a client command.
pub async fn run(cmd: ClientCommand) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let tty = std::io::stdout().is_terminal();
    match cmd {
        ClientCommand::Keys {
            ns,
            pattern,
            limit,
            conn,
        } => {
            let c = Client::new(&conn, false)?;
            let pattern = pattern.unwrap_or_else(|| "*".to_owned());
            let mut cursor: Option<String> = None;
            let mut n = 0u64;
            let mut keys = Vec::new();
            // Each page is one request; the walk stops at the limit or the listing's end.
            'walk: loop {
                let mut q = format!("?match={}&count=1000", enc(&pattern));
                if let Some(cur) = &cursor {
                    q.push_str(&format!("&cursor={}", enc(cur)));
                }
                let page: Value = c
                    .send(c.req(
                        reqwest::Method::GET,
                        &format!("{}{q}", ns_path("/v1/cache", &ns, None)),
                    ))
                    .await?
                    .json()
                    .await?;
                for k in page["keys"].as_array().into_iter().flatten() {
                    let k = k.as_str().unwrap_or_default().to_owned();
                    if conn.json {
                        writeln!(out, "{}", Value::String(k))?;
                    } else {
                        keys.push(k);
                    }
                    n += 1;
                    if n >= limit {
                        break 'walk;
                    }
                }
                match page["cursor"].as_str() {
                    Some(cur) => cursor = Some(cur.to_owned()),
                    None => break,
                }
            }
            if !conn.json {
                keys.sort();
                for k in &keys {
                    writeln!(out, "{k}")?;
                }
                if tty {
                    let more = if n >= limit { " (limit reached)" } else { "" };
                    eprintln!("{n} keys{more}");
                }
            }
        }
        ClientCommand::Get { ns, key, conn } => {
            let c = Client::new(&conn, false)?;
            let r = c
                .send(c.req(reqwest::Method::GET, &ns_path("/v1/cache", &ns, Some(&key))))
                .await?;
            let text = r.text().await?;
            if conn.json || !tty {
                writeln!(out, "{text}")?;
            } else {
                let v: Value = serde_json::from_str(&text)?;
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            }
        }
        ClientCommand::Set {
            ns,
            key,
            value,
            ttl,
            conn,
        } => {
            serde_json::from_str::<serde::de::IgnoredAny>(&value).with_context(|| {
                format!("the value is not JSON: {value:?} (a string needs quotes: '\"text\"')")
            })?;
            let c = Client::new(&conn, false)?;
            let q = ttl.map(|t| format!("?ttl={t}")).unwrap_or_default();
            let rb = c
                .req(
                    reqwest::Method::PUT,
                    &format!("{}{q}", ns_path("/v1/cache", &ns, Some(&key))),
                )
                .header("content-type", "application/json")
                .body(value);
            c.send(rb).await?;
            if conn.json {
                writeln!(out, "{}", serde_json::json!({"stored": true}))?;
            } else {
                writeln!(out, "stored {ns}/{key}")?;
            }
        }
        ClientCommand::Del { ns, key, conn } => {
            let c = Client::new(&conn, false)?;
            let deleted = c
                .send_opt(c.req(
                    reqwest::Method::DELETE,
                    &ns_path("/v1/cache", &ns, Some(&key)),
                ))
                .await?
                .is_some();
            if conn.json {
                writeln!(out, "{}", serde_json::json!({"deleted": deleted}))?;
            } else {
                writeln!(out, "{}", if deleted { "deleted" } else { "no such key" })?;
            }
            if !deleted {
                bail!("{ns}/{key} does not exist");
            }
        }
        ClientCommand::Ttl { ns, key, conn } => {
            let c = Client::new(&conn, false)?;
            let v: Value = c
                .send(c.req(
                    reqwest::Method::GET,
                    &ns_path("/v1/dashboard/key", &ns, Some(&key)),
                ))
                .await?
                .json()
                .await?;
            let ms = v["ttl_ms"].as_u64();
            if conn.json {
                writeln!(out, "{}", serde_json::json!({"ttl_ms": ms}))?;
            } else {
                writeln!(out, "{}", fmt_ttl(ms))?;
            }
        }
        ClientCommand::Stats { conn } => {
            let c = Client::new(&conn, false)?;
            let v: Value = c
                .send(c.req(reqwest::Method::GET, "/v1/stats"))
                .await?
                .json()
                .await?;
            if conn.json {
                writeln!(out, "{v}")?;
                return Ok(());
            }
            let mut rows = vec![
                ["namespace", "keys", "memory", "hit ratio", "L1", "ops/s"]
                    .map(String::from)
                    .to_vec(),
            ];
            let pct = |v: &Value| {
                v.as_f64()
                    .map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0))
            };
            for n in v["namespaces"].as_array().into_iter().flatten() {
                let keys = n["keys"].as_u64().unwrap_or(0);
                let more = if n["keys_truncated"] == true { "+" } else { "" };
                rows.push(vec![
                    n["namespace"].as_str().unwrap_or("?").to_owned(),
                    format!("{keys}{more}"),
                    fmt_bytes(n["bytes_estimate"].as_u64().unwrap_or(0)),
                    pct(&n["hit_ratio"]),
                    pct(&n["l1_hit_ratio"]),
                    format!("{:.1}", n["ops_per_sec"].as_f64().unwrap_or(0.0)),
                ]);
            }
            let b = &v["backend"];
            if let Some(keys) = b["keys"].as_u64() {
                writeln!(
                    out,
                    "backend {}: {keys} keys, {}",
                    b["state"].as_str().unwrap_or("?"),
                    fmt_bytes(b["bytes"].as_u64().unwrap_or(0))
                )?;
            }
            table(&mut out, &rows)?;
        }
        ClientCommand::Tail {
            ns,
            channel,
            count,
            conn,
        } => {
            let c = Client::new(&conn, true)?;
            let mut r = c
                .send(
                    c.req(
                        reqwest::Method::GET,
                        &ns_path("/v1/events", &ns, Some(&channel)),
                    )
                    .header("accept", "text/event-stream"),
                )
                .await?;
            if tty && !conn.json {
                eprintln!("listening on {ns}/{channel} (Ctrl-C to stop)");
            }
            let mut buf = Vec::new();
            let mut seen = 0u64;
            // The `event:` field of the event being read (none: a plain event).
            let mut kind = String::new();
            while let Some(chunk) = r.chunk().await? {
                buf.extend_from_slice(&chunk);
                // One SSE line at a time; comments (heartbeats) and other fields are skipped.
                while let Some(i) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=i).collect();
                    let line = String::from_utf8_lossy(&line);
                    let line = line.trim_end();
                    if line.is_empty() {
                        kind.clear();
                        continue;
                    }
                    if let Some(k) = line.strip_prefix("event:") {
                        kind = k.trim().to_owned();
                        continue;
                    }
                    let Some(data) = line.strip_prefix("data:") else {
                        continue;
                    };
                    let data = data.trim_start();
                    if kind == "dropped" {
                        bail!(
                            "the service dropped this subscription: it fell too far behind \
                             ({data}); run tail again to go on"
                        );
                    }
                    if conn.json {
                        writeln!(out, "{data}")?;
                    } else {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs());
                        writeln!(out, "{now}  {data}")?;
                    }
                    out.flush()?;
                    seen += 1;
                    if count.is_some_and(|n| seen >= n) {
                        return Ok(());
                    }
                }
            }
            bail!("the service closed the stream");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_encoded_into_one_segment() {
        assert_eq!(super::enc("a:b/c d%"), "a%3Ab%2Fc%20d%25");
        assert_eq!(
            super::ns_path("/v1/cache", "user", Some("_mget")),
            "/v1/cache/user/%5Fmget"
        );
    }

    #[test]
    fn tables_pad_columns() {
        let mut out = Vec::new();
        let rows = vec![
            vec!["ns".to_owned(), "keys".to_owned()],
            vec!["user".to_owned(), "12".to_owned()],
        ];
        super::table(&mut out, &rows).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "ns    keys\nuser    12\n");
    }
}
