//! The export file: versioned, checksummed, LZ4-compressed frames of records, written and
//! read as a stream (one frame in memory at a time).
//!
//! ```text
//! header   "SCXP" | version u16 | flags u16 (0) | created_ms i64
//!          | namespace (u16 len, bytes) | head (u16 len, bytes) | redis_version (u16 len, bytes)
//! frame*   'F' | records u32 | raw_len u32 | lz4_len u32 | SHA-256 of the LZ4 bytes (32)
//!          | the LZ4 block (raw_len bytes once decompressed)
//! trailer  'T' | records u64 | frames u64 | SHA-256 of the file so far (32) | "SCXE"
//! record   key suffix (u32 len, bytes) | expiry i64 (Unix ms, -1: none) | DUMP (u32 len, bytes)
//! ```
//!
//! Integers are little-endian. A record's key is the suffix after the namespace's key head
//! (`[prefix/]ns:`), so an import can put it under another namespace. The trailer's hash
//! covers every byte before it except the LZ4 blocks, which each frame's own hash covers
//! (and that hash is in the frame header the trailer's covers): every byte is hashed once,
//! and a change anywhere fails one of the two. [`Reader`] checks each frame as it reads it
//! and the trailer at the end; an import reads the whole file through it once before it
//! writes anything.

use std::io::{self, Read, Write};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

/// The first bytes of every export file.
pub(crate) const MAGIC: &[u8; 4] = b"SCXP";
/// The format this code writes, and the newest it reads.
pub(crate) const VERSION: u16 = 1;
const TRAILER_MAGIC: &[u8; 4] = b"SCXE";
const FRAME: u8 = b'F';
const TRAILER: u8 = b'T';
/// A frame is closed once its records reach this many bytes (uncompressed).
const FRAME_TARGET: usize = 1 << 20;
/// The largest frame a reader accepts: one DUMP payload of Redis's largest bulk (512 MB by
/// default, `proto-max-bulk-len` can raise it) and its key. A bigger length is damage, not
/// a reason to allocate gigabytes.
const MAX_FRAME: u32 = (1 << 31) - 1;

/// What the header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    /// The format version the file was written with.
    pub(crate) version: u16,
    /// When the export started, Unix ms.
    pub(crate) created_ms: i64,
    /// The namespace exported.
    pub(crate) namespace: String,
    /// Its key head on the source (`[prefix/]ns:`).
    pub(crate) head: String,
    /// The source's `redis_version` (a target older than it may refuse the DUMP payloads).
    pub(crate) redis_version: String,
}

/// One key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// The key after the namespace's head.
    pub(crate) suffix: Vec<u8>,
    /// Absolute expiry, Unix ms; `None`: no TTL.
    pub(crate) expires_at: Option<i64>,
    /// The DUMP payload (type, value, RDB version and its own CRC).
    pub(crate) payload: Vec<u8>,
}

/// Counts of a finished file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Records in the file.
    pub(crate) records: u64,
    /// Frames in the file.
    pub(crate) frames: u64,
    /// Size of the file.
    pub(crate) bytes: u64,
}

fn put_bytes16(out: &mut Vec<u8>, b: &[u8]) -> io::Result<()> {
    let n = u16::try_from(b.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "header field too long"))?;
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(b);
    Ok(())
}

/// Writes a file: the header at once, a frame whenever [`FRAME_TARGET`] bytes of records
/// are buffered, the trailer in [`Writer::finish`].
#[derive(Debug)]
pub(crate) struct Writer<W: Write> {
    out: W,
    hash: Sha256,
    raw: Vec<u8>,
    in_frame: u32,
    summary: Summary,
}

impl<W: Write> Writer<W> {
    /// Writes the header.
    pub(crate) fn new(out: W, header: &Header) -> io::Result<Self> {
        let mut h = Vec::new();
        h.extend_from_slice(MAGIC);
        h.extend_from_slice(&header.version.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(&header.created_ms.to_le_bytes());
        put_bytes16(&mut h, header.namespace.as_bytes())?;
        put_bytes16(&mut h, header.head.as_bytes())?;
        put_bytes16(&mut h, header.redis_version.as_bytes())?;
        let mut w = Self {
            out,
            hash: Sha256::new(),
            raw: Vec::with_capacity(FRAME_TARGET + (64 << 10)),
            in_frame: 0,
            summary: Summary::default(),
        };
        w.put_hashed(&h)?;
        Ok(w)
    }

    fn put_hashed(&mut self, b: &[u8]) -> io::Result<()> {
        self.hash.update(b);
        self.put(b)
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.summary.bytes += b.len() as u64;
        Ok(())
    }

    /// Appends one record (a frame is written when enough are buffered).
    pub(crate) fn push(
        &mut self,
        suffix: &[u8],
        expires_at: Option<i64>,
        payload: &[u8],
    ) -> io::Result<()> {
        let too_big = |_| io::Error::new(io::ErrorKind::InvalidInput, "a record above 4 GiB");
        self.raw
            .extend_from_slice(&u32::try_from(suffix.len()).map_err(too_big)?.to_le_bytes());
        self.raw.extend_from_slice(suffix);
        self.raw
            .extend_from_slice(&expires_at.unwrap_or(-1).to_le_bytes());
        self.raw
            .extend_from_slice(&u32::try_from(payload.len()).map_err(too_big)?.to_le_bytes());
        self.raw.extend_from_slice(payload);
        self.in_frame += 1;
        self.summary.records += 1;
        if self.raw.len() >= FRAME_TARGET {
            self.flush_frame()?;
        }
        Ok(())
    }

    fn flush_frame(&mut self) -> io::Result<()> {
        if self.in_frame == 0 {
            return Ok(());
        }
        let raw_len = u32::try_from(self.raw.len())
            .ok()
            .filter(|&n| n <= MAX_FRAME)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a frame above 2 GiB"))?;
        let lz4 = lz4_flex::block::compress(&self.raw);
        let mut h = Vec::with_capacity(13 + 32);
        h.push(FRAME);
        h.extend_from_slice(&self.in_frame.to_le_bytes());
        h.extend_from_slice(&raw_len.to_le_bytes());
        h.extend_from_slice(&(lz4.len() as u32).to_le_bytes());
        h.extend_from_slice(&Sha256::digest(&lz4));
        self.put_hashed(&h)?;
        self.put(&lz4)?;
        self.summary.frames += 1;
        self.in_frame = 0;
        self.raw.clear();
        Ok(())
    }

    /// Writes the last frame and the trailer; returns the output and the counts.
    pub(crate) fn finish(mut self) -> io::Result<(W, Summary)> {
        self.flush_frame()?;
        let mut t = Vec::with_capacity(17);
        t.push(TRAILER);
        t.extend_from_slice(&self.summary.records.to_le_bytes());
        t.extend_from_slice(&self.summary.frames.to_le_bytes());
        self.hash.update(&t);
        let digest = self.hash.clone().finalize();
        self.put(&t)?;
        self.put(&digest)?;
        self.put(TRAILER_MAGIC)?;
        self.out.flush()?;
        Ok((self.out, self.summary))
    }
}

/// Reads a file frame by frame, checking each frame's hash as it goes and the trailer at
/// the end. Every error names what is wrong and where (byte offset, frame number).
#[derive(Debug)]
pub(crate) struct Reader<R: Read> {
    inp: R,
    hash: Sha256,
    pos: u64,
    header: Header,
    frames: u64,
    records: u64,
    done: bool,
}

impl<R: Read> Reader<R> {
    /// Reads and checks the header: the magic bytes, then a version this code reads.
    pub(crate) fn open(inp: R) -> anyhow::Result<Self> {
        let mut r = Self {
            inp,
            hash: Sha256::new(),
            pos: 0,
            header: Header {
                version: 0,
                created_ms: 0,
                namespace: String::new(),
                head: String::new(),
                redis_version: String::new(),
            },
            frames: 0,
            records: 0,
            done: false,
        };
        let magic = r.take(4, "the header")?;
        if magic != MAGIC {
            bail!(
                "not a sharecache export file (it does not start with {:?})",
                String::from_utf8_lossy(MAGIC)
            );
        }
        let version = u16::from_le_bytes(r.array("the header")?);
        // Checked before anything else is read: a newer format may lay out the rest anew.
        if version > VERSION {
            bail!(
                "the file is in export format version {version}, newer than this sharecache \
                 reads (up to {VERSION}): import it with a newer sharecache"
            );
        }
        if version == 0 {
            bail!("the header names format version 0, which never existed: the file is damaged");
        }
        let _flags = u16::from_le_bytes(r.array("the header")?);
        let created_ms = i64::from_le_bytes(r.array("the header")?);
        let namespace = r.text16("the header's namespace")?;
        let head = r.text16("the header's key head")?;
        let redis_version = r.text16("the header's Redis version")?;
        r.header = Header {
            version,
            created_ms,
            namespace,
            head,
            redis_version,
        };
        Ok(r)
    }

    /// The header.
    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    /// Frames read so far.
    #[cfg(test)]
    pub(crate) fn frames(&self) -> u64 {
        self.frames
    }

    fn read_exact(&mut self, buf: &mut [u8], what: &str) -> anyhow::Result<()> {
        let at = self.pos;
        match self.inp.read_exact(buf) {
            Ok(()) => {
                self.pos += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                bail!("the file is truncated: it ends inside {what} (which starts at byte {at})")
            }
            Err(e) => Err(e).context(format!("reading byte {at}")),
        }
    }

    /// `n` bytes, added to the file hash.
    fn take(&mut self, n: usize, what: &str) -> anyhow::Result<Vec<u8>> {
        let mut b = vec![0; n];
        self.read_exact(&mut b, what)?;
        self.hash.update(&b);
        Ok(b)
    }

    fn array<const N: usize>(&mut self, what: &str) -> anyhow::Result<[u8; N]> {
        let mut b = [0; N];
        self.read_exact(&mut b, what)?;
        self.hash.update(b);
        Ok(b)
    }

    fn text16(&mut self, what: &str) -> anyhow::Result<String> {
        let n = u16::from_le_bytes(self.array(what)?);
        let b = self.take(usize::from(n), what)?;
        String::from_utf8(b)
            .map_err(|_| anyhow::anyhow!("{what} is not UTF-8: the file is damaged"))
    }

    /// The records of the next frame, each frame checked against its hash; `None` after
    /// the trailer was read and matched the file.
    pub(crate) fn next_frame(&mut self) -> anyhow::Result<Option<Vec<Record>>> {
        if self.done {
            return Ok(None);
        }
        let at = self.pos;
        let n = self.frames + 1;
        let [tag] = self.array::<1>("the next frame or the trailer")?;
        match tag {
            FRAME => {
                let what = format!("the header of frame {n}");
                let records = u32::from_le_bytes(self.array(&what)?);
                let raw_len = u32::from_le_bytes(self.array(&what)?);
                let lz4_len = u32::from_le_bytes(self.array(&what)?);
                let want: [u8; 32] = self.array(&what)?;
                // LZ4 expands at most 255-fold: a bigger raw length is damage (and would
                // make the decompression allocate it before the trailer is checked).
                if raw_len > MAX_FRAME || u64::from(raw_len) > u64::from(lz4_len) * 255 + 16 {
                    bail!(
                        "frame {n} (byte {at}) declares {raw_len} bytes from {lz4_len}: the file \
                         is damaged"
                    );
                }
                // Read through `take`, so a damaged length costs what the file holds, not
                // an allocation of that length.
                let mut lz4 = Vec::new();
                (&mut self.inp)
                    .take(u64::from(lz4_len))
                    .read_to_end(&mut lz4)
                    .with_context(|| format!("reading frame {n} at byte {at}"))?;
                self.pos += lz4.len() as u64;
                if lz4.len() != lz4_len as usize {
                    bail!(
                        "the file is truncated: it ends inside frame {n} (which starts at byte \
                         {at})"
                    );
                }
                if Sha256::digest(&lz4).as_slice() != want {
                    bail!(
                        "frame {n} (bytes {at}..{}) does not match its checksum: the file is \
                         damaged",
                        self.pos
                    );
                }
                let raw = lz4_flex::block::decompress(&lz4, raw_len as usize).map_err(|e| {
                    anyhow::anyhow!("frame {n} (byte {at}) does not decompress ({e})")
                })?;
                let out = parse_records(&raw, records)
                    .with_context(|| format!("frame {n} (byte {at})"))?;
                self.frames += 1;
                self.records += out.len() as u64;
                Ok(Some(out))
            }
            TRAILER => {
                let records = u64::from_le_bytes(self.array("the trailer")?);
                let frames = u64::from_le_bytes(self.array("the trailer")?);
                let digest = self.hash.clone().finalize();
                let mut want = [0u8; 32];
                self.read_exact(&mut want, "the trailer")?;
                let mut end = [0u8; 4];
                self.read_exact(&mut end, "the trailer")?;
                if digest.as_slice() != want || &end != TRAILER_MAGIC {
                    bail!(
                        "the file does not match the checksum in its trailer (byte {at}): its \
                         header or a frame header was changed"
                    );
                }
                if (records, frames) != (self.records, self.frames) {
                    bail!(
                        "the trailer counts {records} records in {frames} frames, the file holds \
                         {} in {}: the file is damaged",
                        self.records,
                        self.frames
                    );
                }
                let mut extra = [0u8; 1];
                if self.inp.read(&mut extra)? != 0 {
                    bail!(
                        "the file goes on after its trailer (byte {}): it is damaged or two files \
                         were joined",
                        self.pos
                    );
                }
                self.done = true;
                Ok(None)
            }
            other => bail!(
                "byte {at} holds {other:#04x} where frame {n} or the trailer should start: the \
                 file is damaged"
            ),
        }
    }
}

/// The records of one decompressed frame: exactly `count` of them, ending at its end.
fn parse_records(raw: &[u8], count: u32) -> anyhow::Result<Vec<Record>> {
    struct Cursor<'a>(&'a [u8]);
    impl<'a> Cursor<'a> {
        fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
            if self.0.len() < n {
                bail!("a record runs past the frame's end: the file is damaged");
            }
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            Ok(a)
        }
        fn array<const N: usize>(&mut self) -> anyhow::Result<[u8; N]> {
            let mut b = [0; N];
            b.copy_from_slice(self.take(N)?);
            Ok(b)
        }
    }
    let mut c = Cursor(raw);
    let mut out = Vec::with_capacity(count.min(1 << 16) as usize);
    for _ in 0..count {
        let n = u32::from_le_bytes(c.array()?) as usize;
        let suffix = c.take(n)?.to_vec();
        let e = i64::from_le_bytes(c.array()?);
        let n = u32::from_le_bytes(c.array()?) as usize;
        let payload = c.take(n)?.to_vec();
        out.push(Record {
            suffix,
            expires_at: (e >= 0).then_some(e),
            payload,
        });
    }
    if !c.0.is_empty() {
        bail!("the frame holds bytes after its {count} records: the file is damaged");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            version: VERSION,
            created_ms: 1_700_000_000_000,
            namespace: "auth".into(),
            head: "auth:".into(),
            redis_version: "7.0.15".into(),
        }
    }

    fn file(n: usize) -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), &header()).unwrap();
        for i in 0..n {
            let payload = vec![(i % 251) as u8; 300 + i % 700];
            w.push(
                format!("k:{i}").as_bytes(),
                (i % 2 == 0).then_some(i as i64),
                &payload,
            )
            .unwrap();
        }
        let (bytes, s) = w.finish().unwrap();
        assert_eq!(s.records, n as u64);
        assert_eq!(s.bytes, bytes.len() as u64);
        bytes
    }

    fn read_all(b: &[u8]) -> anyhow::Result<(Header, Vec<Record>)> {
        let mut r = Reader::open(b)?;
        let mut out = Vec::new();
        while let Some(f) = r.next_frame()? {
            out.extend(f);
        }
        Ok((r.header().clone(), out))
    }

    #[test]
    fn round_trip_over_several_frames() {
        let b = file(5000);
        let (h, recs) = read_all(&b).unwrap();
        assert_eq!(h, header());
        assert_eq!(recs.len(), 5000);
        assert_eq!(recs[7].suffix, b"k:7");
        assert_eq!(recs[7].expires_at, None);
        assert_eq!(recs[8].expires_at, Some(8));
        assert_eq!(recs[4999].payload.len(), 300 + 4999 % 700);
        let frames = {
            let mut r = Reader::open(b.as_slice()).unwrap();
            while r.next_frame().unwrap().is_some() {}
            r.frames()
        };
        assert!(frames > 1, "5000 records of ~650 bytes span frames");
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let b = file(40);
        // Every strict prefix fails (the step keeps the test quick; the ends are included).
        for len in (0..b.len()).step_by(7).chain([b.len() - 1, b.len() - 37]) {
            let e = read_all(&b[..len]).unwrap_err().to_string();
            assert!(
                e.contains("truncated") || e.contains("not a sharecache export"),
                "{len}: {e}"
            );
        }
        for i in (0..b.len()).step_by(5) {
            let mut c = b.clone();
            c[i] ^= 0x20;
            assert!(read_all(&c).is_err(), "a flipped byte {i} was accepted");
        }
        let mut longer = b.clone();
        longer.push(0);
        assert!(
            read_all(&longer)
                .unwrap_err()
                .to_string()
                .contains("after its trailer")
        );
    }

    #[test]
    fn a_damaged_frame_length_is_refused_without_allocating_it() {
        let b = file(3);
        // The header is 37 bytes here; the frame's raw_len is at 42..46, lz4_len at 46..50.
        assert_eq!(b[37], FRAME);
        let mut raw = b.clone();
        raw[42..46].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = read_all(&raw).unwrap_err().to_string();
        assert!(e.contains("declares"), "{e}");
        let mut lz4 = b.clone();
        lz4[46..50].copy_from_slice(&(MAX_FRAME - 1).to_le_bytes());
        let e = read_all(&lz4).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
    }

    #[test]
    fn a_newer_version_is_refused_by_name() {
        let mut b = file(3);
        b[4..6].copy_from_slice(&(VERSION + 1).to_le_bytes());
        let e = read_all(&b).unwrap_err().to_string();
        assert!(e.contains("version 2") && e.contains("newer"), "{e}");
    }
}
