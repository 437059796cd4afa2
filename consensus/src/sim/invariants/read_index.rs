//! **Linearizable reads through ReadIndex** (Raft dissertation §6.4; Raft paper §8): a
//! read that starts after a write committed must see it. With ReadIndex, the read
//! index a leader returns must be at least the commit index of the cluster at the
//! moment the read was requested.
//!
//! When a read is requested, the highest commit index any node knows (a lower bound on
//! the cluster's real commit index, since every node's commit index is safe) is
//! remembered as the read's floor; the `ReadState` that completes it must carry an
//! index at or above that floor. A `ReadState` for a request that was never made (or
//! was made to another instance) breaks the API contract.

use std::collections::BTreeMap;

use raftkv_storage::NodeId;

use super::Violation;
use crate::ReadState;

const NAME: &str = "linearizable ReadIndex";
const SECTION: &str = "Raft dissertation §6.4; Raft §8";

/// Outstanding ReadIndex requests and their floors.
#[derive(Debug, Default)]
pub struct ReadIndexSafety {
    pending: BTreeMap<(NodeId, u64, u64), u64>,
    completed: u64,
}

impl ReadIndexSafety {
    /// Records a request `ctx` made to `node` (instance `incarnation`) when the highest
    /// known commit index was `floor`.
    pub fn on_request(&mut self, node: NodeId, incarnation: u64, ctx: u64, floor: u64) {
        self.pending.insert((node, incarnation, ctx), floor);
    }

    /// Forgets a request the core refused.
    pub fn on_refused(&mut self, node: NodeId, incarnation: u64, ctx: u64) {
        self.pending.remove(&(node, incarnation, ctx));
    }

    /// Checks a completed read.
    pub fn on_read_state(
        &mut self,
        node: NodeId,
        incarnation: u64,
        rs: &ReadState,
    ) -> Result<(), Violation> {
        let Some(floor) = self.pending.remove(&(node, incarnation, rs.ctx)) else {
            return Err(Violation::new(
                NAME,
                SECTION,
                format!(
                    "node {node} completed read ctx {} that was never requested from this \
                     instance (or completed it twice)",
                    rs.ctx
                ),
            ));
        };
        if rs.index < floor {
            return Err(Violation::new(
                NAME,
                SECTION,
                format!(
                    "node {node} answered read ctx {} with read index {}, but index {floor} was \
                     already committed when the read was requested (a stale read)",
                    rs.ctx, rs.index
                ),
            ));
        }
        self.completed += 1;
        Ok(())
    }

    /// Reads completed and checked so far.
    pub fn completed(&self) -> u64 {
        self.completed
    }
}
