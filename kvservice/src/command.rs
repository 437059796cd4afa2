//! What clients ask of the KV state machine, and what it answers. These are proposed
//! through Raft (encoded with [`raftkv_storage::codec`]), so every replica applies the
//! same commands in the same order.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A client session id. `0` means "no session": the command is not deduplicated.
pub type ClientId = u64;

/// One command in the replicated log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The client's session id (0 for none).
    pub client_id: ClientId,
    /// The client's sequence number for writes: 1 for its first write, then one more
    /// for each write; a retry re-sends the same number. Reads carry 0 (they are not
    /// deduplicated, and must not make a session's first write look like a later one).
    pub seq: u64,
    /// The proposer's wall clock in milliseconds. Applied state only ever uses the
    /// maximum seen so far, so that session expiry is deterministic on every replica.
    pub ts_ms: u64,
    /// The operation.
    pub op: Op,
}

impl Command {
    /// The command for `op` in session `client_id`, stamped now. Writes take the
    /// session's next sequence number (advancing `next_seq`): a session's first write
    /// carries 1, which is how the dedup table tells a new session from an expired one.
    /// Reads change nothing and go as seq 0.
    pub fn in_session(client_id: ClientId, next_seq: &mut u64, op: Op) -> Command {
        let seq = if op.is_write() {
            *next_seq += 1;
            *next_seq - 1
        } else {
            0
        };
        Command {
            client_id,
            seq,
            ts_ms: crate::rsm::now_ms(),
            op,
        }
    }
}

/// A KV operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Read a key (only proposed when reads go through the log).
    Get {
        /// The key.
        key: Bytes,
    },
    /// Store a value unconditionally; the version goes up by one.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// Store a value only if the key's version is `version` (0: the key must not exist).
    PutIf {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
        /// The version the caller last saw.
        version: u64,
    },
    /// Remove a key. A later put creates it again at version 1.
    Delete {
        /// The key.
        key: Bytes,
    },
    // New variants go at the end: the log and the dedup table store these encoded by
    // variant index, so an old log must keep decoding to the same operations.
    /// Redis `SET`: store `value` if `cond` holds (the version goes up by one, or starts
    /// at 1), optionally answering the value it replaced. Answered with
    /// [`Reply::SetDone`].
    Set {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
        /// When to store.
        cond: SetCond,
        /// Answer the previous value (Redis's `GET` option).
        return_old: bool,
    },
    /// Remove several keys at once (Redis `DEL`). Answered with [`Reply::Count`]: how
    /// many keys were removed (a key listed twice is removed, and counted, once).
    DeleteMany {
        /// The keys, in order.
        keys: Vec<Bytes>,
    },
    /// Read several keys (Redis `MGET`). Answered with [`Reply::Values`].
    GetMany {
        /// The keys, in order.
        keys: Vec<Bytes>,
    },
    /// Count the listed keys that exist (Redis `EXISTS`): a key listed n times counts n
    /// times. Answered with [`Reply::Count`].
    CountExisting {
        /// The keys, in order.
        keys: Vec<Bytes>,
    },
    /// The number of keys (Redis `DBSIZE`). Answered with [`Reply::Count`].
    KeyCount,
    /// Several operations applied in order as one command, each seeing the effects of
    /// the ones before it, answered with [`Reply::Batch`]. The RESP server puts a
    /// connection's pipelined writes into one of these, so that one sequence number
    /// covers them all: a retry is answered from the dedup table with every reply.
    Batch {
        /// The operations, in order.
        ops: Vec<Op>,
    },
}

/// When [`Op::Set`] stores its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetCond {
    /// Always (plain `SET`).
    Always,
    /// Only if the key does not exist (`NX`).
    IfAbsent,
    /// Only if the key exists (`XX`).
    IfPresent,
}

impl Op {
    /// True for operations that change state (and so are deduplicated).
    pub fn is_write(&self) -> bool {
        match self {
            Op::Get { .. } | Op::GetMany { .. } | Op::CountExisting { .. } | Op::KeyCount => false,
            Op::Put { .. }
            | Op::PutIf { .. }
            | Op::Delete { .. }
            | Op::Set { .. }
            | Op::DeleteMany { .. }
            | Op::Batch { .. } => true,
        }
    }

    /// The keys the operation touches, in order (none for [`Op::KeyCount`], which reads
    /// them all, nor for [`Op::Batch`]: see its operations).
    pub fn keys(&self) -> &[Bytes] {
        match self {
            Op::Get { key }
            | Op::Put { key, .. }
            | Op::PutIf { key, .. }
            | Op::Delete { key }
            | Op::Set { key, .. } => std::slice::from_ref(key),
            Op::DeleteMany { keys } | Op::GetMany { keys } | Op::CountExisting { keys } => keys,
            Op::KeyCount | Op::Batch { .. } => &[],
        }
    }
}

/// The state machine's answer to one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// A read: the value and its version (`None` and 0 when the key does not exist).
    Value {
        /// The value, if the key exists.
        value: Option<Bytes>,
        /// Its version (0 when absent).
        version: u64,
    },
    /// A put or put_if succeeded; the key now has this version.
    Written {
        /// The new version.
        version: u64,
    },
    /// `put_if` with a version that does not match the key's current one.
    ErrVersion {
        /// The key's current version (0 when absent).
        current: u64,
    },
    /// `put_if` with a non-zero version on a key that does not exist.
    ErrNoKey,
    /// A delete; whether the key existed.
    Deleted {
        /// True if a value was removed.
        existed: bool,
    },
    /// The client's session expired (or never existed) and this is not its first
    /// request, so the state machine cannot tell whether an earlier attempt applied.
    SessionExpired,
    /// An older request of a session that has since moved on; its answer is gone.
    StaleRequest {
        /// The session's latest sequence number.
        last_seq: u64,
    },
    // New variants go at the end (the dedup table in snapshots stores replies).
    /// The answer to [`Op::Set`].
    SetDone {
        /// True if the value was stored (the condition held).
        stored: bool,
        /// The key's version afterwards (0 when it does not exist).
        version: u64,
        /// The value before, when the op asked for it (`None`: it did not, or the key
        /// did not exist).
        old: Option<Bytes>,
    },
    /// A count: keys removed ([`Op::DeleteMany`]), keys found ([`Op::CountExisting`]),
    /// or keys stored ([`Op::KeyCount`]).
    Count {
        /// The count.
        count: u64,
    },
    /// The answer to [`Op::GetMany`]: each key's value, in order (`None` when absent).
    Values {
        /// The values.
        values: Vec<Option<Bytes>>,
    },
    /// The answer to [`Op::Batch`]: one reply per operation, in order.
    Batch {
        /// The replies.
        replies: Vec<Reply>,
    },
}
