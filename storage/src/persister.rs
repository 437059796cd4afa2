//! The [`Persister`] trait: the only way consensus and the KV service touch durable state.

use std::io::{Read, Write};

use crate::error::StorageError;
use crate::sync_histogram::SyncHistogram;
use crate::types::{RecoveredState, SnapshotInfo, SnapshotMeta, WriteBatch};

/// Result type of storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Durable Raft state: hard state, log and snapshots.
///
/// # The model
///
/// A persister stores one *hard state*, one *log* (a contiguous run of entries) and up to
/// two *snapshots*, of which the newest valid one is current. The log logically starts
/// right after the current snapshot: entries at or below the snapshot index are never
/// returned by [`recover`](Persister::recover).
///
/// # Contract, for every implementation
///
/// * **Durability on return.** When [`write`](Persister::write) or
///   [`SnapshotWriter::commit`] returns `Ok`, what it wrote survives a crash (process kill
///   or power loss) at any later instant. Nothing is durable before that.
/// * **Atomicity.** A [`WriteBatch`] is applied entirely or not at all. A snapshot commit
///   is atomic with the logical compaction of the log through its index.
/// * **Ordering.** Calls are durable in the order they returned. If write A returned
///   before write B was called, recovery never sees B without A. Calls that overlap in
///   time (from different threads) are serialized in some order.
/// * **Recovery after a crash at any instant** sees exactly the effects of the calls that
///   returned `Ok`, plus possibly the effects of the one call in flight at the crash
///   (all of it, never part of it).
/// * **Failure poisons.** If a write or a sync fails, the persister refuses every later
///   write with [`StorageError::Poisoned`]. It never retries a failed sync, because after a
///   failed fsync the kernel may have dropped the dirty pages and a retry would report
///   success for data that is gone.
/// * **Bad data is reported, never skipped.** Recovery reports corruption with the file
///   and offset. The only silent repair is cutting off a torn last log record, which no
///   call ever acknowledged.
pub trait Persister: Send + Sync + std::fmt::Debug {
    /// Reads back everything durable: the hard state, the newest valid snapshot's
    /// metadata and the log entries after it.
    ///
    /// Invalid snapshots are skipped in favour of an older valid one and listed in
    /// [`RecoveredState::skipped_snapshots`]. If the log needs a snapshot that no longer
    /// validates (its first entry is not right after the chosen snapshot), recovery fails
    /// with [`StorageError::MissingSnapshot`]: it never returns a state that silently lost
    /// committed data.
    ///
    /// The returned hard state's `commit` is at least the snapshot index. Calling it again
    /// returns the current state (recovery is idempotent).
    fn recover(&self) -> Result<RecoveredState>;

    /// Applies one [`WriteBatch`] atomically and durably, with one sync.
    ///
    /// Validation happens before anything is written, and a rejected batch changes
    /// nothing (and does not poison):
    /// * `truncate_from` must be above the snapshot index;
    /// * `entries` must be contiguous, and the first must directly follow the last entry
    ///   left after truncation (or the snapshot index, if none is left): a gap or an
    ///   overlap is [`StorageError::LogGap`].
    ///
    /// Callers get group commit by putting many entries (and the latest hard state) into
    /// one batch.
    fn write(&self, batch: &WriteBatch) -> Result<()>;

    /// Starts writing a snapshot for `meta`. The payload is streamed into the returned
    /// writer; nothing is visible until [`SnapshotWriter::commit`] returns.
    ///
    /// Log writes may continue while a snapshot is being written. A snapshot whose index
    /// is not above the current snapshot's is rejected at commit with
    /// [`StorageError::StaleSnapshot`].
    fn begin_snapshot(&self, meta: SnapshotMeta) -> Result<Box<dyn SnapshotWriter>>;

    /// Opens the current snapshot's payload for streaming, or `None` if there is none.
    ///
    /// The reader verifies checksums as it streams and fails with
    /// [`StorageError::Corrupt`] rather than return bytes that do not match. The snapshot
    /// stays readable even if a newer one is committed while reading.
    fn open_snapshot(&self) -> Result<Option<Box<dyn SnapshotReader>>>;

    /// The current snapshot's metadata.
    fn snapshot_meta(&self) -> Option<SnapshotMeta>;

    /// Releases storage for log entries up to `through`, which must not exceed the
    /// current snapshot index. Those entries are already logically gone (recovery never
    /// returns them); this only reclaims space, and may keep entries that the previous
    /// retained snapshot still needs. Not necessarily durable on return.
    fn compact(&self, through: u64) -> Result<()>;

    /// Bytes of hard state plus retained log after the snapshot, counted with
    /// [`Entry::accounted_size`](crate::Entry::accounted_size). The KV service compares it
    /// with `max_raft_state` after every applied entry, so it must be cheap and must not
    /// wait for a write (and its sync) in progress: it may lag such a write.
    fn raft_state_size(&self) -> u64;

    /// Bytes the current snapshot occupies in storage (0 without one).
    fn snapshot_size(&self) -> u64;

    /// The backend's name, for logs and `INFO`.
    fn backend_name(&self) -> &'static str;

    /// How long the syncs that make [`write`](Persister::write) durable took, or `None`
    /// for a backend that does not sync (memory; the default).
    ///
    /// Contract for a backend that returns one: every sync that a `write` waits for
    /// (one per batch: the file backend's `fdatasync`, RocksDB's synced write batch) is
    /// observed once, after it returned (failed ones too, before the error is
    /// returned), and nothing else is. With `Durability::None` nothing is synced and
    /// nothing is observed. The histogram is only read by callers: observing never
    /// blocks a write, and reading never blocks a sync.
    fn sync_histogram(&self) -> Option<&SyncHistogram> {
        None
    }
}

/// A snapshot being written. Dropping it without [`commit`](SnapshotWriter::commit)
/// discards it, leaving the previous snapshot current.
pub trait SnapshotWriter: Write + Send {
    /// Makes the snapshot durable and current, atomically with compacting the log.
    ///
    /// After it returns `Ok`, recovery sees this snapshot and, of the log, only entries
    /// above its index. If the log held the entry at the snapshot's index with the
    /// snapshot's term, the entries after it are kept; otherwise the whole log is
    /// discarded (Raft §7: the snapshot supersedes a conflicting log). The previous
    /// snapshot is kept as a fallback; older ones are removed.
    fn commit(self: Box<Self>) -> Result<SnapshotInfo>;
}

/// A snapshot payload being read.
pub trait SnapshotReader: Read + Send {
    /// The snapshot's index and term.
    fn meta(&self) -> SnapshotMeta;

    /// The payload length in bytes, as written.
    fn payload_len(&self) -> u64;

    /// The next piece of the payload, after what was read so far, as a buffer the
    /// caller owns; `None` at the end. Pieces are never empty. A reader that decodes
    /// the payload in frames hands each frame over without copying it, so a caller
    /// that keeps slices of the payload (a restore) saves a copy and a zero fill.
    /// The same checks as [`Read`] apply, and `Read` calls may be mixed with these.
    ///
    /// The default reads up to [`DEFAULT_CHUNK`] bytes.
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        let mut chunk = Vec::with_capacity(DEFAULT_CHUNK);
        let n = (&mut *self)
            .take(DEFAULT_CHUNK as u64)
            .read_to_end(&mut chunk)
            .map_err(|e| StorageError::io("read snapshot", "<snapshot stream>", e))?;
        Ok((n > 0).then_some(chunk))
    }
}

/// The piece size of [`SnapshotReader::next_chunk`]'s default.
pub const DEFAULT_CHUNK: usize = 1 << 20;
