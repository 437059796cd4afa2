//! [`ReadIndex`]: a leader's ReadIndex requests (Raft thesis §6.4).
//!
//! Requests wait in `pending` until the leader has committed an entry of its own term
//! (its no-op). Then all pending requests share one *round*: the round records the
//! commit index, the leader stamps its next heartbeats (and appends) with the round id
//! as `read_ctx`, and the round completes once a quorum has answered a message stamped
//! with it or a later round. Rounds complete in order.

use std::collections::VecDeque;

use crate::ready::ReadState;

/// One heartbeat round confirming leadership for a batch of reads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Round {
    id: u64,
    /// The commit index when the round started.
    index: u64,
    ctxs: Vec<u64>,
}

/// The ReadIndex requests of a leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadIndex {
    pending: Vec<u64>,
    rounds: VecDeque<Round>,
    /// Round ids never repeat within a core instance, across terms too, so that a
    /// late answer can never confirm a newer round.
    next_id: u64,
}

impl Default for ReadIndex {
    fn default() -> Self {
        Self {
            pending: Vec::new(),
            rounds: VecDeque::new(),
            next_id: 1,
        }
    }
}

impl ReadIndex {
    /// Queues a request until the next round starts.
    pub(crate) fn queue(&mut self, ctx: u64) {
        self.pending.push(ctx);
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes the queued requests without a round (single-node cluster).
    pub(crate) fn take_pending(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.pending)
    }

    /// Starts a round for every queued request at commit index `index`; returns its id.
    pub(crate) fn start_round(&mut self, index: u64) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.rounds.push_back(Round {
            id,
            index,
            ctxs: std::mem::take(&mut self.pending),
        });
        id
    }

    /// The newest round still waiting for a quorum, 0 if none: what outgoing
    /// AppendEntries carry as `read_ctx`.
    pub(crate) fn latest_round(&self) -> u64 {
        self.rounds.back().map_or(0, |r| r.id)
    }

    /// Whether `read_ctx` from a peer names a round this leader started.
    pub(crate) fn is_known_round(&self, read_ctx: u64) -> bool {
        read_ctx != 0 && read_ctx < self.next_id
    }

    /// Completes, in order, the rounds for which `confirmed(round_id)` holds.
    pub(crate) fn complete(&mut self, confirmed: impl Fn(u64) -> bool) -> Vec<ReadState> {
        let mut done = Vec::new();
        while let Some(round) = self.rounds.front() {
            if !confirmed(round.id) {
                break;
            }
            let index = round.index;
            if let Some(round) = self.rounds.pop_front() {
                done.extend(round.ctxs.into_iter().map(|ctx| ReadState { ctx, index }));
            }
        }
        done
    }

    /// Drops every request: leadership was lost, and the runtime fails the reads it
    /// is waiting for when it sees the role or term change.
    pub(crate) fn clear(&mut self) {
        self.pending.clear();
        self.rounds.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_batch_pending_reads_and_complete_in_order() {
        let mut r = ReadIndex::default();
        assert_eq!(r.latest_round(), 0);
        r.queue(10);
        r.queue(11);
        assert_eq!(r.start_round(5), 1);
        r.queue(12);
        assert_eq!(r.start_round(6), 2);
        assert_eq!(r.latest_round(), 2);
        assert!(r.is_known_round(2) && !r.is_known_round(3) && !r.is_known_round(0));
        assert_eq!(r.complete(|id| id == 2), vec![], "round 1 goes first");
        assert_eq!(
            r.complete(|id| id <= 2),
            vec![
                ReadState { ctx: 10, index: 5 },
                ReadState { ctx: 11, index: 5 },
                ReadState { ctx: 12, index: 6 }
            ]
        );
        assert_eq!(r.latest_round(), 0);
        r.queue(13);
        r.clear();
        assert!(!r.has_pending());
        assert_eq!(r.start_round(7), 3, "ids are never reused");
    }
}
