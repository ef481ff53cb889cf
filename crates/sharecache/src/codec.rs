//! Value encoding: a two-byte header, then the serialized value, maybe compressed.
//!
//! ```text
//! byte 0  MAGIC (0xC5): "a sharecache value, header version 1"
//! byte 1  flags: low nibble = format (1 JSON, 2 MessagePack); 0x10 = LZ4 block,
//!         size-prepended; 0x20 = tag section; 0x40 = cached absence; 0x80 = compute time
//! [tags]  u8 count, then per tag: u8 length, the tag, u64 version (LE)   (flag 0x20)
//! [delta] u32 LE: milliseconds the value took to compute                 (flag 0x80)
//! ...     payload
//! ```
//!
//! Every framed value carries its format, so a reader configured for JSON can still read a
//! value another instance wrote as MessagePack.
//!
//! **Plain values.** [`Format::Plain`] stores JSON text as it is: no header, no
//! compression, byte for byte what `JSON.stringify` gives, so a RESP client reads what an
//! HTTP client wrote and the other way round. A value that needs metadata (tags, a cached
//! absence, a compute time) is framed even in a plain namespace. Reads accept both forms
//! in every namespace: a stored value that does not start with the header byte (which no
//! JSON text can start with) is read as JSON text. Anything else (a value written by a
//! future version, a truncated payload, bytes that are not JSON) is a [`Decode`] error that
//! typed reads count as a miss; raw JSON reads ([`RawJson`]) answer [`NotJson`] for a
//! plain value that is not JSON, since the key does exist. Decoding never panics on any
//! input.
//!
//!
//! **Raw bytes.** [`Codec::encode_bytes`] stores a caller's bytes as they are (the HTTP
//! service's `application/octet-stream` PUT), except bytes that start with the header
//! byte: those are framed as format 3 (`C5 03`, then the bytes) so that they read back
//! unchanged. [`RawBytes`] reads any string value as bytes: a framed value's JSON text (or
//! format 3's bytes), anything else as stored.
//!
//! [`Decode`]: crate::ErrorKind::Decode
//! [`NotJson`]: crate::ErrorKind::NotJson

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};

const MAGIC: u8 = 0xC5;
const FORMAT_MASK: u8 = 0x0F;
const FLAG_LZ4: u8 = 0x10;
/// Format 3: the payload is a caller's bytes as they were given, framed only because
/// they start with [`MAGIC`] ([`Codec::encode_bytes`]).
const FORMAT_BYTES: u8 = 3;
/// A tag section follows the header: u8 count, then per tag u8 length, the tag's bytes
/// and its u64 version (little-endian) at write time.
const FLAG_TAGS: u8 = 0x20;
/// A cached absence (negative caching): no value; every read is a miss.
const FLAG_NEGATIVE: u8 = 0x40;
/// A u32 (little-endian) follows the tag section (if any): how many milliseconds the
/// value took to compute, for early refresh (XFetch).
const FLAG_DELTA: u8 = 0x80;
// Every flag bit is now in use: a format that needs more must change the magic byte,
// which older readers refuse (a counted miss).

/// Freshness decided from the header alone: `Some(false)` for a cached absence or an
/// unreadable header, `Some(true)` for an untagged value, `None` when the value carries
/// tags whose versions must be read.
#[inline]
pub(crate) fn untagged_fresh(stored: &[u8]) -> Option<bool> {
    match stored {
        [MAGIC, flags, ..] if flags & FLAG_NEGATIVE != 0 => Some(false),
        [MAGIC, flags, ..] if flags & FLAG_TAGS != 0 => None,
        _ => Some(true),
    }
}

/// The stored form of a cached absence.
pub(crate) fn negative_marker() -> Bytes {
    Bytes::from_static(&[MAGIC, 1 | FLAG_NEGATIVE, b'n', b'u', b'l', b'l'])
}

/// Whether a stored value is a cached absence.
pub(crate) fn is_negative(stored: &[u8]) -> bool {
    matches!(stored, [MAGIC, flags, ..] if flags & FLAG_NEGATIVE != 0)
}
/// Most tags on one value.
pub const MAX_TAGS: usize = 32;
/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 128;
/// Default largest value (serialized, before compression): 8 MiB.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 8 << 20;
/// Default size from which values are compressed: 1 KiB.
pub const DEFAULT_COMPRESS_THRESHOLD: usize = 1024;
/// Largest size a compressed payload may claim to expand to (guards against LZ4 bombs).
const MAX_DECOMPRESSED: usize = 512 << 20;

/// How values are serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Format {
    /// JSON (serde_json): readable with redis-cli and by services in any language.
    #[default]
    Json,
    /// MessagePack (rmp-serde, struct fields by name): smaller and faster.
    MessagePack,
    /// JSON text with no header and no compression: what a RESP client (`JSON.stringify`,
    /// `redis-cli`) writes and reads. Values with tags or other metadata are framed JSON.
    Plain,
}

impl Format {
    fn tag(self) -> u8 {
        match self {
            Format::Json | Format::Plain => 1,
            Format::MessagePack => 2,
        }
    }
}

/// The framed form of an encoded value: plain JSON text gets a JSON header, so metadata
/// (tags, compute time) can be added.
fn framed(encoded: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match encoded {
        [MAGIC, ..] => std::borrow::Cow::Borrowed(encoded),
        plain => {
            let mut out = Vec::with_capacity(plain.len() + 2);
            out.extend_from_slice(&[MAGIC, Format::Json.tag()]);
            out.extend_from_slice(plain);
            std::borrow::Cow::Owned(out)
        }
    }
}

/// Encoding settings shared by every namespace of a cache.
#[derive(Debug, Clone, Copy)]
pub struct Codec {
    pub(crate) format: Format,
    pub(crate) compress_threshold: usize,
    pub(crate) max_value_bytes: usize,
}

impl Default for Codec {
    fn default() -> Self {
        Self {
            format: Format::Json,
            compress_threshold: DEFAULT_COMPRESS_THRESHOLD,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

impl Codec {
    /// A codec with these settings, for tools and the fuzz targets; a cache takes its
    /// codec from [`CacheBuilder`](crate::CacheBuilder).
    #[doc(hidden)]
    pub fn new(format: Format, compress_threshold: usize, max_value_bytes: usize) -> Self {
        Self {
            format,
            compress_threshold,
            max_value_bytes,
        }
    }

    /// Serializes `value` with this codec's format.
    #[doc(hidden)]
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes> {
        if self.format == Format::Plain {
            let out = serde_json::to_vec(value).map_err(|e| {
                Error::new(
                    ErrorKind::Encode,
                    format!("cannot encode value as JSON: {e}"),
                )
            })?;
            self.check_size(out.len())?;
            return Ok(Bytes::from(out));
        }
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&[MAGIC, self.format.tag()]);
        match self.format {
            Format::Json | Format::Plain => {
                serde_json::to_writer(&mut out, value).map_err(|e| {
                    Error::new(
                        ErrorKind::Encode,
                        format!("cannot encode value as JSON: {e}"),
                    )
                })?
            }
            Format::MessagePack => {
                rmp_serde::encode::write_named(&mut out, value).map_err(|e| {
                    Error::new(
                        ErrorKind::Encode,
                        format!("cannot encode value as MessagePack: {e}"),
                    )
                })?
            }
        }
        self.finish(out)
    }

    /// A caller's bytes stored as they are, so a RESP client reads exactly them; bytes
    /// that start with the header byte (`0xC5`) are framed as format 3 instead, since
    /// reads would take them for a framed value. Never compressed.
    #[doc(hidden)]
    pub fn encode_bytes(&self, raw: &[u8]) -> Result<Bytes> {
        self.check_size(raw.len())?;
        if raw.first() != Some(&MAGIC) {
            return Ok(Bytes::copy_from_slice(raw));
        }
        let mut out = Vec::with_capacity(raw.len() + 2);
        out.extend_from_slice(&[MAGIC, FORMAT_BYTES]);
        out.extend_from_slice(raw);
        Ok(Bytes::from(out))
    }

    fn check_size(&self, payload: usize) -> Result<()> {
        if payload > self.max_value_bytes {
            return Err(Error::new(
                ErrorKind::ValueTooLarge,
                format!(
                    "value is {payload} bytes serialized, over the limit of {} bytes; \
                     store less or raise max_value_bytes",
                    self.max_value_bytes
                ),
            ));
        }
        Ok(())
    }

    fn finish(&self, mut out: Vec<u8>) -> Result<Bytes> {
        let payload = out.len() - 2;
        self.check_size(payload)?;
        if payload >= self.compress_threshold {
            let compressed = lz4_flex::block::compress_prepend_size(&out[2..]);
            // Keep the compressed form only when it actually saves space.
            if compressed.len() < payload {
                out.truncate(2);
                out[1] |= FLAG_LZ4;
                out.extend_from_slice(&compressed);
            }
        }
        Ok(Bytes::from(out))
    }

    /// Decodes a stored value written by any format this version knows. [`RawJson`]
    /// takes a fast path: the stored JSON text is shared, not parsed or copied.
    #[doc(hidden)]
    pub fn decode<T: DeserializeOwned + 'static>(&self, stored: &Bytes) -> Result<T> {
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<RawBytes>() {
            let bytes = self.as_read(stored).unwrap_or_else(|(bytes, _)| bytes);
            let raw: Box<dyn std::any::Any> = Box::new(RawBytes(bytes));
            return Ok(*raw.downcast::<T>().expect("T is RawBytes"));
        }
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<RawJson>() {
            // Checked like any decode: what is not JSON is never handed on as JSON.
            let json = self.as_read(stored).map_err(|(_, why)| {
                Error::new(
                    ErrorKind::NotJson,
                    format!(
                        "the stored {why}; another client wrote text or binary at this \
                         key: read it as bytes (HTTP: Accept: application/octet-stream), \
                         or overwrite it"
                    ),
                )
            })?;
            let raw: Box<dyn std::any::Any> = Box::new(RawJson(json));
            return Ok(*raw.downcast::<T>().expect("T is RawJson"));
        }
        let (format, payload) = unwrap_payload(stored)?;
        match format {
            Format::Json | Format::Plain => serde_json::from_slice(&payload).map_err(|e| {
                Error::new(
                    ErrorKind::Decode,
                    format!("stored JSON does not decode: {e}"),
                )
            }),
            Format::MessagePack => rmp_serde::from_slice(&payload).map_err(|e| {
                Error::new(
                    ErrorKind::Decode,
                    format!("stored MessagePack does not decode: {e}"),
                )
            }),
        }
    }

    /// What a stored value reads as: `Ok` with its JSON text (a framed value's, MessagePack
    /// transcoded, or plain JSON text), or `Err` with its bytes and why they are not JSON:
    /// bytes a caller stored as they are (format 3 or plain), and anything that starts
    /// with the header byte but is no readable frame with JSON in it, which is another
    /// client's bytes (text such as "Łódź" starts with 0xC5 in UTF-8).
    fn as_read(&self, stored: &Bytes) -> std::result::Result<Bytes, (Bytes, String)> {
        let bytes = match stored.as_ref() {
            [MAGIC, FORMAT_BYTES, ..] => stored.slice(2..),
            [MAGIC, ..] => match self.decode_to_json(stored) {
                Ok(json) if check_json(&json).is_ok() => return Ok(json),
                _ => stored.clone(),
            },
            _ => stored.clone(),
        };
        match check_json(&bytes) {
            Ok(()) => Ok(bytes),
            Err(why) => Err((bytes, why)),
        }
    }

    /// Returns the stored value as JSON text, transcoding MessagePack values.
    fn decode_to_json(&self, stored: &Bytes) -> Result<Bytes> {
        let (format, payload) = unwrap_payload(stored)?;
        match format {
            Format::Json | Format::Plain => Ok(match payload {
                // Uncompressed JSON is the tail of the stored bytes: share, don't copy.
                std::borrow::Cow::Borrowed(p) => stored.slice(stored.len() - p.len()..),
                std::borrow::Cow::Owned(v) => Bytes::from(v),
            }),
            Format::MessagePack => {
                let v: serde_json::Value = rmp_serde::from_slice(&payload).map_err(|e| {
                    Error::new(
                        ErrorKind::Decode,
                        format!("stored MessagePack does not decode: {e}"),
                    )
                })?;
                serde_json::to_vec(&v).map(Bytes::from).map_err(|e| {
                    Error::new(ErrorKind::Decode, format!("cannot transcode to JSON: {e}"))
                })
            }
        }
    }
}

/// A JSON document kept as text: stored as it is and read back without being decoded
/// into a Rust type. It is how the HTTP service moves request bodies into the cache and
/// values out of it, and how a library user passes JSON through.
///
/// It holds valid JSON (checked when built from bytes). It serializes verbatim with
/// serde_json and as the parsed document with non-human-readable serializers
/// (MessagePack); reading one from the cache shares the stored text (MessagePack values
/// are transcoded).
///
/// ```
/// use sharecache::RawJson;
/// let doc = RawJson::from_slice(br#"{"name":"Ada"}"#).unwrap();
/// assert_eq!(doc.get(), r#"{"name":"Ada"}"#);
/// assert_eq!(serde_json::to_string(&doc).unwrap(), r#"{"name":"Ada"}"#);
/// assert!(RawJson::from_slice(b"{oops").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RawJson(Bytes);

impl RawJson {
    /// Checks that `json` is one JSON document and keeps a copy.
    pub fn from_slice(json: &[u8]) -> Result<Self> {
        Self::from_bytes(Bytes::copy_from_slice(json))
    }

    /// Checks that `json` is one JSON document and keeps it (no copy).
    pub fn from_bytes(json: Bytes) -> Result<Self> {
        check_json(&json).map_err(|why| Error::new(ErrorKind::InvalidArgument, why))?;
        Ok(Self(json))
    }

    /// JSON text the library wrote itself (event payloads it validated on publish).
    pub(crate) fn trusted(json: Bytes) -> Self {
        Self(json)
    }

    /// Serializes `value` as JSON.
    pub fn to_raw<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        serde_json::to_vec(value)
            .map(|v| Self(Bytes::from(v)))
            .map_err(|e| Error::new(ErrorKind::Encode, format!("cannot encode as JSON: {e}")))
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        // Checked UTF-8 when built; the fallback is never taken.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The JSON text as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The JSON text as shared bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Decodes the document into `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.0)
            .map_err(|e| Error::new(ErrorKind::Decode, format!("JSON does not decode: {e}")))
    }
}

/// A stored value's bytes, whatever they hold: what the HTTP service serves for
/// `Accept: application/octet-stream`. A framed value gives its JSON text (MessagePack
/// transcoded, LZ4 expanded); a value stored by [`Codec::encode_bytes`] or by another
/// client gives its bytes as they are.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> sharecache::Result<()> {
/// use sharecache::{Cache, RawBytes, Ttl};
/// let cache = Cache::builder().memory().build().await?;
/// let files = cache.namespace("files")?;
/// files.set_bytes("logo", &[0x89, b'P', b'N', b'G'], Ttl::NEVER).await?;
/// let b: RawBytes = files.get("logo").await?.unwrap();
/// assert_eq!(b.as_bytes(), &[0x89, b'P', b'N', b'G']);
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct RawBytes(Bytes);

impl RawBytes {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, shared.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl<'de> serde::Deserialize<'de> for RawBytes {
    /// Only reads build one (the codec's fast path); anything else fails.
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> std::result::Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "RawBytes is read from the cache, not deserialized",
        ))
    }
}

/// A value's version: the 128-bit xxh3 hash of its bytes as read ([`RawJson`]'s text,
/// or [`RawBytes`]). The same value gives the same version on every instance and
/// backend, whatever its stored form; the HTTP service serves it as the `ETag` and takes
/// it back in `If-Match` ([`Namespace::set_if_version`](crate::Namespace::set_if_version)).
/// Shown and parsed as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Version(u128);

impl Version {
    /// The version of a value whose bytes, as read, are `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(xxhash_rust::xxh3::xxh3_128(bytes))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl std::str::FromStr for Version {
    type Err = Error;
    /// 32 hex digits, as [`Display`](std::fmt::Display) writes them.
    fn from_str(s: &str) -> Result<Self> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "a version is 32 hex digits, as a read gave it",
            ));
        }
        u128::from_str_radix(s, 16)
            .map(Self)
            .map_err(|e| Error::new(ErrorKind::InvalidArgument, e.to_string()))
    }
}

/// Whether `b` is one JSON document, saying why not.
fn check_json(b: &[u8]) -> std::result::Result<(), String> {
    if b.is_empty() {
        return Err("value is not JSON: it is empty".into());
    }
    // IgnoredAny skips string contents without checking their UTF-8, so check it first:
    // JSON text is UTF-8, and what is served as application/json must be too.
    let text = std::str::from_utf8(b).map_err(|e| format!("value is not UTF-8: {e}"))?;
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| format!("value is not valid JSON: {e}"))
}

impl std::fmt::Debug for RawJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawJson({})", self.get())
    }
}

impl std::fmt::Display for RawJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.get())
    }
}

impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        if s.is_human_readable() {
            // serde_json writes a RawValue verbatim, but only builds one by scanning the
            // text (it has no unchecked constructor): a write scans its JSON twice, once
            // here and once when the RawJson was made. Holding a RawValue instead would
            // save that scan and cost every read a copy (the stored bytes could no
            // longer be shared), and reads are the hot path.
            let raw: &serde_json::value::RawValue =
                serde_json::from_slice(&self.0).map_err(S::Error::custom)?;
            raw.serialize(s)
        } else {
            let v: serde_json::Value = serde_json::from_slice(&self.0).map_err(S::Error::custom)?;
            v.serialize(s)
        }
    }
}

impl<'de> serde::Deserialize<'de> for RawJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        if d.is_human_readable() {
            let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
            Ok(Self(Bytes::from(String::from(raw.get()))))
        } else {
            let v = serde_json::Value::deserialize(d)?;
            serde_json::to_vec(&v)
                .map(|v| Self(Bytes::from(v)))
                .map_err(D::Error::custom)
        }
    }
}

fn unwrap_payload(stored: &[u8]) -> Result<(Format, std::borrow::Cow<'_, [u8]>)> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::Decode,
            format!("stored value is not readable: {why}"),
        )
    };
    let [MAGIC, flags, payload @ ..] = stored else {
        if stored.first() == Some(&MAGIC) {
            return Err(bad("shorter than its header"));
        }
        // No header: plain JSON text (a plain namespace, or another client's value).
        return Ok((Format::Plain, std::borrow::Cow::Borrowed(stored)));
    };
    if flags & FLAG_NEGATIVE != 0 {
        return Err(bad("a cached absence holds no value"));
    }
    let format = match flags & FORMAT_MASK {
        1 => Format::Json,
        2 => Format::MessagePack,
        // A caller's bytes, as they were given: read like a plain value.
        FORMAT_BYTES => Format::Plain,
        _ => return Err(bad("unknown format")),
    };
    let payload = if flags & FLAG_TAGS != 0 {
        let (_, rest) = parse_tags(payload).ok_or_else(|| bad("corrupt tag section"))?;
        rest
    } else {
        payload
    };
    let payload = if flags & FLAG_DELTA != 0 {
        payload
            .get(4..)
            .ok_or_else(|| bad("truncated compute-time section"))?
    } else {
        payload
    };
    if flags & FLAG_LZ4 == 0 {
        return Ok((format, std::borrow::Cow::Borrowed(payload)));
    }
    let Some(size) = payload
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    else {
        return Err(bad("truncated compressed payload"));
    };
    if size > MAX_DECOMPRESSED {
        return Err(bad("compressed payload claims an implausible size"));
    }
    let raw = lz4_flex::block::decompress_size_prepended(payload)
        .map_err(|e| bad(&format!("corrupt compressed payload: {e}")))?;
    Ok((format, std::borrow::Cow::Owned(raw)))
}

/// Tags with their versions, as written in a value.
pub(crate) type TagVersions<'a> = Vec<(&'a str, u64)>;

/// Parses a tag section; returns the tags and what follows them.
fn parse_tags(mut b: &[u8]) -> Option<(TagVersions<'_>, &[u8])> {
    let (&count, rest) = b.split_first()?;
    b = rest;
    let mut tags = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (&len, rest) = b.split_first()?;
        let (name, rest) = rest.split_at_checked(len as usize)?;
        let (ver, rest) = rest.split_at_checked(8)?;
        tags.push((
            std::str::from_utf8(name).ok()?,
            u64::from_le_bytes(ver.try_into().ok()?),
        ));
        b = rest;
    }
    Some((tags, b))
}

/// The tags a stored value was written with, and their versions at write time; `None`
/// for an untagged value. A corrupt section is a decode error.
pub(crate) fn tags_of(stored: &[u8]) -> Result<Option<TagVersions<'_>>> {
    match stored {
        [MAGIC, flags, rest @ ..] if flags & FLAG_TAGS != 0 => {
            parse_tags(rest).map(|(t, _)| Some(t)).ok_or_else(|| {
                Error::new(
                    ErrorKind::Decode,
                    "stored value is not readable: corrupt tag section",
                )
            })
        }
        _ => Ok(None),
    }
}

/// Offset of what follows the header and the tag section.
fn after_tags(stored: &[u8]) -> Option<usize> {
    match stored {
        [MAGIC, flags, rest @ ..] if flags & FLAG_TAGS != 0 => {
            let (_, after) = parse_tags(rest)?;
            Some(stored.len() - after.len())
        }
        [MAGIC, _, ..] => Some(2),
        _ => None,
    }
}

/// Records how long the value took to compute (ms) in an encoded value.
pub(crate) fn with_delta(encoded: &[u8], delta_ms: u32) -> Bytes {
    let encoded = &*framed(encoded);
    let Some(at) = after_tags(encoded) else {
        return Bytes::copy_from_slice(encoded);
    };
    if encoded[1] & FLAG_DELTA != 0 {
        return Bytes::copy_from_slice(encoded);
    }
    let mut out = Vec::with_capacity(encoded.len() + 4);
    out.extend_from_slice(&encoded[..at]);
    out[1] |= FLAG_DELTA;
    out.extend_from_slice(&delta_ms.to_le_bytes());
    out.extend_from_slice(&encoded[at..]);
    Bytes::from(out)
}

/// How long the value took to compute, if recorded.
pub(crate) fn delta_of(stored: &[u8]) -> Option<u32> {
    if stored.get(1)? & FLAG_DELTA == 0 {
        return None;
    }
    let at = after_tags(stored)?;
    let b = stored.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Adds a tag section to an encoded value (tags validated by the caller).
pub(crate) fn with_tags(encoded: &[u8], tags: &[(&str, u64)]) -> Bytes {
    let encoded = &*framed(encoded);
    let mut out = Vec::with_capacity(
        encoded.len() + 1 + tags.iter().map(|(t, _)| t.len() + 9).sum::<usize>(),
    );
    out.extend_from_slice(&[encoded[0], encoded[1] | FLAG_TAGS, tags.len() as u8]);
    for (t, v) in tags {
        out.push(t.len() as u8);
        out.extend_from_slice(t.as_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&encoded[2..]);
    Bytes::from(out)
}

/// Checks a tag: 1..=128 bytes of printable text without ',' (HTTP lists are
/// comma-separated).
pub fn validate_tag(tag: &str) -> Result<()> {
    if tag.is_empty() || tag.len() > MAX_TAG_LEN || tag.chars().any(|c| c.is_control() || c == ',')
    {
        return Err(Error::new(
            ErrorKind::InvalidKey,
            format!("invalid tag: 1..={MAX_TAG_LEN} bytes of printable text without ','"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn plain_values_are_the_json_text_and_read_back_in_every_format() {
        let plain = Codec {
            format: Format::Plain,
            ..Codec::default()
        };
        let big = "z".repeat(4096);
        // No header and no compression, whatever the size: what JSON.stringify gives.
        assert_eq!(&plain.encode(&"Zoë").unwrap()[..], "\"Zoë\"".as_bytes());
        let stored = plain.encode(&big).unwrap();
        assert_eq!(stored.len(), big.len() + 2);
        for reader in [Format::Json, Format::MessagePack, Format::Plain] {
            let c = Codec {
                format: reader,
                ..Codec::default()
            };
            assert_eq!(c.decode::<String>(&stored).unwrap(), big);
            let raw = c.decode::<RawJson>(&stored).unwrap();
            assert_eq!(raw.as_bytes(), &stored[..], "raw reads share the text");
        }
        // Metadata frames a plain value; it still reads back.
        let tagged = with_tags(&plain.encode(&7u8).unwrap(), &[("t", 1)]);
        assert_eq!(tagged[0], MAGIC);
        assert_eq!(plain.decode::<u8>(&tagged).unwrap(), 7);
        let timed = with_delta(&plain.encode(&7u8).unwrap(), 12);
        assert_eq!(
            (delta_of(&timed), plain.decode::<u8>(&timed).unwrap()),
            (Some(12), 7)
        );
        // The size limit holds for plain values too.
        let small = Codec {
            format: Format::Plain,
            max_value_bytes: 8,
            ..Codec::default()
        };
        assert_eq!(
            small.encode(&big).unwrap_err().kind(),
            ErrorKind::ValueTooLarge
        );
    }

    #[test]
    fn a_plain_value_that_is_not_json_is_not_json_for_raw_reads_and_a_decode_error_otherwise() {
        let c = Codec::default();
        for stored in [&b"hello world"[..], b"\x01\x02", b"{\"half\":", b"\xff\xfe"] {
            let stored = Bytes::copy_from_slice(stored);
            let e = c.decode::<RawJson>(&stored).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotJson, "{stored:?}");
            assert!(e.message().contains("another client"), "{e}");
            assert_eq!(
                c.decode::<String>(&stored).unwrap_err().kind(),
                ErrorKind::Decode
            );
        }
        // What starts with the header byte but is no readable frame with JSON in it is
        // bytes a raw read cannot serve as JSON (the key exists: never a miss), and that a
        // bytes read serves as they are; a typed read counts it a miss.
        for stored in [&[MAGIC, 1, b'{'][..], &[MAGIC], "Łódź".as_bytes()] {
            let stored = Bytes::copy_from_slice(stored);
            let e = c.decode::<RawJson>(&stored).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotJson, "{stored:?}");
            let b = c.decode::<RawBytes>(&stored).unwrap();
            assert_eq!(b.as_bytes(), &stored[..]);
            assert_eq!(
                c.decode::<String>(&stored).unwrap_err().kind(),
                ErrorKind::Decode
            );
        }
    }

    #[test]
    fn raw_json_refuses_what_is_not_one_json_document() {
        for bad in [
            &b""[..],
            b"   ",
            b"{oops",
            b"{} {}",
            b"\"\xff\"",
            b"[1,]",
            b"nul\0",
        ] {
            let e = RawJson::from_slice(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        }
        let big = format!("[{}1]", "1,".repeat(100_000));
        assert_eq!(
            RawJson::from_slice(big.as_bytes())
                .unwrap()
                .as_bytes()
                .len(),
            big.len()
        );
        // Written by a MessagePack codec, read back as the same document.
        let mp = Codec {
            format: Format::MessagePack,
            ..Codec::default()
        };
        let doc = RawJson::from_slice(br#"{"a":[1,"x",null]}"#).unwrap();
        let back: RawJson = mp.decode(&mp.encode(&doc).unwrap()).unwrap();
        assert_eq!(
            back.parse::<serde_json::Value>().unwrap(),
            serde_json::json!({"a": [1, "x", null]})
        );
    }

    #[test]
    fn compute_time_section_round_trips() {
        let c = Codec::default();
        for value in ["small".to_owned(), "big ".repeat(2000)] {
            let plain = c.encode(&value).unwrap();
            assert_eq!(delta_of(&plain), None);
            let d = with_delta(&plain, 1234);
            assert_eq!(delta_of(&d), Some(1234));
            assert_eq!(c.decode::<String>(&d).unwrap(), value);
            let td = with_delta(&with_tags(&plain, &[("t", 3)]), 77);
            assert_eq!(delta_of(&td), Some(77));
            assert_eq!(tags_of(&td).unwrap().unwrap(), vec![("t", 3)]);
            assert_eq!(c.decode::<String>(&td).unwrap(), value);
            assert_eq!(
                &c.decode_to_json(&td).unwrap()[..],
                serde_json::to_vec(&value).unwrap()
            );
        }
        let d = with_delta(&c.encode(&1u8).unwrap(), 5);
        for cut in 0..d.len() {
            let _ = delta_of(&d[..cut]);
            let _ = c.decode::<u8>(&d.slice(..cut));
        }
    }

    #[test]
    fn tagged_values_round_trip_and_carry_their_tags() {
        let c = Codec::default();
        for value in ["small".to_owned(), "big ".repeat(2000)] {
            let plain = c.encode(&value).unwrap();
            let tagged = with_tags(&plain, &[("user:42", 7), ("org:1", u64::MAX)]);
            assert_eq!(c.decode::<String>(&tagged).unwrap(), value);
            assert_eq!(
                tags_of(&tagged).unwrap().unwrap(),
                vec![("user:42", 7), ("org:1", u64::MAX)]
            );
            assert_eq!(
                &c.decode_to_json(&tagged).unwrap()[..],
                serde_json::to_vec(&value).unwrap()
            );
            assert_eq!(tags_of(&plain).unwrap(), None);
        }
        // A truncated tag section is a decode error, never a panic.
        let tagged = with_tags(&c.encode(&1).unwrap(), &[("t", 1)]);
        for cut in 2..tagged.len() - 1 {
            let _ = c.decode::<u32>(&tagged.slice(..cut));
            let _ = tags_of(&tagged[..cut]);
        }
        assert!(validate_tag("user:42").is_ok());
        for bad in ["", "a,b", "a\nb", &"t".repeat(129)] {
            assert!(validate_tag(bad).is_err(), "{bad:?}");
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Profile {
        id: u64,
        name: String,
        tags: Vec<String>,
    }

    fn profile() -> Profile {
        Profile {
            id: 42,
            name: "Ada".into(),
            tags: vec!["x".into(); 3],
        }
    }

    #[test]
    fn round_trips_both_formats() {
        for format in [Format::Json, Format::MessagePack] {
            let c = Codec {
                format,
                ..Codec::default()
            };
            let b = c.encode(&profile()).unwrap();
            assert_eq!(b[1] & FORMAT_MASK, format.tag());
            assert_eq!(c.decode::<Profile>(&b).unwrap(), profile());
            // A reader configured for the other format still reads it.
            let other = Codec {
                format: Format::Json,
                ..Codec::default()
            };
            assert_eq!(other.decode::<Profile>(&b).unwrap(), profile());
        }
    }

    #[test]
    fn compresses_big_values_and_reads_them_back() {
        let c = Codec::default();
        let big = "abc".repeat(10_000);
        let b = c.encode(&big).unwrap();
        assert_ne!(
            b[1] & FLAG_LZ4,
            0,
            "30 KB of repetitive text must be compressed"
        );
        assert!(b.len() < 2_000, "compressed to {} bytes", b.len());
        assert_eq!(c.decode::<String>(&b).unwrap(), big);
        assert_eq!(
            &c.decode_to_json(&b).unwrap()[..],
            serde_json::to_vec(&big).unwrap()
        );
    }

    #[test]
    fn refuses_values_over_the_limit() {
        let c = Codec {
            max_value_bytes: 100,
            ..Codec::default()
        };
        let e = c.encode(&"x".repeat(200)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValueTooLarge);
        assert!(e.message().contains("limit of 100 bytes"), "{e}");
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let c = Codec::default();
        let lz4_bomb = [MAGIC, 1 | FLAG_LZ4, 0xff, 0xff, 0xff, 0x7f, 1, 2];
        for stored in [
            &b""[..],
            b"\xC5",
            b"plain string set by redis-cli",
            b"\xC5\x09{}",
            b"\xC5\x81{}",
            b"\xC5\x41null",
            b"\xC5\x01{not json",
            b"\xC5\x11\x05",
            b"\xC5\x11\x10\x00\x00\x00garbage",
            &lz4_bomb,
        ] {
            let stored = Bytes::copy_from_slice(stored);
            let e = c.decode::<serde_json::Value>(&stored).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Decode, "{stored:?}");
            // A raw read cannot serve it as JSON, and says so (never a miss: the key
            // exists); a bytes read serves it.
            let e = c.decode::<RawJson>(&stored).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotJson, "raw: {stored:?}");
            assert!(c.decode::<RawBytes>(&stored).is_ok());
        }
        // Right header, wrong type: also a decode error.
        let b = c.encode(&"text").unwrap();
        assert_eq!(c.decode::<u64>(&b).unwrap_err().kind(), ErrorKind::Decode);
    }

    #[test]
    fn messagepack_is_transcoded_to_json() {
        let c = Codec {
            format: Format::MessagePack,
            ..Codec::default()
        };
        let b = c.encode(&profile()).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&c.decode_to_json(&b).unwrap()).unwrap();
        assert_eq!(json["name"], "Ada");
    }
}
