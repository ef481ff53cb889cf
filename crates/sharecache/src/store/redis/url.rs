//! Where Redis is: backend URLs (standalone, Cluster, Sentinel), node addresses, key
//! slots, connection options and URL redaction. The bottom of the Redis backend: it
//! imports nothing from the layers above.
//!
//! **Guarantee**: nothing here ever prints a password: parse errors, `Debug` and
//! `display()` go through [`redact_url`] or leave the userinfo out.
//!
//! * `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS): one server.
//! * `redis+cluster://[user:password@]host:port[,host:port...]` (or `rediss+cluster://`):
//!   seed nodes of a Redis Cluster; the rest of the cluster is discovered from them. The
//!   credentials apply to every node.
//! * `redis+sentinel://[user:password@]host:port[,host:port...]/MASTER[/db]` (or
//!   `rediss+sentinel://`): the sentinels that monitor `MASTER`. The userinfo holds the
//!   **data nodes'** credentials; the sentinels' own credentials, if they have any, go in
//!   the query: `?sentinel_username=...&sentinel_password=...` (percent-encoded).
//!
//! A node's URL is rebuilt from the parts (`node_url`) with the userinfo exactly as the
//! caller wrote it, so percent-encoded passwords stay encoded.

use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// Connection settings for a Redis backend.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RedisOptions {
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
}

/// Returns `url` with any password replaced by `***`: the form to print or log.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}")
            } else {
                format!("{scheme}://***@{host}")
            }
        }
        None => url.to_owned(),
    }
}

/// Default ports when a host has none.
const REDIS_PORT: u16 = 6379;
const SENTINEL_PORT: u16 = 26379;

/// A host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct NodeAddr {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl std::fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How to reach Redis, parsed from a backend URL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Topology {
    Standalone { url: String },
    Cluster(ClusterTopo),
    Sentinel(SentinelTopo),
}

/// A Redis Cluster, from its seed nodes.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ClusterTopo {
    pub(crate) seeds: Vec<NodeAddr>,
    /// `user:password` or `:password`, as written (percent-encoded).
    pub(crate) userinfo: Option<String>,
    pub(crate) tls: bool,
}

/// The sentinels that monitor one master.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SentinelTopo {
    pub(crate) sentinels: Vec<NodeAddr>,
    pub(crate) master: String,
    pub(crate) userinfo: Option<String>,
    pub(crate) db: i64,
    pub(crate) sentinel_username: Option<String>,
    pub(crate) sentinel_password: Option<String>,
    pub(crate) tls: bool,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print credentials.
        f.write_str(&self.display())
    }
}

fn config_err(display: &str, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Config,
        format!("invalid Redis URL {display}: {why}"),
    )
}

/// Installs rustls's ring provider as the process default, once, unless the program
/// installed one already. redis-rs's `rediss://` connections need a process-level
/// provider, and rustls cannot pick one by itself when the build enables none or two of
/// its provider features: without this a TLS URL panicked at connect. Every URL the
/// library parses calls it; a program that opens redis-rs TLS connections of its own
/// before touching the library can call it first.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn parse_hosts(list: &str, default_port: u16, display: &str) -> Result<Vec<NodeAddr>> {
    let mut out = Vec::new();
    for item in list.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(config_err(display, "empty host in the host list"));
        }
        let (host, port) = if let Some(rest) = item.strip_prefix('[') {
            let (h, after) = rest
                .split_once(']')
                .ok_or_else(|| config_err(display, format!("unclosed [ in {item:?}")))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(config_err(display, format!("bad host {item:?}"))),
            }
        } else {
            match item.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (item, None),
            }
        };
        if host.is_empty()
            || host
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '/' | '@' | '?' | '#'))
        {
            return Err(config_err(display, format!("bad host {item:?}")));
        }
        let port =
            match port {
                None => default_port,
                Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    config_err(display, format!("bad port {p:?} (expected 1-65535)"))
                })?,
            };
        out.push(NodeAddr {
            host: host.to_owned(),
            port,
        });
    }
    Ok(out)
}

impl Topology {
    /// Parses a backend URL. Errors are [`ErrorKind::Config`] and never echo a password.
    pub(crate) fn parse(url: &str) -> Result<Self> {
        install_tls_provider();
        let display = redact_url(url);
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(config_err(
                &display,
                "expected redis://, rediss://, redis+cluster:// or redis+sentinel://",
            ));
        };
        let (kind, tls) = match scheme {
            "redis" | "rediss" | "redis+unix" | "unix" => {
                return Ok(Self::Standalone {
                    url: url.to_owned(),
                });
            }
            "redis+cluster" => ("cluster", false),
            "rediss+cluster" => ("cluster", true),
            "redis+sentinel" => ("sentinel", false),
            "rediss+sentinel" => ("sentinel", true),
            other => {
                return Err(config_err(
                    &display,
                    format!(
                        "unknown scheme {other:?}; use redis://, rediss://, redis+cluster:// or redis+sentinel://"
                    ),
                ));
            }
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (rest, None),
        };
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()).filter(|u| !u.is_empty()), h),
            None => (None, authority),
        };
        if hosts.is_empty() {
            return Err(config_err(&display, "no host given"));
        }
        let mut sentinel_username = None;
        let mut sentinel_password = None;
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match (kind, k.as_ref()) {
                ("sentinel", "sentinel_username") => sentinel_username = Some(v.into_owned()),
                ("sentinel", "sentinel_password") => sentinel_password = Some(v.into_owned()),
                _ => {
                    return Err(config_err(
                        &display,
                        format!(
                            "unknown query parameter {k:?}{}",
                            if kind == "sentinel" {
                                " (known: sentinel_username, sentinel_password)"
                            } else {
                                " (a cluster URL takes none)"
                            }
                        ),
                    ));
                }
            }
        }
        if kind == "cluster" {
            if path.is_some_and(|p| !p.is_empty() && p != "0") {
                return Err(config_err(
                    &display,
                    "Redis Cluster has only database 0; remove the /db part",
                ));
            }
            return Ok(Self::Cluster(ClusterTopo {
                seeds: parse_hosts(hosts, REDIS_PORT, &display)?,
                userinfo,
                tls,
            }));
        }
        let path = path.unwrap_or("");
        let (master, db) = match path.split_once('/') {
            Some((m, d)) => (m, Some(d)),
            None => (path, None),
        };
        if master.is_empty() {
            return Err(config_err(
                &display,
                "a sentinel URL names its master: redis+sentinel://host:26379/mymaster",
            ));
        }
        if master
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '%')
        {
            return Err(config_err(&display, "bad master name"));
        }
        let db = match db {
            None | Some("") => 0,
            Some(d) => d
                .parse::<i64>()
                .ok()
                .filter(|d| *d >= 0)
                .ok_or_else(|| config_err(&display, format!("bad database index {d:?}")))?,
        };
        Ok(Self::Sentinel(SentinelTopo {
            sentinels: parse_hosts(hosts, SENTINEL_PORT, &display)?,
            master: master.to_owned(),
            userinfo,
            db,
            sentinel_username,
            sentinel_password,
            tls,
        }))
    }

    /// The URL without credentials, for logs and errors.
    pub(crate) fn display(&self) -> String {
        match self {
            Self::Standalone { url } => redact_url(url),
            Self::Cluster(c) => c.display(),
            Self::Sentinel(s) => s.display(),
        }
    }

    /// The URL of one data node (cluster node or sentinel-named master), with the data
    /// nodes' credentials.
    #[cfg(test)]
    pub(crate) fn node_url(&self, addr: &NodeAddr) -> String {
        match self {
            Self::Standalone { url } => url.clone(),
            Self::Cluster(c) => c.node_url(addr),
            Self::Sentinel(s) => s.node_url(addr),
        }
    }
}

fn hosts(h: &[NodeAddr]) -> String {
    h.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// `redis` or `rediss` (TLS), with a `+kind` suffix.
fn scheme(tls: bool, kind: &str) -> String {
    format!("{}+{kind}", if tls { "rediss" } else { "redis" })
}

impl ClusterTopo {
    /// The URL without credentials.
    pub(crate) fn display(&self) -> String {
        format!("{}://{}", scheme(self.tls, "cluster"), hosts(&self.seeds))
    }

    /// The URL of one cluster node, with the data nodes' credentials.
    pub(crate) fn node_url(&self, addr: &NodeAddr) -> String {
        build_url(self.tls, self.userinfo.as_deref(), addr, 0)
    }
}

impl SentinelTopo {
    /// The URL without credentials.
    pub(crate) fn display(&self) -> String {
        let hosts = hosts(&self.sentinels);
        format!("{}://{hosts}/{}", scheme(self.tls, "sentinel"), self.master)
    }

    /// The URL of the master at `addr`, with the data nodes' credentials and database.
    pub(crate) fn node_url(&self, addr: &NodeAddr) -> String {
        build_url(self.tls, self.userinfo.as_deref(), addr, self.db)
    }

    /// The URL of one sentinel, with the sentinels' credentials.
    pub(crate) fn sentinel_url(&self, addr: &NodeAddr) -> String {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let userinfo = match (&self.sentinel_username, &self.sentinel_password) {
            (None, None) => None,
            (u, p) => Some(format!(
                "{}{}",
                u.as_deref().map(enc).unwrap_or_default(),
                p.as_deref()
                    .map(|p| format!(":{}", enc(p)))
                    .unwrap_or_default()
            )),
        };
        build_url(self.tls, userinfo.as_deref(), addr, 0)
    }
}

fn build_url(tls: bool, userinfo: Option<&str>, addr: &NodeAddr, db: i64) -> String {
    let scheme = if tls { "rediss" } else { "redis" };
    let auth = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let db = if db == 0 {
        String::new()
    } else {
        format!("/{db}")
    };
    format!("{scheme}://{auth}{addr}{db}")
}

/// The Redis Cluster hash slot of `key`: CRC16 (XMODEM) of the key, or of the part inside
/// the first non-empty `{...}` (a hash tag), modulo 16384.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    let part = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16::State::<crc16::XMODEM>::calculate(part) % 16384
}

/// `%XX` escapes decoded (a bad escape stays as written); `+` stays `+`, as in a URL's
/// userinfo.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Which kind of deployment a [`RedisUrl`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisKind {
    /// One server (`redis://`, `rediss://`, `unix://`).
    Standalone,
    /// A Redis Cluster reached through seed nodes.
    Cluster,
    /// A master monitored by sentinels.
    Sentinel,
}

/// A parsed backend URL, for tools that talk to each Redis node themselves (`sharecache
/// provision` and `doctor` apply ACLs and read settings node by node, which the [`Store`]
/// never exposes).
///
/// [`Store`]: crate::Store
///
/// **Guarantee**: `Debug` and [`display`](Self::display) never print a password; the
/// URLs handed out by [`seed_urls`](Self::seed_urls) and [`node_url`](Self::node_url)
/// carry credentials and are meant for connecting, not for printing.
#[derive(Clone)]
pub struct RedisUrl(Topology);

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RedisUrl").field(&self.0.display()).finish()
    }
}

impl RedisUrl {
    /// Parses a backend URL with the same rules as [`CacheBuilder::redis`]; errors are
    /// [`ErrorKind::Config`] and never echo a password.
    ///
    /// [`CacheBuilder::redis`]: crate::CacheBuilder::redis
    pub fn parse(url: &str) -> Result<Self> {
        Topology::parse(url).map(Self)
    }

    /// Standalone, Cluster or Sentinel.
    pub fn kind(&self) -> RedisKind {
        match self.0 {
            Topology::Standalone { .. } => RedisKind::Standalone,
            Topology::Cluster(_) => RedisKind::Cluster,
            Topology::Sentinel(_) => RedisKind::Sentinel,
        }
    }

    /// The URL without its password, for messages.
    pub fn display(&self) -> String {
        self.0.display()
    }

    /// Where discovery starts, with credentials: the server itself (standalone), the seed
    /// nodes (Cluster, with the data nodes' credentials) or the sentinels (with the
    /// sentinels' own credentials).
    pub fn seed_urls(&self) -> Vec<String> {
        match &self.0 {
            Topology::Standalone { url } => vec![url.clone()],
            Topology::Cluster(c) => c.seeds.iter().map(|a| c.node_url(a)).collect(),
            Topology::Sentinel(s) => s.sentinels.iter().map(|a| s.sentinel_url(a)).collect(),
        }
    }

    /// The master name a Sentinel URL monitors.
    pub fn master_name(&self) -> Option<&str> {
        match &self.0 {
            Topology::Sentinel(s) => Some(&s.master),
            _ => None,
        }
    }

    /// The username the data nodes are reached with (`None`: the `default` user).
    pub fn username(&self) -> Option<String> {
        let userinfo = match &self.0 {
            Topology::Standalone { url } => url
                .split_once("://")
                .and_then(|(_, rest)| rest.rsplit_once('@'))
                .map(|(u, _)| u.to_owned()),
            Topology::Cluster(c) => c.userinfo.clone(),
            Topology::Sentinel(s) => s.userinfo.clone(),
        }?;
        let user = userinfo
            .split_once(':')
            .map_or(userinfo.as_str(), |(u, _)| u);
        Some(percent_decode(user)).filter(|u| !u.is_empty())
    }

    /// The URL of the data node at `host:port` with the data nodes' credentials (and, for
    /// a standalone URL, its database and TLS setting): how a discovered replica or
    /// cluster node is reached. `None` for a Unix socket URL, which names no host.
    pub fn node_url(&self, host: &str, port: u16) -> Option<String> {
        let addr = NodeAddr {
            host: host.to_owned(),
            port,
        };
        match &self.0 {
            Topology::Standalone { url } => {
                let mut u = url::Url::parse(url).ok()?;
                if !matches!(u.scheme(), "redis" | "rediss") {
                    return None;
                }
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.to_owned()
                };
                u.set_host(Some(&host)).ok()?;
                u.set_port(Some(port)).ok()?;
                Some(u.to_string())
            }
            Topology::Cluster(c) => Some(c.node_url(&addr)),
            Topology::Sentinel(s) => Some(s.node_url(&addr)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("redis://u:secret@h:6379/1"),
            "redis://u:***@h:6379/1"
        );
        assert_eq!(redact_url("redis://:secret@h:6379"), "redis://:***@h:6379");
        assert_eq!(redact_url("rediss://token@h"), "rediss://***@h");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(redact_url("redis://u:p@ss@h"), "redis://u:***@h");
    }

    #[test]
    fn slots_match_redis() {
        // Values from CLUSTER KEYSLOT.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"#lock:ns:{k}"), key_slot(b"#fence:ns:{k}"));
    }

    #[test]
    fn standalone_urls_pass_through() {
        for u in ["redis://h:1", "rediss://u:p@h:1/2", "redis://127.0.0.1"] {
            assert_eq!(
                Topology::parse(u).unwrap(),
                Topology::Standalone { url: u.to_owned() }
            );
        }
    }

    #[test]
    fn cluster_urls() {
        let t =
            Topology::parse("redis+cluster://:s%40cret@10.0.0.1:7000,10.0.0.2,[::1]:7002").unwrap();
        let Topology::Cluster(ClusterTopo {
            ref seeds,
            ref userinfo,
            tls,
        }) = t
        else {
            panic!("not a cluster: {t:?}")
        };
        assert!(!tls);
        assert_eq!(userinfo.as_deref(), Some(":s%40cret"));
        assert_eq!(seeds.len(), 3);
        assert_eq!(seeds[1].port, 6379);
        assert_eq!(seeds[2].host, "::1");
        assert_eq!(
            t.node_url(&seeds[2]),
            "redis://:s%40cret@[::1]:7002".to_owned()
        );
        assert_eq!(
            t.display(),
            "redis+cluster://10.0.0.1:7000,10.0.0.2:6379,[::1]:7002"
        );
        assert!(!format!("{t:?}").contains("cret"));
        let tls = Topology::parse("rediss+cluster://h:1").unwrap();
        assert!(
            tls.node_url(&NodeAddr {
                host: "x".into(),
                port: 2
            })
            .starts_with("rediss://")
        );
    }

    #[test]
    fn sentinel_urls() {
        let t = Topology::parse(
            "redis+sentinel://app:pw@s1:26379,s2/mymaster/3?sentinel_password=sp%26x&sentinel_username=sen",
        )
        .unwrap();
        let Topology::Sentinel(ref st) = t else {
            panic!("not sentinel")
        };
        let (sentinels, master, db) = (&st.sentinels, &st.master, st.db);
        assert_eq!(master, "mymaster");
        assert_eq!(db, 3);
        assert_eq!(sentinels[1].port, 26379);
        assert_eq!(
            t.node_url(&NodeAddr {
                host: "m".into(),
                port: 6380
            }),
            "redis://app:pw@m:6380/3"
        );
        assert_eq!(
            st.sentinel_url(&sentinels[0]),
            "redis://sen:sp%26x@s1:26379"
        );
        assert_eq!(t.display(), "redis+sentinel://s1:26379,s2:26379/mymaster");
    }

    #[test]
    fn bad_urls_are_clear_config_errors() {
        for (u, why) in [
            ("redis+cluster://", "no host"),
            ("redis+cluster://h:0", "bad port"),
            ("redis+cluster://h:99999", "bad port"),
            ("redis+cluster://h:1,,h:2", "empty host"),
            ("redis+cluster://h:1/3", "database 0"),
            ("redis+cluster://h:1?x=1", "unknown query parameter"),
            ("redis+sentinel://h:1", "names its master"),
            ("redis+sentinel://h:1/", "names its master"),
            ("redis+sentinel://h:1/m/x", "bad database"),
            (
                "redis+sentinel://h:1/m?password=x",
                "unknown query parameter",
            ),
            ("redis+sentinel://[::1:1/m", "unclosed"),
            ("redis+sentinel://:topsecret@h:x/m", "bad port"),
            ("memcached://h", "unknown scheme"),
            ("h:6379", "expected redis://"),
        ] {
            let e = Topology::parse(u).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{u}");
            assert!(e.message().contains(why), "{u}: {}", e.message());
            assert!(!e.message().contains("topsecret"), "{u}: {}", e.message());
        }
    }

    #[test]
    fn public_redis_url_names_nodes_without_printing_passwords() {
        let u = RedisUrl::parse("redis://sc%2Dadmin:s3cret@10.0.0.1:6380/2").unwrap();
        assert_eq!(u.kind(), RedisKind::Standalone);
        assert_eq!(u.username().as_deref(), Some("sc-admin"));
        assert_eq!(
            u.node_url("10.0.0.9", 7000).as_deref(),
            Some("redis://sc%2Dadmin:s3cret@10.0.0.9:7000/2")
        );
        assert!(!format!("{u:?}").contains("s3cret"));
        let c = RedisUrl::parse("redis+cluster://:pw@h1:7000,h2:7001").unwrap();
        assert_eq!(c.kind(), RedisKind::Cluster);
        assert_eq!(c.username(), None);
        assert_eq!(
            c.seed_urls(),
            ["redis://:pw@h1:7000", "redis://:pw@h2:7001"]
        );
        let s = RedisUrl::parse("redis+sentinel://:dpw@s1:26379/mymaster?sentinel_password=spw")
            .unwrap();
        assert_eq!(s.master_name(), Some("mymaster"));
        assert_eq!(s.seed_urls(), ["redis://:spw@s1:26379"]);
        assert_eq!(
            s.node_url("10.0.0.3", 6379).as_deref(),
            Some("redis://:dpw@10.0.0.3:6379")
        );
        assert!(!s.display().contains("pw"));
        assert_eq!(
            RedisUrl::parse("unix:///tmp/r.sock")
                .unwrap()
                .node_url("h", 1),
            None
        );
    }
}
