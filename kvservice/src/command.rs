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
}

impl Op {
    /// True for operations that change state (and so are deduplicated).
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Get { .. })
    }

    /// The key the operation touches.
    pub fn key(&self) -> &Bytes {
        match self {
            Op::Get { key } | Op::Put { key, .. } | Op::PutIf { key, .. } | Op::Delete { key } => {
                key
            }
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
}
