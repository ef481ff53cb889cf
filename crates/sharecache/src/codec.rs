//! Value encoding: a two-byte header, then the serialized value, maybe compressed.
//!
//! ```text
//! byte 0  MAGIC (0xC5): "a sharecache value, header version 1"
//! byte 1  flags: low nibble = format (1 JSON, 2 MessagePack); 0x10 = LZ4 block, size-prepended
//! ...     payload
//! ```
//!
//! Every value carries its format, so a reader configured for JSON can still read a value
//! another instance wrote as MessagePack, and anything else (a value written by a future
//! version, a raw string someone `SET` by hand, a truncated payload) is a [`Decode`] error
//! that the cache counts as a miss. Decoding never panics on any input.
//!
//! [`Decode`]: crate::ErrorKind::Decode

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};

const MAGIC: u8 = 0xC5;
const FORMAT_MASK: u8 = 0x0F;
const FLAG_LZ4: u8 = 0x10;
const KNOWN_FLAGS: u8 = FORMAT_MASK | FLAG_LZ4;
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
}

impl Format {
    fn tag(self) -> u8 {
        match self {
            Format::Json => 1,
            Format::MessagePack => 2,
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
    /// Serializes `value` with this codec's format.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&[MAGIC, self.format.tag()]);
        match self.format {
            Format::Json => serde_json::to_writer(&mut out, value).map_err(|e| {
                Error::new(
                    ErrorKind::Encode,
                    format!("cannot encode value as JSON: {e}"),
                )
            })?,
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

    /// Wraps an already-serialized JSON document (the HTTP service's bodies) without
    /// re-serializing it. The caller has validated that `json` is JSON.
    pub fn encode_raw_json(&self, json: &[u8]) -> Result<Bytes> {
        let mut out = Vec::with_capacity(json.len() + 2);
        out.extend_from_slice(&[MAGIC, Format::Json.tag()]);
        out.extend_from_slice(json);
        self.finish(out)
    }

    fn finish(&self, mut out: Vec<u8>) -> Result<Bytes> {
        let payload = out.len() - 2;
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

    /// Decodes a stored value written by any format this version knows.
    pub fn decode<T: DeserializeOwned>(&self, stored: &[u8]) -> Result<T> {
        let (format, payload) = unwrap_payload(stored)?;
        match format {
            Format::Json => serde_json::from_slice(&payload).map_err(|e| {
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

    /// Returns the stored value as JSON text (for the HTTP service), transcoding
    /// MessagePack values written by library users.
    pub fn decode_to_json(&self, stored: &Bytes) -> Result<Bytes> {
        let (format, payload) = unwrap_payload(stored)?;
        match format {
            Format::Json => Ok(match payload {
                // Uncompressed JSON is the stored bytes after the header: share, don't copy.
                std::borrow::Cow::Borrowed(_) => stored.slice(2..),
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

fn unwrap_payload(stored: &[u8]) -> Result<(Format, std::borrow::Cow<'_, [u8]>)> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::Decode,
            format!("stored value is not readable: {why}"),
        )
    };
    let [magic, flags, payload @ ..] = stored else {
        return Err(bad("shorter than its header"));
    };
    if *magic != MAGIC {
        return Err(bad("unknown header (written by another tool or version)"));
    }
    if flags & !KNOWN_FLAGS != 0 {
        return Err(bad("unknown flags (written by a newer version)"));
    }
    let format = match flags & FORMAT_MASK {
        1 => Format::Json,
        2 => Format::MessagePack,
        _ => return Err(bad("unknown format")),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

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
    fn garbage_is_a_decode_error_never_a_panic() {
        let c = Codec::default();
        let lz4_bomb = [MAGIC, 1 | FLAG_LZ4, 0xff, 0xff, 0xff, 0x7f, 1, 2];
        for stored in [
            &b""[..],
            b"\xC5",
            b"plain string set by redis-cli",
            b"\xC5\x09{}",
            b"\xC5\x41{}",
            b"\xC5\x01{not json",
            b"\xC5\x11\x05",
            b"\xC5\x11\x10\x00\x00\x00garbage",
            &lz4_bomb,
        ] {
            let e = c.decode::<serde_json::Value>(stored).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Decode, "{stored:?}");
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
