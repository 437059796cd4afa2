//! **One vote per term** (Raft §5.2 and Figure 2, "Persistent state on all servers"):
//! each server votes for at most one candidate in a given term, and `currentTerm`
//! only increases — also across crashes, which is why both are persisted.
//!
//! Checked on every durable hard state a node writes: the vote recorded for
//! `(node, term)` may be set once and never changed or cleared, and a node's persisted
//! term never goes down, whatever incarnation writes it.

use std::collections::BTreeMap;

use raftkv_storage::{HardState, NodeId};

use super::Violation;

const NAME: &str = "one vote per term";
const SECTION: &str = "Raft §5.2, Figure 2";

/// Persisted votes and terms of every node, across incarnations.
#[derive(Debug, Default)]
pub struct VoteOnce {
    votes: BTreeMap<(NodeId, u64), NodeId>,
    terms: BTreeMap<NodeId, u64>,
}

impl VoteOnce {
    /// Checks a hard state that `node` made durable.
    pub fn on_hard_state(&mut self, node: NodeId, hs: &HardState) -> Result<(), Violation> {
        let last = self.terms.entry(node).or_insert(0);
        if hs.term < *last {
            return Err(Violation::new(
                NAME,
                SECTION,
                format!(
                    "node {node} persisted term {} after having persisted term {last}",
                    hs.term
                ),
            ));
        }
        *last = hs.term;
        match hs.voted_for {
            Some(v) => {
                let first = *self.votes.entry((node, hs.term)).or_insert(v);
                if first != v {
                    return Err(Violation::new(
                        NAME,
                        SECTION,
                        format!(
                            "node {node} voted for {first} and then for {v} in term {}",
                            hs.term
                        ),
                    ));
                }
            }
            None => {
                if let Some(first) = self.votes.get(&(node, hs.term)) {
                    return Err(Violation::new(
                        NAME,
                        SECTION,
                        format!(
                            "node {node} persisted no vote in term {} after voting for {first} \
                             in it (a forgotten vote allows a second one)",
                            hs.term
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
