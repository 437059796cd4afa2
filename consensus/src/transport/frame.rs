//! Length-prefixed, checksummed frames for Raft traffic over a byte stream (TCP).
//!
//! This module is pure: no IO, no threads. A transport writes the bytes produced by
//! [`encode_frame`] (or [`encode_message_frame`], [`encode_hello_frame`]) to its socket,
//! appends whatever it reads to a buffer and calls [`FrameDecoder::decode`] (on a
//! [`BytesMut`]) or [`FrameDecoder::decode_slice`] (on a `&[u8]`) until it returns
//! `Ok(None)`, meaning "need more bytes".
//!
//! The byte layout is documented in `storage/FORMAT.md`, section "Raft wire frames (TCP
//! transport)", and repeated above the offset constants below.
//!
//! # Errors are final
//!
//! Any [`FrameError`] from a decoder means the stream has lost its framing (or is hostile):
//! the decoder latches the error and returns it again on every later call, and the
//! transport should close the connection. Every decoding error names the byte offset in
//! the stream (counted from the first byte the decoder was given) where the bad field
//! starts.
//!
//! # Memory
//!
//! The decoder never allocates on the strength of a length field: it checks the length
//! against [`FrameDecoder::max_frame_bytes`] as soon as the 4 length bytes are present,
//! before any payload is buffered, and it only slices (or, for
//! [`decode_slice`](FrameDecoder::decode_slice), copies) a payload once all of it is in the
//! caller's buffer.

use bytes::{Buf, Bytes, BytesMut};

use raftkv_storage::NodeId;

use crate::Message;
use crate::transport::wire;

// Frame layout (all integers little-endian):
//
// offset  size  field
//      0     4  len       u32 payload length (header excluded); 12 + len <= max_frame_bytes
//      4     1  version   FRAME_VERSION (1)
//      5     1  kind      1 = Message, 2 = SnapshotBegin, 3 = SnapshotChunk,
//                         4 = SnapshotEnd, 5 = Hello; 0 and 6..=255 reserved
//      6     2  flags     u16, must be 0 (reserved)
//      8     4  crc       crc32 (crc32fast) over bytes [0, 8) then the payload
//     12   len  payload

/// Offset of the payload length (u32 LE).
const LEN_OFFSET: usize = 0;
/// Offset of the format version (u8).
const VERSION_OFFSET: usize = LEN_OFFSET + size_of::<u32>();
/// Offset of the frame kind (u8).
const KIND_OFFSET: usize = VERSION_OFFSET + size_of::<u8>();
/// Offset of the reserved flags (u16 LE).
const FLAGS_OFFSET: usize = KIND_OFFSET + size_of::<u8>();
/// Offset of the crc32 (u32 LE).
const CRC_OFFSET: usize = FLAGS_OFFSET + size_of::<u16>();
/// Bytes of header before the payload.
pub const FRAME_HEADER_BYTES: usize = CRC_OFFSET + size_of::<u32>();

const _: () = assert!(VERSION_OFFSET == 4);
const _: () = assert!(KIND_OFFSET == 5);
const _: () = assert!(FLAGS_OFFSET == 6);
const _: () = assert!(CRC_OFFSET == 8);
const _: () = assert!(FRAME_HEADER_BYTES == 12);

/// The only frame format version this module reads and writes.
pub const FRAME_VERSION: u8 = 1;

/// Default [`FrameDecoder::max_frame_bytes`]: 16 MiB, header included.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 << 20;

// Hello payload layout (all integers little-endian):
//
// offset  size  field
//      0     4  magic       HELLO_MAGIC, b"RKVH"
//      4     8  cluster_id  u64
//     12     8  node_id     u64, the sender's NodeId

/// Magic bytes at the start of a [`FrameKind::Hello`] payload.
pub const HELLO_MAGIC: [u8; 4] = *b"RKVH";
const HELLO_CLUSTER_OFFSET: usize = HELLO_MAGIC.len();
const HELLO_NODE_OFFSET: usize = HELLO_CLUSTER_OFFSET + size_of::<u64>();
/// Size of a [`FrameKind::Hello`] payload.
pub const HELLO_PAYLOAD_BYTES: usize = HELLO_NODE_OFFSET + size_of::<u64>();
const _: () = assert!(HELLO_PAYLOAD_BYTES == 20);

/// What a frame carries. Values 0 and 6..=255 are reserved and rejected by the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// One Raft [`Message`], encoded by [`wire::encode_message`].
    Message = 1,
    /// Opens a snapshot stream. The payload layout belongs to the snapshot stream layer;
    /// this module checks only length and crc.
    SnapshotBegin = 2,
    /// One chunk of snapshot payload bytes (opaque here).
    SnapshotChunk = 3,
    /// Closes a snapshot stream (payload opaque here).
    SnapshotEnd = 4,
    /// The first frame on a connection: magic, cluster id and node id, see [`Hello`].
    Hello = 5,
}

impl FrameKind {
    /// Every kind this version defines.
    pub const ALL: [FrameKind; 5] = [
        FrameKind::Message,
        FrameKind::SnapshotBegin,
        FrameKind::SnapshotChunk,
        FrameKind::SnapshotEnd,
        FrameKind::Hello,
    ];

    /// The kind with wire value `value`, or `None` for a reserved value.
    pub fn from_u8(value: u8) -> Option<FrameKind> {
        match value {
            1 => Some(FrameKind::Message),
            2 => Some(FrameKind::SnapshotBegin),
            3 => Some(FrameKind::SnapshotChunk),
            4 => Some(FrameKind::SnapshotEnd),
            5 => Some(FrameKind::Hello),
            _ => None,
        }
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the payload is.
    pub kind: FrameKind,
    /// The payload bytes (crc already verified).
    pub payload: Bytes,
    /// Byte offset of the frame's first header byte in the stream.
    pub offset: u64,
}

/// The handshake a connection opens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// Identifies the cluster; a peer from another cluster is refused.
    pub cluster_id: u64,
    /// The sending node.
    pub node_id: NodeId,
}

/// Why a frame could not be encoded or decoded. Offsets are stream byte offsets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The version byte is not [`FRAME_VERSION`].
    #[error(
        "frame at stream offset {frame_offset}: unknown format version {version} at byte {offset}"
    )]
    UnknownVersion {
        /// The version read.
        version: u8,
        /// Start of the frame.
        frame_offset: u64,
        /// Offset of the version byte.
        offset: u64,
    },
    /// The kind byte is reserved.
    #[error("frame at stream offset {frame_offset}: unknown frame kind {kind} at byte {offset}")]
    UnknownKind {
        /// The kind read.
        kind: u8,
        /// Start of the frame.
        frame_offset: u64,
        /// Offset of the kind byte.
        offset: u64,
    },
    /// The reserved flags are not zero.
    #[error(
        "frame at stream offset {frame_offset}: reserved flags {flags:#06x} are not zero at byte {offset}"
    )]
    ReservedFlags {
        /// The flags read.
        flags: u16,
        /// Start of the frame.
        frame_offset: u64,
        /// Offset of the flags field.
        offset: u64,
    },
    /// The length field claims a frame larger than the decoder's limit.
    #[error(
        "frame at stream offset {offset}: length field claims {frame_bytes} frame bytes, over the limit of {limit}"
    )]
    TooLarge {
        /// Header plus claimed payload.
        frame_bytes: u64,
        /// The decoder's `max_frame_bytes`.
        limit: usize,
        /// Offset of the length field (the start of the frame).
        offset: u64,
    },
    /// The stored crc does not match the header and payload.
    #[error(
        "frame at stream offset {frame_offset}: crc mismatch at byte {offset} (stored {stored:#010x}, computed {computed:#010x}, payload {len} bytes)"
    )]
    Checksum {
        /// The crc in the frame.
        stored: u32,
        /// The crc of the bytes received.
        computed: u32,
        /// Payload length.
        len: u32,
        /// Start of the frame.
        frame_offset: u64,
        /// Offset of the crc field.
        offset: u64,
    },
    /// A frame to encode would exceed a limit (`u32` payload length or `max_frame_bytes`).
    #[error(
        "cannot encode a {kind:?} frame: {frame_bytes} frame bytes exceed the limit of {limit}"
    )]
    EncodeTooLarge {
        /// The frame's kind.
        kind: FrameKind,
        /// Header plus payload.
        frame_bytes: u64,
        /// The limit exceeded.
        limit: u64,
    },
    /// A payload helper was given a frame of another kind.
    #[error("frame at stream offset {offset}: expected a {expected:?} frame, got {actual:?}")]
    WrongKind {
        /// The kind the helper decodes.
        expected: FrameKind,
        /// The frame's kind.
        actual: FrameKind,
        /// Start of the frame.
        offset: u64,
    },
    /// A payload passed its crc but does not decode as its kind.
    #[error("{kind:?} frame at stream offset {offset}: bad payload: {detail}")]
    BadPayload {
        /// The frame's kind.
        kind: FrameKind,
        /// Start of the frame.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// A message could not be encoded.
    #[error("cannot encode a message frame: {detail}")]
    Encode {
        /// The codec's error.
        detail: String,
    },
}

fn frame_crc(header: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[..CRC_OFFSET]);
    hasher.update(payload);
    hasher.finalize()
}

/// Appends one frame of `kind` carrying `payload` to `out`.
///
/// Fails, leaving `out` unchanged, only if the payload length does not fit in the `u32`
/// length field. Keeping frames within the receiver's
/// [`max_frame_bytes`](FrameDecoder::max_frame_bytes) is the caller's job; use
/// [`encode_frame_limited`] to check it here.
pub fn encode_frame(kind: FrameKind, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    let len = u32::try_from(payload.len()).map_err(|_| FrameError::EncodeTooLarge {
        kind,
        frame_bytes: (payload.len() as u64).saturating_add(FRAME_HEADER_BYTES as u64),
        limit: u64::from(u32::MAX),
    })?;
    let mut header = [0u8; FRAME_HEADER_BYTES];
    header[LEN_OFFSET..VERSION_OFFSET].copy_from_slice(&len.to_le_bytes());
    header[VERSION_OFFSET] = FRAME_VERSION;
    header[KIND_OFFSET] = kind.as_u8();
    header[FLAGS_OFFSET..CRC_OFFSET].copy_from_slice(&0u16.to_le_bytes());
    let crc = frame_crc(&header, payload);
    header[CRC_OFFSET..FRAME_HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());
    out.reserve(FRAME_HEADER_BYTES + payload.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    Ok(())
}

/// Like [`encode_frame`], but also refuses a frame (header included) over
/// `max_frame_bytes`, so that it is never sent to a peer that would reject it.
pub fn encode_frame_limited(
    kind: FrameKind,
    payload: &[u8],
    max_frame_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let frame_bytes = (payload.len() as u64).saturating_add(FRAME_HEADER_BYTES as u64);
    if frame_bytes > max_frame_bytes as u64 {
        return Err(FrameError::EncodeTooLarge {
            kind,
            frame_bytes,
            limit: max_frame_bytes as u64,
        });
    }
    encode_frame(kind, payload, out)
}

/// Appends a [`FrameKind::Message`] frame carrying `msg` (encoded by
/// [`wire::encode_message`]) to `out`, refusing a frame over `max_frame_bytes`.
pub fn encode_message_frame(
    msg: &Message,
    max_frame_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let payload = wire::encode_message(msg).map_err(|e| FrameError::Encode {
        detail: e.to_string(),
    })?;
    encode_frame_limited(FrameKind::Message, &payload, max_frame_bytes, out)
}

/// Decodes the [`Message`] in a [`FrameKind::Message`] frame with
/// [`wire::decode_message`], bounded by the payload's (already limited) length.
pub fn decode_message_frame(frame: &Frame) -> Result<Message, FrameError> {
    expect_kind(frame, FrameKind::Message)?;
    wire::decode_message(&frame.payload, frame.payload.len()).map_err(|e| FrameError::BadPayload {
        kind: FrameKind::Message,
        offset: frame.offset,
        detail: e.to_string(),
    })
}

/// Appends a [`FrameKind::Hello`] frame to `out`.
pub fn encode_hello_frame(hello: &Hello, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let mut payload = [0u8; HELLO_PAYLOAD_BYTES];
    payload[..HELLO_CLUSTER_OFFSET].copy_from_slice(&HELLO_MAGIC);
    payload[HELLO_CLUSTER_OFFSET..HELLO_NODE_OFFSET]
        .copy_from_slice(&hello.cluster_id.to_le_bytes());
    payload[HELLO_NODE_OFFSET..HELLO_PAYLOAD_BYTES].copy_from_slice(&hello.node_id.to_le_bytes());
    encode_frame(FrameKind::Hello, &payload, out)
}

/// Decodes the [`Hello`] in a [`FrameKind::Hello`] frame: exactly
/// [`HELLO_PAYLOAD_BYTES`] bytes starting with [`HELLO_MAGIC`].
pub fn decode_hello_frame(frame: &Frame) -> Result<Hello, FrameError> {
    expect_kind(frame, FrameKind::Hello)?;
    let bad = |detail: String| FrameError::BadPayload {
        kind: FrameKind::Hello,
        offset: frame.offset,
        detail,
    };
    let p: &[u8] = &frame.payload;
    let p: &[u8; HELLO_PAYLOAD_BYTES] = p.try_into().map_err(|_| {
        bad(format!(
            "payload is {} bytes, expected {HELLO_PAYLOAD_BYTES}",
            p.len()
        ))
    })?;
    if p[..HELLO_CLUSTER_OFFSET] != HELLO_MAGIC {
        return Err(bad(format!(
            "magic {:02x?} at payload byte 0 is not {HELLO_MAGIC:02x?}",
            &p[..HELLO_CLUSTER_OFFSET]
        )));
    }
    let mut cluster = [0u8; 8];
    cluster.copy_from_slice(&p[HELLO_CLUSTER_OFFSET..HELLO_NODE_OFFSET]);
    let mut node = [0u8; 8];
    node.copy_from_slice(&p[HELLO_NODE_OFFSET..HELLO_PAYLOAD_BYTES]);
    Ok(Hello {
        cluster_id: u64::from_le_bytes(cluster),
        node_id: u64::from_le_bytes(node),
    })
}

fn expect_kind(frame: &Frame, expected: FrameKind) -> Result<(), FrameError> {
    if frame.kind != expected {
        return Err(FrameError::WrongKind {
            expected,
            actual: frame.kind,
            offset: frame.offset,
        });
    }
    Ok(())
}

/// A validated header, payload not yet checked.
struct Header {
    kind: FrameKind,
    len: usize,
    crc: u32,
}

/// Decodes frames incrementally from a byte stream.
///
/// Feed it the unconsumed bytes of the stream, in order, every time more arrive. It
/// tracks the stream offset of the first unconsumed byte (for error messages) and latches
/// the first error.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_bytes: usize,
    stream_offset: u64,
    failed: Option<FrameError>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

impl FrameDecoder {
    /// A decoder that rejects frames (header included) over `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            max_frame_bytes,
            stream_offset: 0,
            failed: None,
        }
    }

    /// The largest frame, header included, this decoder accepts.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// Stream offset of the first byte not yet consumed.
    pub fn stream_offset(&self) -> u64 {
        self.stream_offset
    }

    /// Decodes the next frame from the front of `buf`, which must hold the stream's
    /// unconsumed bytes.
    ///
    /// * `Ok(Some((frame, consumed)))`: a whole valid frame; the caller drops the first
    ///   `consumed` bytes (`consumed <= buf.len()`) before the next call.
    /// * `Ok(None)`: `buf` holds a valid prefix of a frame (possibly empty); call again
    ///   with more bytes. Nothing was consumed.
    /// * `Err(_)`: the stream is broken; this and every later call return the same error.
    ///
    /// Header fields are checked as soon as their bytes are present, so an oversized
    /// length is rejected with only its 4 bytes received. The payload is copied into
    /// the returned [`Frame`] only once all of it is in `buf` and its crc matches.
    pub fn decode_slice(&mut self, buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
        let Some(header) = self.check_header(buf)? else {
            return Ok(None);
        };
        let Some(payload) = buf.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + header.len) else {
            return Ok(None);
        };
        self.check_crc(buf, &header, payload)?;
        let consumed = FRAME_HEADER_BYTES + header.len;
        Ok(Some((
            self.finish(header.kind, Bytes::copy_from_slice(payload), consumed),
            consumed,
        )))
    }

    /// Like [`decode_slice`](Self::decode_slice), but consumes the frame's bytes from
    /// `buf` itself and hands out the payload without copying. On `Ok(None)` and on
    /// errors `buf` is left unchanged.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(header) = self.check_header(buf)? else {
            return Ok(None);
        };
        let consumed = FRAME_HEADER_BYTES + header.len;
        let Some(payload) = buf.get(FRAME_HEADER_BYTES..consumed) else {
            return Ok(None);
        };
        self.check_crc(buf, &header, payload)?;
        buf.advance(FRAME_HEADER_BYTES);
        let payload = buf.split_to(header.len).freeze();
        Ok(Some(self.finish(header.kind, payload, consumed)))
    }

    fn finish(&mut self, kind: FrameKind, payload: Bytes, consumed: usize) -> Frame {
        let frame = Frame {
            kind,
            payload,
            offset: self.stream_offset,
        };
        self.stream_offset = self.stream_offset.saturating_add(consumed as u64);
        frame
    }

    fn fail(&mut self, error: FrameError) -> FrameError {
        self.failed = Some(error.clone());
        error
    }

    /// Checks every header field present in `buf`; `Ok(None)` if the header is incomplete.
    fn check_header(&mut self, buf: &[u8]) -> Result<Option<Header>, FrameError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let at = |offset: usize| self.stream_offset.saturating_add(offset as u64);
        let frame_offset = self.stream_offset;

        let Some(len_bytes) = buf.get(LEN_OFFSET..VERSION_OFFSET) else {
            return Ok(None);
        };
        let mut len = [0u8; 4];
        len.copy_from_slice(len_bytes);
        let len = u32::from_le_bytes(len);
        let frame_bytes = u64::from(len) + FRAME_HEADER_BYTES as u64;
        if frame_bytes > self.max_frame_bytes as u64 {
            return Err(self.fail(FrameError::TooLarge {
                frame_bytes,
                limit: self.max_frame_bytes,
                offset: at(LEN_OFFSET),
            }));
        }
        // Fits in usize: it is at most max_frame_bytes.
        let len = len as usize;

        let Some(&version) = buf.get(VERSION_OFFSET) else {
            return Ok(None);
        };
        if version != FRAME_VERSION {
            return Err(self.fail(FrameError::UnknownVersion {
                version,
                frame_offset,
                offset: at(VERSION_OFFSET),
            }));
        }

        let Some(&kind_byte) = buf.get(KIND_OFFSET) else {
            return Ok(None);
        };
        let Some(kind) = FrameKind::from_u8(kind_byte) else {
            return Err(self.fail(FrameError::UnknownKind {
                kind: kind_byte,
                frame_offset,
                offset: at(KIND_OFFSET),
            }));
        };

        let Some(flags_bytes) = buf.get(FLAGS_OFFSET..CRC_OFFSET) else {
            return Ok(None);
        };
        let flags = u16::from_le_bytes([flags_bytes[0], flags_bytes[1]]);
        if flags != 0 {
            return Err(self.fail(FrameError::ReservedFlags {
                flags,
                frame_offset,
                offset: at(FLAGS_OFFSET),
            }));
        }

        let Some(crc_bytes) = buf.get(CRC_OFFSET..FRAME_HEADER_BYTES) else {
            return Ok(None);
        };
        let mut crc = [0u8; 4];
        crc.copy_from_slice(crc_bytes);
        Ok(Some(Header {
            kind,
            len,
            crc: u32::from_le_bytes(crc),
        }))
    }

    fn check_crc(&mut self, buf: &[u8], header: &Header, payload: &[u8]) -> Result<(), FrameError> {
        let computed = frame_crc(buf, payload);
        if computed != header.crc {
            return Err(self.fail(FrameError::Checksum {
                stored: header.crc,
                computed,
                len: header.len as u32,
                frame_offset: self.stream_offset,
                offset: self.stream_offset.saturating_add(CRC_OFFSET as u64),
            }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MessageBody;
    use proptest::prelude::*;
    use raftkv_storage::Entry;

    fn frame_bytes(kind: FrameKind, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(kind, payload, &mut out).expect("encode");
        out
    }

    /// Decodes every frame in `stream`, fed in pieces ending at `splits`, via both APIs.
    fn decode_split(
        stream: &[u8],
        splits: &[usize],
        limit: usize,
    ) -> Result<Vec<Frame>, FrameError> {
        let mut slice_dec = FrameDecoder::new(limit);
        let mut bytes_dec = FrameDecoder::new(limit);
        let mut pending: Vec<u8> = Vec::new();
        let mut bm = BytesMut::new();
        let mut from_slice = Vec::new();
        let mut from_bytes = Vec::new();
        let mut ends: Vec<usize> = splits
            .iter()
            .copied()
            .filter(|&s| s <= stream.len())
            .collect();
        ends.push(stream.len());
        ends.sort_unstable();
        let mut fed = 0;
        for end in ends {
            pending.extend_from_slice(&stream[fed..end]);
            bm.extend_from_slice(&stream[fed..end]);
            fed = end;
            while let Some((frame, used)) = slice_dec.decode_slice(&pending)? {
                assert!(used <= pending.len());
                pending.drain(..used);
                from_slice.push(frame);
            }
            while let Some(frame) = bytes_dec.decode(&mut bm)? {
                from_bytes.push(frame);
            }
        }
        assert_eq!(from_slice, from_bytes, "both decoder APIs agree");
        assert!(pending.is_empty() && bm.is_empty(), "no leftover bytes");
        Ok(from_slice)
    }

    fn sample_message() -> Message {
        Message {
            from: 1,
            to: 2,
            term: 7,
            body: MessageBody::AppendEntries {
                prev_log_index: 3,
                prev_log_term: 6,
                entries: vec![Entry {
                    index: 4,
                    term: 7,
                    data: b"hello".to_vec(),
                }],
                leader_commit: 3,
                read_ctx: 9,
            },
        }
    }

    #[test]
    fn header_layout_is_pinned() {
        let bytes = frame_bytes(FrameKind::Hello, b"abc");
        assert_eq!(&bytes[0..4], &3u32.to_le_bytes());
        assert_eq!(bytes[4], 1);
        assert_eq!(bytes[5], 5);
        assert_eq!(&bytes[6..8], &[0, 0]);
        let mut h = crc32fast::Hasher::new();
        h.update(&bytes[0..8]);
        h.update(b"abc");
        assert_eq!(&bytes[8..12], &h.finalize().to_le_bytes());
        assert_eq!(&bytes[12..], b"abc");
    }

    #[test]
    fn every_kind_round_trips_including_empty_payloads() {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (i, kind) in FrameKind::ALL.iter().enumerate() {
            for payload in [Vec::new(), vec![i as u8; 1 + i * 37]] {
                expected.push((*kind, payload.clone(), stream.len() as u64));
                encode_frame(*kind, &payload, &mut stream).expect("encode");
            }
        }
        let frames = decode_split(&stream, &[], DEFAULT_MAX_FRAME_BYTES).expect("decode");
        let got: Vec<_> = frames
            .into_iter()
            .map(|f| (f.kind, f.payload.to_vec(), f.offset))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn message_and_hello_helpers_round_trip() {
        let msg = sample_message();
        let hello = Hello {
            cluster_id: 0xDEAD_BEEF_0000_0001,
            node_id: 42,
        };
        let mut out = Vec::new();
        encode_hello_frame(&hello, &mut out).expect("hello");
        encode_message_frame(&msg, DEFAULT_MAX_FRAME_BYTES, &mut out).expect("message");
        let frames = decode_split(&out, &[], DEFAULT_MAX_FRAME_BYTES).expect("decode");
        assert_eq!(frames.len(), 2);
        assert_eq!(decode_hello_frame(&frames[0]), Ok(hello));
        assert_eq!(decode_message_frame(&frames[1]), Ok(msg));
        assert!(matches!(
            decode_message_frame(&frames[0]),
            Err(FrameError::WrongKind {
                expected: FrameKind::Message,
                actual: FrameKind::Hello,
                offset: 0
            })
        ));
    }

    #[test]
    fn message_frame_over_the_limit_is_not_encoded() {
        let msg = sample_message();
        let mut out = Vec::new();
        let err =
            encode_message_frame(&msg, FRAME_HEADER_BYTES + 4, &mut out).expect_err("too big");
        assert!(
            matches!(
                err,
                FrameError::EncodeTooLarge {
                    kind: FrameKind::Message,
                    ..
                }
            ),
            "{err}"
        );
        assert!(out.is_empty());
    }

    #[test]
    fn bad_hello_payloads_are_rejected() {
        let mut out = Vec::new();
        encode_frame(FrameKind::Hello, &[0u8; HELLO_PAYLOAD_BYTES], &mut out).expect("encode");
        encode_frame(FrameKind::Hello, b"RKVH", &mut out).expect("encode");
        let frames = decode_split(&out, &[], DEFAULT_MAX_FRAME_BYTES).expect("decode");
        let e0 = decode_hello_frame(&frames[0]).expect_err("bad magic");
        assert!(e0.to_string().contains("magic"), "{e0}");
        let e1 = decode_hello_frame(&frames[1]).expect_err("short");
        assert!(
            matches!(
                e1,
                FrameError::BadPayload {
                    kind: FrameKind::Hello,
                    offset: 32,
                    ..
                }
            ),
            "{e1}"
        );
    }

    #[test]
    fn every_split_point_yields_the_same_frames() {
        let mut stream = Vec::new();
        encode_frame(FrameKind::Message, b"first payload", &mut stream).expect("encode");
        encode_frame(FrameKind::SnapshotEnd, b"", &mut stream).expect("encode");
        encode_frame(FrameKind::SnapshotChunk, &[7u8; 40], &mut stream).expect("encode");
        let whole = decode_split(&stream, &[], DEFAULT_MAX_FRAME_BYTES).expect("decode");
        assert_eq!(whole.len(), 3);
        for a in 0..=stream.len() {
            // One split, and byte-by-byte feeding from `a` on.
            assert_eq!(
                decode_split(&stream, &[a], DEFAULT_MAX_FRAME_BYTES),
                Ok(whole.clone())
            );
        }
        let every: Vec<usize> = (0..=stream.len()).collect();
        assert_eq!(
            decode_split(&stream, &every, DEFAULT_MAX_FRAME_BYTES),
            Ok(whole)
        );
        // A strict prefix is never a frame and never an error.
        let first_len = FRAME_HEADER_BYTES + b"first payload".len();
        for end in 0..first_len {
            let mut dec = FrameDecoder::default();
            assert_eq!(
                dec.decode_slice(&stream[..end]),
                Ok(None),
                "prefix of {end} bytes"
            );
            assert_eq!(dec.stream_offset(), 0);
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut good = Vec::new();
        encode_frame(FrameKind::Hello, b"payload!", &mut good).expect("encode");
        let prefix = frame_bytes(FrameKind::Message, b"ok");
        for byte in 0..good.len() {
            for bit in 0..8 {
                let mut stream = prefix.clone();
                let mut bad = good.clone();
                bad[byte] ^= 1 << bit;
                stream.extend_from_slice(&bad);
                // Extra bytes so that a grown length field is not merely "incomplete".
                stream.extend_from_slice(&[0u8; 300]);
                let mut dec = FrameDecoder::new(FRAME_HEADER_BYTES + 256);
                let (first, used) = dec.decode_slice(&stream).expect("first").expect("frame");
                assert_eq!(first.payload.as_ref(), b"ok");
                let result = dec.decode_slice(&stream[used..]);
                assert!(
                    result.is_err(),
                    "flip of bit {bit} in byte {byte} went unnoticed: {result:?}"
                );
                let err = result.expect_err("checked");
                let base = prefix.len() as u64;
                let expected_offset = match byte {
                    0..=3 | 8.. => None,
                    4 => Some(base + 4),
                    5 => Some(base + 5),
                    _ => Some(base + 6),
                };
                match (&err, expected_offset) {
                    (FrameError::UnknownVersion { offset, .. }, Some(o)) => assert_eq!(*offset, o),
                    (FrameError::UnknownKind { offset, .. }, Some(o)) => assert_eq!(*offset, o),
                    (FrameError::ReservedFlags { offset, .. }, Some(o)) => assert_eq!(*offset, o),
                    (
                        FrameError::Checksum {
                            offset,
                            frame_offset,
                            ..
                        },
                        _,
                    ) => {
                        assert_eq!((*frame_offset, *offset), (base, base + 8));
                    }
                    (FrameError::TooLarge { offset, .. }, None) => assert_eq!(*offset, base),
                    other => panic!("byte {byte} bit {bit}: unexpected {other:?}"),
                }
                // Latched.
                assert_eq!(dec.decode_slice(&stream[used..]), Err(err));
            }
        }
    }

    #[test]
    fn oversized_length_is_rejected_from_the_length_field_alone() {
        let limit = 1024;
        for claimed in [limit as u32 - FRAME_HEADER_BYTES as u32 + 1, u32::MAX] {
            let mut dec = FrameDecoder::new(limit);
            let head = claimed.to_le_bytes();
            let err = dec.decode_slice(&head).expect_err("too large");
            assert_eq!(
                err,
                FrameError::TooLarge {
                    frame_bytes: u64::from(claimed) + 12,
                    limit,
                    offset: 0
                }
            );
            assert!(err.to_string().contains("stream offset 0"), "{err}");
            let mut bm = BytesMut::from(&head[..]);
            assert!(FrameDecoder::new(limit).decode(&mut bm).is_err());
            assert_eq!(bm.len(), 4, "nothing consumed on error");
        }
        // Exactly at the limit is accepted.
        let payload = vec![1u8; 1024 - FRAME_HEADER_BYTES];
        let stream = frame_bytes(FrameKind::SnapshotChunk, &payload);
        assert_eq!(decode_split(&stream, &[5], limit).map(|f| f.len()), Ok(1));
        // And the encoder refuses one byte more.
        let mut out = Vec::new();
        assert!(
            encode_frame_limited(FrameKind::SnapshotChunk, &[0u8; 1024 - 11], limit, &mut out)
                .is_err()
        );
        assert!(out.is_empty());
    }

    #[test]
    fn wrong_version_kind_and_flags_are_rejected_at_their_offsets() {
        let prefix = frame_bytes(FrameKind::Message, b"xyz"); // 15 bytes
        let cases: [(usize, u8, &str); 5] = [
            (4, 0, "version 0"),
            (4, 2, "version 2"),
            (5, 0, "kind 0"),
            (5, 6, "kind 6"),
            (7, 0x80, "flags"),
        ];
        for (index, value, what) in cases {
            let mut bad = frame_bytes(FrameKind::Message, b"abc");
            bad[index] = value;
            let mut stream = prefix.clone();
            stream.extend_from_slice(&bad[..=index]); // only up to the bad byte
            let mut dec = FrameDecoder::default();
            let (_, used) = dec.decode_slice(&stream).expect("ok").expect("first frame");
            let err = dec.decode_slice(&stream[used..]).expect_err(what);
            let msg = err.to_string();
            let field_offset = if index == 7 { 21 } else { 15 + index };
            assert!(
                msg.contains(&format!("at byte {field_offset}")),
                "{what}: {msg}"
            );
            assert!(msg.contains("stream offset 15"), "{what}: {msg}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_or_overconsume(
            data in proptest::collection::vec(any::<u8>(), 0..512),
            limit in 0usize..600,
        ) {
            let mut dec = FrameDecoder::new(limit);
            let mut rest: &[u8] = &data;
            let mut seen = 0u64;
            while let Ok(Some((frame, used))) = dec.decode_slice(rest) {
                prop_assert!(used <= rest.len());
                prop_assert!(used >= FRAME_HEADER_BYTES);
                prop_assert!(used <= limit);
                prop_assert_eq!(frame.offset, seen);
                let _ = decode_message_frame(&frame);
                let _ = decode_hello_frame(&frame);
                seen += used as u64;
                rest = &rest[used..];
            }
            let mut bm = BytesMut::from(&data[..]);
            let mut bdec = FrameDecoder::new(limit);
            while let Ok(Some(_)) = bdec.decode(&mut bm) {}
            prop_assert!(bm.len() <= data.len());
        }

        #[test]
        fn payload_sequences_round_trip_through_random_splits(
            frames in proptest::collection::vec(
                (0usize..5, proptest::collection::vec(any::<u8>(), 0..300)), 0..12),
            splits in proptest::collection::vec(0usize..4000, 0..20),
        ) {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for (k, payload) in &frames {
                let kind = FrameKind::ALL[*k];
                expected.push((kind, payload.clone(), stream.len() as u64));
                encode_frame(kind, payload, &mut stream).expect("encode");
            }
            let decoded = decode_split(&stream, &splits, DEFAULT_MAX_FRAME_BYTES);
            prop_assert!(decoded.is_ok(), "{:?}", decoded);
            let got: Vec<_> = decoded.expect("ok").into_iter()
                .map(|f| (f.kind, f.payload.to_vec(), f.offset)).collect();
            prop_assert_eq!(got, expected);
        }
    }
}
