//! The consensus layer's errors: a bad configuration or recovered state
//! ([`ConfigError`]) and a refused request ([`ProposeError`]).
//!
//! Neither means the node must stop: broken internal invariants panic instead (see
//! `core::invariant`), and storage failures are the runtime's to handle.

use raftkv_storage::NodeId;

/// Why [`RaftCore::new`](crate::RaftCore::new) refused a [`Config`](crate::Config) or a
/// recovered state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Node id 0 is reserved.
    #[error("invalid node id {id}: 0 is reserved")]
    InvalidId {
        /// The offending id.
        id: NodeId,
    },
    /// The node's own id is not among the voters.
    #[error("node {id} is not among the voters")]
    NotAVoter {
        /// The node's id.
        id: NodeId,
    },
    /// A voter is listed twice.
    #[error("voter {id} is listed twice")]
    DuplicateVoter {
        /// The repeated id.
        id: NodeId,
    },
    /// The heartbeat must be at least one tick and shorter than the election timeout
    /// (and `2 * election_ticks` must fit a `u32`).
    #[error(
        "invalid ticks: heartbeat_ticks {heartbeat_ticks} must be at least 1 and below \
         election_ticks {election_ticks} (at most u32::MAX / 2)"
    )]
    InvalidTicks {
        /// The configured election ticks.
        election_ticks: u32,
        /// The configured heartbeat ticks.
        heartbeat_ticks: u32,
    },
    /// A limit that must be at least 1 is 0.
    #[error("{field} must be at least 1")]
    ZeroLimit {
        /// The field's name.
        field: &'static str,
    },
    /// The recovered state breaks a rule storage guarantees (a gap in the log, a commit
    /// index beyond it, an entry newer than the hard state's term, ...).
    #[error("inconsistent recovered state: {reason}")]
    Recovered {
        /// What is wrong.
        reason: String,
    },
}

/// Why a request ([`propose`](crate::RaftCore::propose),
/// [`read_index`](crate::RaftCore::read_index),
/// [`transfer_leadership`](crate::RaftCore::transfer_leadership)) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProposeError {
    /// Only the leader accepts requests.
    #[error("not the leader (term {term}, leader hint {leader_hint:?})")]
    NotLeader {
        /// The leader this node follows in `term`, if it knows one.
        leader_hint: Option<NodeId>,
        /// This node's current term.
        term: u64,
    },
    /// Empty data is reserved for the leader's no-op entries.
    #[error("empty proposal: empty data is reserved for the leader's no-op entries")]
    Empty,
    /// The payload exceeds [`Config::max_append_bytes`](crate::Config::max_append_bytes).
    #[error("proposal of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The limit.
        max: u64,
    },
    /// The leader is handing leadership over and accepts no proposals meanwhile.
    #[error("a leadership transfer is in progress")]
    TransferInProgress,
    /// [`transfer_leadership`](crate::RaftCore::transfer_leadership) named a node that
    /// is not a voter.
    #[error("node {id} is not a voter")]
    UnknownNode {
        /// The id given.
        id: NodeId,
    },
}
