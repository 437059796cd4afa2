//! The plain data that crosses the [`Persister`](crate::Persister) boundary.

use serde::{Deserialize, Serialize};

/// A Raft node id. `0` is never a valid id.
pub type NodeId = u64;

/// The Raft state that must be durable before a node answers a vote or an append:
/// the current term, the vote cast in it, and the highest index known to be committed.
///
/// `commit` is persisted so that a restarted node never applies (and so never shows)
/// an older state than it had already applied before the crash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: u64,
    /// The candidate this node voted for in `term`, if any.
    pub voted_for: Option<NodeId>,
    /// The highest log index known to be committed.
    pub commit: u64,
}

/// One Raft log entry. `index` starts at 1; `data` is opaque to storage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the log, starting at 1.
    pub index: u64,
    /// Term of the leader that created the entry.
    pub term: u64,
    /// The payload, opaque to storage.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl Entry {
    /// Bytes this entry adds to [`Persister::raft_state_size`](crate::Persister::raft_state_size):
    /// the payload plus the two 8-byte header fields. Backends report this logical size, not
    /// their on-disk framing, so that the figure means the same on every backend.
    pub fn accounted_size(&self) -> u64 {
        self.data.len() as u64 + 16
    }
}

/// Bytes the hard state adds to [`Persister::raft_state_size`](crate::Persister::raft_state_size).
pub const HARD_STATE_ACCOUNTED_SIZE: u64 = 24;

/// The identity of a snapshot: it holds the state machine as of `index`, which was
/// created in `term`. A snapshot and its index are always taken and stored together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last log index the snapshot includes.
    pub index: u64,
    /// The term of the entry at `index`.
    pub term: u64,
}

/// What a committed snapshot occupies, as reported by
/// [`SnapshotWriter::commit`](crate::SnapshotWriter::commit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Index and term.
    pub meta: SnapshotMeta,
    /// Payload bytes as written by the caller.
    pub uncompressed_bytes: u64,
    /// Bytes stored (after compression and framing, where the backend compresses).
    pub stored_bytes: u64,
}

/// One atomic, durable write: the hard state, a suffix truncation and appended entries.
///
/// Applied in this order: `truncate_from` removes every entry with index `>= truncate_from`,
/// then `entries` are appended, then `hard_state` replaces the stored hard state. The whole
/// batch becomes durable together, with one sync, or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// The new hard state, if it changed.
    pub hard_state: Option<HardState>,
    /// Remove every entry with `index >= truncate_from` before appending.
    pub truncate_from: Option<u64>,
    /// Entries to append. They must be contiguous and start right after the last entry
    /// (after truncation), or right after the snapshot index if the log is empty.
    pub entries: Vec<Entry>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the hard state to store.
    pub fn hard_state(mut self, hs: HardState) -> Self {
        self.hard_state = Some(hs);
        self
    }

    /// Truncates the log from `index` (inclusive) before appending.
    pub fn truncate_from(mut self, index: u64) -> Self {
        self.truncate_from = Some(index);
        self
    }

    /// Appends entries.
    pub fn append(mut self, entries: impl IntoIterator<Item = Entry>) -> Self {
        self.entries.extend(entries);
        self
    }

    /// True when the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none() && self.truncate_from.is_none() && self.entries.is_empty()
    }
}

/// Everything durable, as returned by [`Persister::recover`](crate::Persister::recover).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveredState {
    /// The last durable hard state (all zero on a new store). Its `commit` is at least the
    /// snapshot index.
    pub hard_state: HardState,
    /// The newest valid snapshot, if any.
    pub snapshot: Option<SnapshotMeta>,
    /// The log entries after the snapshot, contiguous from `snapshot.index + 1` (or from 1).
    pub entries: Vec<Entry>,
    /// Snapshots that were found invalid and skipped in favour of an older valid one.
    pub skipped_snapshots: Vec<SkippedSnapshot>,
}

impl RecoveredState {
    /// Index of the first entry that can exist after the snapshot.
    pub fn first_index(&self) -> u64 {
        self.snapshot.map_or(1, |s| s.index + 1)
    }

    /// Index of the last entry, or the snapshot index if the log is empty.
    pub fn last_index(&self) -> u64 {
        self.entries
            .last()
            .map_or_else(|| self.first_index() - 1, |e| e.index)
    }
}

/// A snapshot that recovery found invalid and skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedSnapshot {
    /// Where it was (a file path, or a backend-specific name).
    pub location: String,
    /// Why it was rejected.
    pub reason: String,
}
