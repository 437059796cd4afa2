//! Log records: framing (length, type, salted crc32) and the three payloads.
//!
//! `FORMAT.md` ("Log records") describes every byte; the layouts are repeated above the
//! constants. Integers are little-endian, written with `to_le_bytes` and read with
//! `from_le_bytes` only.

use std::mem::size_of;

use crate::error::StorageError;
use crate::persister::Result;
use crate::types::{HardState, SnapshotMeta, WriteBatch};

// Record framing:
//
// offset  size  field
//      0     4  crc          u32, crc32 with initial value = the segment's salt, over
//                            bytes [4, 12 + payload_len)
//      4     4  payload_len  u32, <= MAX_PAYLOAD
//      8     1  type         u8, one of TYPE_STATE, TYPE_BATCH, TYPE_SNAPSHOT
//      9     3  reserved     zero
//     12        payload (payload_len bytes)
const OFF_CRC: usize = 0;
const OFF_LEN: usize = OFF_CRC + size_of::<u32>();
const OFF_TYPE: usize = OFF_LEN + size_of::<u32>();
const OFF_RESERVED: usize = OFF_TYPE + size_of::<u8>();
/// Bytes of a record header.
pub(crate) const RECORD_HEADER_LEN: usize = OFF_RESERVED + 3;
const _: () = assert!(RECORD_HEADER_LEN == 12);

/// Largest payload one record may have (1 GiB). A larger batch is refused before
/// anything is written; a larger length field on disk is corruption.
pub(crate) const MAX_PAYLOAD: usize = 1 << 30;

/// Record type: the state a segment starts with.
pub(crate) const TYPE_STATE: u8 = 1;
/// Record type: one [`WriteBatch`].
pub(crate) const TYPE_BATCH: u8 = 2;
/// Record type: a committed snapshot, compacting the log through its index.
pub(crate) const TYPE_SNAPSHOT: u8 = 3;

// STATE payload (48 bytes):
//
// offset  size  field
//      0     8  hard_state.term
//      8     8  hard_state.voted_for (0 = none)
//     16     8  hard_state.commit
//     24     8  last_index      the log's last index when the segment was started
//     32     8  snapshot.index  the current snapshot then (0, 0 = none); informational
//     40     8  snapshot.term
const HARD_STATE_LEN: usize = 3 * size_of::<u64>();
const STATE_LEN: usize = HARD_STATE_LEN + 3 * size_of::<u64>();
const _: () = assert!(STATE_LEN == 48);

// BATCH payload:
//
// offset  size  field
//      0     4  flags        u32: bit 0 hard state present, bit 1 truncate_from present
//      4     4  entry_count  u32
//      8    24  hard state   (if bit 0) as in STATE
//      .     8  truncate_from u64 (if bit 1)
//      .        entry_count entries, each:
//                 0  8  index
//                 8  8  term
//                16  4  data_len u32
//                20     data (data_len bytes)
const BATCH_FIXED_LEN: usize = 2 * size_of::<u32>();
const ENTRY_HEADER_LEN: usize = 2 * size_of::<u64>() + size_of::<u32>();
const _: () = assert!(ENTRY_HEADER_LEN == 20);
const FLAG_HARD_STATE: u32 = 1;
const FLAG_TRUNCATE: u32 = 2;

// SNAPSHOT payload (24 bytes):
//
// offset  size  field
//      0     8  index
//      8     8  term
//     16     4  flags  u32: bit 0 = the log held `index` with `term`, so the entries
//                       after it were kept; clear = the whole log was superseded
//     20     4  reserved, zero
const SNAPSHOT_LEN: usize = 2 * size_of::<u64>() + 2 * size_of::<u32>();
const _: () = assert!(SNAPSHOT_LEN == 24);
const FLAG_SUFFIX_KEPT: u32 = 1;

/// The first record of every segment: enough state that older segments can be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct StateRecord {
    pub(crate) hard_state: HardState,
    pub(crate) last_index: u64,
    pub(crate) snapshot: Option<SnapshotMeta>,
}

/// One entry of a decoded batch, borrowing its data from the segment bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryRef {
    pub(crate) index: u64,
    pub(crate) term: u64,
    /// Offset of the data within the segment.
    pub(crate) data_offset: usize,
    pub(crate) data_len: usize,
}

/// A decoded batch. Entry data stays in the segment bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct BatchRef {
    pub(crate) hard_state: Option<HardState>,
    pub(crate) truncate_from: Option<u64>,
    pub(crate) entries: Vec<EntryRef>,
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    State(StateRecord),
    Batch(BatchRef),
    Snapshot(SnapshotMark),
}

/// A committed snapshot as noted in the log, with the compaction decision taken then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SnapshotMark {
    pub(crate) meta: SnapshotMeta,
    /// True if the log held `meta.index` with `meta.term` and kept the entries after it;
    /// false if the snapshot superseded the whole log.
    pub(crate) suffix_kept: bool,
}

/// A record checksum: crc32 started from the segment's salt.
fn record_crc(salt: u32, bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(salt);
    h.update(bytes);
    h.finalize()
}

/// Starts a record of type `kind` in `out` (cleared); the payload is appended next and
/// [`seal`] finishes the header.
fn begin(out: &mut Vec<u8>, kind: u8) {
    out.clear();
    out.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
    out[OFF_TYPE] = kind;
}

fn seal(out: &mut [u8], salt: u32, op: &'static str) -> Result<()> {
    let payload_len = out.len() - RECORD_HEADER_LEN;
    if payload_len > MAX_PAYLOAD {
        return Err(StorageError::InvalidArgument {
            op,
            detail: format!("record of {payload_len} bytes exceeds the {MAX_PAYLOAD}-byte limit"),
        });
    }
    // payload_len <= MAX_PAYLOAD fits a u32.
    out[OFF_LEN..OFF_TYPE].copy_from_slice(&(payload_len as u32).to_le_bytes());
    let crc = record_crc(salt, &out[OFF_LEN..]);
    out[OFF_CRC..OFF_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn put_hard_state(out: &mut Vec<u8>, hs: &HardState) {
    out.extend_from_slice(&hs.term.to_le_bytes());
    out.extend_from_slice(&hs.voted_for.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&hs.commit.to_le_bytes());
}

/// Encodes a STATE record into `out`.
pub(crate) fn encode_state(state: &StateRecord, salt: u32, out: &mut Vec<u8>) -> Result<()> {
    begin(out, TYPE_STATE);
    put_hard_state(out, &state.hard_state);
    out.extend_from_slice(&state.last_index.to_le_bytes());
    let snap = state.snapshot.unwrap_or_default();
    out.extend_from_slice(&snap.index.to_le_bytes());
    out.extend_from_slice(&snap.term.to_le_bytes());
    seal(out, salt, "encode state record")
}

/// Fails with [`StorageError::InvalidArgument`] if `batch` does not fit one record.
/// Returns the bytes its entries take in the record.
pub(crate) fn check_batch_size(batch: &WriteBatch) -> Result<usize> {
    let data: usize = batch
        .entries
        .iter()
        .map(|e| e.data.len() + ENTRY_HEADER_LEN)
        .sum();
    if data > MAX_PAYLOAD - BATCH_FIXED_LEN - HARD_STATE_LEN - 8 {
        return Err(StorageError::InvalidArgument {
            op: "write batch",
            detail: format!("{data} bytes of entries exceed the {MAX_PAYLOAD}-byte record limit"),
        });
    }
    Ok(data)
}

/// Encodes a BATCH record into `out`. Fails (before anything is written) if the batch is
/// too large for one record.
pub(crate) fn encode_batch(batch: &WriteBatch, salt: u32, out: &mut Vec<u8>) -> Result<()> {
    let data = check_batch_size(batch)?;
    // check_batch_size bounds the entry count by MAX_PAYLOAD / ENTRY_HEADER_LEN.
    let count = batch.entries.len() as u32;
    begin(out, TYPE_BATCH);
    out.reserve(BATCH_FIXED_LEN + HARD_STATE_LEN + 8 + data);
    let mut flags = 0;
    if batch.hard_state.is_some() {
        flags |= FLAG_HARD_STATE;
    }
    if batch.truncate_from.is_some() {
        flags |= FLAG_TRUNCATE;
    }
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    if let Some(hs) = &batch.hard_state {
        put_hard_state(out, hs);
    }
    if let Some(from) = batch.truncate_from {
        out.extend_from_slice(&from.to_le_bytes());
    }
    for e in &batch.entries {
        out.extend_from_slice(&e.index.to_le_bytes());
        out.extend_from_slice(&e.term.to_le_bytes());
        // Each entry is at most MAX_PAYLOAD bytes (checked above), which fits a u32.
        out.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&e.data);
    }
    seal(out, salt, "write batch")
}

/// Encodes a SNAPSHOT record into `out`.
pub(crate) fn encode_snapshot(mark: SnapshotMark, salt: u32, out: &mut Vec<u8>) -> Result<()> {
    begin(out, TYPE_SNAPSHOT);
    out.extend_from_slice(&mark.meta.index.to_le_bytes());
    out.extend_from_slice(&mark.meta.term.to_le_bytes());
    let flags = if mark.suffix_kept {
        FLAG_SUFFIX_KEPT
    } else {
        0
    };
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    seal(out, salt, "encode snapshot record")
}

/// What [`read_frame`] found at an offset.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Framed {
    /// A record with a valid checksum: its type, payload range and the next offset.
    Record {
        kind: u8,
        payload: std::ops::Range<usize>,
        next: usize,
    },
    /// The end of the bytes, exactly at a record boundary.
    End,
    /// Something that is not a valid record: a short or implausible header, a length past
    /// the end, or a checksum mismatch.
    Bad(String),
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// Reads the record framing at `offset` of `bytes` (a segment). Never allocates and
/// never reads outside `bytes`, whatever the length field says.
pub(crate) fn read_frame(bytes: &[u8], offset: usize, salt: u32) -> Framed {
    let rest = bytes.len().saturating_sub(offset);
    if rest == 0 {
        return Framed::End;
    }
    if rest < RECORD_HEADER_LEN {
        return Framed::Bad(format!("{rest} bytes left, less than a record header"));
    }
    let h = &bytes[offset..offset + RECORD_HEADER_LEN];
    let len = u32_at(h, OFF_LEN) as usize;
    let kind = h[OFF_TYPE];
    if h[OFF_RESERVED..RECORD_HEADER_LEN] != [0, 0, 0] {
        return Framed::Bad("reserved header bytes are not zero".into());
    }
    if !(TYPE_STATE..=TYPE_SNAPSHOT).contains(&kind) {
        return Framed::Bad(format!("unknown record type {kind}"));
    }
    if len > MAX_PAYLOAD {
        return Framed::Bad(format!(
            "record length {len} exceeds the {MAX_PAYLOAD}-byte limit"
        ));
    }
    if len > rest - RECORD_HEADER_LEN {
        return Framed::Bad(format!(
            "record length {len} runs past the end ({} bytes left)",
            rest - RECORD_HEADER_LEN
        ));
    }
    let end = offset + RECORD_HEADER_LEN + len;
    let stored = u32_at(h, OFF_CRC);
    let actual = record_crc(salt, &bytes[offset + OFF_LEN..end]);
    if stored != actual {
        return Framed::Bad(format!(
            "record checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"
        ));
    }
    Framed::Record {
        kind,
        payload: offset + RECORD_HEADER_LEN..end,
        next: end,
    }
}

/// The first offset after `from` where a record with a valid checksum starts, if any.
/// Used to tell a torn tail (nothing valid follows) from corruption (something does).
pub(crate) fn next_valid_record(bytes: &[u8], from: usize, salt: u32) -> Option<usize> {
    (from..bytes.len()).find(|&off| matches!(read_frame(bytes, off, salt), Framed::Record { .. }))
}

fn hard_state_at(b: &[u8], off: usize) -> HardState {
    let voted = u64_at(b, off + 8);
    HardState {
        term: u64_at(b, off),
        voted_for: (voted != 0).then_some(voted),
        commit: u64_at(b, off + 16),
    }
}

/// Decodes the payload at `range` of `bytes`, a record of type `kind` whose checksum
/// matched. A malformed payload is an error message (the caller names file and offset).
pub(crate) fn decode_payload(
    bytes: &[u8],
    kind: u8,
    range: std::ops::Range<usize>,
) -> std::result::Result<Record, String> {
    let p = &bytes[range.clone()];
    match kind {
        TYPE_STATE => {
            if p.len() != STATE_LEN {
                return Err(format!(
                    "state record of {} bytes, expected {STATE_LEN}",
                    p.len()
                ));
            }
            let snap = SnapshotMeta {
                index: u64_at(p, 32),
                term: u64_at(p, 40),
            };
            Ok(Record::State(StateRecord {
                hard_state: hard_state_at(p, 0),
                last_index: u64_at(p, 24),
                snapshot: (snap != SnapshotMeta::default()).then_some(snap),
            }))
        }
        TYPE_SNAPSHOT => {
            if p.len() != SNAPSHOT_LEN {
                return Err(format!(
                    "snapshot record of {} bytes, expected {SNAPSHOT_LEN}",
                    p.len()
                ));
            }
            let flags = u32_at(p, 16);
            if flags & !FLAG_SUFFIX_KEPT != 0 || u32_at(p, 20) != 0 {
                return Err(format!("unknown snapshot record flags {flags:#x}"));
            }
            Ok(Record::Snapshot(SnapshotMark {
                meta: SnapshotMeta {
                    index: u64_at(p, 0),
                    term: u64_at(p, 8),
                },
                suffix_kept: flags & FLAG_SUFFIX_KEPT != 0,
            }))
        }
        TYPE_BATCH => decode_batch(p, range.start).map(Record::Batch),
        other => Err(format!("unknown record type {other}")),
    }
}

fn decode_batch(p: &[u8], base: usize) -> std::result::Result<BatchRef, String> {
    if p.len() < BATCH_FIXED_LEN {
        return Err(format!("batch record of {} bytes is too short", p.len()));
    }
    let flags = u32_at(p, 0);
    if flags & !(FLAG_HARD_STATE | FLAG_TRUNCATE) != 0 {
        return Err(format!("unknown batch flags {flags:#x}"));
    }
    let count = u32_at(p, 4) as usize;
    let mut at = BATCH_FIXED_LEN;
    let need = |at: usize, n: usize| {
        if p.len() - at < n {
            Err(format!(
                "batch record ends at byte {} of {n} needed at {at}",
                p.len()
            ))
        } else {
            Ok(())
        }
    };
    let mut batch = BatchRef::default();
    if flags & FLAG_HARD_STATE != 0 {
        need(at, HARD_STATE_LEN)?;
        batch.hard_state = Some(hard_state_at(p, at));
        at += HARD_STATE_LEN;
    }
    if flags & FLAG_TRUNCATE != 0 {
        need(at, 8)?;
        batch.truncate_from = Some(u64_at(p, at));
        at += 8;
    }
    // Bound the allocation by what the payload can hold.
    if count > (p.len() - at) / ENTRY_HEADER_LEN {
        return Err(format!(
            "batch claims {count} entries, more than its {} bytes hold",
            p.len()
        ));
    }
    batch.entries.reserve_exact(count);
    for _ in 0..count {
        need(at, ENTRY_HEADER_LEN)?;
        let index = u64_at(p, at);
        let term = u64_at(p, at + 8);
        let data_len = u32_at(p, at + 16) as usize;
        at += ENTRY_HEADER_LEN;
        need(at, data_len)?;
        batch.entries.push(EntryRef {
            index,
            term,
            data_offset: base + at,
            data_len,
        });
        at += data_len;
    }
    if at != p.len() {
        return Err(format!(
            "{} bytes after the last entry of a batch",
            p.len() - at
        ));
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Entry;

    const SALT: u32 = 0x5eed_1234;

    fn batch() -> WriteBatch {
        WriteBatch::new()
            .hard_state(HardState {
                term: 4,
                voted_for: Some(2),
                commit: 9,
            })
            .truncate_from(8)
            .append([
                Entry {
                    index: 8,
                    term: 4,
                    data: b"eight".to_vec(),
                },
                Entry {
                    index: 9,
                    term: 4,
                    data: vec![],
                },
            ])
    }

    fn decode_one(bytes: &[u8]) -> Record {
        match read_frame(bytes, 0, SALT) {
            Framed::Record {
                kind,
                payload,
                next,
            } => {
                assert_eq!(next, bytes.len());
                decode_payload(bytes, kind, payload).expect("payload")
            }
            other => panic!("not a record: {other:?}"),
        }
    }

    #[test]
    fn records_round_trip() {
        let mut out = Vec::new();
        let b = batch();
        encode_batch(&b, SALT, &mut out).expect("encode");
        let Record::Batch(r) = decode_one(&out) else {
            panic!("not a batch")
        };
        assert_eq!(r.hard_state, b.hard_state);
        assert_eq!(r.truncate_from, Some(8));
        let got: Vec<Entry> = r
            .entries
            .iter()
            .map(|e| Entry {
                index: e.index,
                term: e.term,
                data: out[e.data_offset..e.data_offset + e.data_len].to_vec(),
            })
            .collect();
        assert_eq!(got, b.entries);

        let st = StateRecord {
            hard_state: HardState {
                term: 1,
                voted_for: None,
                commit: 0,
            },
            last_index: 77,
            snapshot: Some(SnapshotMeta { index: 70, term: 1 }),
        };
        encode_state(&st, SALT, &mut out).expect("encode");
        assert_eq!(out.len(), RECORD_HEADER_LEN + STATE_LEN);
        assert_eq!(decode_one(&out), Record::State(st));

        for suffix_kept in [false, true] {
            let m = SnapshotMark {
                meta: SnapshotMeta { index: 5, term: 2 },
                suffix_kept,
            };
            encode_snapshot(m, SALT, &mut out).expect("encode");
            assert_eq!(decode_one(&out), Record::Snapshot(m));
        }

        encode_batch(&WriteBatch::new(), SALT, &mut out).expect("encode");
        assert_eq!(decode_one(&out), Record::Batch(BatchRef::default()));
    }

    #[test]
    fn every_bit_flip_and_every_truncation_is_detected() {
        let mut out = Vec::new();
        encode_batch(&batch(), SALT, &mut out).expect("encode");
        for bit in 0..out.len() * 8 {
            let mut c = out.clone();
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(
                matches!(read_frame(&c, 0, SALT), Framed::Bad(_)),
                "flip of bit {bit} not detected"
            );
        }
        for len in 1..out.len() {
            assert!(
                matches!(read_frame(&out[..len], 0, SALT), Framed::Bad(_)),
                "cut at {len}"
            );
        }
        assert_eq!(read_frame(&out, out.len(), SALT), Framed::End);
        // The same bytes under another segment's salt are not a record.
        assert!(matches!(read_frame(&out, 0, SALT ^ 1), Framed::Bad(_)));
    }

    #[test]
    fn garbage_never_panics_or_over_allocates() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..5000 {
            let len = (next() % 96) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Half the time, a plausible header so that the payload decoder runs.
            if len >= RECORD_HEADER_LEN && next() % 2 == 0 {
                bytes[OFF_TYPE] = (next() % 3) as u8 + 1;
                bytes[OFF_RESERVED..RECORD_HEADER_LEN].fill(0);
                let plen = (len - RECORD_HEADER_LEN) as u32;
                bytes[OFF_LEN..OFF_TYPE].copy_from_slice(&plen.to_le_bytes());
                let crc = record_crc(SALT, &bytes[OFF_LEN..]);
                bytes[..4].copy_from_slice(&crc.to_le_bytes());
            }
            if let Framed::Record { kind, payload, .. } = read_frame(&bytes, 0, SALT) {
                let _ = decode_payload(&bytes, kind, payload);
            }
            let _ = next_valid_record(&bytes, 1, SALT);
        }
        // A batch claiming u32::MAX entries in a few bytes is refused before reserving.
        let mut p = vec![0u8; 8];
        p[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_batch(&p, 0).is_err());
    }

    #[test]
    fn finds_the_next_valid_record_after_garbage() {
        let mut out = Vec::new();
        let mark = SnapshotMark {
            meta: SnapshotMeta { index: 1, term: 1 },
            suffix_kept: true,
        };
        encode_snapshot(mark, SALT, &mut out).expect("encode");
        let mut bytes = vec![0xAB; 7];
        bytes.extend_from_slice(&out);
        assert_eq!(next_valid_record(&bytes, 0, SALT), Some(7));
        assert_eq!(next_valid_record(&bytes, 8, SALT), None);
    }
}
