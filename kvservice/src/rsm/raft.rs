//! [`RaftHandle`]: what the replicated state machine needs from the consensus layer.
//!
//! The node runtime of `raftkv-consensus` implements it; tests can implement it with a
//! fake. Keeping the boundary this narrow is what keeps data flowing one way: the RSM
//! proposes down and receives applies up, and never reaches into Raft's state.

use std::io::Read;
use std::time::Duration;

use raftkv_storage::{NodeId, SnapshotMeta};

use crate::error::KvError;

/// One item of the ordered apply stream.
pub enum ApplyMsg {
    /// A committed entry. Empty `data` is a leader's no-op.
    Command {
        /// Log index.
        index: u64,
        /// Log term.
        term: u64,
        /// The encoded [`Command`](crate::command::Command), or empty.
        data: Vec<u8>,
    },
    /// A snapshot installed from the leader: replace the state with it.
    Snapshot {
        /// Its index and term.
        meta: SnapshotMeta,
        /// Its payload.
        payload: Box<dyn Read + Send>,
    },
}

impl std::fmt::Debug for ApplyMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyMsg::Command { index, term, data } => f
                .debug_struct("Command")
                .field("index", index)
                .field("term", term)
                .field("len", &data.len())
                .finish(),
            ApplyMsg::Snapshot { meta, .. } => {
                f.debug_struct("Snapshot").field("meta", meta).finish()
            }
        }
    }
}

/// Leadership as this replica sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leadership {
    /// The current term.
    pub term: u64,
    /// True if this replica leads in `term`.
    pub is_leader: bool,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
}

/// Receives the results of [`RaftHandle::propose_batch_with`].
pub type ProposeCallback = Box<dyn FnOnce(Vec<Result<(u64, u64), KvError>>) + Send>;

/// Receives the result of [`RaftHandle::read_index_with`].
pub type ReadIndexCallback = Box<dyn FnOnce(Result<u64, KvError>) + Send>;

/// Receives leadership changes; see [`RaftHandle::watch_leadership`].
pub type LeadershipWatcher = Box<dyn FnMut(Leadership) + Send>;

/// The consensus operations the RSM uses.
pub trait RaftHandle: Send + Sync + 'static {
    /// Appends `data` to the log if this replica leads; returns (index, term) where it
    /// will commit if leadership holds. Fails fast with [`KvError::WrongLeader`].
    fn propose(&self, data: Vec<u8>) -> Result<(u64, u64), KvError>;

    /// Appends several entries, in order, with consecutive indices where it can; one
    /// result each. The default proposes them one by one.
    fn propose_batch(&self, batch: Vec<Vec<u8>>) -> Vec<Result<(u64, u64), KvError>> {
        batch.into_iter().map(|data| self.propose(data)).collect()
    }

    /// Like [`propose_batch`](Self::propose_batch), but answers through `on_proposed`
    /// instead of blocking.
    ///
    /// `on_proposed` is called exactly once. It may run on another thread (the
    /// consensus driver's) or on the calling thread before this returns, so it must be
    /// quick and non-blocking, and the caller must not hold a lock `on_proposed` takes.
    /// A handle that supports [`watch_leadership`](Self::watch_leadership) must call it
    /// before reporting the end of the leadership the entries were accepted under. The
    /// default calls [`propose_batch`](Self::propose_batch) and then `on_proposed`, on
    /// the calling thread.
    fn propose_batch_with(&self, batch: Vec<Vec<u8>>, on_proposed: ProposeCallback) {
        on_proposed(self.propose_batch(batch));
    }

    /// Confirms leadership with a heartbeat quorum and returns the commit index a
    /// linearizable read must wait for.
    fn read_index(&self, timeout: Duration) -> Result<u64, KvError>;

    /// Like [`read_index`](Self::read_index), but answers through `on_read` (called
    /// exactly once, under the rules of
    /// [`propose_batch_with`](Self::propose_batch_with)'s callback). The default calls
    /// [`read_index`](Self::read_index) and then `on_read`, on the calling thread.
    fn read_index_with(&self, timeout: Duration, on_read: ReadIndexCallback) {
        on_read(self.read_index(timeout));
    }

    /// Subscribes `watcher` to this replica's leadership: it is called with the current
    /// leadership, then whenever the term, the role or the leader changes, in order,
    /// from one thread at a time; quick and non-blocking. Returns `false` if the handle
    /// cannot (the default): the RSM then polls [`leadership`](Self::leadership).
    fn watch_leadership(&self, watcher: LeadershipWatcher) -> bool {
        let _ = watcher;
        false
    }

    /// Current term and leader.
    fn leadership(&self) -> Leadership;

    /// The service committed a snapshot at `meta` into the persister; Raft may drop its
    /// log up to there.
    fn snapshot_taken(&self, meta: SnapshotMeta);

    /// The commit index known now. The RSM asks once, at start: the replica counts as
    /// loading until it has applied this far (the default, 0, means as soon as its
    /// snapshot is restored).
    fn commit_index(&self) -> u64 {
        0
    }
}
