//! **Applied state never goes back** (Raft §5.4.3 and §7; the persisted commit index
//! of `HardState::commit`): a node that restarts after a crash must never show an
//! older state than it had already applied.
//!
//! The paper's state machine re-applies the log from the last snapshot after a
//! restart. raftkv persists the commit index as well, and the core promises to re-emit
//! every entry up to the persisted commit right away. So:
//!
//! * the persisted commit index of a crashed node is at least the highest index it had
//!   applied (entries are applied only once their commit index is durable);
//! * after a restart the node re-applies through that persisted commit before it
//!   handles any other input (checked after the new instance's first `Ready` round);
//! * within an instance the applied index only moves forward.

use std::collections::BTreeMap;

use raftkv_storage::NodeId;

use super::Violation;

const NAME: &str = "applied index never goes backwards";
const SECTION: &str = "Raft §5.4.3, §7; HardState.commit";

/// The highest index each node has applied, over all its incarnations.
#[derive(Debug, Default)]
pub struct AppliedMonotonic {
    max_applied: BTreeMap<NodeId, u64>,
    /// Restarted nodes that must reach this applied index in their first round.
    pending: BTreeMap<NodeId, u64>,
}

impl AppliedMonotonic {
    /// Records that `node` has applied through `index`.
    pub fn on_applied(&mut self, node: NodeId, index: u64) {
        let m = self.max_applied.entry(node).or_insert(0);
        *m = (*m).max(index);
    }

    /// Called when `node` restarts from storage whose hard state holds
    /// `persisted_commit`.
    pub fn on_restart(&mut self, node: NodeId, persisted_commit: u64) -> Result<(), Violation> {
        let before = self.max_applied.get(&node).copied().unwrap_or(0);
        if persisted_commit < before {
            return Err(Violation::new(
                NAME,
                SECTION,
                format!(
                    "node {node} had applied index {before} before it crashed, but its durable \
                     commit index is only {persisted_commit}: it applied entries before their \
                     commit index was persisted"
                ),
            ));
        }
        self.pending.insert(node, persisted_commit);
        Ok(())
    }

    /// Called after a restarted node's first `Ready` round with its applied index.
    pub fn after_first_round(&mut self, node: NodeId, applied: u64) -> Result<(), Violation> {
        let Some(required) = self.pending.remove(&node) else {
            return Ok(());
        };
        if applied < required {
            return Err(Violation::new(
                NAME,
                SECTION,
                format!(
                    "node {node} restarted with persisted commit {required} but had applied only \
                     through {applied} after its first Ready round"
                ),
            ));
        }
        Ok(())
    }
}
