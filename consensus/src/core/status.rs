//! [`Status`] and [`Role`]: a snapshot of a core's state for runtimes, tests and
//! monitoring.

use serde::{Deserialize, Serialize};

use raftkv_storage::NodeId;

/// What a node currently is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Runs a PreVote round; its term is unchanged.
    PreCandidate,
    /// Runs an election in its term.
    Candidate,
    /// Leads its term.
    Leader,
}

/// A copy of a core's state at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The node's id.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: u64,
    /// The leader it follows in `term` (itself when leader), if known.
    pub leader: Option<NodeId>,
    /// The commit index.
    pub commit: u64,
    /// The index handed out to apply (through `Ready::apply`) so far.
    pub applied: u64,
    /// The log is durable through this index.
    pub persisted_index: u64,
    /// The last log index (the snapshot index when the log is empty).
    pub last_index: u64,
    /// The index of the snapshot the log starts after.
    pub snapshot_index: u64,
    /// Bytes of the in-memory log, counted with `Entry::accounted_size`.
    pub log_bytes: u64,
}
