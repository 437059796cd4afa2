//! **Election Safety** (Raft §5.2, Figure 3): at most one leader can be elected in a
//! given term.
//!
//! Checked over the whole run: the first node seen as leader of a term owns it, and any
//! other node (or a later instance of a *different* node) seen as leader of the same
//! term is a violation, even if the two were never leaders at the same instant.

use std::collections::BTreeMap;

use raftkv_storage::NodeId;

use super::Violation;
use crate::{Role, Status};

const NAME: &str = "election safety";
const SECTION: &str = "Raft §5.2, Figure 3";

/// The leader seen for each term.
#[derive(Debug, Default)]
pub struct ElectionSafety {
    leaders: BTreeMap<u64, NodeId>,
}

impl ElectionSafety {
    /// Records `status` of `node`; fails if it leads a term that another node led.
    pub fn observe(&mut self, node: NodeId, status: &Status) -> Result<(), Violation> {
        if !matches!(status.role, Role::Leader) {
            return Ok(());
        }
        let owner = *self.leaders.entry(status.term).or_insert(node);
        if owner != node {
            return Err(Violation::new(
                NAME,
                SECTION,
                format!(
                    "nodes {owner} and {node} were both leader in term {}",
                    status.term
                ),
            ));
        }
        Ok(())
    }

    /// The leader of `term`, if one was seen.
    pub fn leader_of(&self, term: u64) -> Option<NodeId> {
        self.leaders.get(&term).copied()
    }

    /// How many terms had a leader.
    pub fn terms_with_leader(&self) -> usize {
        self.leaders.len()
    }
}
