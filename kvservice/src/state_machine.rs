//! [`KvStateMachine`]: the KV store plus the exactly-once table plus the index they
//! reflect, applied in log order, and its snapshot encoding.
//!
//! # Snapshot payload (inside the storage layer's zstd + crc32 snapshot file)
//!
//! A stream of values encoded with [`raftkv_storage::codec`]:
//!
//! 1. [`SnapshotHeader`]: magic `RKVSTATE`, format version, applied index and term, log
//!    clock, key count, session count;
//! 2. `key_count` × `(key, value, version)` in key order;
//! 3. `session_count` × `(client_id, last_seq, last_active_ms, last_reply)`.
//!
//! The state, the dedup table and their index are captured together from one frozen
//! view, so a snapshot never mixes two moments.

use std::io::{BufReader, BufWriter, Read, Write};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use raftkv_storage::{StorageError, codec};

use crate::command::{Command, Reply};
use crate::sessions::{Admission, Session, SessionTable};
use crate::store::{KvStore, Versioned};

const MAGIC: [u8; 8] = *b"RKVSTATE";
const FORMAT_VERSION: u32 = 1;

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
        let mut r = BufReader::with_capacity(256 << 10, input);
        let header: SnapshotHeader = codec::decode_from(&mut r)?;
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
        let mut store = KvStore::new();
        for _ in 0..header.key_count {
            let rec: KeyRecord = codec::decode_from(&mut r)?;
            store.restore_entry(
                rec.key,
                Versioned {
                    value: rec.value,
                    version: rec.version,
                },
            );
        }
        let mut table = SessionTable::new_like(&sessions);
        for _ in 0..header.session_count {
            let rec: SessionRecord = codec::decode_from(&mut r)?;
            table.restore(
                rec.client_id,
                Session {
                    last_seq: rec.last_seq,
                    last_reply: rec.last_reply,
                    last_active_ms: rec.last_active_ms,
                },
            );
        }
        let mut rest = [0u8; 1];
        match r.read(&mut rest) {
            Ok(0) => {}
            Ok(_) => {
                return Err(StorageError::Codec {
                    op: "read kv snapshot",
                    detail: "trailing bytes after the last session".into(),
                });
            }
            Err(e) => return Err(StorageError::io("read kv snapshot", "<snapshot stream>", e)),
        }
        Ok(KvStateMachine {
            store,
            sessions: table,
            applied_index: header.applied_index,
            applied_term: header.applied_term,
            clock_ms: header.clock_ms,
        })
    }
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
    #[should_panic(expected = "apply out of order")]
    fn gaps_are_invariant_violations() {
        let mut sm = KvStateMachine::new();
        sm.apply_noop(2, 1);
    }
}
