//! The fuzz targets' properties, one function per target: each takes any bytes, must
//! never panic, hang or allocate without bound, and asserts what the input path
//! promises. `fuzz_targets/*.rs` hand them to libFuzzer (`scripts/fuzz`, nightly or
//! `RUSTC_BOOTSTRAP=1`); `tests/replay.rs` runs them on stable Rust in every
//! `cargo test` over the committed seeds, every regression input (`regressions/`) and
//! random inputs.
//!
//! | target | input path |
//! | --- | --- |
//! | [`keys`] | namespace, key, pattern and tag validation, glob matching, confinement |
//! | [`codec`] | stored bytes from any client read as JSON, bytes and typed values; round trips |
//! | [`config`] | a `sharecache.toml` |
//! | [`url`] | a backend URL (`redis://`, `rediss://`, `redis+sentinel://`, `redis+cluster://`) |
//! | [`http`] | a request to any route of the API (method, path, query, headers, body) |

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use sharecache::key::{
    escape_glob, glob_match, namespace_head, validate_key, validate_namespace, validate_pattern,
};
use sharecache::{Codec, Format, RawBytes, RawJson, RedisUrl};
use tower::ServiceExt;

/// `data` split at its first `0` byte.
fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// Namespace, key, pattern and tag validation never panic; glob matching (quadratic at
/// worst) never panics; an escaped key matches exactly itself; a valid pattern anchored
/// to one namespace never matches a key of another, even one whose name it prefixes, nor
/// a prefixed deployment's keys an unprefixed namespace's.
///
/// Input: `pattern \0 text`.
pub fn keys(data: &[u8]) {
    let (pattern, text) = split(data);
    // Byte-wise, as Redis matches: any bytes, valid UTF-8 or not.
    let _ = glob_match(pattern, text);
    let (Ok(pattern), Ok(text)) = (std::str::from_utf8(pattern), std::str::from_utf8(text)) else {
        return;
    };
    for s in [pattern, text] {
        if validate_namespace(s).is_ok() {
            assert!(
                s.bytes()
                    .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
            );
        }
        let _ = validate_pattern(s);
        let _ = sharecache::codec::validate_tag(s);
    }
    if validate_key(text).is_ok() {
        assert!(!text.chars().any(char::is_control), "{text:?} accepted");
        let escaped = escape_glob(text);
        assert!(
            glob_match(escaped.as_bytes(), text.as_bytes()),
            "{escaped:?} misses {text:?}"
        );
        if validate_key(pattern).is_ok() && pattern != text {
            assert!(!glob_match(escaped.as_bytes(), pattern.as_bytes()));
        }
    }
    if validate_pattern(pattern).is_ok() && validate_key(text).is_ok() {
        let confined = |a: &str, b: &str| {
            let anchored = format!("{a}{pattern}");
            let other = format!("{b}{text}");
            assert!(
                !glob_match(anchored.as_bytes(), other.as_bytes()),
                "{anchored:?} matched {other:?}"
            );
        };
        confined(&namespace_head(None, "a"), &namespace_head(None, "ab"));
        confined(&namespace_head(None, "ab"), &namespace_head(None, "a"));
        confined(&namespace_head(Some("p"), "a"), &namespace_head(None, "p"));
        confined(&namespace_head(None, "p"), &namespace_head(Some("p"), "a"));
    }
}

/// The codecs a cache can be built with: every format, compressed from 0 bytes or never.
fn codecs() -> [Codec; 5] {
    let max = sharecache::codec::DEFAULT_MAX_VALUE_BYTES;
    [
        Codec::new(Format::Json, 0, max),
        Codec::new(Format::Json, usize::MAX, max),
        Codec::new(Format::MessagePack, 0, max),
        Codec::new(Format::MessagePack, usize::MAX, max),
        Codec::new(Format::Plain, usize::MAX, max),
    ]
}

/// Stored bytes, whoever wrote them (a RESP client, another version, a corrupt frame, an
/// LZ4 bomb), read as a typed value, as JSON and as bytes by every codec: an error or a
/// value, never a panic; what reads as JSON is valid JSON; bytes read back as they were
/// stored. And when the input is a JSON document: every codec's encoding of it decodes
/// to the same document, and stored bytes read back as the same bytes.
pub fn codec(data: &[u8]) {
    let stored = Bytes::copy_from_slice(data);
    for c in codecs() {
        let _ = c.decode::<serde_json::Value>(&stored);
        let _ = c.decode::<Vec<u8>>(&stored);
        if let Ok(json) = c.decode::<RawJson>(&stored) {
            // JSON's grammar, checked by a full parse. Numbers beyond f64 (`1e400`),
            // nesting deeper than 128 and lone UTF-16 surrogates (`"\uD899"`, which RFC
            // 8259 section 8.2 allows) are valid JSON that serde_json's Value refuses to
            // hold; JavaScript reads Infinity, nests deeper and keeps the surrogate.
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(json.as_bytes()) {
                let why = e.to_string();
                assert!(
                    why.starts_with("number out of range")
                        || why.starts_with("recursion limit exceeded")
                        || why.contains("surrogate")
                        || why.starts_with("unexpected end of hex escape"),
                    "decoded as JSON, but is not ({e}): {:?}",
                    json.as_bytes()
                );
            }
        }
        let raw = c
            .decode::<RawBytes>(&stored)
            .expect("any bytes read as bytes");
        if data.first() != Some(&0xC5) {
            assert_eq!(raw.as_bytes(), data, "bytes changed on the way out");
        }
        let written = c.encode_bytes(data).expect("within the size limit");
        let back = c.decode::<RawBytes>(&written).expect("bytes read as bytes");
        assert_eq!(back.as_bytes(), data, "stored bytes read back changed");
    }
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for c in codecs() {
        let stored = c.encode(&doc).expect("a JSON document encodes");
        let back: serde_json::Value = c.decode(&stored).expect("its own encoding decodes");
        assert_eq!(back, doc, "round trip changed the document");
        let raw = RawJson::from_slice(data).expect("valid JSON");
        let stored = c.encode(&raw).expect("raw JSON encodes");
        let back: RawJson = c.decode(&stored).expect("its own encoding decodes");
        let back: serde_json::Value = serde_json::from_slice(back.as_bytes()).expect("JSON");
        assert_eq!(back, doc, "raw round trip changed the document");
    }
}

/// Any text as a config file: a config or an error naming the file, never a panic.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = sharecache_server::config::Config::parse("fuzz.toml", text) {
        assert!(
            e.to_string().starts_with("fuzz.toml:"),
            "unnamed error: {e}"
        );
    }
}

/// Any text as a backend URL: parsed or refused, never a panic; neither the parsed URL's
/// display, its error, nor [`sharecache::redact_url`] shows the password. (The input's
/// password is swapped for a marker no message holds by chance, as "sent" is in
/// "redis+sentinel://".)
pub fn url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sharecache::redact_url(text);
    let _ = RedisUrl::parse(text).map(|u| (u.display(), u.seed_urls(), u.username()));
    if text.contains(MARKER) || !text.starts_with("redis") || !text.contains("://") {
        // The marker must come from the password alone; without "//" a redis URL has
        // no authority, so no password (the `url` crate finds one after "ws:" or "http:").
        return;
    }
    let Some(text) = with_marker_password(text) else {
        return;
    };
    let redacted = sharecache::redact_url(&text);
    assert!(
        !redacted.contains(MARKER),
        "{redacted:?} shows the password"
    );
    match RedisUrl::parse(&text) {
        Ok(u) => assert!(!u.display().contains(MARKER), "{:?} shows it", u.display()),
        Err(e) => assert!(!e.to_string().contains(MARKER), "error shows it: {e}"),
    }
}

const MARKER: &str = "Pw0rdMarker";

/// `text` with the password the `url` crate reads from it replaced by [`MARKER`].
fn with_marker_password(text: &str) -> Option<String> {
    let password = ::url::Url::parse(text).ok()?.password()?.to_owned();
    let at = text.find(&format!(":{password}@"))?;
    Some(format!(
        "{}:{MARKER}@{}",
        &text[..at],
        &text[at + password.len() + 2..]
    ))
}

/// A router over the memory store, with an admin, a viewer and a service credential, on
/// its own runtime; built once per process.
struct App {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    /// Every (method, path template) of the OpenAPI document, sorted.
    routes: Vec<(Method, String)>,
}

const ADMIN: &str = "fuzz-admin-token-0123456789abcdef";
const VIEWER: &str = "fuzz-viewer-token-0123456789abcdef";
const SERVICE: &str = "fuzz-service-token-0123456789abcdef";

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        use sharecache_server::auth::hash_token;
        use sharecache_server::serve::{app_state, open_cache};
        let h = |t: &str| hex::encode(hash_token(t));
        let dir = std::env::temp_dir().join(format!("sharecache-fuzz-{}", std::process::id()));
        let text = format!(
            "[server]\nmax_body_bytes = 65536\nmax_batch = 100\nstate_dir = {:?}\n\
             [backend]\nmemory_max_bytes = 67108864\n\
             [admin]\ntoken_sha256 = \"{}\"\n\
             [[services]]\nname = \"auth\"\ntoken_sha256 = \"{}\"\nread = [\"shared\"]\nwrite = [\"auth\"]\n\
             [[viewers]]\nname = \"ops\"\ntoken_sha256 = \"{}\"\n",
            dir.display().to_string(),
            h(ADMIN),
            h(SERVICE),
            h(VIEWER)
        );
        let cfg = sharecache_server::config::Config::parse("fuzz.toml", &text).expect("config");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let cache = runtime.block_on(open_cache(&cfg)).expect("memory cache");
        let state = app_state(&cfg, cache, hash_token(ADMIN));
        let doc = sharecache_server::http::openapi_document(&state.opts);
        let router = sharecache_server::http::router(state);
        let mut routes: Vec<(Method, String)> = Vec::new();
        for (path, item) in doc.paths.paths {
            let ops = [
                (Method::GET, item.get.is_some()),
                (Method::PUT, item.put.is_some()),
                (Method::POST, item.post.is_some()),
                (Method::DELETE, item.delete.is_some()),
                (Method::HEAD, item.head.is_some()),
                (Method::PATCH, item.patch.is_some()),
            ];
            for (m, present) in ops {
                if present {
                    routes.push((m, path.clone()));
                }
            }
        }
        routes.sort_by(|a, b| (&a.1, a.0.as_str()).cmp(&(&b.1, b.0.as_str())));
        App {
            runtime,
            router,
            routes,
        }
    })
}

/// Every route of the API, in the OpenAPI document's order: `(method, path template)`.
pub fn routes() -> Vec<(Method, String)> {
    app().routes.clone()
}

/// Percent-encodes every byte outside the unreserved set, so any bytes fit in a path
/// segment or a query value.
fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string from any bytes: `&` and `=` kept, everything else percent-encoded.
fn encode_query(bytes: &[u8]) -> String {
    bytes
        .split(|&b| b == b'&')
        .map(|pair| {
            let mut kv = pair.splitn(2, |&b| b == b'=');
            let k = encode(kv.next().unwrap_or_default());
            match kv.next() {
                Some(v) => format!("{k}={}", encode(v)),
                None => k,
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// How long a request may take: far above any route's work on the memory store, below
/// the longest wait a caller can ask for (a lock's or a queue's `wait_ms`).
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// Any request to any route, with any credential, parameters, query, headers and body:
/// never a 5xx and never a hang. Streams (SSE) are checked for their status only; a
/// request that asks to wait (`wait_ms`) may take as long as it asked.
///
/// Input: byte 0 picks the route, byte 1 the credential, content type, accept and
/// conditional headers, and whether `{ns}` is a granted namespace or the input's; the
/// rest is `param \n query \n body`.
pub fn http(data: &[u8]) {
    let _ = http_status(data);
}

/// [`http`], returning the answer's status (`None`: no request was made, or it waited
/// as asked).
pub fn http_status(data: &[u8]) -> Option<StatusCode> {
    let app = app();
    let [route, flags, rest @ ..] = data else {
        return None;
    };
    let (method, template) = &app.routes[usize::from(*route) % app.routes.len()];
    let mut parts = rest.splitn(3, |&b| b == b'\n');
    let param = parts.next().unwrap_or_default();
    let query = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let ns = match flags & 0b11 {
        0 | 1 => "auth".to_owned(),
        2 => "shared".to_owned(),
        _ => encode(param),
    };
    let name = if param.is_empty() {
        "k".to_owned()
    } else {
        encode(param)
    };
    let mut path = String::new();
    let mut rest = template.as_str();
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            break;
        };
        path.push_str(&rest[..open]);
        path.push_str(if &rest[open..=close] == "{ns}" {
            &ns
        } else {
            &name
        });
        rest = &rest[close + 1..];
    }
    path.push_str(rest);
    if !query.is_empty() {
        path.push('?');
        path.push_str(&encode_query(query));
    }
    let mut req = Request::builder().method(method.clone()).uri(path.as_str());
    req = match (flags >> 2) & 0b11 {
        0 => req.header("authorization", format!("Bearer {ADMIN}")),
        1 => req.header("authorization", format!("Bearer {SERVICE}")),
        2 => req.header("authorization", format!("Bearer {VIEWER}")),
        _ => req.header("authorization", "Bearer not-a-token"),
    };
    req = match (flags >> 4) & 0b11 {
        0 | 1 => req.header("content-type", "application/json"),
        2 => req.header("content-type", "application/octet-stream"),
        _ => req,
    };
    if flags & 0x40 != 0 {
        req = req.header("accept", "application/octet-stream");
    }
    if flags & 0x80 != 0 {
        req = req
            .header("if-match", format!("\"{}\"", "0".repeat(32)))
            .header("if-none-match", "*");
    }
    let Ok(req) = req.body(Body::from(body.to_vec())) else {
        return None; // not a request hyper would hand over (the URI did not parse)
    };
    let waits = body.windows(7).any(|w| w == b"wait_ms");
    let router = app.router.clone();
    let outcome = app.runtime.block_on(async move {
        let answer = async {
            let resp = router.oneshot(req).await.expect("the router is infallible");
            let status = resp.status();
            let streams = resp
                .headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            if !streams {
                resp.into_body().collect().await.expect("a body");
            }
            status
        };
        tokio::time::timeout(ANSWER_WITHIN, answer).await
    });
    match outcome {
        Ok(status) => {
            assert!(
                status < StatusCode::INTERNAL_SERVER_ERROR,
                "{method} {path} answered {status}"
            );
            Some(status)
        }
        Err(_) => {
            assert!(
                waits,
                "{method} {path} did not answer within {ANSWER_WITHIN:?}"
            );
            None
        }
    }
}
