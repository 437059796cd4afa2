//! Byte layout of a snapshot file: the file header and the frame header.
//!
//! `FORMAT.md` ("Snapshot file") describes every byte; the layout is repeated above
//! the offset constants below. Every integer is little-endian, written and read only
//! with `to_le_bytes` / `from_le_bytes`.

use std::mem::size_of;
use std::path::Path;

use crate::error::StorageError;
use crate::persister::Result;
use crate::types::SnapshotMeta;

// The file header, at offset 0 of every snapshot file:
//
// offset  size  field
//      0     8  magic         b"RKVSNAP\0"
//      8     4  version       u32, FORMAT_VERSION
//     12     4  flags         u32, FLAG_ZSTD_FRAMES must be set, every other bit 0
//     16     8  index         u64, snapshot index
//     24     8  term          u64, snapshot term
//     32     4  zstd_level    i32, the level the frames were compressed at
//     36     4  frame_bytes   u32, uncompressed bytes per frame (the last may be shorter)
//     40     8  payload_len   u64, uncompressed payload bytes
//     48     8  stored_len    u64, bytes after the header (frame headers + frames)
//     56     8  frame_count   u64, = ceil(payload_len / frame_bytes)
//     64     4  body_crc      u32, crc32 of bytes [0, 64) followed by bytes [72, end)
//     68     4  header_crc    u32, crc32 of bytes [0, 68)
//     72        frames follow, back to back
/// The magic bytes at offset 0.
pub(crate) const MAGIC: [u8; 8] = *b"RKVSNAP\0";
/// The only format version this code reads and writes.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Flag bit 0: every frame is an independent zstd frame. Always set in version 1.
pub(crate) const FLAG_ZSTD_FRAMES: u32 = 1;

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = OFF_MAGIC + MAGIC.len();
const OFF_FLAGS: usize = OFF_VERSION + size_of::<u32>();
const OFF_INDEX: usize = OFF_FLAGS + size_of::<u32>();
const OFF_TERM: usize = OFF_INDEX + size_of::<u64>();
const OFF_LEVEL: usize = OFF_TERM + size_of::<u64>();
const OFF_FRAME_BYTES: usize = OFF_LEVEL + size_of::<i32>();
const OFF_PAYLOAD_LEN: usize = OFF_FRAME_BYTES + size_of::<u32>();
const OFF_STORED_LEN: usize = OFF_PAYLOAD_LEN + size_of::<u64>();
const OFF_FRAME_COUNT: usize = OFF_STORED_LEN + size_of::<u64>();
/// Offset of `body_crc`; the bytes before it are the header part the body crc covers.
pub(crate) const OFF_BODY_CRC: usize = OFF_FRAME_COUNT + size_of::<u64>();
const OFF_HEADER_CRC: usize = OFF_BODY_CRC + size_of::<u32>();
/// Bytes in the file header.
pub(crate) const HEADER_LEN: usize = OFF_HEADER_CRC + size_of::<u32>();

const _: () = assert!(OFF_BODY_CRC == 64);
const _: () = assert!(HEADER_LEN == 72);

// The frame header, before each frame's compressed bytes:
//
// offset  size  field
//      0     4  uncompressed_len  u32, = frame_bytes except for the last frame
//      4     4  compressed_len    u32, bytes of the zstd frame that follows
//      8     4  frame_crc         u32, crc32 of bytes [0, 8) of this header followed
//                                 by the compressed bytes
//     12        the zstd frame (compressed_len bytes)
const FOFF_ULEN: usize = 0;
const FOFF_CLEN: usize = FOFF_ULEN + size_of::<u32>();
const FOFF_CRC: usize = FOFF_CLEN + size_of::<u32>();
/// Bytes in a frame header.
pub(crate) const FRAME_HEADER_LEN: usize = FOFF_CRC + size_of::<u32>();

const _: () = assert!(FRAME_HEADER_LEN == 12);

/// Smallest frame size a file may declare (the config's lower bound).
pub(crate) const MIN_FRAME_BYTES: u32 = 4 << 10;
/// Largest frame size a file may declare (the config's upper bound). A reader never
/// holds more than a few buffers of this size, whatever the length fields say.
pub(crate) const MAX_FRAME_BYTES: u32 = 64 << 20;

/// The zstd levels a file may declare (the config's range).
const LEVELS: std::ops::RangeInclusive<i32> = -7..=22;

/// Most compressed bytes zstd may produce for `uncompressed` input bytes.
pub(crate) fn compress_bound(uncompressed: usize) -> usize {
    zstd::zstd_safe::compress_bound(uncompressed)
}

/// The decoded file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) meta: SnapshotMeta,
    pub(crate) zstd_level: i32,
    pub(crate) frame_bytes: u32,
    pub(crate) payload_len: u64,
    pub(crate) stored_len: u64,
    pub(crate) frame_count: u64,
    pub(crate) body_crc: u32,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn i32_at(b: &[u8], off: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    i32::from_le_bytes(a)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// Frames needed for `payload_len` bytes at `frame_bytes` per frame.
pub(crate) fn frames_for(payload_len: u64, frame_bytes: u32) -> u64 {
    payload_len.div_ceil(u64::from(frame_bytes))
}

/// Uncompressed length frame `index` must have.
pub(crate) fn frame_ulen(header: &Header, index: u64) -> u32 {
    debug_assert!(index < header.frame_count);
    let fb = u64::from(header.frame_bytes);
    let rest = header.payload_len - index * fb;
    // `rest` is in 1..=payload_len and the minimum with a u32 fits a u32.
    rest.min(fb) as u32
}

impl Header {
    /// Encodes the header, computing `header_crc`. `body_crc` must already be set.
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[OFF_MAGIC..OFF_VERSION].copy_from_slice(&MAGIC);
        b[OFF_VERSION..OFF_FLAGS].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[OFF_FLAGS..OFF_INDEX].copy_from_slice(&FLAG_ZSTD_FRAMES.to_le_bytes());
        b[OFF_INDEX..OFF_TERM].copy_from_slice(&self.meta.index.to_le_bytes());
        b[OFF_TERM..OFF_LEVEL].copy_from_slice(&self.meta.term.to_le_bytes());
        b[OFF_LEVEL..OFF_FRAME_BYTES].copy_from_slice(&self.zstd_level.to_le_bytes());
        b[OFF_FRAME_BYTES..OFF_PAYLOAD_LEN].copy_from_slice(&self.frame_bytes.to_le_bytes());
        b[OFF_PAYLOAD_LEN..OFF_STORED_LEN].copy_from_slice(&self.payload_len.to_le_bytes());
        b[OFF_STORED_LEN..OFF_FRAME_COUNT].copy_from_slice(&self.stored_len.to_le_bytes());
        b[OFF_FRAME_COUNT..OFF_BODY_CRC].copy_from_slice(&self.frame_count.to_le_bytes());
        b[OFF_BODY_CRC..OFF_HEADER_CRC].copy_from_slice(&self.body_crc.to_le_bytes());
        let crc = crc32fast::hash(&b[..OFF_HEADER_CRC]);
        b[OFF_HEADER_CRC..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// A crc32 state over the header bytes the body crc covers (`[0, 64)`), to which the
    /// frames are then added.
    pub(crate) fn body_crc_start(&self) -> crc32fast::Hasher {
        let mut h = crc32fast::Hasher::new();
        h.update(&self.encode()[..OFF_BODY_CRC]);
        h
    }

    /// Decodes and checks the header of a file of `file_len` bytes whose first bytes are
    /// `bytes`. Every field is checked (magic, version, header crc, flags, ranges, and the
    /// lengths against each other and against the file size) before any is trusted.
    pub(crate) fn decode(bytes: &[u8], file_len: u64, path: &Path) -> Result<Header> {
        let bad = |offset: usize, detail: String| {
            StorageError::corrupt("snapshot header", path, offset as u64, detail)
        };
        if file_len < HEADER_LEN as u64 || bytes.len() < HEADER_LEN {
            return Err(bad(
                0,
                format!("file is {file_len} bytes, shorter than the {HEADER_LEN}-byte header"),
            ));
        }
        let b = &bytes[..HEADER_LEN];
        if b[OFF_MAGIC..OFF_VERSION] != MAGIC {
            return Err(bad(
                OFF_MAGIC,
                format!("bad magic {:02x?}, expected {:02x?}", &b[..8], MAGIC),
            ));
        }
        let version = u32_at(b, OFF_VERSION);
        if version != FORMAT_VERSION {
            return Err(bad(
                OFF_VERSION,
                format!("unknown format version {version} (this build reads {FORMAT_VERSION})"),
            ));
        }
        let stored_crc = u32_at(b, OFF_HEADER_CRC);
        let actual_crc = crc32fast::hash(&b[..OFF_HEADER_CRC]);
        if stored_crc != actual_crc {
            return Err(bad(
                OFF_HEADER_CRC,
                format!(
                    "header checksum mismatch: stored {stored_crc:#010x}, computed {actual_crc:#010x}"
                ),
            ));
        }
        let flags = u32_at(b, OFF_FLAGS);
        if flags != FLAG_ZSTD_FRAMES {
            return Err(bad(OFF_FLAGS, format!("unknown flags {flags:#x}")));
        }
        let h = Header {
            meta: SnapshotMeta {
                index: u64_at(b, OFF_INDEX),
                term: u64_at(b, OFF_TERM),
            },
            zstd_level: i32_at(b, OFF_LEVEL),
            frame_bytes: u32_at(b, OFF_FRAME_BYTES),
            payload_len: u64_at(b, OFF_PAYLOAD_LEN),
            stored_len: u64_at(b, OFF_STORED_LEN),
            frame_count: u64_at(b, OFF_FRAME_COUNT),
            body_crc: u32_at(b, OFF_BODY_CRC),
        };
        if !LEVELS.contains(&h.zstd_level) {
            return Err(bad(
                OFF_LEVEL,
                format!("zstd level {} is outside -7..=22", h.zstd_level),
            ));
        }
        if !(MIN_FRAME_BYTES..=MAX_FRAME_BYTES).contains(&h.frame_bytes) {
            return Err(bad(
                OFF_FRAME_BYTES,
                format!(
                    "frame size {} is outside {MIN_FRAME_BYTES}..={MAX_FRAME_BYTES}",
                    h.frame_bytes
                ),
            ));
        }
        let expect_frames = frames_for(h.payload_len, h.frame_bytes);
        if h.frame_count != expect_frames {
            return Err(bad(
                OFF_FRAME_COUNT,
                format!(
                    "frame count {} does not match {} payload bytes in frames of {} (expected {expect_frames})",
                    h.frame_count, h.payload_len, h.frame_bytes
                ),
            ));
        }
        let actual_stored = file_len - HEADER_LEN as u64;
        if h.stored_len != actual_stored {
            return Err(bad(
                OFF_STORED_LEN,
                format!(
                    "header says {} bytes follow it, the file has {actual_stored}",
                    h.stored_len
                ),
            ));
        }
        // Each frame needs its header and at least one compressed byte.
        let min_stored = h.frame_count.saturating_mul(FRAME_HEADER_LEN as u64 + 1);
        if h.stored_len < min_stored {
            return Err(bad(
                OFF_STORED_LEN,
                format!(
                    "{} stored bytes cannot hold {} frames",
                    h.stored_len, h.frame_count
                ),
            ));
        }
        Ok(h)
    }
}

/// The decoded header of one frame, with where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameRef {
    /// Position of the frame in the file, from 0.
    pub(crate) index: u64,
    /// File offset of the frame header.
    pub(crate) offset: u64,
    pub(crate) ulen: u32,
    pub(crate) clen: u32,
    pub(crate) crc: u32,
}

impl FrameRef {
    /// File offset of the compressed bytes.
    pub(crate) fn data_offset(&self) -> u64 {
        self.offset + FRAME_HEADER_LEN as u64
    }

    /// File offset just past this frame.
    pub(crate) fn end(&self) -> u64 {
        self.data_offset() + u64::from(self.clen)
    }
}

/// Encodes a frame header.
pub(crate) fn encode_frame_header(ulen: u32, clen: u32, crc: u32) -> [u8; FRAME_HEADER_LEN] {
    let mut b = [0u8; FRAME_HEADER_LEN];
    b[FOFF_ULEN..FOFF_CLEN].copy_from_slice(&ulen.to_le_bytes());
    b[FOFF_CLEN..FOFF_CRC].copy_from_slice(&clen.to_le_bytes());
    b[FOFF_CRC..FRAME_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Bytes of the frame header the frame crc covers (the two lengths).
pub(crate) const FRAME_CRC_PREFIX: usize = FOFF_CRC;

/// Parses and bounds-checks the header of frame `index` at `offset` in `file` (the whole
/// file's bytes). Nothing here allocates; a lying length is an error naming the offset.
pub(crate) fn parse_frame_header(
    file: &[u8],
    header: &Header,
    index: u64,
    offset: u64,
    path: &Path,
) -> Result<FrameRef> {
    let bad = |field: u64, detail: String| {
        StorageError::corrupt("snapshot frame header", path, offset + field, detail)
    };
    let file_len = file.len() as u64;
    if index >= header.frame_count {
        return Err(bad(
            0,
            format!(
                "frame {index} is past the frame count {}",
                header.frame_count
            ),
        ));
    }
    if offset > file_len || file_len - offset < FRAME_HEADER_LEN as u64 {
        return Err(bad(
            0,
            format!("frame {index} header runs past the end of the {file_len}-byte file"),
        ));
    }
    // In range: offset + 12 <= file.len(), which is a usize.
    let start = offset as usize;
    let b = &file[start..start + FRAME_HEADER_LEN];
    let ulen = u32_at(b, FOFF_ULEN);
    let clen = u32_at(b, FOFF_CLEN);
    let crc = u32_at(b, FOFF_CRC);
    let want = frame_ulen(header, index);
    if ulen != want {
        return Err(bad(
            FOFF_ULEN as u64,
            format!("frame {index} claims {ulen} uncompressed bytes, expected {want}"),
        ));
    }
    let bound = compress_bound(ulen as usize) as u64;
    if clen == 0 || u64::from(clen) > bound {
        return Err(bad(
            FOFF_CLEN as u64,
            format!("frame {index} claims {clen} compressed bytes, outside 1..={bound}"),
        ));
    }
    let data_end = offset + FRAME_HEADER_LEN as u64 + u64::from(clen);
    if data_end > file_len {
        return Err(bad(
            FOFF_CLEN as u64,
            format!(
                "frame {index} claims {clen} compressed bytes, past the end of the {file_len}-byte file"
            ),
        ));
    }
    Ok(FrameRef {
        index,
        offset,
        ulen,
        clen,
        crc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            meta: SnapshotMeta { index: 42, term: 7 },
            zstd_level: 3,
            frame_bytes: 4096,
            payload_len: 10_000,
            stored_len: 3 * 13,
            frame_count: 3,
            body_crc: 0xdead_beef,
        }
    }

    fn file_len(h: &Header) -> u64 {
        HEADER_LEN as u64 + h.stored_len
    }

    #[test]
    fn header_round_trips() {
        let h = sample();
        let b = h.encode();
        assert_eq!(&b[..8], b"RKVSNAP\0");
        let d = Header::decode(&b, file_len(&h), Path::new("x")).expect("decode");
        assert_eq!(d, h);
    }

    #[test]
    fn every_single_bit_flip_in_the_header_is_rejected() {
        let h = sample();
        let b = h.encode();
        for bit in 0..HEADER_LEN * 8 {
            let mut c = b;
            c[bit / 8] ^= 1 << (bit % 8);
            let e = Header::decode(&c, file_len(&h), Path::new("snap.rks"))
                .expect_err("a flipped bit must be detected");
            let s = e.to_string();
            assert!(s.contains("snap.rks"), "{s}");
        }
    }

    #[test]
    fn lying_lengths_are_rejected_even_with_a_valid_crc() {
        let p = Path::new("f");
        let mut h = sample();
        h.frame_count = 4;
        assert!(Header::decode(&h.encode(), HEADER_LEN as u64 + h.stored_len, p).is_err());
        let h = sample();
        // The file is shorter than the header says.
        let e = Header::decode(&h.encode(), file_len(&h) - 1, p).expect_err("short");
        assert!(e.to_string().contains("offset 48"), "{e}");
        let mut h = sample();
        h.frame_bytes = u32::MAX;
        assert!(Header::decode(&h.encode(), file_len(&h), p).is_err());
        let mut h = sample();
        h.payload_len = u64::MAX;
        h.frame_count = frames_for(u64::MAX, h.frame_bytes);
        assert!(Header::decode(&h.encode(), file_len(&h), p).is_err());
        let e = Header::decode(&[0u8; 10], 10, p).expect_err("short file");
        assert!(e.to_string().contains("shorter"), "{e}");
    }

    #[test]
    fn unknown_version_is_named() {
        let mut b = sample().encode();
        b[8..12].copy_from_slice(&2u32.to_le_bytes());
        let e = Header::decode(&b, file_len(&sample()), Path::new("f")).expect_err("v2");
        assert!(e.to_string().contains("unknown format version 2"), "{e}");
    }

    #[test]
    fn frame_header_garbage_is_an_error_not_a_panic() {
        let h = sample();
        let len = file_len(&h) as usize;
        let mut file = vec![0u8; len];
        let p = Path::new("f");
        // Deterministic pseudo-random garbage at every frame header position.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..2000u64 {
            for byte in file.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *byte = x as u8;
            }
            let offset = round % (len as u64 + 4);
            let _ = parse_frame_header(&file, &h, round % 4, offset, p);
        }
        // A header that fits exactly is accepted; a one-byte-too-long one is not.
        let mut file = vec![0u8; HEADER_LEN + FRAME_HEADER_LEN + 5];
        file[HEADER_LEN..HEADER_LEN + FRAME_HEADER_LEN]
            .copy_from_slice(&encode_frame_header(4096, 5, 0));
        let f = parse_frame_header(&file, &h, 0, HEADER_LEN as u64, p).expect("fits");
        assert_eq!(f.end(), file.len() as u64);
        file[HEADER_LEN..HEADER_LEN + FRAME_HEADER_LEN]
            .copy_from_slice(&encode_frame_header(4096, 6, 0));
        let e = parse_frame_header(&file, &h, 0, HEADER_LEN as u64, p).expect_err("too long");
        assert!(
            e.to_string()
                .contains(&format!("offset {}", HEADER_LEN + 4)),
            "{e}"
        );
        // A wrong uncompressed length for the frame's position.
        file[HEADER_LEN..HEADER_LEN + FRAME_HEADER_LEN]
            .copy_from_slice(&encode_frame_header(4095, 5, 0));
        assert!(parse_frame_header(&file, &h, 0, HEADER_LEN as u64, p).is_err());
        // The last frame holds the remainder: 10_000 - 2 * 4096.
        assert_eq!(frame_ulen(&h, 2), 1808);
    }
}
