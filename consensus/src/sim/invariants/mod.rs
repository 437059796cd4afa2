//! Safety invariants, checked by the simulation after every event.
//!
//! One invariant per file, each citing the section of the Raft paper (Ongaro and
//! Ousterhout, "In Search of an Understandable Consensus Algorithm (Extended
//! Version)", 2014) that states it. The checkers keep their own history across the
//! whole run and across crashes, so they check the properties over all time, not just
//! among the instances alive at one instant.
//!
//! A checker returns a [`Violation`]; the simulation turns it into a panic that names
//! the seed, the virtual time and the invariant.

pub mod applied_monotonic;
pub mod durable_replies;
pub mod election_safety;
pub mod leader_completeness;
pub mod log_matching;
pub mod read_index;
pub mod state_machine_safety;
pub mod vote_once;

use std::fmt;

pub use applied_monotonic::AppliedMonotonic;
pub use durable_replies::DurableReplies;
pub use election_safety::ElectionSafety;
pub use leader_completeness::LeaderCompleteness;
pub use log_matching::LogMatching;
pub use read_index::ReadIndexSafety;
pub use state_machine_safety::StateMachineSafety;
pub use vote_once::VoteOnce;

/// A broken invariant (or a broken contract of the core's API that the simulation
/// relies on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's name, e.g. `"election safety"`.
    pub invariant: &'static str,
    /// Where it is stated, e.g. `"Raft §5.2, Figure 3"`.
    pub section: &'static str,
    /// What happened.
    pub detail: String,
}

impl Violation {
    /// A violation of `invariant` (stated in `section`).
    pub fn new(invariant: &'static str, section: &'static str, detail: impl Into<String>) -> Self {
        Self {
            invariant,
            section,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.invariant, self.section, self.detail)
    }
}

/// All checkers together, as the simulation holds them.
#[derive(Debug, Default)]
pub struct Invariants {
    /// At most one leader per term.
    pub election: ElectionSafety,
    /// At most one vote per node per term; persisted terms never go back.
    pub votes: VoteOnce,
    /// Same index and term ⇒ same entry and same prefix.
    pub log_matching: LogMatching,
    /// Leaders hold every committed entry of earlier terms.
    pub completeness: LeaderCompleteness,
    /// No two nodes apply different commands at one index.
    pub state_machine: StateMachineSafety,
    /// A restarted node never shows an older state than it had applied.
    pub applied: AppliedMonotonic,
    /// ReadIndex answers are never stale.
    pub reads: ReadIndexSafety,
    /// Votes and acknowledgements are durable before they are sent.
    pub replies: DurableReplies,
}
