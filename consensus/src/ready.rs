//! [`Ready`]: everything the core asks its runtime to do, drained by
//! [`RaftCore::ready`](crate::RaftCore::ready). The ordering rules are in
//! [`crate::docs::io_ordering`].

use raftkv_storage::{NodeId, SnapshotMeta, WriteBatch};

use crate::message::Message;

/// The core's pending output. Process it in this order: send `messages` (at any time),
/// write `persist` with one [`Persister::write`](raftkv_storage::Persister::write) and
/// then call [`on_persisted`](crate::RaftCore::on_persisted), then send
/// `persisted_messages`; `apply`, `read_states` and `snapshot_sends` need no ordering
/// with the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ready {
    /// Write through `Persister::write` as one batch (group commit), then call
    /// `on_persisted(id)`.
    pub persist: Option<Persist>,
    /// May be sent right away, before or while `persist` is written.
    pub messages: Vec<Message>,
    /// May only be sent once `persist` (and every earlier one) is durable: vote
    /// requests and all responses that vouch for durable state.
    pub persisted_messages: Vec<Message>,
    /// Committed and locally durable entries (and installed snapshots), strictly in
    /// index order, each exactly once per core instance.
    pub apply: Vec<Apply>,
    /// Completed ReadIndex requests.
    pub read_states: Vec<ReadState>,
    /// Leader: stream the current snapshot (from the persister) to these followers.
    pub snapshot_sends: Vec<SnapshotSend>,
}

impl Ready {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.persist.is_none()
            && self.messages.is_empty()
            && self.persisted_messages.is_empty()
            && self.apply.is_empty()
            && self.read_states.is_empty()
            && self.snapshot_sends.is_empty()
    }
}

/// One batch to make durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persist {
    /// Pass to [`RaftCore::on_persisted`](crate::RaftCore::on_persisted) once durable.
    /// Ids increase by one from 1 within a core instance.
    pub id: u64,
    /// The hard state, truncation and entries to write atomically.
    pub batch: WriteBatch,
}

/// Something for the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Apply {
    /// A committed entry. Empty `data` is a leader's no-op: skip it (but count its
    /// index as applied).
    Command {
        /// The entry's index.
        index: u64,
        /// The entry's term.
        term: u64,
        /// The proposed payload.
        data: Vec<u8>,
    },
    /// Replace the state machine with the snapshot the persister now holds at `meta`.
    Snapshot {
        /// The snapshot's index and term.
        meta: SnapshotMeta,
    },
}

impl Apply {
    /// The log index this item brings the state machine to.
    pub fn index(&self) -> u64 {
        match self {
            Self::Command { index, .. } => *index,
            Self::Snapshot { meta } => meta.index,
        }
    }
}

/// A completed ReadIndex request: a read tagged `ctx` is linearizable once the state
/// machine has applied `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReadState {
    /// The `ctx` given to [`RaftCore::read_index`](crate::RaftCore::read_index).
    pub ctx: u64,
    /// The commit index confirmed by a quorum.
    pub index: u64,
}

/// Stream the current snapshot to a follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotSend {
    /// The follower.
    pub to: NodeId,
    /// The leader's term, to offer with the snapshot.
    pub term: u64,
    /// The snapshot the core knows of; the persister may hold a newer one, which is as
    /// good.
    pub meta: SnapshotMeta,
}
