//! Errors of the node runtime: [`NodeError`] for callers, [`FatalError`] for why a node
//! stopped on its own.

use std::sync::Arc;
use std::time::Duration;

use raftkv_storage::{NodeId, SnapshotMeta, StorageError};

use crate::{ConfigError, ProposeError};

/// Why a node stopped by itself. Once it happened, the node refuses every request with
/// [`NodeError::Stopped`] carrying it; the process should restart the node from its
/// persister (which the failure has poisoned, so that means reopening storage).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FatalError {
    /// `Persister::write` failed. The runtime never retries: after a failed write or
    /// sync the persister's state is unknown (see the `Persister` contract).
    #[error("persisting the raft log failed: {0}")]
    Persist(#[source] StorageError),
    /// Committing a received snapshot failed (not because it was stale).
    #[error("committing the received snapshot at index {} failed: {source}", meta.index)]
    SnapshotCommit {
        /// The snapshot.
        meta: SnapshotMeta,
        /// The persister's error.
        #[source]
        source: StorageError,
    },
    /// Opening a committed snapshot for the apply stream failed.
    #[error("opening the snapshot at index {} for the apply stream failed: {source}", meta.index)]
    SnapshotOpen {
        /// The snapshot the core applied.
        meta: SnapshotMeta,
        /// The persister's error.
        #[source]
        source: StorageError,
    },
    /// The core and the persister disagree, or the core broke its contract.
    #[error("invariant broken on node {id}: {detail}")]
    Invariant {
        /// The node.
        id: NodeId,
        /// What was found.
        detail: String,
    },
    /// The driver thread panicked.
    #[error("the driver thread of node {id} panicked")]
    Panicked {
        /// The node.
        id: NodeId,
    },
}

/// An error from [`Node::start`](super::Node::start) or a [`NodeHandle`](super::NodeHandle)
/// call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The core refused the request: not the leader (with a hint where to go), empty or
    /// oversized data, or a leadership transfer in progress.
    #[error(transparent)]
    Rejected(#[from] ProposeError),
    /// The node is not running: it was shut down (`cause` is `None`) or stopped on a
    /// fatal error.
    #[error("node {id} is stopped{}", match cause { Some(c) => format!(": {c}"), None => String::new() })]
    Stopped {
        /// The node.
        id: NodeId,
        /// The fatal error that stopped it, if any.
        cause: Option<Arc<FatalError>>,
    },
    /// The node's leadership ended (or its term changed) before a read index was
    /// confirmed.
    #[error(
        "leadership lost before the read was confirmed (term {term}, leader hint {leader_hint:?})"
    )]
    LeadershipLost {
        /// The node's term when the read was abandoned.
        term: u64,
        /// Where the leader may be now.
        leader_hint: Option<NodeId>,
    },
    /// The request did not complete in time.
    #[error("node {id}: {op} timed out after {after:?}")]
    Timeout {
        /// The node.
        id: NodeId,
        /// The request.
        op: &'static str,
        /// How long it waited.
        after: Duration,
    },
    /// The apply stream's consumer is this many entries behind; proposals are refused
    /// until it catches up.
    #[error("the apply stream is {backlog} entries behind; proposal refused")]
    Overloaded {
        /// Entries committed but not yet taken by the consumer.
        backlog: usize,
    },
    /// The config is invalid.
    #[error("invalid raft config: {0}")]
    Config(#[from] ConfigError),
    /// Recovering or opening state from the persister failed at start.
    #[error("recovering node state from the persister failed: {0}")]
    Recover(#[source] StorageError),
    /// The driver thread could not be started.
    #[error("starting the driver thread failed: {0}")]
    Spawn(#[source] std::io::Error),
    /// [`shutdown`](super::NodeHandle::shutdown) gave up waiting for the driver thread
    /// (it is blocked in a persister call); the thread exits when that call returns.
    #[error("node {id}: the driver thread did not stop within {after:?}")]
    ShutdownTimedOut {
        /// The node.
        id: NodeId,
        /// How long shutdown waited.
        after: Duration,
    },
}

impl NodeError {
    /// True when the request must go to another node.
    pub fn is_not_leader(&self) -> bool {
        matches!(
            self,
            Self::Rejected(ProposeError::NotLeader { .. }) | Self::LeadershipLost { .. }
        )
    }

    /// The leader this node believes in, when the error is about leadership.
    pub fn leader_hint(&self) -> Option<NodeId> {
        match self {
            Self::Rejected(ProposeError::NotLeader { leader_hint, .. })
            | Self::LeadershipLost { leader_hint, .. } => *leader_hint,
            _ => None,
        }
    }
}
