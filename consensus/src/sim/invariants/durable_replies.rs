//! **Persist before replying** (Raft Figure 2, "Persistent state on all servers:
//! updated on stable storage before responding to RPCs"; §5.2, §5.3): a vote may be
//! granted, and an append acknowledged, only once what it promises is durable.
//! Otherwise a crash right after the reply makes the node forget a vote (and vote
//! twice in a term) or a log entry a leader already counted toward a commit.
//!
//! Checked when a message leaves a node, against that node's durable state at that
//! instant (with the simulation's asynchronous disk mode, a write may still be in
//! flight):
//!
//! * a granted `RequestVoteResponse` in term T to candidate C requires durable
//!   `term == T` and `voted_for == C`;
//! * a successful `AppendEntriesResponse` in term T with `match_index` m requires a
//!   durable term of at least T and a durable log reaching m.

use raftkv_storage::NodeId;

use super::Violation;
use crate::sim::durable_log::DurableLog;
use crate::{Message, MessageBody};

const NAME: &str = "persist before replying";
const SECTION: &str = "Raft Figure 2, §5.2, §5.3";

/// Counts the replies it checked.
#[derive(Debug, Default)]
pub struct DurableReplies {
    checked: u64,
}

impl DurableReplies {
    /// Checks a message `node` is sending now, given its durable state.
    pub fn on_send(
        &mut self,
        node: NodeId,
        msg: &Message,
        durable: &DurableLog,
    ) -> Result<(), Violation> {
        let hs = durable.hard_state();
        match &msg.body {
            MessageBody::RequestVoteResponse { granted: true } => {
                self.checked += 1;
                if hs.term != msg.term || hs.voted_for != Some(msg.to) {
                    return Err(Violation::new(
                        NAME,
                        SECTION,
                        format!(
                            "node {node} granted its vote to {} in term {} while its durable hard \
                             state is (term {}, voted for {:?})",
                            msg.to, msg.term, hs.term, hs.voted_for
                        ),
                    ));
                }
            }
            MessageBody::AppendEntriesResponse {
                success: true,
                match_index,
                ..
            } => {
                self.checked += 1;
                if hs.term < msg.term || durable.last_index() < *match_index {
                    return Err(Violation::new(
                        NAME,
                        SECTION,
                        format!(
                            "node {node} acknowledged entries through {match_index} in term {} \
                             while its durable log ends at {} (durable term {})",
                            msg.term,
                            durable.last_index(),
                            hs.term
                        ),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Replies checked so far.
    pub fn checked(&self) -> u64 {
        self.checked
    }
}
