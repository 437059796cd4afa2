//! Errors of the KV service, as seen by its callers.

use raftkv_storage::{NodeId, StorageError};

/// Why a request did not get an answer from the state machine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// This replica is not the leader (or lost leadership before the command applied):
    /// retry at `leader_hint` or elsewhere. The command did not apply here under this
    /// proposal, but a retry with the same sequence number is safe.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    WrongLeader {
        /// The leader this replica believes in, if any.
        leader_hint: Option<NodeId>,
    },
    /// The command was proposed but did not apply in time. It may still apply later:
    /// retry with the same sequence number.
    #[error("timed out after {waited_ms} ms waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// How long.
        waited_ms: u64,
    },
    /// The service is shutting down or has stopped.
    #[error("the KV service is shut down")]
    Shutdown,
    /// A request too large to propose.
    #[error("request of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The encoded size.
        len: usize,
        /// The limit.
        max: u64,
    },
    /// The node refuses proposals until its apply stream's consumer catches up.
    #[error("overloaded: {backlog} applied entries wait for the state machine")]
    Overloaded {
        /// Entries waiting.
        backlog: usize,
    },
    /// The member already has its most proposals waiting to commit
    /// ([`ProposalLimit`](crate::proposal_limit::ProposalLimit)): the write was not
    /// proposed. Retry later, or at a less loaded member's leader.
    #[error("too many pending proposals (at most {max} per member); try again later")]
    Busy {
        /// The limit.
        max: usize,
    },
    /// The consensus layer failed in a way not listed above.
    #[error("consensus: {0}")]
    Consensus(String),
    /// The storage layer failed; the node cannot continue.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}
