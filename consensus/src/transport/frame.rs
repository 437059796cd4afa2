//! Length-prefixed, checksummed frames for Raft traffic over a byte stream (TCP).
//!
//! This module is pure: no IO, no threads. A transport writes the bytes produced by
//! [`encode_frame`] (or one of the typed helpers: [`encode_message_frame`],
//! [`encode_hello_frame`], the snapshot stream frames [`encode_snapshot_begin_frame`],
//! [`encode_snapshot_chunk_frame`], [`encode_snapshot_end_frame`],
//! [`encode_snapshot_ack_frame`], and the application frames [`encode_request_frame`],
//! [`encode_response_frame`]) to its socket,
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

use raftkv_storage::{NodeId, SnapshotMeta};

use crate::Message;
use crate::transport::wire;

// Frame layout (all integers little-endian):
//
// offset  size  field
//      0     4  len       u32 payload length (header excluded); 12 + len <= max_frame_bytes
//      4     1  version   FRAME_VERSION (2)
//      5     1  kind      1 = Message, 2 = SnapshotBegin, 3 = SnapshotChunk,
//                         4 = SnapshotEnd, 5 = Hello, 6 = SnapshotAck, 7 = Request,
//                         8 = Response, 9 = Challenge, 10 = Proof; 0 and
//                         11..=255 reserved
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
pub const FRAME_VERSION: u8 = 2;

/// Default [`FrameDecoder::max_frame_bytes`]: 16 MiB, header included.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 << 20;

// Hello payload layout (all integers little-endian):
//
// offset  size  field
//      0     4  magic       HELLO_MAGIC, b"RKVH"
//      4     8  cluster_id  u64
//     12     8  node_id     u64, the sender's NodeId
//     20     8  to          u64, the NodeId the sender means to reach
//     28    16  nonce       the sender's fresh random challenge to the acceptor

/// Magic bytes at the start of a [`FrameKind::Hello`] payload.
pub const HELLO_MAGIC: [u8; 4] = *b"RKVH";
/// Bytes of each side's handshake nonce.
pub const NONCE_BYTES: usize = 16;
const HELLO_CLUSTER_OFFSET: usize = HELLO_MAGIC.len();
const HELLO_NODE_OFFSET: usize = HELLO_CLUSTER_OFFSET + size_of::<u64>();
const HELLO_TO_OFFSET: usize = HELLO_NODE_OFFSET + size_of::<u64>();
const HELLO_NONCE_OFFSET: usize = HELLO_TO_OFFSET + size_of::<u64>();
/// Size of a [`FrameKind::Hello`] payload.
pub const HELLO_PAYLOAD_BYTES: usize = HELLO_NONCE_OFFSET + NONCE_BYTES;
const _: () = assert!(HELLO_PAYLOAD_BYTES == 44);

// SnapshotBegin payload layout (all integers little-endian):
//
// offset  size  field
//      0     8  from         u64, the sending leader's NodeId
//      8     8  term         u64, the leader's term when it decided to send
//     16     8  index        u64, the snapshot's last included index
//     24     8  snap_term    u64, the term of the entry at `index`
//     32     8  payload_len  u64, the payload bytes the chunks will carry in total

const BEGIN_FROM_OFFSET: usize = 0;
const BEGIN_TERM_OFFSET: usize = BEGIN_FROM_OFFSET + size_of::<u64>();
const BEGIN_INDEX_OFFSET: usize = BEGIN_TERM_OFFSET + size_of::<u64>();
const BEGIN_SNAP_TERM_OFFSET: usize = BEGIN_INDEX_OFFSET + size_of::<u64>();
const BEGIN_LEN_OFFSET: usize = BEGIN_SNAP_TERM_OFFSET + size_of::<u64>();
/// Size of a [`FrameKind::SnapshotBegin`] payload.
pub const SNAPSHOT_BEGIN_PAYLOAD_BYTES: usize = BEGIN_LEN_OFFSET + size_of::<u64>();
const _: () = assert!(SNAPSHOT_BEGIN_PAYLOAD_BYTES == 40);

// SnapshotEnd payload layout:
//
// offset  size  field
//      0     1  status  0 = complete, 1 = aborted by the sender; 2..=255 invalid
//      1     8  sent    u64, payload bytes carried by the stream's chunks
//      9     *  reason  UTF-8, why the sender aborted; empty when complete

const END_STATUS_OFFSET: usize = 0;
const END_SENT_OFFSET: usize = END_STATUS_OFFSET + size_of::<u8>();
const END_REASON_OFFSET: usize = END_SENT_OFFSET + size_of::<u64>();
const _: () = assert!(END_REASON_OFFSET == 9);
const END_COMPLETE: u8 = 0;
const END_ABORTED: u8 = 1;

// SnapshotAck payload layout:
//
// offset  size  field
//      0     1  outcome  0 = installed, 1 = rejected, 2 = receiver not running,
//                        3 = failed; 4..=255 invalid
//      1     *  detail   UTF-8; empty unless the outcome is 3 (failed)

const ACK_OUTCOME_OFFSET: usize = 0;
const ACK_DETAIL_OFFSET: usize = ACK_OUTCOME_OFFSET + size_of::<u8>();
const ACK_INSTALLED: u8 = 0;
const ACK_REJECTED: u8 = 1;
const ACK_NOT_RUNNING: u8 = 2;
const ACK_FAILED: u8 = 3;

// Request payload layout:
//
// offset  size  field
//      0     8  request_id  u64, chosen by the caller, echoed by the Response
//      8     *  body        opaque application bytes

const REQUEST_ID_OFFSET: usize = 0;
const REQUEST_BODY_OFFSET: usize = REQUEST_ID_OFFSET + size_of::<u64>();
/// Bytes of a [`FrameKind::Request`] payload before the body.
pub const REQUEST_HEADER_BYTES: usize = REQUEST_BODY_OFFSET;
const _: () = assert!(REQUEST_HEADER_BYTES == 8);

// Response payload layout:
//
// offset  size  field
//      0     8  request_id  u64, the id of the Request answered
//      8     1  status      0 = ok, 1 = error; 2..=255 invalid
//      9     *  body        ok: opaque reply bytes; error: UTF-8 message

const RESPONSE_ID_OFFSET: usize = 0;
const RESPONSE_STATUS_OFFSET: usize = RESPONSE_ID_OFFSET + size_of::<u64>();
const RESPONSE_BODY_OFFSET: usize = RESPONSE_STATUS_OFFSET + size_of::<u8>();
/// Bytes of a [`FrameKind::Response`] payload before the body.
pub const RESPONSE_HEADER_BYTES: usize = RESPONSE_BODY_OFFSET;
const _: () = assert!(RESPONSE_HEADER_BYTES == 9);
const RESPONSE_OK: u8 = 0;
const RESPONSE_ERROR: u8 = 1;

/// Longest reason, detail or error message the encoders write (longer ones are cut at
/// a character boundary), so that a status frame always fits any sane frame limit.
pub const MAX_REASON_BYTES: usize = 4096;

/// What a frame carries. Values 0 and 11..=255 are reserved and rejected by the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// One Raft [`Message`], encoded by [`wire::encode_message`].
    Message = 1,
    /// Opens a snapshot stream, see [`SnapshotBegin`].
    SnapshotBegin = 2,
    /// One chunk of snapshot payload bytes (the whole frame payload).
    SnapshotChunk = 3,
    /// Closes a snapshot stream, see [`SnapshotEnd`].
    SnapshotEnd = 4,
    /// The first frame on a connection: magic, cluster id and node id, see [`Hello`].
    Hello = 5,
    /// The receiver's outcome of a snapshot stream, see [`SnapshotAck`].
    SnapshotAck = 6,
    /// An application request, see [`Request`].
    Request = 7,
    /// The reply to an application request, see [`Response`].
    Response = 8,
    /// The acceptor's answer to a Hello: its nonce and its proof of the cluster secret
    /// (see `transport::tcp::handshake`).
    Challenge = 9,
    /// The dialer's proof of the cluster secret, the handshake's last frame.
    Proof = 10,
}

impl FrameKind {
    /// Every kind this version defines.
    pub const ALL: [FrameKind; 10] = [
        FrameKind::Message,
        FrameKind::SnapshotBegin,
        FrameKind::SnapshotChunk,
        FrameKind::SnapshotEnd,
        FrameKind::Hello,
        FrameKind::SnapshotAck,
        FrameKind::Request,
        FrameKind::Response,
        FrameKind::Challenge,
        FrameKind::Proof,
    ];

    /// The kind with wire value `value`, or `None` for a reserved value.
    pub fn from_u8(value: u8) -> Option<FrameKind> {
        match value {
            1 => Some(FrameKind::Message),
            2 => Some(FrameKind::SnapshotBegin),
            3 => Some(FrameKind::SnapshotChunk),
            4 => Some(FrameKind::SnapshotEnd),
            5 => Some(FrameKind::Hello),
            6 => Some(FrameKind::SnapshotAck),
            7 => Some(FrameKind::Request),
            8 => Some(FrameKind::Response),
            9 => Some(FrameKind::Challenge),
            10 => Some(FrameKind::Proof),
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
    /// The node the sender dialed (an acceptor refuses a Hello meant for another).
    pub to: NodeId,
    /// The sender's fresh random challenge: the acceptor proves the cluster secret over
    /// it.
    pub nonce: [u8; NONCE_BYTES],
}

/// The payload of a [`FrameKind::SnapshotBegin`] frame: what the stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotBegin {
    /// The sending leader.
    pub from: NodeId,
    /// The leader's term when it decided to send.
    pub term: u64,
    /// The snapshot's index and term.
    pub meta: SnapshotMeta,
    /// Payload bytes the stream's chunks carry in total.
    pub payload_len: u64,
}

/// The payload of a [`FrameKind::SnapshotEnd`] frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotEnd {
    /// Every chunk was sent.
    Complete {
        /// Payload bytes the chunks carried.
        sent: u64,
    },
    /// The sender gave up (its source failed); the receiver discards the stream.
    Aborted {
        /// Payload bytes sent before the abort.
        sent: u64,
        /// Why (at most [`MAX_REASON_BYTES`]).
        reason: String,
    },
}

/// The payload of a [`FrameKind::SnapshotAck`] frame: the receiver's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotAck {
    /// The snapshot is durable and installed.
    Installed,
    /// The receiving core declined the offer.
    Rejected,
    /// The receiving node is not running (or not yet attached to its transport).
    NotRunning,
    /// Anything else went wrong.
    Failed {
        /// What (at most [`MAX_REASON_BYTES`]).
        detail: String,
    },
}

/// The payload of a [`FrameKind::Request`] frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Chosen by the caller, echoed by the [`Response`].
    pub id: u64,
    /// Opaque application bytes.
    pub body: Bytes,
}

/// The payload of a [`FrameKind::Response`] frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The id of the [`Request`] answered.
    pub id: u64,
    /// The reply bytes, or an error message (at most [`MAX_REASON_BYTES`]).
    pub result: Result<Bytes, String>,
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
    encode_frame_parts(kind, &[payload], out)
}

/// Appends one frame whose payload is the concatenation of `parts` (no intermediate
/// copy).
fn encode_frame_parts(
    kind: FrameKind,
    parts: &[&[u8]],
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(total).map_err(|_| FrameError::EncodeTooLarge {
        kind,
        frame_bytes: (total as u64).saturating_add(FRAME_HEADER_BYTES as u64),
        limit: u64::from(u32::MAX),
    })?;
    let mut header = [0u8; FRAME_HEADER_BYTES];
    header[LEN_OFFSET..VERSION_OFFSET].copy_from_slice(&len.to_le_bytes());
    header[VERSION_OFFSET] = FRAME_VERSION;
    header[KIND_OFFSET] = kind.as_u8();
    header[FLAGS_OFFSET..CRC_OFFSET].copy_from_slice(&0u16.to_le_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[..CRC_OFFSET]);
    for part in parts {
        hasher.update(part);
    }
    header[CRC_OFFSET..FRAME_HEADER_BYTES].copy_from_slice(&hasher.finalize().to_le_bytes());
    out.reserve(FRAME_HEADER_BYTES + total);
    out.extend_from_slice(&header);
    for part in parts {
        out.extend_from_slice(part);
    }
    Ok(())
}

/// Like [`encode_frame_parts`], refusing a frame over `max_frame_bytes`.
fn encode_frame_parts_limited(
    kind: FrameKind,
    parts: &[&[u8]],
    max_frame_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let total: u64 = parts.iter().map(|p| p.len() as u64).sum();
    let frame_bytes = total.saturating_add(FRAME_HEADER_BYTES as u64);
    if frame_bytes > max_frame_bytes as u64 {
        return Err(FrameError::EncodeTooLarge {
            kind,
            frame_bytes,
            limit: max_frame_bytes as u64,
        });
    }
    encode_frame_parts(kind, parts, out)
}

/// Like [`encode_frame`], but also refuses a frame (header included) over
/// `max_frame_bytes`, so that it is never sent to a peer that would reject it.
pub fn encode_frame_limited(
    kind: FrameKind,
    payload: &[u8],
    max_frame_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    encode_frame_parts_limited(kind, &[payload], max_frame_bytes, out)
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
    payload[HELLO_NODE_OFFSET..HELLO_TO_OFFSET].copy_from_slice(&hello.node_id.to_le_bytes());
    payload[HELLO_TO_OFFSET..HELLO_NONCE_OFFSET].copy_from_slice(&hello.to.to_le_bytes());
    payload[HELLO_NONCE_OFFSET..].copy_from_slice(&hello.nonce);
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
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&p[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let mut nonce = [0u8; NONCE_BYTES];
    nonce.copy_from_slice(&p[HELLO_NONCE_OFFSET..]);
    Ok(Hello {
        cluster_id: u64_at(HELLO_CLUSTER_OFFSET),
        node_id: u64_at(HELLO_NODE_OFFSET),
        to: u64_at(HELLO_TO_OFFSET),
        nonce,
    })
}

/// Appends a [`FrameKind::SnapshotBegin`] frame to `out`.
pub fn encode_snapshot_begin_frame(
    begin: &SnapshotBegin,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let mut p = [0u8; SNAPSHOT_BEGIN_PAYLOAD_BYTES];
    p[BEGIN_FROM_OFFSET..BEGIN_TERM_OFFSET].copy_from_slice(&begin.from.to_le_bytes());
    p[BEGIN_TERM_OFFSET..BEGIN_INDEX_OFFSET].copy_from_slice(&begin.term.to_le_bytes());
    p[BEGIN_INDEX_OFFSET..BEGIN_SNAP_TERM_OFFSET].copy_from_slice(&begin.meta.index.to_le_bytes());
    p[BEGIN_SNAP_TERM_OFFSET..BEGIN_LEN_OFFSET].copy_from_slice(&begin.meta.term.to_le_bytes());
    p[BEGIN_LEN_OFFSET..SNAPSHOT_BEGIN_PAYLOAD_BYTES]
        .copy_from_slice(&begin.payload_len.to_le_bytes());
    encode_frame(FrameKind::SnapshotBegin, &p, out)
}

/// Decodes the [`SnapshotBegin`] in a [`FrameKind::SnapshotBegin`] frame: exactly
/// [`SNAPSHOT_BEGIN_PAYLOAD_BYTES`] bytes.
pub fn decode_snapshot_begin_frame(frame: &Frame) -> Result<SnapshotBegin, FrameError> {
    expect_kind(frame, FrameKind::SnapshotBegin)?;
    let p = exact_payload::<SNAPSHOT_BEGIN_PAYLOAD_BYTES>(frame)?;
    Ok(SnapshotBegin {
        from: read_u64(p, BEGIN_FROM_OFFSET),
        term: read_u64(p, BEGIN_TERM_OFFSET),
        meta: SnapshotMeta {
            index: read_u64(p, BEGIN_INDEX_OFFSET),
            term: read_u64(p, BEGIN_SNAP_TERM_OFFSET),
        },
        payload_len: read_u64(p, BEGIN_LEN_OFFSET),
    })
}

/// Appends a [`FrameKind::SnapshotChunk`] frame carrying `chunk`, refusing a frame over
/// `max_frame_bytes`.
pub fn encode_snapshot_chunk_frame(
    chunk: &[u8],
    max_frame_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    encode_frame_limited(FrameKind::SnapshotChunk, chunk, max_frame_bytes, out)
}

/// The payload bytes of a [`FrameKind::SnapshotChunk`] frame (shared, not copied).
pub fn decode_snapshot_chunk_frame(frame: &Frame) -> Result<Bytes, FrameError> {
    expect_kind(frame, FrameKind::SnapshotChunk)?;
    Ok(frame.payload.clone())
}

/// Appends a [`FrameKind::SnapshotEnd`] frame to `out` (an abort reason is cut to
/// [`MAX_REASON_BYTES`]).
pub fn encode_snapshot_end_frame(end: &SnapshotEnd, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let (status, sent, reason) = match end {
        SnapshotEnd::Complete { sent } => (END_COMPLETE, *sent, ""),
        SnapshotEnd::Aborted { sent, reason } => (END_ABORTED, *sent, truncate_utf8(reason)),
    };
    encode_frame_parts(
        FrameKind::SnapshotEnd,
        &[&[status], &sent.to_le_bytes(), reason.as_bytes()],
        out,
    )
}

/// Decodes the [`SnapshotEnd`] in a [`FrameKind::SnapshotEnd`] frame.
pub fn decode_snapshot_end_frame(frame: &Frame) -> Result<SnapshotEnd, FrameError> {
    expect_kind(frame, FrameKind::SnapshotEnd)?;
    let p: &[u8] = &frame.payload;
    if p.len() < END_REASON_OFFSET {
        return Err(bad_payload(
            frame,
            format!(
                "payload is {} bytes, expected at least {END_REASON_OFFSET}",
                p.len()
            ),
        ));
    }
    let sent = read_u64(p, END_SENT_OFFSET);
    let reason = utf8_at(frame, END_REASON_OFFSET)?;
    match p[END_STATUS_OFFSET] {
        END_COMPLETE if reason.is_empty() => Ok(SnapshotEnd::Complete { sent }),
        END_COMPLETE => Err(bad_payload(
            frame,
            format!(
                "a complete stream carries a {}-byte reason at payload byte {END_REASON_OFFSET}",
                reason.len()
            ),
        )),
        END_ABORTED => Ok(SnapshotEnd::Aborted { sent, reason }),
        other => Err(bad_payload(
            frame,
            format!("unknown status {other} at payload byte {END_STATUS_OFFSET}"),
        )),
    }
}

/// Appends a [`FrameKind::SnapshotAck`] frame to `out` (a detail is cut to
/// [`MAX_REASON_BYTES`]).
pub fn encode_snapshot_ack_frame(ack: &SnapshotAck, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let (outcome, detail) = match ack {
        SnapshotAck::Installed => (ACK_INSTALLED, ""),
        SnapshotAck::Rejected => (ACK_REJECTED, ""),
        SnapshotAck::NotRunning => (ACK_NOT_RUNNING, ""),
        SnapshotAck::Failed { detail } => (ACK_FAILED, truncate_utf8(detail)),
    };
    encode_frame_parts(
        FrameKind::SnapshotAck,
        &[&[outcome], detail.as_bytes()],
        out,
    )
}

/// Decodes the [`SnapshotAck`] in a [`FrameKind::SnapshotAck`] frame.
pub fn decode_snapshot_ack_frame(frame: &Frame) -> Result<SnapshotAck, FrameError> {
    expect_kind(frame, FrameKind::SnapshotAck)?;
    let Some(&outcome) = frame.payload.get(ACK_OUTCOME_OFFSET) else {
        return Err(bad_payload(
            frame,
            "payload is empty, expected an outcome byte".to_owned(),
        ));
    };
    let detail = utf8_at(frame, ACK_DETAIL_OFFSET)?;
    let no_detail = |ack: SnapshotAck| {
        if detail.is_empty() {
            Ok(ack)
        } else {
            Err(bad_payload(
                frame,
                format!(
                    "outcome {outcome} carries a {}-byte detail at payload byte {ACK_DETAIL_OFFSET}",
                    detail.len()
                ),
            ))
        }
    };
    match outcome {
        ACK_INSTALLED => no_detail(SnapshotAck::Installed),
        ACK_REJECTED => no_detail(SnapshotAck::Rejected),
        ACK_NOT_RUNNING => no_detail(SnapshotAck::NotRunning),
        ACK_FAILED => Ok(SnapshotAck::Failed { detail }),
        other => Err(bad_payload(
            frame,
            format!("unknown outcome {other} at payload byte {ACK_OUTCOME_OFFSET}"),
        )),
    }
}

/// Appends a [`FrameKind::Request`] frame to `out`, refusing a frame over
/// `max_frame_bytes`.
pub fn encode_request_frame(
    request: &Request,
    max_frame_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    encode_frame_parts_limited(
        FrameKind::Request,
        &[&request.id.to_le_bytes(), &request.body],
        max_frame_bytes,
        out,
    )
}

/// Decodes the [`Request`] in a [`FrameKind::Request`] frame (the body shares the
/// frame's bytes).
pub fn decode_request_frame(frame: &Frame) -> Result<Request, FrameError> {
    expect_kind(frame, FrameKind::Request)?;
    if frame.payload.len() < REQUEST_HEADER_BYTES {
        return Err(bad_payload(
            frame,
            format!(
                "payload is {} bytes, expected at least {REQUEST_HEADER_BYTES}",
                frame.payload.len()
            ),
        ));
    }
    Ok(Request {
        id: read_u64(&frame.payload, REQUEST_ID_OFFSET),
        body: frame.payload.slice(REQUEST_BODY_OFFSET..),
    })
}

/// Appends a [`FrameKind::Response`] frame to `out`, refusing a frame over
/// `max_frame_bytes` (an error message is cut to [`MAX_REASON_BYTES`]).
pub fn encode_response_frame(
    response: &Response,
    max_frame_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let (status, body): (u8, &[u8]) = match &response.result {
        Ok(body) => (RESPONSE_OK, body),
        Err(message) => (RESPONSE_ERROR, truncate_utf8(message).as_bytes()),
    };
    encode_frame_parts_limited(
        FrameKind::Response,
        &[&response.id.to_le_bytes(), &[status], body],
        max_frame_bytes,
        out,
    )
}

/// Decodes the [`Response`] in a [`FrameKind::Response`] frame (an ok body shares the
/// frame's bytes).
pub fn decode_response_frame(frame: &Frame) -> Result<Response, FrameError> {
    expect_kind(frame, FrameKind::Response)?;
    let p: &[u8] = &frame.payload;
    if p.len() < RESPONSE_HEADER_BYTES {
        return Err(bad_payload(
            frame,
            format!(
                "payload is {} bytes, expected at least {RESPONSE_HEADER_BYTES}",
                p.len()
            ),
        ));
    }
    let id = read_u64(p, RESPONSE_ID_OFFSET);
    let result = match p[RESPONSE_STATUS_OFFSET] {
        RESPONSE_OK => Ok(frame.payload.slice(RESPONSE_BODY_OFFSET..)),
        RESPONSE_ERROR => Err(utf8_at(frame, RESPONSE_BODY_OFFSET)?),
        other => {
            return Err(bad_payload(
                frame,
                format!("unknown status {other} at payload byte {RESPONSE_STATUS_OFFSET}"),
            ));
        }
    };
    Ok(Response { id, result })
}

fn bad_payload(frame: &Frame, detail: String) -> FrameError {
    FrameError::BadPayload {
        kind: frame.kind,
        offset: frame.offset,
        detail,
    }
}

/// The payload as an array of exactly `N` bytes.
fn exact_payload<const N: usize>(frame: &Frame) -> Result<&[u8; N], FrameError> {
    let p: &[u8] = &frame.payload;
    p.try_into()
        .map_err(|_| bad_payload(frame, format!("payload is {} bytes, expected {N}", p.len())))
}

/// The u64 LE at `offset` of `p`, which the caller has checked is long enough.
fn read_u64(p: &[u8], offset: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&p[offset..offset + 8]);
    u64::from_le_bytes(b)
}

/// The payload from `offset` on as UTF-8 (the caller checked `offset <= len`).
fn utf8_at(frame: &Frame, offset: usize) -> Result<String, FrameError> {
    let bytes = frame.payload.get(offset..).unwrap_or_default();
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) => Err(bad_payload(
            frame,
            format!(
                "text at payload byte {} is not UTF-8",
                offset + e.valid_up_to()
            ),
        )),
    }
}

/// `s` cut to at most [`MAX_REASON_BYTES`] bytes at a character boundary.
fn truncate_utf8(s: &str) -> &str {
    if s.len() <= MAX_REASON_BYTES {
        return s;
    }
    let mut end = MAX_REASON_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub(crate) fn expect_kind(frame: &Frame, expected: FrameKind) -> Result<(), FrameError> {
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

    /// Changes the limit for the frames still to come (for example a small one until a
    /// handshake is done, then the connection's own). Offsets keep counting.
    pub fn set_max_frame_bytes(&mut self, max_frame_bytes: usize) {
        self.max_frame_bytes = max_frame_bytes;
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
        assert_eq!(bytes[4], 2);
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
            to: 7,
            nonce: *b"0123456789abcdef",
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
                    offset: 56,
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
    fn the_limit_can_change_between_frames() {
        let mut stream = Vec::new();
        encode_hello_frame(
            &Hello {
                cluster_id: 1,
                node_id: 2,
                to: 3,
                nonce: [4; NONCE_BYTES],
            },
            &mut stream,
        )
        .expect("hello");
        let first = stream.len();
        encode_frame(FrameKind::SnapshotChunk, &[9u8; 500], &mut stream).expect("chunk");
        // A handshake-sized limit refuses the big frame, naming its offset.
        let mut small = FrameDecoder::new(64);
        let (_, used) = small.decode_slice(&stream).expect("hello").expect("frame");
        assert!(matches!(
            small.decode_slice(&stream[used..]),
            Err(FrameError::TooLarge { offset, limit: 64, .. }) if offset == first as u64
        ));
        // Raised after the handshake, the same stream decodes.
        let mut dec = FrameDecoder::new(64);
        let (_, used) = dec.decode_slice(&stream).expect("hello").expect("frame");
        dec.set_max_frame_bytes(DEFAULT_MAX_FRAME_BYTES);
        let (f, _) = dec
            .decode_slice(&stream[used..])
            .expect("chunk")
            .expect("frame");
        assert_eq!((f.kind, f.offset), (FrameKind::SnapshotChunk, first as u64));
    }

    #[test]
    fn wrong_version_kind_and_flags_are_rejected_at_their_offsets() {
        let prefix = frame_bytes(FrameKind::Message, b"xyz"); // 15 bytes
        let cases: [(usize, u8, &str); 6] = [
            (4, 0, "version 0"),
            (4, 1, "version 1"),
            (4, 3, "version 3"),
            (5, 0, "kind 0"),
            (5, 11, "kind 11"),
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

    /// Runs every payload decoder on `frame` (they must not panic, whatever it holds).
    fn decode_every_payload(frame: &Frame) {
        let _ = decode_message_frame(frame);
        let _ = decode_hello_frame(frame);
        let _ = decode_snapshot_begin_frame(frame);
        let _ = decode_snapshot_chunk_frame(frame);
        let _ = decode_snapshot_end_frame(frame);
        let _ = decode_snapshot_ack_frame(frame);
        let _ = decode_request_frame(frame);
        let _ = decode_response_frame(frame);
    }

    /// A frame of `kind` carrying `payload`, as the decoder hands it out.
    fn frame_of(kind: FrameKind, payload: &[u8]) -> Frame {
        Frame {
            kind,
            payload: Bytes::copy_from_slice(payload),
            offset: 100,
        }
    }

    fn decode_one(bytes: &[u8]) -> Frame {
        let frames = decode_split(bytes, &[], DEFAULT_MAX_FRAME_BYTES).expect("decode");
        assert_eq!(frames.len(), 1);
        frames.into_iter().next().expect("one frame")
    }

    fn sample_begin() -> SnapshotBegin {
        SnapshotBegin {
            from: 3,
            term: 9,
            meta: SnapshotMeta {
                index: 1 << 40,
                term: 8,
            },
            payload_len: 7 << 20,
        }
    }

    #[test]
    fn snapshot_stream_payloads_round_trip_and_are_pinned() {
        let begin = sample_begin();
        let mut out = Vec::new();
        encode_snapshot_begin_frame(&begin, &mut out).expect("begin");
        assert_eq!(out.len(), FRAME_HEADER_BYTES + 40);
        assert_eq!(out[5], 2);
        assert_eq!(&out[12..20], &3u64.to_le_bytes());
        assert_eq!(&out[20..28], &9u64.to_le_bytes());
        assert_eq!(&out[28..36], &(1u64 << 40).to_le_bytes());
        assert_eq!(&out[36..44], &8u64.to_le_bytes());
        assert_eq!(&out[44..52], &(7u64 << 20).to_le_bytes());
        assert_eq!(decode_snapshot_begin_frame(&decode_one(&out)), Ok(begin));

        let mut out = Vec::new();
        encode_snapshot_chunk_frame(b"chunk bytes", DEFAULT_MAX_FRAME_BYTES, &mut out)
            .expect("chunk");
        assert_eq!(out[5], 3);
        assert_eq!(
            decode_snapshot_chunk_frame(&decode_one(&out)).as_deref(),
            Ok(&b"chunk bytes"[..])
        );
        assert!(encode_snapshot_chunk_frame(&[0u8; 100], 100, &mut Vec::new()).is_err());

        for end in [
            SnapshotEnd::Complete { sent: 12345 },
            SnapshotEnd::Aborted {
                sent: 7,
                reason: "disk on fire: \u{1F525}".to_owned(),
            },
        ] {
            let mut out = Vec::new();
            encode_snapshot_end_frame(&end, &mut out).expect("end");
            assert_eq!(out[5], 4);
            let status = u8::from(matches!(end, SnapshotEnd::Aborted { .. }));
            assert_eq!(out[12], status);
            assert_eq!(decode_snapshot_end_frame(&decode_one(&out)), Ok(end));
        }

        for (ack, byte) in [
            (SnapshotAck::Installed, 0u8),
            (SnapshotAck::Rejected, 1),
            (SnapshotAck::NotRunning, 2),
            (
                SnapshotAck::Failed {
                    detail: "no space left".to_owned(),
                },
                3,
            ),
        ] {
            let mut out = Vec::new();
            encode_snapshot_ack_frame(&ack, &mut out).expect("ack");
            assert_eq!((out[5], out[12]), (6, byte));
            assert_eq!(decode_snapshot_ack_frame(&decode_one(&out)), Ok(ack));
        }
    }

    #[test]
    fn request_and_response_payloads_round_trip_and_are_pinned() {
        let request = Request {
            id: 0x0102_0304_0506_0708,
            body: Bytes::from_static(b"get k"),
        };
        let mut out = Vec::new();
        encode_request_frame(&request, DEFAULT_MAX_FRAME_BYTES, &mut out).expect("request");
        assert_eq!(out[5], 7);
        assert_eq!(&out[12..20], &request.id.to_le_bytes());
        assert_eq!(&out[20..], b"get k");
        assert_eq!(decode_request_frame(&decode_one(&out)), Ok(request));

        for response in [
            Response {
                id: 5,
                result: Ok(Bytes::from_static(b"value")),
            },
            Response {
                id: 6,
                result: Ok(Bytes::new()),
            },
            Response {
                id: 7,
                result: Err("not the leader".to_owned()),
            },
        ] {
            let mut out = Vec::new();
            encode_response_frame(&response, DEFAULT_MAX_FRAME_BYTES, &mut out).expect("response");
            assert_eq!(out[5], 8);
            assert_eq!(&out[12..20], &response.id.to_le_bytes());
            assert_eq!(out[20], u8::from(response.result.is_err()));
            assert_eq!(decode_response_frame(&decode_one(&out)), Ok(response));
        }

        // Over the limit: refused, nothing written.
        let big = Request {
            id: 1,
            body: Bytes::from(vec![0u8; 100]),
        };
        let mut out = Vec::new();
        let err = encode_request_frame(&big, FRAME_HEADER_BYTES + 107, &mut out).expect_err("big");
        assert!(matches!(
            err,
            FrameError::EncodeTooLarge {
                kind: FrameKind::Request,
                frame_bytes: 120,
                limit: 119
            }
        ));
        assert!(out.is_empty());
        encode_request_frame(&big, FRAME_HEADER_BYTES + 108, &mut out).expect("fits exactly");
    }

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary() {
        let reason = "é".repeat(MAX_REASON_BYTES); // 2 bytes each
        let mut out = Vec::new();
        encode_snapshot_end_frame(
            &SnapshotEnd::Aborted {
                sent: 0,
                reason: reason.clone(),
            },
            &mut out,
        )
        .expect("end");
        let SnapshotEnd::Aborted { reason: got, .. } =
            decode_snapshot_end_frame(&decode_one(&out)).expect("decode")
        else {
            panic!("not aborted");
        };
        assert_eq!(got.len(), MAX_REASON_BYTES);
        assert!(reason.starts_with(&got));
        let mut out = Vec::new();
        encode_response_frame(
            &Response {
                id: 1,
                result: Err("x".repeat(MAX_REASON_BYTES + 1)),
            },
            DEFAULT_MAX_FRAME_BYTES,
            &mut out,
        )
        .expect("response");
        assert_eq!(
            out.len(),
            FRAME_HEADER_BYTES + RESPONSE_HEADER_BYTES + MAX_REASON_BYTES
        );
    }

    #[test]
    fn truncated_payloads_are_typed_errors() {
        let mut full: Vec<(FrameKind, Vec<u8>)> = Vec::new();
        let mut push = |bytes: Vec<u8>| {
            let f = decode_one(&bytes);
            full.push((f.kind, f.payload.to_vec()));
        };
        let mut b = Vec::new();
        encode_snapshot_begin_frame(&sample_begin(), &mut b).expect("begin");
        push(b);
        let mut b = Vec::new();
        encode_snapshot_end_frame(&SnapshotEnd::Complete { sent: 1 }, &mut b).expect("end");
        push(b);
        let mut b = Vec::new();
        encode_snapshot_ack_frame(&SnapshotAck::Rejected, &mut b).expect("ack");
        push(b);
        let mut b = Vec::new();
        encode_request_frame(
            &Request {
                id: 1,
                body: Bytes::new(),
            },
            DEFAULT_MAX_FRAME_BYTES,
            &mut b,
        )
        .expect("request");
        push(b);
        let mut b = Vec::new();
        encode_response_frame(
            &Response {
                id: 1,
                result: Ok(Bytes::new()),
            },
            DEFAULT_MAX_FRAME_BYTES,
            &mut b,
        )
        .expect("response");
        push(b);
        for (kind, payload) in full {
            // Every strict prefix of a minimal payload is too short.
            for len in 0..payload.len() {
                let frame = frame_of(kind, &payload[..len]);
                let err = match kind {
                    FrameKind::SnapshotBegin => decode_snapshot_begin_frame(&frame).map(|_| ()),
                    FrameKind::SnapshotEnd => decode_snapshot_end_frame(&frame).map(|_| ()),
                    FrameKind::SnapshotAck => decode_snapshot_ack_frame(&frame).map(|_| ()),
                    FrameKind::Request => decode_request_frame(&frame).map(|_| ()),
                    FrameKind::Response => decode_response_frame(&frame).map(|_| ()),
                    other => panic!("unexpected kind {other:?}"),
                }
                .expect_err("truncated");
                assert!(
                    matches!(&err, FrameError::BadPayload { kind: k, offset: 100, .. } if *k == kind),
                    "{kind:?} cut to {len}: {err}"
                );
            }
            // One byte too many is refused where the length is fixed.
            if kind == FrameKind::SnapshotBegin {
                let mut long = payload.clone();
                long.push(0);
                assert!(decode_snapshot_begin_frame(&frame_of(kind, &long)).is_err());
            }
        }
    }

    #[test]
    fn garbage_status_bytes_and_bad_text_are_typed_errors() {
        let bad = |r: Result<(), FrameError>, what: &str, needle: &str| {
            let err = r.expect_err(what);
            assert!(
                matches!(err, FrameError::BadPayload { .. }),
                "{what}: {err}"
            );
            assert!(err.to_string().contains(needle), "{what}: {err}");
        };
        let mut end = vec![2u8];
        end.extend_from_slice(&0u64.to_le_bytes());
        bad(
            decode_snapshot_end_frame(&frame_of(FrameKind::SnapshotEnd, &end)).map(|_| ()),
            "end status",
            "unknown status 2 at payload byte 0",
        );
        end[0] = 0;
        end.push(b'x');
        bad(
            decode_snapshot_end_frame(&frame_of(FrameKind::SnapshotEnd, &end)).map(|_| ()),
            "complete with reason",
            "reason",
        );
        end[0] = 1;
        end.extend_from_slice(&[0xff, 0xfe]);
        bad(
            decode_snapshot_end_frame(&frame_of(FrameKind::SnapshotEnd, &end)).map(|_| ()),
            "aborted with non-UTF-8 reason",
            "payload byte 10 is not UTF-8",
        );
        bad(
            decode_snapshot_ack_frame(&frame_of(FrameKind::SnapshotAck, &[4])).map(|_| ()),
            "ack outcome",
            "unknown outcome 4",
        );
        bad(
            decode_snapshot_ack_frame(&frame_of(FrameKind::SnapshotAck, &[0, b'x'])).map(|_| ()),
            "installed with detail",
            "detail",
        );
        let mut resp = 9u64.to_le_bytes().to_vec();
        resp.push(7);
        bad(
            decode_response_frame(&frame_of(FrameKind::Response, &resp)).map(|_| ()),
            "response status",
            "unknown status 7 at payload byte 8",
        );
        resp[8] = 1;
        resp.push(0xc0);
        bad(
            decode_response_frame(&frame_of(FrameKind::Response, &resp)).map(|_| ()),
            "error text",
            "not UTF-8",
        );
        // A helper given another kind says so.
        assert!(matches!(
            decode_request_frame(&frame_of(FrameKind::Response, &resp)),
            Err(FrameError::WrongKind {
                expected: FrameKind::Request,
                actual: FrameKind::Response,
                offset: 100
            })
        ));
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
                decode_every_payload(&frame);
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
                (0usize..FrameKind::ALL.len(), proptest::collection::vec(any::<u8>(), 0..300)), 0..12),
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

        #[test]
        fn arbitrary_payloads_of_every_kind_never_panic(
            k in 0usize..FrameKind::ALL.len(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            decode_every_payload(&frame_of(FrameKind::ALL[k], &payload));
        }

        #[test]
        fn typed_payloads_round_trip(
            a in any::<u64>(), b in any::<u64>(), c in any::<u64>(), d in any::<u64>(),
            e in any::<u64>(),
            body in proptest::collection::vec(any::<u8>(), 0..200),
            text in ".{0,40}",
            variant in 0u8..4,
        ) {
            let begin = SnapshotBegin { from: a, term: b, meta: SnapshotMeta { index: c, term: d }, payload_len: e };
            let end = if variant % 2 == 0 {
                SnapshotEnd::Complete { sent: a }
            } else {
                SnapshotEnd::Aborted { sent: a, reason: text.clone() }
            };
            let ack = match variant {
                0 => SnapshotAck::Installed,
                1 => SnapshotAck::Rejected,
                2 => SnapshotAck::NotRunning,
                _ => SnapshotAck::Failed { detail: text.clone() },
            };
            let request = Request { id: b, body: Bytes::from(body.clone()) };
            let response = Response {
                id: c,
                result: if variant % 2 == 0 { Ok(Bytes::from(body.clone())) } else { Err(text.clone()) },
            };
            let mut out = Vec::new();
            encode_snapshot_begin_frame(&begin, &mut out).expect("begin");
            encode_snapshot_chunk_frame(&body, DEFAULT_MAX_FRAME_BYTES, &mut out).expect("chunk");
            encode_snapshot_end_frame(&end, &mut out).expect("end");
            encode_snapshot_ack_frame(&ack, &mut out).expect("ack");
            encode_request_frame(&request, DEFAULT_MAX_FRAME_BYTES, &mut out).expect("request");
            encode_response_frame(&response, DEFAULT_MAX_FRAME_BYTES, &mut out).expect("response");
            let frames = decode_split(&out, &[], DEFAULT_MAX_FRAME_BYTES);
            prop_assert!(frames.is_ok(), "{:?}", frames);
            let f = frames.expect("ok");
            prop_assert_eq!(decode_snapshot_begin_frame(&f[0]), Ok(begin));
            prop_assert_eq!(decode_snapshot_chunk_frame(&f[1]), Ok(Bytes::from(body)));
            prop_assert_eq!(decode_snapshot_end_frame(&f[2]), Ok(end));
            prop_assert_eq!(decode_snapshot_ack_frame(&f[3]), Ok(ack));
            prop_assert_eq!(decode_request_frame(&f[4]), Ok(request));
            prop_assert_eq!(decode_response_frame(&f[5]), Ok(response));
        }
    }
}
