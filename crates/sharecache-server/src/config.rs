//! `sharecache.toml`: the service's configuration, with errors that name the file, the
//! line and the fix.
//!
//! Unknown keys are errors (a typo must not silently fall back to a default). The
//! environment overrides the backend the way the seed services expect: `REDIS_URL`
//! selects Redis, `CACHE_TYPE=memory|redis` forces one or the other.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sharecache::key::validate_namespace;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`
    #[serde(default)]
    pub server: ServerConfig,
    /// `[backend]`
    #[serde(default)]
    pub backend: BackendConfig,
    /// `[admin]`
    #[serde(default)]
    pub admin: AdminConfig,
    /// `[tier]`
    #[serde(default)]
    pub tier: TierConfig,
    /// `[sessions]`
    #[serde(default)]
    pub sessions: SessionsConfig,
    /// `[values]`
    #[serde(default)]
    pub values: ValuesConfig,
    /// `[[services]]`
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
    /// `[[viewers]]`: read-only operators (the dashboard and the API: every namespace
    /// and the store-wide figures, never a change).
    #[serde(default)]
    pub viewers: Vec<ViewerConfig>,
}

/// One `[[viewers]]` entry: a read-only credential for a person.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewerConfig {
    /// Who it is (shown in the audit log and the dashboard).
    pub name: Spanned<String>,
    /// Hex SHA-256 of the viewer's token.
    pub token_sha256: Spanned<String>,
}

/// `[values]`: how values are stored in Redis.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValuesConfig {
    /// The format of every namespace not named in `namespaces`.
    pub format: ValueFormat,
    /// Per-namespace formats, e.g. `{ reports = "json" }`.
    pub namespaces: std::collections::BTreeMap<String, ValueFormat>,
}

/// `[values] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueFormat {
    /// The JSON text as sent, no header, no compression: what `JSON.stringify` gives and
    /// a RESP client (ioredis, redis-cli) reads and writes. The default: every value the
    /// HTTP API stores is JSON, and namespaces are shared with services that speak RESP.
    #[default]
    Plain,
    /// JSON behind sharecache's 2-byte header, LZ4-compressed from 1 KiB: smaller in
    /// Redis for large values; RESP clients see the header.
    Json,
    /// MessagePack behind the header: smallest; for namespaces only sharecache reads.
    Messagepack,
}

impl ValueFormat {
    /// The library's format.
    pub fn format(self) -> sharecache::Format {
        match self {
            ValueFormat::Plain => sharecache::Format::Plain,
            ValueFormat::Json => sharecache::Format::Json,
            ValueFormat::Messagepack => sharecache::Format::MessagePack,
        }
    }
}

/// `[sessions]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// Hex 32-byte keys sealing session data, newest first. Without them a key is
    /// generated at first start and kept in `state_dir` (fine for one instance; several
    /// instances must share configured keys).
    #[serde(default)]
    pub keys: Vec<String>,
}

/// `[tier]`: the in-process L1 over Redis (ignored on the memory backend).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TierConfig {
    /// Serve hot keys from process memory, kept coherent by Redis client tracking.
    pub enabled: bool,
    /// Byte budget of L1.
    pub max_bytes: u64,
    /// Longest life of an L1 entry, seconds.
    pub ttl_cap_secs: u64,
    /// Namespaces never held in L1.
    pub disabled: Vec<String>,
}

impl Default for TierConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_bytes: 64 << 20,
            ttl_cap_secs: 60,
            disabled: Vec::new(),
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// Largest request body, bytes (413 above).
    pub max_body_bytes: usize,
    /// Most keys in one batch request.
    pub max_batch: usize,
    /// Where the generated admin token's hash is kept (relative to the config file).
    pub state_dir: PathBuf,
    /// Serve `/metrics` without a token (for a scraper on a private network).
    pub metrics_public: bool,
    /// Failed authentications allowed per client address per minute before 429.
    pub auth_failures_per_minute: u32,
    /// What `/ready` requires (see [`Readiness`]).
    pub readiness: Readiness,
    /// Time a client has to send a request's headers, milliseconds; also how long an idle
    /// keep-alive connection is kept open waiting for its next request. The connection is
    /// closed after it.
    pub header_timeout_ms: u64,
    /// Time a client has to send a request's body once its headers are in, milliseconds
    /// (408 after it).
    pub body_timeout_ms: u64,
    /// Event streams (SSE) one credential may hold open at once (429 past it).
    pub sse_per_credential: usize,
    /// Unread event bytes one SSE subscriber may fall behind by before it is dropped
    /// (with a final `dropped` event saying so).
    pub sse_buffer_bytes: usize,
}

/// `[server] readiness`: when `/ready` tells a load balancer to send traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    /// Only while the configured backend is reachable and takes writes: a pod serving
    /// from process memory (Redis unreachable) or whose Redis refuses writes (out of
    /// memory, a read-only replica...) answers 503, so traffic goes where the data is.
    #[default]
    Strict,
    /// Also while the memory fallback answers requests (writes other instances do not
    /// see) or the backend refuses writes (reads still work).
    Lenient,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7070".into(),
            max_body_bytes: 1 << 20,
            max_batch: 1000,
            state_dir: PathBuf::from(".sharecache"),
            metrics_public: false,
            auth_failures_per_minute: 20,
            readiness: Readiness::Strict,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            sse_per_credential: 100,
            sse_buffer_bytes: 16 << 20,
        }
    }
}

/// `[backend]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendConfig {
    /// `memory://` or a Redis URL.
    pub url: String,
    /// `memory` (keep answering from memory while Redis is down) or `fail`.
    pub fallback: FallbackPolicy,
    /// Per-command timeout, milliseconds.
    pub command_timeout_ms: u64,
    /// Connect timeout, milliseconds.
    pub connect_timeout_ms: u64,
    /// Byte budget of the memory store (and of the fallback).
    pub memory_max_bytes: u64,
    /// Entry budget of the memory store (and of the fallback).
    pub memory_max_entries: u64,
    /// Bytes of the fallback one namespace may fill while Redis is down (default: a
    /// quarter of `memory_max_bytes`); past it, its writes answer 503 `fallback_full`.
    pub fallback_namespace_max_bytes: Option<u64>,
    /// Optional prefix before every namespace.
    pub key_prefix: Option<String>,
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self {
            url: "memory://".into(),
            fallback: FallbackPolicy::Memory,
            command_timeout_ms: 500,
            connect_timeout_ms: 2000,
            memory_max_bytes: 256 << 20,
            memory_max_entries: 1_000_000,
            fallback_namespace_max_bytes: None,
            key_prefix: None,
        }
    }
}

/// `[backend] fallback`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FallbackPolicy {
    /// Serve from memory while Redis is down.
    Memory,
    /// Answer 503 while Redis is down.
    Fail,
}

/// `[admin]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Hex SHA-256 of the admin token. When absent, one is generated at first start.
    pub token_sha256: Option<Spanned<String>>,
}

/// One `[[services]]` entry: a credential and the namespaces it may use.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Service name (for logs and metrics).
    pub name: Spanned<String>,
    /// Hex SHA-256 of the service's token.
    pub token_sha256: Spanned<String>,
    /// Namespaces it may read.
    #[serde(default)]
    pub read: Vec<Spanned<String>>,
    /// Namespaces it may read and write.
    #[serde(default)]
    pub write: Vec<Spanned<String>>,
    /// The Redis ACL user `sharecache provision` keeps for this service (default
    /// `sc-<name>`), for services that speak RESP to Redis directly.
    #[serde(default)]
    pub acl_user: Option<Spanned<String>>,
    /// Whether that ACL user may run INFO (ioredis's ready check needs it; INFO shows
    /// server-wide counts, not key names). Default true.
    #[serde(default = "default_true")]
    pub acl_info: bool,
}

fn default_true() -> bool {
    true
}

impl ServiceConfig {
    /// The Redis ACL user of this service: `acl_user`, or `sc-<name>`.
    pub fn acl_user(&self) -> String {
        match &self.acl_user {
            Some(u) => u.get_ref().clone(),
            None => format!("sc-{}", self.name.get_ref()),
        }
    }
}

/// Whether `name` can be a Redis ACL user that `sharecache provision` manages: 1 to 128 of
/// `A-Z a-z 0-9 . _ : @ -`, and not `default` (Redis refuses spaces and control
/// characters in user names; the narrower set keeps names safe in an aclfile and in logs).
pub fn valid_acl_user(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name != "default"
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
}

/// A configuration error, already phrased for a person: `file:line: what; fix`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Where the configuration came from, for messages.
struct Source<'a> {
    name: String,
    text: &'a str,
}

impl Source<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        msg: impl std::fmt::Display,
    ) -> Result<T, ConfigError> {
        Err(ConfigError(format!(
            "{}:{}: {msg}",
            self.name,
            self.line_of(span.start)
        )))
    }
}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "{}: cannot read the config file: {e}; check the path given to --config",
                path.display()
            ))
        })?;
        let mut cfg = Self::parse(&path.display().to_string(), &text)?;
        // A relative state_dir is relative to the config file, not to the working directory.
        if cfg.server.state_dir.is_relative()
            && let Some(dir) = path.parent()
        {
            cfg.server.state_dir = dir.join(&cfg.server.state_dir);
        }
        Ok(cfg)
    }

    /// Parses and validates configuration text; `name` is used in messages.
    pub fn parse(name: &str, text: &str) -> Result<Self, ConfigError> {
        let src = Source {
            name: name.to_owned(),
            text,
        };
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map_or(String::new(), |s| format!("{}:", src.line_of(s.start)));
            ConfigError(format!(
                "{name}:{line} {}; see sharecache.example.toml for every key",
                e.message().trim_end()
            ))
        })?;
        cfg.validate(&src)?;
        Ok(cfg)
    }

    fn validate(&self, src: &Source<'_>) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError(format!(
                "{}: [server] listen = {:?} is not an address; write it as \"127.0.0.1:7070\"",
                src.name, s.listen
            )));
        }
        if !(64..=(64 << 20)).contains(&s.max_body_bytes) {
            return Err(ConfigError(format!(
                "{}: [server] max_body_bytes must be between 64 and 67108864",
                src.name
            )));
        }
        for (name, ms) in [
            ("header_timeout_ms", s.header_timeout_ms),
            ("body_timeout_ms", s.body_timeout_ms),
        ] {
            if !(100..=3_600_000).contains(&ms) {
                return Err(ConfigError(format!(
                    "{}: [server] {name} must be between 100 and 3600000 (one hour)",
                    src.name
                )));
            }
        }
        if !(1..=100_000).contains(&s.sse_per_credential) {
            return Err(ConfigError(format!(
                "{}: [server] sse_per_credential must be between 1 and 100000",
                src.name
            )));
        }
        if !(4096..=(1 << 30)).contains(&s.sse_buffer_bytes)
            || s.sse_buffer_bytes < s.max_body_bytes
        {
            return Err(ConfigError(format!(
                "{}: [server] sse_buffer_bytes must be between 4096 and 1073741824, and at \
                 least max_body_bytes ({}) so one published event always fits",
                src.name, s.max_body_bytes
            )));
        }
        if !(1..=100_000).contains(&s.max_batch) {
            return Err(ConfigError(format!(
                "{}: [server] max_batch must be between 1 and 100000",
                src.name
            )));
        }
        let b = &self.backend;
        if b.command_timeout_ms == 0 || b.connect_timeout_ms == 0 {
            return Err(ConfigError(format!(
                "{}: [backend] timeouts must be above 0 ms",
                src.name
            )));
        }
        if let Some(n) = b.fallback_namespace_max_bytes
            && !(4096..=b.memory_max_bytes.max(4096)).contains(&n)
        {
            return Err(ConfigError(format!(
                "{}: [backend] fallback_namespace_max_bytes must be between 4096 and \
                 memory_max_bytes ({})",
                src.name, b.memory_max_bytes
            )));
        }
        if let Some(p) = &b.key_prefix {
            check_prefix(p)
                .map_err(|e| ConfigError(format!("{}: [backend] key_prefix {e}", src.name)))?;
        }
        if let Some(t) = &self.admin.token_sha256 {
            check_hash(src, t, "[admin] token_sha256")?;
        }
        for k in &self.sessions.keys {
            if k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError(format!(
                    "{}: [sessions] keys must be 64 hex characters (32 bytes) each; make one with `openssl rand -hex 32`",
                    src.name
                )));
            }
        }
        if self.tier.ttl_cap_secs == 0 || self.tier.max_bytes < 4096 {
            return Err(ConfigError(format!(
                "{}: [tier] ttl_cap_secs must be at least 1 and max_bytes at least 4096 (or set enabled = false)",
                src.name
            )));
        }
        for ns in self.values.namespaces.keys() {
            if let Err(e) = validate_namespace(ns) {
                return Err(ConfigError(format!(
                    "{}: [values] namespaces: {}",
                    src.name,
                    e.message()
                )));
            }
        }
        for ns in &self.tier.disabled {
            if let Err(e) = validate_namespace(ns) {
                return Err(ConfigError(format!(
                    "{}: [tier] disabled: {}",
                    src.name,
                    e.message()
                )));
            }
        }
        let mut names = HashSet::new();
        let mut hashes = HashSet::new();
        let mut acl_users = HashSet::new();
        if let Some(t) = &self.admin.token_sha256 {
            hashes.insert(t.get_ref().to_ascii_lowercase());
        }
        for (i, svc) in self.services.iter().enumerate() {
            let what = format!("services[{i}]");
            let name = svc.name.get_ref();
            if validate_namespace(name).is_err() {
                return src.err(
                    svc.name.span(),
                    format!(
                        "{what}.name {name:?}: use lowercase letters, digits, '_' and '-' (1 to 64)"
                    ),
                );
            }
            if !names.insert(name.clone()) {
                return src.err(
                    svc.name.span(),
                    format!("service {name:?} is defined twice; give each service one entry"),
                );
            }
            check_hash(src, &svc.token_sha256, &format!("{what}.token_sha256"))?;
            if !hashes.insert(svc.token_sha256.get_ref().to_ascii_lowercase()) {
                return src.err(
                    svc.token_sha256.span(),
                    format!("{what}.token_sha256 is used by another credential; every service needs its own token"),
                );
            }
            for ns in svc.read.iter().chain(&svc.write) {
                if let Err(e) = validate_namespace(ns.get_ref()) {
                    return src.err(
                        ns.span(),
                        format!("{what}: namespace {:?}: {}", ns.get_ref(), e.message()),
                    );
                }
            }
            if let Some(u) = &svc.acl_user
                && !valid_acl_user(u.get_ref())
            {
                return src.err(
                    u.span(),
                    format!(
                        "{what}.acl_user {:?} is not a usable Redis ACL user name; use 1 to 128 of \
                         letters, digits, '.', '_', ':', '@' and '-' (and not \"default\")",
                        u.get_ref()
                    ),
                );
            }
            if !acl_users.insert(svc.acl_user()) {
                return src.err(
                    svc.name.span(),
                    format!(
                        "service {name:?}: ACL user {:?} is already another service's; set acl_user",
                        svc.acl_user()
                    ),
                );
            }
            if svc.read.is_empty() && svc.write.is_empty() {
                return src.err(
                    svc.name.span(),
                    format!("service {name:?} has no namespaces; add read = [..] or write = [..]"),
                );
            }
        }
        for (i, v) in self.viewers.iter().enumerate() {
            let what = format!("viewers[{i}]");
            let name = v.name.get_ref();
            if validate_namespace(name).is_err() {
                return src.err(
                    v.name.span(),
                    format!(
                        "{what}.name {name:?}: use lowercase letters, digits, '_' and '-' (1 to 64)"
                    ),
                );
            }
            if !names.insert(name.clone()) {
                return src.err(
                    v.name.span(),
                    format!(
                        "{name:?} is already a service or viewer; give each credential its own name"
                    ),
                );
            }
            check_hash(src, &v.token_sha256, &format!("{what}.token_sha256"))?;
            if !hashes.insert(v.token_sha256.get_ref().to_ascii_lowercase()) {
                return src.err(
                    v.token_sha256.span(),
                    format!("{what}.token_sha256 is used by another credential; every viewer needs its own token"),
                );
            }
        }
        Ok(())
    }

    /// Applies `REDIS_URL`, `CACHE_TYPE` and `REDIS_KEY_PREFIX` from the environment (the
    /// seed services' variables), over the file's `[backend]`.
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        self.apply_vars(
            get("CACHE_TYPE").as_deref(),
            get("REDIS_URL"),
            get("REDIS_KEY_PREFIX"),
        )
    }

    fn apply_vars(
        &mut self,
        cache_type: Option<&str>,
        redis_url: Option<String>,
        key_prefix: Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(p) = key_prefix {
            check_prefix(&p).map_err(|e| ConfigError(format!("REDIS_KEY_PREFIX {e}")))?;
            self.backend.key_prefix = Some(p);
        }
        match (cache_type, redis_url) {
            (Some("memory"), _) => self.backend.url = "memory://".into(),
            (Some("redis") | None, Some(url)) => self.backend.url = url,
            (Some("redis"), None) if self.backend.url.starts_with("redis") => {}
            (Some("redis"), None) => {
                return Err(ConfigError(
                    "CACHE_TYPE=redis needs REDIS_URL (or [backend] url) to name the server".into(),
                ));
            }
            (None, None) => {}
            (Some(other), _) => {
                return Err(ConfigError(format!(
                    "CACHE_TYPE={other:?} is not known; use \"redis\" or \"memory\""
                )));
            }
        }
        Ok(())
    }
}

/// A key prefix is named like a namespace, so the `/` after it ([`sharecache::key::PREFIX_SEPARATOR`])
/// is never part of it.
fn check_prefix(p: &str) -> Result<(), String> {
    validate_namespace(p).map_err(|e| {
        format!(
            "{p:?} is not usable: {} (keys are then stored as \"{p}/namespace:key\")",
            e.message()
        )
    })
}

fn check_hash(src: &Source<'_>, h: &Spanned<String>, what: &str) -> Result<(), ConfigError> {
    let v = h.get_ref();
    if v.len() != 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return src.err(
            h.span(),
            format!(
                "{what} must be 64 hex characters (the SHA-256 of the token, never the token itself); \
                 run `sharecache token new` to make a token and its hash"
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const H2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse("sharecache.toml", text).map_err(|e| e.0)
    }

    #[test]
    fn defaults_and_a_full_file() {
        let c = parse("").unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:7070");
        assert_eq!(c.backend.url, "memory://");
        let c = parse(&format!(
            "[server]\nlisten = \"0.0.0.0:8080\"\n[backend]\nurl = \"redis://h:6379/2\"\nfallback = \"fail\"\n\
             [admin]\ntoken_sha256 = \"{H1}\"\n[[services]]\nname = \"auth\"\ntoken_sha256 = \"{H2}\"\n\
             read = [\"auth\", \"shared\"]\nwrite = [\"auth\"]\n"
        ))
        .unwrap();
        assert_eq!(c.backend.fallback, FallbackPolicy::Fail);
        assert_eq!(c.services[0].read.len(), 2);
    }

    #[test]
    fn errors_name_the_line_and_the_fix() {
        let e = parse("[server]\nlisten = \"127.0.0.1:7070\"\nlisen = 1\n").unwrap_err();
        assert!(e.starts_with("sharecache.toml:3:"), "{e}");
        assert!(e.contains("lisen"), "{e}");
        let e = parse(
            "[[services]]\nname = \"auth\"\ntoken_sha256 = \"secret-token\"\nwrite = [\"auth\"]\n",
        )
        .unwrap_err();
        assert!(
            e.starts_with("sharecache.toml:3:") && e.contains("sharecache token new"),
            "{e}"
        );
        let e = parse(&format!(
            "[[services]]\nname = \"auth\"\ntoken_sha256 = \"{H2}\"\nwrite = [\"Auth\"]\n"
        ))
        .unwrap_err();
        assert!(
            e.starts_with("sharecache.toml:4:") && e.contains("Auth"),
            "{e}"
        );
        let e = parse(&format!(
            "[admin]\ntoken_sha256 = \"{H1}\"\n[[services]]\nname = \"a\"\ntoken_sha256 = \"{H1}\"\nwrite = [\"a\"]\n"
        ))
        .unwrap_err();
        assert!(e.contains("another credential"), "{e}");
        let e = parse(&format!(
            "[[services]]\nname = \"a\"\ntoken_sha256 = \"{H1}\"\nwrite = [\"a\"]\n[[services]]\nname = \"a\"\ntoken_sha256 = \"{H2}\"\nwrite = [\"a\"]\n"
        ))
        .unwrap_err();
        assert!(
            e.starts_with("sharecache.toml:6:") && e.contains("twice"),
            "{e}"
        );
        let e = parse(&format!(
            "[[services]]\nname = \"a\"\ntoken_sha256 = \"{H1}\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("no namespaces"), "{e}");
        assert!(
            parse("[server]\nlisten = \"nowhere\"\n")
                .unwrap_err()
                .contains("not an address")
        );
        assert!(
            parse("[server]\nmax_body_bytes = 1\n")
                .unwrap_err()
                .contains("max_body_bytes")
        );
        for bad in [
            "header_timeout_ms = 0",
            "header_timeout_ms = 99",
            "body_timeout_ms = 3600001",
            "body_timeout_ms = 18446744073709551615",
        ] {
            let e = parse(&format!("[server]\n{bad}\n")).unwrap_err();
            let key = bad.split(' ').next().unwrap();
            assert!(e.contains(key), "{bad}: {e}");
        }
        for bad in ["header_timeout_ms = -1", "body_timeout_ms = \"10s\""] {
            assert!(
                parse(&format!("[server]\n{bad}\n"))
                    .unwrap_err()
                    .starts_with("sharecache.toml:2:"),
                "{bad}"
            );
        }
        assert!(parse("[server]\nheader_timeout_ms = 100\nbody_timeout_ms = 3600000\n").is_ok());
        assert!(
            parse("[backend]\nfallback = \"maybe\"\n")
                .unwrap_err()
                .starts_with("sharecache.toml:2:")
        );
        assert!(parse("this is not toml").is_err());
        assert!(
            parse("[server]\nlisten = 7070\n")
                .unwrap_err()
                .starts_with("sharecache.toml:2:")
        );
    }

    #[test]
    fn acl_user_names() {
        let c = parse(&format!(
            "[[services]]\nname = \"auth\"\ntoken_sha256 = \"{H1}\"\nwrite = [\"auth\"]\n\
             [[services]]\nname = \"legacy\"\ntoken_sha256 = \"{H2}\"\nwrite = [\"legacy\"]\n\
             acl_user = \"legacy-app\"\nacl_info = false\n"
        ))
        .unwrap();
        assert_eq!(c.services[0].acl_user(), "sc-auth");
        assert!(c.services[0].acl_info);
        assert_eq!(c.services[1].acl_user(), "legacy-app");
        assert!(!c.services[1].acl_info);
        for bad in ["has space", "default", "", "tab\\t", "ünï"] {
            let e = parse(&format!(
                "[[services]]\nname = \"a\"\ntoken_sha256 = \"{H1}\"\nwrite = [\"a\"]\nacl_user = \"{bad}\"\n"
            ))
            .unwrap_err();
            assert!(
                e.starts_with("sharecache.toml:5:") && e.contains("acl_user"),
                "{bad}: {e}"
            );
        }
        let e = parse(&format!(
            "[[services]]\nname = \"a\"\ntoken_sha256 = \"{H1}\"\nwrite = [\"a\"]\n\
             [[services]]\nname = \"b\"\ntoken_sha256 = \"{H2}\"\nwrite = [\"b\"]\nacl_user = \"sc-a\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("already another service"), "{e}");
    }

    #[test]
    fn environment_overrides_the_backend() {
        let mut c = Config::default();
        c.apply_vars(None, Some("redis://h:1".into()), None)
            .unwrap();
        assert_eq!(c.backend.url, "redis://h:1");
        c.apply_vars(Some("memory"), Some("redis://h:1".into()), None)
            .unwrap();
        assert_eq!(c.backend.url, "memory://");
        assert!(c.apply_vars(Some("redis"), None, None).is_err());
        assert!(
            c.apply_vars(Some("etcd"), None, None)
                .unwrap_err()
                .0
                .contains("etcd")
        );
        c.apply_vars(None, None, Some("app".into())).unwrap();
        assert_eq!(c.backend.key_prefix.as_deref(), Some("app"));
        assert_eq!(
            c.backend.url, "memory://",
            "a prefix alone changes nothing else"
        );
        for bad in ["App", "a/b", "a:b", "a*", "x".repeat(65).as_str(), "a\nb"] {
            let e = c.apply_vars(None, None, Some(bad.into())).unwrap_err().0;
            assert!(e.contains("REDIS_KEY_PREFIX"), "{bad:?}: {e}");
        }
        assert_eq!(
            c.backend.key_prefix.as_deref(),
            Some("app"),
            "a refused prefix is not applied"
        );
    }

    #[test]
    fn bad_sse_limits_name_the_setting() {
        for (key, bad) in [
            ("sse_per_credential", "0"),
            ("sse_per_credential", "100001"),
            ("sse_buffer_bytes", "4095"),
            ("sse_buffer_bytes", "1000000"),
            ("sse_buffer_bytes", "1073741825"),
        ] {
            let e = parse(&format!("[server]\n{key} = {bad}\n")).unwrap_err();
            assert!(e.contains(key), "{key} = {bad}: {e}");
        }
        for bad in ["-1", "\"lots\""] {
            let e = parse(&format!("[server]\nsse_per_credential = {bad}\n")).unwrap_err();
            assert!(e.contains("sharecache.toml:2"), "{bad}: {e}");
        }
        assert!(parse("[server]\nsse_per_credential = 1\nsse_buffer_bytes = 1048576\n").is_ok());
    }

    #[test]
    fn bad_fallback_share_names_the_setting() {
        let bad_value = |v: &str| {
            parse(&format!("[backend]\nfallback_namespace_max_bytes = {v}\n")).unwrap_err()
        };
        for bad in ["0", "4095", "268435457"] {
            let e = bad_value(bad);
            assert!(e.contains("fallback_namespace_max_bytes"), "{bad}: {e}");
        }
        // Not a byte count at all: the error points at the line.
        for bad in ["-1", "\"1MiB\"", "1.5"] {
            let e = bad_value(bad);
            assert!(e.contains("sharecache.toml:2"), "{bad}: {e}");
        }
        assert!(parse("[backend]\nfallback_namespace_max_bytes = 4096\n").is_ok());
    }

    #[test]
    fn bad_key_prefix_in_the_file_names_the_setting() {
        for bad in ["App", "a/b", "a:b", "", "a b"] {
            let e = parse(&format!("[backend]\nkey_prefix = {bad:?}\n")).unwrap_err();
            assert!(e.contains("[backend] key_prefix"), "{bad:?}: {e}");
        }
        assert!(parse("[backend]\nkey_prefix = \"app-1\"\n").is_ok());
    }
}
