//! [`KvStateMachine`]: the KV store plus the exactly-once table plus the index they
//! reflect, applied in log order, and its snapshot encoding.
//!
//! # Snapshot payload (inside the storage layer's zstd + crc32 snapshot file)
//!
//! A stream of values encoded with [`raftkv_storage::codec`]:
//!
//! 1. [`SnapshotHeader`]: magic `RKVSTATE`, format version, applied index and term, log
//!    clock, key count, session count;
//! 2. `key_count` × `(key, value, version)` in strictly increasing key order (a reader
//!    refuses any other order, naming the record); each key and value is a varint length
//!    and its bytes, which a restore slices out of the payload in place;
//! 3. `session_count` × `(client_id, last_seq, last_active_ms, last_reply)`.
//!
//! The state, the dedup table and their index are captured together from one frozen
//! view, so a snapshot never mixes two moments.

use std::io::{BufWriter, Read, Write};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use raftkv_storage::{SnapshotReader, StorageError, codec};

use crate::command::{Command, Reply};
use crate::payload_reader::{ChunkSource, PayloadReader, ReadChunks};
use crate::sessions::{Admission, Session, SessionTable};
use crate::store::{KvStore, Versioned};

const MAGIC: [u8; 8] = *b"RKVSTATE";
const FORMAT_VERSION: u32 = 1;
/// The smallest encoded key record: an empty key, an empty value, version 0.
const MIN_KEY_RECORD: u64 = 3;

/// The first value of a snapshot payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    magic: [u8; 8],
    format_version: u32,
    /// Index of the last command reflected.
    pub applied_index: u64,
    /// Its term.
    pub applied_term: u64,
    /// The log clock (max proposer timestamp applied), for session expiry.
    pub clock_ms: u64,
    /// Keys that follow.
    pub key_count: u64,
    /// Sessions that follow the keys.
    pub session_count: u64,
}

#[derive(Serialize, Deserialize)]
struct KeyRecord {
    key: Bytes,
    value: Bytes,
    version: u64,
}

#[derive(Serialize, Deserialize)]
struct SessionRecord {
    client_id: u64,
    last_seq: u64,
    last_active_ms: u64,
    last_reply: Reply,
}

/// The replicated KV state machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvStateMachine {
    store: KvStore,
    sessions: SessionTable,
    applied_index: u64,
    applied_term: u64,
    clock_ms: u64,
}

impl KvStateMachine {
    /// An empty state machine at index 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty state machine with a custom session table.
    pub fn with_sessions(sessions: SessionTable) -> Self {
        Self {
            sessions,
            ..Self::default()
        }
    }

    /// The index of the last applied command (or snapshot).
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// The term of the last applied command (or snapshot).
    pub fn applied_term(&self) -> u64 {
        self.applied_term
    }

    /// The KV data.
    pub fn store(&self) -> &KvStore {
        &self.store
    }

    /// The exactly-once table.
    pub fn sessions(&self) -> &SessionTable {
        &self.sessions
    }

    /// Applies the command at `index`. Indices must be applied in order without gaps.
    pub fn apply(&mut self, index: u64, term: u64, cmd: &Command) -> Reply {
        self.advance(index, term);
        self.clock_ms = self.clock_ms.max(cmd.ts_ms);
        self.sessions.expire(self.clock_ms);
        if cmd.client_id == 0 || !cmd.op.is_write() {
            return self.store.apply(&cmd.op);
        }
        match self.sessions.admit(cmd.client_id, cmd.seq) {
            Admission::Duplicate(reply) | Admission::Reject(reply) => reply,
            Admission::Apply => {
                let reply = self.store.apply(&cmd.op);
                self.sessions
                    .record(cmd.client_id, cmd.seq, reply.clone(), self.clock_ms);
                reply
            }
        }
    }

    /// Answers a read-only operation from the current state (`None` for a write). The
    /// caller makes it linearizable (see [`Rsm::read_view`](crate::rsm::Rsm::read_view)).
    pub fn query(&self, op: &crate::command::Op) -> Option<Reply> {
        self.store.query(op)
    }

    /// Records an entry that carries no command (a leader's no-op).
    pub fn apply_noop(&mut self, index: u64, term: u64) {
        self.advance(index, term);
    }

    fn advance(&mut self, index: u64, term: u64) {
        assert_eq!(
            index,
            self.applied_index + 1,
            "kv state machine: apply out of order (applied {}, got index {index} term {term})",
            self.applied_index
        );
        assert!(
            term >= self.applied_term,
            "kv state machine: term went backwards at index {index} ({} -> {term})",
            self.applied_term
        );
        self.applied_index = index;
        self.applied_term = term;
    }

    /// A frozen view for a snapshot, taken in O(1): the state, the dedup table and their
    /// index together. Serialize it on another thread while this one keeps applying.
    pub fn snapshot_view(&self) -> KvStateMachine {
        self.clone()
    }

    /// Streams this state into `out` in the snapshot payload format. Returns the bytes
    /// written.
    pub fn write_snapshot<W: Write>(&self, out: W) -> Result<u64, StorageError> {
        let mut w = CountingWriter {
            inner: BufWriter::with_capacity(256 << 10, out),
            written: 0,
        };
        let header = SnapshotHeader {
            magic: MAGIC,
            format_version: FORMAT_VERSION,
            applied_index: self.applied_index,
            applied_term: self.applied_term,
            clock_ms: self.clock_ms,
            key_count: self.store.len() as u64,
            session_count: self.sessions.len() as u64,
        };
        codec::encode_into(&header, &mut w)?;
        for (key, v) in self.store.iter() {
            let rec = KeyRecord {
                key: key.clone(),
                value: v.value.clone(),
                version: v.version,
            };
            codec::encode_into(&rec, &mut w)?;
        }
        for (client_id, s) in self.sessions.iter() {
            let rec = SessionRecord {
                client_id: *client_id,
                last_seq: s.last_seq,
                last_active_ms: s.last_active_ms,
                last_reply: s.last_reply.clone(),
            };
            codec::encode_into(&rec, &mut w)?;
        }
        w.inner
            .flush()
            .map_err(|e| StorageError::io("write kv snapshot", "<snapshot stream>", e))?;
        Ok(w.written)
    }

    /// Rebuilds a state machine from a snapshot payload. `sessions` gives the expiry
    /// settings; its contents are replaced.
    pub fn read_snapshot<R: Read>(
        input: R,
        sessions: SessionTable,
    ) -> Result<KvStateMachine, StorageError> {
        Self::read_from(
            PayloadReader::new(ReadChunks(input)),
            None,
            sessions,
            &mut |_, _| {},
        )
    }

    /// Like [`read_snapshot`](Self::read_snapshot), from a persister's snapshot: the
    /// keys and values are slices of the frames it decodes (no copy of the payload).
    pub fn restore(
        reader: &mut dyn SnapshotReader,
        sessions: SessionTable,
    ) -> Result<KvStateMachine, StorageError> {
        Self::restore_with_progress(reader, sessions, &mut |_, _| {})
    }

    /// [`restore`](Self::restore), calling `progress(keys_done, keys_total)` once the
    /// header is read, every [`PROGRESS_EVERY`] keys, and after the last key.
    pub fn restore_with_progress(
        reader: &mut dyn SnapshotReader,
        sessions: SessionTable,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<KvStateMachine, StorageError> {
        let len = reader.payload_len();
        Self::read_from(PayloadReader::new(reader), Some(len), sessions, progress)
    }

    /// `payload_len`, when known, bounds how many keys the payload can hold.
    fn read_from<S: ChunkSource>(
        mut r: PayloadReader<S>,
        payload_len: Option<u64>,
        sessions: SessionTable,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<KvStateMachine, StorageError> {
        let header: SnapshotHeader = r.decode(&|| "the header".into())?;
        if header.magic != MAGIC {
            return Err(StorageError::Codec {
                op: "read kv snapshot",
                detail: format!("bad magic {:?}", header.magic),
            });
        }
        if header.format_version != FORMAT_VERSION {
            return Err(StorageError::Codec {
                op: "read kv snapshot",
                detail: format!(
                    "unknown format version {} (this build reads {FORMAT_VERSION})",
                    header.format_version
                ),
            });
        }
        progress(0, header.key_count);
        let store = read_keys(&mut r, header.key_count, payload_len, progress)?;
        let mut table = SessionTable::new_like(&sessions);
        for i in 0..header.session_count {
            let rec: SessionRecord =
                r.decode(&|| format!("session record {i} of {}", header.session_count))?;
            table.restore(
                rec.client_id,
                Session {
                    last_seq: rec.last_seq,
                    last_reply: rec.last_reply,
                    last_active_ms: rec.last_active_ms,
                },
            );
        }
        r.expect_end("session")?;
        Ok(KvStateMachine {
            store,
            sessions: table,
            applied_index: header.applied_index,
            applied_term: header.applied_term,
            clock_ms: header.clock_ms,
        })
    }
}

/// How many keys a restore reads between two progress reports.
pub const PROGRESS_EVERY: u64 = 4096;

/// Reads `count` key records, in strictly increasing key order, into a store. The keys
/// and values are slices of the reader's pieces.
fn read_keys<S: ChunkSource>(
    r: &mut PayloadReader<S>,
    count: u64,
    payload_len: Option<u64>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<KvStore, StorageError> {
    // `count` is untrusted: reserve no more than the payload can hold (a record takes
    // at least three bytes), or a bounded amount if its length is unknown, and grow
    // with what actually arrives.
    let bound = payload_len.map_or(1 << 16, |len| len / MIN_KEY_RECORD);
    let reserve = usize::try_from(count.min(bound)).unwrap_or(usize::MAX);
    let mut entries: Vec<(Bytes, Versioned)> = Vec::new();
    entries
        .try_reserve_exact(reserve)
        .map_err(|e| StorageError::Codec {
            op: "read kv snapshot",
            detail: format!("no memory for {reserve} keys: {e}"),
        })?;
    for i in 0..count {
        let what = || format!("key record {i} of {count}");
        let at = r.offset();
        let (key, value, version) = r.bytes_bytes_u64(&what)?;
        if entries.last().is_some_and(|(prev, _)| *prev >= key) {
            return Err(StorageError::Codec {
                op: "read kv snapshot",
                detail: format!(
                    "{} at payload offset {at}: keys out of order (each must be greater \
                     than the one before)",
                    what()
                ),
            });
        }
        entries.push((key, Versioned { value, version }));
        if (i + 1) % PROGRESS_EVERY == 0 {
            progress(i + 1, count);
        }
    }
    progress(count, count);
    Ok(KvStore::from_sorted(entries))
}

struct CountingWriter<W: Write> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Op;

    fn put(client: u64, seq: u64, key: &str, value: &str) -> Command {
        Command {
            client_id: client,
            seq,
            ts_ms: seq,
            op: Op::Put {
                key: Bytes::copy_from_slice(key.as_bytes()),
                value: Bytes::copy_from_slice(value.as_bytes()),
            },
        }
    }

    #[test]
    fn retried_write_is_answered_not_reapplied() {
        let mut sm = KvStateMachine::new();
        assert_eq!(
            sm.apply(1, 1, &put(9, 1, "k", "a")),
            Reply::Written { version: 1 }
        );
        // The reply was lost; the client re-sends seq 1 and gets the same answer.
        assert_eq!(
            sm.apply(2, 1, &put(9, 1, "k", "a")),
            Reply::Written { version: 1 }
        );
        assert_eq!(sm.store().get(b"k").map(|v| v.version), Some(1));
    }

    #[test]
    fn retried_conditional_set_and_multi_delete_answer_the_first_outcome() {
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let cmd = |seq, op| Command {
            client_id: 5,
            seq,
            ts_ms: seq,
            op,
        };
        let mut sm = KvStateMachine::new();
        let nx = cmd(
            1,
            Op::Set {
                key: b("k"),
                value: b("a"),
                cond: crate::command::SetCond::IfAbsent,
                return_old: true,
            },
        );
        let first = Reply::SetDone {
            stored: true,
            version: 1,
            old: None,
        };
        assert_eq!(sm.apply(1, 1, &nx), first);
        // A retry would fail the NX condition if re-applied; it gets the first answer.
        assert_eq!(sm.apply(2, 1, &nx), first);
        assert_eq!(sm.store().get(b"k").map(|v| v.version), Some(1));
        let del = cmd(
            2,
            Op::DeleteMany {
                keys: vec![b("k"), b("x")],
            },
        );
        assert_eq!(sm.apply(3, 1, &del), Reply::Count { count: 1 });
        assert_eq!(sm.apply(4, 1, &del), Reply::Count { count: 1 });
        // Reads are not recorded: the session's last reply is still the delete's.
        let get = cmd(0, Op::KeyCount);
        assert_eq!(sm.apply(5, 1, &get), Reply::Count { count: 0 });
        assert_eq!(sm.query(&Op::KeyCount), Some(Reply::Count { count: 0 }));
        assert_eq!(
            sm.sessions()
                .get(5)
                .map(|s| (s.last_seq, s.last_reply.clone())),
            Some((2, Reply::Count { count: 1 }))
        );
    }

    #[test]
    fn snapshot_round_trip_includes_the_dedup_table() {
        let mut sm = KvStateMachine::new();
        for i in 1..=100u64 {
            // Seven clients, each numbering its own requests from 1.
            let reply = sm.apply(
                i,
                2,
                &put(
                    (i - 1) % 7 + 1,
                    (i - 1) / 7 + 1,
                    &format!("key{i}"),
                    &"v".repeat(i as usize),
                ),
            );
            assert_eq!(reply, Reply::Written { version: 1 });
        }
        sm.apply_noop(101, 3);
        let mut payload = Vec::new();
        let n = sm
            .snapshot_view()
            .write_snapshot(&mut payload)
            .expect("write");
        assert_eq!(n, payload.len() as u64);
        let back = KvStateMachine::read_snapshot(payload.as_slice(), SessionTable::default())
            .expect("read");
        assert_eq!(back, sm);
        // After restore, a retry of a client's last write is still recognised.
        let mut back = back;
        assert_eq!(
            back.apply(102, 3, &put(99 % 7 + 1, 99 / 7 + 1, "key100", "x")),
            Reply::Written { version: 1 }
        );
        assert_eq!(
            back.store().get(b"key100").map(|v| v.value.len()),
            Some(100)
        );
    }

    #[test]
    fn corrupt_snapshots_are_errors() {
        let sm = KvStateMachine::new();
        let mut payload = Vec::new();
        sm.write_snapshot(&mut payload).expect("write");
        let mut bad = payload.clone();
        bad[0] ^= 0xff;
        assert!(KvStateMachine::read_snapshot(bad.as_slice(), SessionTable::default()).is_err());
        let mut long = payload.clone();
        long.push(0);
        let e = KvStateMachine::read_snapshot(long.as_slice(), SessionTable::default())
            .expect_err("trailing");
        assert!(e.to_string().contains("trailing"), "{e}");
        assert!(
            KvStateMachine::read_snapshot(&payload[..payload.len() - 1], SessionTable::default())
                .is_err()
        );
    }

    #[test]
    fn snapshot_round_trips_at_several_sizes_with_overwrites_and_deletes() {
        for keys in [0u64, 1, 1000, 40_000] {
            let mut sm = KvStateMachine::new();
            let mut index = 0;
            let mut next = |sm: &mut KvStateMachine, op| {
                index += 1;
                sm.apply(
                    index,
                    1,
                    &Command {
                        client_id: 0,
                        seq: 0,
                        ts_ms: 0,
                        op,
                    },
                );
            };
            let key = |i: u64| Bytes::from(format!("k{:08}", i * 7919 % keys.max(1)));
            for i in 0..keys {
                next(
                    &mut sm,
                    Op::Put {
                        key: key(i),
                        value: Bytes::from(vec![i as u8; (i % 300) as usize]),
                    },
                );
            }
            for i in (0..keys).step_by(3) {
                next(&mut sm, Op::Delete { key: key(i) });
            }
            for i in (0..keys).step_by(5) {
                next(
                    &mut sm,
                    Op::Put {
                        key: key(i),
                        value: Bytes::from_static(b"again"),
                    },
                );
            }
            let mut payload = Vec::new();
            sm.snapshot_view()
                .write_snapshot(&mut payload)
                .expect("write");
            let back = KvStateMachine::read_snapshot(payload.as_slice(), SessionTable::default())
                .expect("read");
            assert_eq!(back, sm, "{keys} keys");
            assert_eq!(back.store().data_bytes(), sm.store().data_bytes());
            assert!(back.store().iter().eq(sm.store().iter()));
        }
    }

    #[test]
    fn keys_out_of_order_are_an_error_naming_the_record() {
        let header = SnapshotHeader {
            magic: MAGIC,
            format_version: FORMAT_VERSION,
            applied_index: 1,
            applied_term: 1,
            clock_ms: 0,
            key_count: 2,
            session_count: 0,
        };
        let mut payload = Vec::new();
        codec::encode_into(&header, &mut payload).expect("encode");
        for key in ["b", "a"] {
            let rec = KeyRecord {
                key: Bytes::from(key),
                value: Bytes::from_static(b"v"),
                version: 1,
            };
            codec::encode_into(&rec, &mut payload).expect("encode");
        }
        let e = KvStateMachine::read_snapshot(payload.as_slice(), SessionTable::default())
            .expect_err("out of order");
        assert!(e.to_string().contains("key record 1 of 2"), "{e}");
        assert!(e.to_string().contains("out of order"), "{e}");
    }

    #[test]
    #[should_panic(expected = "apply out of order")]
    fn gaps_are_invariant_violations() {
        let mut sm = KvStateMachine::new();
        sm.apply_noop(2, 1);
    }
}
